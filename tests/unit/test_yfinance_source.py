"""YFinanceSource: fakes of yf.Ticker for control flow, recorded Yahoo HTTP replayed through real yfinance."""

from __future__ import annotations

import json
import time
from datetime import date
from itertools import pairwise
from urllib.parse import urlsplit

import pandas as pd
import pytest
import requests
import yfinance as yf
from curl_cffi.requests import exceptions as curl_exc
from yfinance.exceptions import YFDataException, YFPricesMissingError, YFRateLimitError

from etl.config import load_universe
from etl.sources import make_source
from etl.sources.base import METADATA_FIELDS, RAW_COLUMNS, SourceError
from etl.sources.yfinance_source import MIN_INTERVAL_ENV, YFinanceSource, is_network_error
from tests.unit.yf_fakes import FIXTURES, SHARED, FakeTime, source

UNIVERSE_YAML = """
calendar: {start: "2020-01-01", end: "2020-12-31"}
markets:
  US: {name: United States, calendar: XNYS, timezone: America/New_York, close_local: "16:00",
       schedule: "30 17 * * 1-5"}
exchanges:
  XNAS: {name: Nasdaq, market: US, timezone: America/New_York, country: US}
  XNYS: {name: New York Stock Exchange, market: US, timezone: America/New_York, country: US}
  XOFF: {name: Off-exchange (FX), market: FX, timezone: Europe/London, country: GB}
currencies:
  USD: {name: US Dollar, fx_symbol: null}
  EUR: {name: Euro, fx_symbol: EURUSD=X}
fx:
  - {symbol: EURUSD=X, currency: EUR, name: EUR/USD}
benchmarks: {US: QQQ}
companies:
  - id: apple
    name: Apple Inc
    listings: [{symbol: AAPL, exchange: XNAS, currency: USD, security_type: equity}]
  # BABA is an ADR in the real universe; here it stands alone so the test universe needs no HK market.
  - id: alibaba
    name: Alibaba Group Holding Ltd
    listings: [{symbol: BABA, exchange: XNYS, currency: USD, security_type: equity}]
  - id: invesco-qqq
    name: Invesco QQQ Trust
    listings: [{symbol: QQQ, exchange: XNAS, currency: USD, security_type: etf}]
"""


@pytest.fixture
def universe(tmp_path):
    path = tmp_path / "universe.yaml"
    path.write_text(UNIVERSE_YAML)
    return load_universe(path)


# --------------------------------------------------------------------------- fakes of yf.Ticker


class FakeTicker:
    """Stands in for yf.Ticker: `history` is a list of frames/exceptions served one per call."""

    def __init__(self, symbol: str, history: list, info=None, clock: FakeTime | None = None) -> None:
        self.symbol = symbol
        self._history = list(history)
        self._info = info
        self._clock = clock
        self.history_calls: list[dict] = []
        self.call_times: list[float] = []
        self.info_calls = 0
        self.hide_exceptions_seen: list = []

    def history(self, **kwargs):
        self.history_calls.append(kwargs)
        self.hide_exceptions_seen.append(yf.config.debug.hide_exceptions)
        if self._clock is not None:
            self.call_times.append(self._clock.now)
            self._clock.now += 0.1  # the call itself takes 0.1 s
        item = self._history.pop(0) if len(self._history) > 1 else self._history[0]
        if isinstance(item, BaseException):
            raise item
        return item

    @property
    def info(self):
        self.info_calls += 1
        if isinstance(self._info, BaseException):
            raise self._info
        if isinstance(self._info, list):
            item = self._info.pop(0) if len(self._info) > 1 else self._info[0]
            if isinstance(item, BaseException):
                raise item
            return item
        return self._info if self._info is not None else {}


def bars(days: list[str], tz: str = "America/New_York", close0: float = 100.0) -> pd.DataFrame:
    """A frame shaped like yfinance history(auto_adjust=False, actions=True) for 1d bars."""
    index = pd.DatetimeIndex(pd.to_datetime(days)).tz_localize(tz)
    index.name = "Date"
    n = len(days)
    close = [close0 + i for i in range(n)]
    return pd.DataFrame(
        {
            "Open": [c - 0.5 for c in close],
            "High": [c + 1.0 for c in close],
            "Low": [c - 1.0 for c in close],
            "Close": close,
            "Adj Close": [c * 0.97 for c in close],
            "Volume": pd.array([1_000_000 + i for i in range(n)], dtype="int64"),
            "Dividends": [0.0] * n,
            "Stock Splits": [0.0] * n,
        },
        index=index,
    )


WEEK = ["2025-01-06", "2025-01-07", "2025-01-08", "2025-01-09", "2025-01-10"]


def test_frame_passes_through_unchanged_with_the_documented_history_call():
    frame = bars(WEEK)
    ticker = FakeTicker("BABA", [frame], info={"currency": "USD"})
    result = source({"BABA": ticker}).fetch(["BABA"], date(2025, 1, 6), date(2025, 1, 10))

    got = result.frames["BABA"]
    pd.testing.assert_frame_equal(got, frame)
    assert list(got.columns) == RAW_COLUMNS
    assert str(got.index.tz) == "America/New_York" and got.index.name == "Date"
    assert result.frame_info["BABA"] == {"auto_adjusted": False}
    assert result.missing == {}
    assert ticker.history_calls == [
        {
            "start": date(2025, 1, 6),
            "end": date(2025, 1, 11),  # end is exclusive in yfinance
            "interval": "1d",
            "auto_adjust": False,
            "actions": True,
            "timeout": 10.0,
        }
    ]
    # yfinance must raise (not log and return empty) while we call it, and be restored afterwards.
    assert ticker.hide_exceptions_seen == [False]
    assert yf.config.debug.hide_exceptions is True


def test_window_is_cut_on_local_market_dates():
    # Hong Kong midnight is 16:00 UTC the day before: cutting on UTC dates would drop 2025-01-06 and
    # keep 2025-01-08.
    frame = bars(["2025-01-03", "2025-01-06", "2025-01-07", "2025-01-08"], tz="Asia/Hong_Kong")
    ticker = FakeTicker("9988.HK", [frame])
    result = source({"9988.HK": ticker}, with_metadata=False).fetch(
        ["9988.HK"], date(2025, 1, 6), date(2025, 1, 7)
    )
    got = result.frames["9988.HK"]
    assert [d.isoformat() for d in got.index.date] == ["2025-01-06", "2025-01-07"]
    assert str(got.index.tz) == "Asia/Hong_Kong"
    pd.testing.assert_frame_equal(got, frame.iloc[1:3])


def test_empty_frame_and_no_bars_in_window_are_missing_with_reason():
    empty = bars([]).iloc[0:0]
    outside = bars(["2025-01-13", "2025-01-14"])  # e.g. the live bar Yahoo appends past the end
    tickers = {
        "EMPTY": FakeTicker("EMPTY", [empty], info={"currency": "USD"}),
        "LATE": FakeTicker("LATE", [outside], info={"currency": "USD"}),
        "OK": FakeTicker("OK", [bars(WEEK)], info={"currency": "USD"}),
    }
    result = source(tickers).fetch(["EMPTY", "LATE", "OK"], date(2025, 1, 6), date(2025, 1, 10))

    assert set(result.frames) == {"OK"}
    assert result.missing["EMPTY"] == "empty frame from Yahoo"
    assert result.missing["LATE"].startswith("no bars between 2025-01-06 and 2025-01-10")
    assert "2025-01-13 .. 2025-01-14" in result.missing["LATE"]
    # No frame, no frame_info and no metadata call for a symbol that has no bars.
    assert set(result.frame_info) == {"OK"} and set(result.metadata) == {"OK"}
    assert tickers["EMPTY"].info_calls == 0 and tickers["LATE"].info_calls == 0


def test_per_symbol_yfinance_errors_are_missing_and_the_fetch_goes_on():
    tickers = {
        "GONE": FakeTicker("GONE", [YFPricesMissingError("GONE", "(1d 2025-01-06 -> 2025-01-11)")]),
        "HTTP": FakeTicker("HTTP", [curl_exc.HTTPError("HTTP Error 404: Not Found")]),
        "OK": FakeTicker("OK", [bars(WEEK)]),
    }
    src = source(tickers, with_metadata=False)
    result = src.fetch(["GONE", "HTTP", "OK"], date(2025, 1, 6), date(2025, 1, 10))

    assert set(result.frames) == {"OK"}
    assert "possibly delisted; no price data found" in result.missing["GONE"]
    # A 404 is Yahoo answering, not an outage: that symbol is missing, the fetch goes on.
    assert result.missing["HTTP"] == "history call failed: HTTPError: HTTP Error 404: Not Found"
    assert src.ticker_factory.created == ["GONE", "HTTP", "OK"]


def test_rate_limit_is_retried_with_exponential_backoff():
    ticker = FakeTicker(
        "AAPL", [YFRateLimitError(), YFRateLimitError(), bars(WEEK)], info={"currency": "USD"}
    )
    fake_time = FakeTime()
    src = source({"AAPL": ticker}, fake_time, base_delay=2.0)
    result = src.fetch(["AAPL"], date(2025, 1, 6), date(2025, 1, 10))

    assert fake_time.sleeps == [2.0, 4.0]
    assert len(ticker.history_calls) == 3
    assert "AAPL" in result.frames and result.missing == {}
    assert result.calls == 4  # three history attempts and one info
    assert src.calls_by_kind == {"history": 3, "info": 1}


def test_persistent_rate_limit_raises_source_error_naming_the_symbol():
    ticker = FakeTicker("AAPL", [YFRateLimitError()])
    fake_time = FakeTime()
    src = source({"AAPL": ticker, "MSFT": FakeTicker("MSFT", [bars(WEEK)])}, fake_time, max_attempts=4)

    with pytest.raises(SourceError, match=r"rate-limited the history call for AAPL 4 times") as err:
        src.fetch(["AAPL", "MSFT"], date(2025, 1, 6), date(2025, 1, 10))

    assert isinstance(err.value.__cause__, YFRateLimitError)
    assert len(ticker.history_calls) == 4
    assert fake_time.sleeps == [2.0, 4.0, 8.0]  # no sleep after the last attempt
    assert src.ticker_factory.created == ["AAPL"]


@pytest.mark.parametrize(
    "exc",
    [
        curl_exc.DNSError("Failed to perform, curl: (6) Could not resolve host: query2.finance.yahoo.com"),
        curl_exc.ConnectTimeout("Failed to perform, curl: (28) Connection timed out"),
        requests.exceptions.ConnectionError("Max retries exceeded"),
        ConnectionRefusedError(111, "Connection refused"),
        YFDataException("*** YAHOO! FINANCE IS CURRENTLY DOWN! ***"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_unreachable_yahoo_fails_fast_on_the_first_symbol(exc):
    tickers = {s: FakeTicker(s, [bars(WEEK)]) for s in ["AAPL", "MSFT", "QQQ"]}
    tickers["AAPL"] = FakeTicker("AAPL", [exc])
    fake_time = FakeTime()
    src = source(tickers, fake_time)

    started = time.monotonic()
    with pytest.raises(
        SourceError, match=r"Yahoo Finance is unreachable .*no fallback to offline data"
    ) as err:
        src.fetch(["AAPL", "MSFT", "QQQ"], date(2025, 1, 6), date(2025, 1, 10))

    assert time.monotonic() - started < 1.0
    assert "fetching AAPL, symbol 1 of 3" in str(err.value)
    assert err.value.__cause__ is exc
    assert src.ticker_factory.created == ["AAPL"]  # no further symbol tried
    assert src.total_calls == 1 and fake_time.sleeps == []  # not retried either


def test_outage_mid_run_also_stops_the_fetch():
    tickers = {
        "AAPL": FakeTicker("AAPL", [bars(WEEK)]),
        "MSFT": FakeTicker(
            "MSFT", [curl_exc.ConnectionError("Failed to perform, curl: (7) Couldn't connect")]
        ),
        "QQQ": FakeTicker("QQQ", [bars(WEEK)]),
    }
    src = source(tickers, with_metadata=False)
    with pytest.raises(SourceError, match=r"unreachable \(fetching MSFT, symbol 2 of 3: ConnectionError"):
        src.fetch(["AAPL", "MSFT", "QQQ"], date(2025, 1, 6), date(2025, 1, 10))
    assert src.ticker_factory.created == ["AAPL", "MSFT"]  # no partial result passed off as complete


def test_network_error_is_found_through_the_exception_chain():
    try:
        try:
            raise curl_exc.DNSError("Could not resolve host")
        except curl_exc.DNSError as inner:
            raise KeyError("chart") from inner
    except KeyError as outer:
        wrapped = outer
    assert is_network_error(wrapped)
    assert not is_network_error(curl_exc.HTTPError("HTTP Error 404"))
    assert not is_network_error(YFPricesMissingError("X", ""))


def test_metadata_is_cut_to_the_known_fields():
    info = {
        "longName": "Alibaba Group Holding Limited",
        "shortName": "Alibaba Group Holding",
        "exchange": "NYQ",
        "currency": "USD",
        "quoteType": "EQUITY",
        "sector": "Consumer Cyclical",
        "industry": "Internet Retail",
        "marketCap": 300e9,
        "sharesOutstanding": 2.3e9,
        "trailingPE": 12.3,
        "forwardPE": 9.8,
        "financialCurrency": "CNY",
        "companyOfficers": [{"name": "Eddie Wu"}],
    }
    tickers = {
        "BABA": FakeTicker("BABA", [bars(WEEK)], info=info),
        "QQQ": FakeTicker("QQQ", [bars(WEEK)], info={"longName": "Invesco QQQ Trust", "sector": None}),
    }
    result = source(tickers).fetch(["BABA", "QQQ"], date(2025, 1, 6), date(2025, 1, 10))

    assert result.metadata["BABA"] == {k: info[k] for k in METADATA_FIELDS}
    assert "companyOfficers" not in result.metadata["BABA"]
    assert result.metadata["QQQ"] == {"longName": "Invesco QQQ Trust"}  # absent/None fields are left out


def test_metadata_is_optional():
    ticker = FakeTicker("BABA", [bars(WEEK)], info={"longName": "x"})
    src = source({"BABA": ticker}, with_metadata=False)
    result = src.fetch(["BABA"], date(2025, 1, 6), date(2025, 1, 10))
    assert ticker.info_calls == 0 and result.metadata == {} and result.calls == 1
    assert "BABA" in result.frames


def test_metadata_failure_keeps_the_prices():
    tickers = {
        "BROKEN": FakeTicker(
            "BROKEN", [bars(WEEK)], info=curl_exc.HTTPError("HTTP Error 404: Quote not found")
        ),
        "LIMITED": FakeTicker("LIMITED", [bars(WEEK)], info=[YFRateLimitError()]),
        "OK": FakeTicker("OK", [bars(WEEK)], info={"currency": "USD"}),
    }
    fake_time = FakeTime()
    src = source(tickers, fake_time, max_attempts=2)
    result = src.fetch(["BROKEN", "LIMITED", "OK"], date(2025, 1, 6), date(2025, 1, 10))

    assert set(result.frames) == {"BROKEN", "LIMITED", "OK"} and result.missing == {}
    assert result.frame_info["BROKEN"] == {
        "auto_adjusted": False,
        "metadata_error": "info call failed: HTTPError: HTTP Error 404: Quote not found",
    }
    assert "rate-limited the info call for LIMITED 2 times" in result.frame_info["LIMITED"]["metadata_error"]
    assert tickers["LIMITED"].info_calls == 2 and fake_time.sleeps == [2.0]
    assert result.metadata == {"OK": {"currency": "USD"}}
    assert "metadata_error" not in result.frame_info["OK"]


def test_calls_are_counted_per_kind_and_per_symbol():
    tickers = {
        "A": FakeTicker("A", [bars(WEEK)], info={"currency": "USD"}),
        "B": FakeTicker("B", [bars([]).iloc[0:0]], info={"currency": "USD"}),
        "C": FakeTicker("C", [YFRateLimitError(), bars(WEEK)], info={"currency": "USD"}),
    }
    src = source(tickers)
    first = src.fetch(["A", "B", "C"], date(2025, 1, 6), date(2025, 1, 10))
    # A: history + info; B: history only (empty); C: two history attempts + info.
    assert first.calls == 6
    assert src.calls_by_kind == {"history": 4, "info": 2}
    assert src.calls_by_symbol == {"A": 2, "B": 1, "C": 3}
    assert src.calls_per_symbol() == 2.0

    second = src.fetch(["A"], date(2025, 1, 6), date(2025, 1, 10))
    assert second.calls == 2  # per fetch
    assert src.total_calls == 8  # cumulative over the source's life


def test_throttle_keeps_min_interval_between_calls():
    fake_time = FakeTime()
    tickers = {s: FakeTicker(s, [bars(WEEK)], clock=fake_time) for s in ["A", "B", "C"]}
    src = source(tickers, fake_time, min_interval=0.5, with_metadata=False)
    src.fetch(["A", "B", "C"], date(2025, 1, 6), date(2025, 1, 10))

    starts = [tickers[s].call_times[0] for s in ["A", "B", "C"]]
    assert starts[0] == 1000.0  # the first call does not wait
    assert [round(b - a, 9) for a, b in pairwise(starts)] == [0.5, 0.5]
    assert [round(s, 9) for s in fake_time.sleeps] == [0.4, 0.4]  # each call itself took 0.1 s


def test_throttle_does_not_sleep_when_calls_are_already_far_apart():
    fake_time = FakeTime()
    tickers = {"A": FakeTicker("A", [YFRateLimitError(), bars(WEEK)], clock=fake_time)}
    src = source(tickers, fake_time, min_interval=0.5, with_metadata=False, base_delay=2.0)
    src.fetch(["A"], date(2025, 1, 6), date(2025, 1, 10))
    assert fake_time.sleeps == [2.0]  # the backoff already spaced the retry out


def test_min_interval_comes_from_env_unless_given(monkeypatch):
    monkeypatch.delenv(MIN_INTERVAL_ENV, raising=False)
    assert YFinanceSource(None).min_interval == 0.5
    monkeypatch.setenv(MIN_INTERVAL_ENV, "1.25")
    assert YFinanceSource(None).min_interval == 1.25
    assert YFinanceSource(None, min_interval=0.1).min_interval == 0.1
    monkeypatch.setenv(MIN_INTERVAL_ENV, "fast")
    with pytest.raises(SourceError, match=MIN_INTERVAL_ENV):
        YFinanceSource(None)


def test_factory_builds_the_live_source(universe):
    src = make_source("yfinance", universe)
    assert isinstance(src, YFinanceSource)
    assert src.name == "yfinance" and src.is_synthetic is False
    assert src.universe is universe
    assert src.http_requests == 0  # the default factory counts yfinance's real HTTP requests


# --------------------------------------------------------------------------- recorded Yahoo HTTP


class RecordedResponse:
    """Enough of a curl_cffi Response for yfinance: status_code, url, text, json(), raise_for_status()."""

    def __init__(self, url: str, status: int, body: dict) -> None:
        self.url = url
        self.status_code = status
        self._body = body
        self.text = json.dumps(body)

    def json(self) -> dict:
        return json.loads(self.text)

    def raise_for_status(self) -> None:
        if self.status_code >= 400:
            raise curl_exc.HTTPError(f"HTTP Error {self.status_code}", response=self)


class RecordedYahoo:
    """Serves recorded chart bodies for /v8/finance/chart/<SYMBOL>; anything else gets Yahoo's 404."""

    def __init__(self) -> None:
        self.charts: dict[str, dict] = {}
        for path in FIXTURES.glob("chart-*.json"):
            wrapper = json.loads(path.read_text())
            symbol = urlsplit(wrapper["request"]["url"]).path.rsplit("/", 1)[-1]
            self.charts[symbol] = wrapper["response"]
        self.requests: list[tuple[str, dict]] = []
        self.fail_with: BaseException | None = None

    def make_request(self, url: str, params: dict | None = None, **kwargs) -> RecordedResponse:
        self.requests.append((url, dict(params or {})))
        if self.fail_with is not None:
            raise self.fail_with
        path = urlsplit(url).path
        if path.startswith("/v8/finance/chart/"):
            symbol = path.rsplit("/", 1)[-1]
            if symbol in self.charts:
                response = self.charts[symbol]
                return RecordedResponse(url, response["status"], response["bodyJson"])
            error = {"code": "Not Found", "description": "No data found, symbol may be delisted"}
            return RecordedResponse(url, 404, {"chart": {"result": None, "error": error}})
        error = {"code": "Not Found", "description": "Quote not found for symbol"}
        return RecordedResponse(url, 404, {"quoteSummary": {"result": None, "error": error}})

    def chart_requests(self, symbol: str) -> list[dict]:
        return [p for u, p in self.requests if urlsplit(u).path == f"/v8/finance/chart/{symbol}"]


@pytest.fixture
def yahoo(monkeypatch):
    """Real yfinance with its one HTTP choke point (YfData._make_request) answered from recordings."""
    if not SHARED.is_dir():
        pytest.skip(f"recorded Yahoo responses live in {SHARED} (../shared beside the repo): absent")
    recorded = RecordedYahoo()
    wanted = {"AAPL", "BABA", "QQQ", "EURUSD=X"}
    assert set(recorded.charts) >= wanted, f"chart fixtures missing in {FIXTURES}"

    # _make_request is where cookie, crumb and every GET/POST go; replacing it keeps the rest of yfinance
    # (get's consent check, cache_get, the timezone lookup, chart parsing) real.
    def make_request(self, url, request_method=None, **kwargs):
        return recorded.make_request(url, **kwargs)

    monkeypatch.setattr(yf.data.YfData, "_make_request", make_request)
    # Keep the test off the user's on-disk timezone cache, so the timezone lookup is replayed too.
    monkeypatch.setattr(yf.cache, "get_tz_cache", lambda: yf.cache._TzCacheDummy())
    # cache_get is an in-process lru_cache on the YfData singleton; do not let responses leak between tests.
    yf.data.YfData.cache_get.cache_clear()
    yield recorded
    yf.data.YfData.cache_get.cache_clear()


def replay_source(universe, **kwargs) -> YFinanceSource:
    kwargs.setdefault("min_interval", 0.0)
    kwargs.setdefault("with_metadata", False)
    return YFinanceSource(universe, **kwargs)


@pytest.mark.real
def test_replay_keeps_close_and_adj_close_unadjusted(yahoo, universe):
    result = replay_source(universe).fetch(["BABA", "QQQ"], date(2020, 1, 2), date(2020, 1, 2))

    assert result.missing == {}
    baba = result.frames["BABA"]
    assert list(baba.columns) == RAW_COLUMNS
    assert baba.index.name == "Date" and str(baba.index.tz) == "America/New_York"
    assert list(baba.index) == [pd.Timestamp("2020-01-02", tz="America/New_York")]
    row = baba.iloc[0]
    assert row["Close"] == pytest.approx(219.77, abs=1e-4)
    assert row["Adj Close"] == pytest.approx(212.24, abs=1e-2)
    assert row["Volume"] == 15_873_500 and baba["Volume"].dtype == "int64"
    assert result.frame_info["BABA"] == {"auto_adjusted": False}

    qqq = result.frames["QQQ"]
    assert qqq["Close"].iloc[0] == pytest.approx(216.16, abs=1e-4)
    assert list(qqq.columns) == RAW_COLUMNS + ["Capital Gains"]  # yfinance adds it for ETFs

    # The timezone lookup and the history call are both real chart requests; the latter asks for
    # start..end+1 day from local midnight (2020-01-02 and 2020-01-03 00:00 New York).
    history = [p for p in yahoo.chart_requests("BABA") if "period1" in p]
    assert [(p["period1"], p["period2"]) for p in history] == [(1577941200, 1578027600)]
    assert any(p.get("range") == "1d" for p in yahoo.chart_requests("BABA"))
    assert result.calls == 2  # two history calls; info is off


@pytest.mark.real
def test_replay_aapl_split_and_dividend(yahoo, universe):
    result = replay_source(universe).fetch(["AAPL"], date(2020, 8, 31), date(2020, 11, 6))
    aapl = result.frames["AAPL"]

    assert len(aapl) == 49
    assert aapl.index[0].date() == date(2020, 8, 31) and aapl.index[-1].date() == date(2020, 11, 6)
    splits = aapl["Stock Splits"][aapl["Stock Splits"] != 0]
    assert splits.index.strftime("%Y-%m-%d").tolist() == ["2020-08-31"] and splits.iloc[0] == 4.0
    dividends = aapl["Dividends"][aapl["Dividends"] != 0]
    assert dividends.index.strftime("%Y-%m-%d").tolist() == ["2020-11-06"]
    assert dividends.iloc[0] == pytest.approx(0.205)
    # Close stays as traded (split-adjusted only); Adj Close carries the dividend factor, which steps by
    # 1 - 0.205 / previous close across the 2020-11-06 ex-date (later dividends scale both sides alike).
    assert aapl["Close"].iloc[0] == pytest.approx(129.04, abs=1e-4)
    ratio = aapl["Adj Close"] / aapl["Close"]
    assert (ratio < 1).all()
    assert ratio.iloc[-2] / ratio.iloc[-1] == pytest.approx(1 - 0.205 / aapl["Close"].iloc[-2], abs=1e-6)


@pytest.mark.real
def test_replay_fx_window_is_inclusive_and_cut(yahoo, universe):
    # The recording holds 2020-01-01, -02 and -03 (London midnight); yfinance itself drops only the
    # last bar past period2, so the 2020-01-02 bar is ours to cut.
    result = replay_source(universe).fetch(["EURUSD=X"], date(2020, 1, 1), date(2020, 1, 1))
    fx = result.frames["EURUSD=X"]
    assert fx.index.strftime("%Y-%m-%d").tolist() == ["2020-01-01"]
    assert str(fx.index.tz) == "Europe/London"

    both = replay_source(universe).fetch(["EURUSD=X"], date(2020, 1, 1), date(2020, 1, 2))
    assert both.frames["EURUSD=X"].index.strftime("%Y-%m-%d").tolist() == ["2020-01-01", "2020-01-02"]


@pytest.mark.real
@pytest.mark.parametrize(
    "info_fallbacks_used, reason",
    [
        (0, "history call failed: HTTPError: HTTP Error 404"),
        (2, "$NOPE: possibly delisted; no timezone found"),
    ],
)
def test_replay_unknown_symbol_is_missing_and_metadata_failure_is_recorded(
    yahoo, universe, monkeypatch, info_fallbacks_used, reason
):
    # When Yahoo has no chart for a symbol, yfinance looks its timezone up in .info, but only for the
    # first two such symbols per process; after that it says "possibly delisted". Both end up missing.
    monkeypatch.setattr("yfinance.base._tz_info_fetch_ctr", info_fallbacks_used)
    src = replay_source(universe, with_metadata=True)
    result = src.fetch(["NOPE", "BABA"], date(2020, 1, 2), date(2020, 1, 2))

    assert set(result.frames) == {"BABA"}
    assert result.missing == {"NOPE": reason}
    # No quoteSummary recording, so yfinance's info raises on Yahoo's 404; the prices stay.
    assert result.frame_info["BABA"] == {
        "auto_adjusted": False,
        "metadata_error": "info call failed: HTTPError: HTTP Error 404",
    }
    assert "BABA" not in result.metadata
    assert src.calls_by_kind == {"history": 2, "info": 1}


@pytest.mark.real
def test_replay_offline_fails_fast_through_real_yfinance(yahoo, universe):
    yahoo.fail_with = curl_exc.DNSError(
        "Failed to perform, curl: (6) Could not resolve host: query2.finance.yahoo.com"
    )
    src = replay_source(universe, with_metadata=True)
    with pytest.raises(SourceError, match=r"Yahoo Finance is unreachable \(fetching AAPL, symbol 1 of 4"):
        src.fetch(["AAPL", "BABA", "QQQ", "EURUSD=X"], date(2020, 1, 2), date(2020, 1, 2))
    # The first request (AAPL's timezone lookup) was the only one made.
    assert [urlsplit(u).path for u, _ in yahoo.requests] == ["/v8/finance/chart/AAPL"]
    assert yf.config.debug.hide_exceptions is True


@pytest.mark.real
@pytest.mark.filterwarnings("ignore:'raise_errors' deprecated:DeprecationWarning")
def test_replay_without_raising_mode_would_hide_the_outage(yahoo, monkeypatch):
    # Why the source switches yfinance to raising: by default the timezone lookup logs the DNS error and
    # history() reports the symbol as "possibly delisted" (or re-raises from its info fallback).
    yahoo.fail_with = curl_exc.DNSError("Could not resolve host: query2.finance.yahoo.com")
    # yfinance falls back to .info for the timezone twice per process; past that it says "delisted".
    monkeypatch.setattr("yfinance.base._tz_info_fetch_ctr", 2)
    with pytest.raises(yf.exceptions.YFTzMissingError, match="possibly delisted"):
        yf.Ticker("AAPL").history(start=date(2020, 1, 2), end=date(2020, 1, 3), raise_errors=True)


class SessionLevelYahoo:
    """Stands in for curl_cffi's Session.request: recorded charts, a crumb, and a 404 for the cookie page."""

    def __init__(self, charts: dict[str, dict]) -> None:
        self.charts = charts
        self.urls: list[str] = []
        self.fail_with: BaseException | None = None

    def request(self, method: str, url: str, **kwargs) -> RecordedResponse:
        self.urls.append(url)
        if self.fail_with is not None:
            raise self.fail_with
        parts = urlsplit(url)
        if parts.path == "/v1/test/getcrumb":
            response = RecordedResponse(url, 200, {})
            response.text = "recorded-crumb"
            return response
        symbol = parts.path.rsplit("/", 1)[-1]
        if parts.path.startswith("/v8/finance/chart/") and symbol in self.charts:
            return RecordedResponse(url, 200, self.charts[symbol]["bodyJson"])
        return RecordedResponse(url, 404, {})


@pytest.fixture
def yahoo_session(yahoo, monkeypatch):
    """Real yfinance down to curl_cffi: cookie, crumb and timezone code run; only Session.request is faked."""
    monkeypatch.undo()  # drop the _make_request replacement the `yahoo` fixture made ...
    monkeypatch.setattr(yf.cache, "get_tz_cache", lambda: yf.cache._TzCacheDummy())  # ... keep these
    monkeypatch.setattr(yf.cache, "get_cookie_cache", lambda: yf.cache._CookieCacheDummy())
    fake = SessionLevelYahoo(yahoo.charts)
    monkeypatch.setattr(
        "curl_cffi.requests.Session.request", lambda self, method, url, **kw: fake.request(method, url)
    )
    # YfData is a process-wide singleton: start from no cookie and no crumb, and put them back afterwards.
    data = yf.data.YfData()
    for attr, value in {"_cookie": None, "_crumb": None, "_cookie_strategy": "basic"}.items():
        monkeypatch.setattr(data, attr, value)
    monkeypatch.setattr(data, "_session", data._session)
    return fake


@pytest.mark.real
def test_session_level_replay_counts_real_http_requests(yahoo_session, universe):
    src = replay_source(universe)  # the default factory: yf.Ticker on a counting curl_cffi session
    result = src.fetch(["BABA", "QQQ"], date(2020, 1, 2), date(2020, 1, 2))

    assert result.frames["BABA"]["Close"].iloc[0] == pytest.approx(219.77, abs=1e-4)
    assert result.frames["QQQ"]["Close"].iloc[0] == pytest.approx(216.16, abs=1e-4)
    charts = [urlsplit(u).path for u in yahoo_session.urls if "/v8/finance/chart/" in u]
    # Two chart requests per symbol: yfinance's timezone lookup, then the history call.
    assert charts == ["/v8/finance/chart/BABA"] * 2 + ["/v8/finance/chart/QQQ"] * 2
    # The rest is cookie and crumb. Yahoo's real fc.yahoo.com answer sets a cookie yfinance then reuses;
    # this fake sets none, so yfinance asks again before every request: the count is exact, not typical.
    others = {urlsplit(u).netloc + urlsplit(u).path for u in yahoo_session.urls if "/chart/" not in u}
    assert others == {"fc.yahoo.com", "query1.finance.yahoo.com/v1/test/getcrumb"}
    assert result.calls == 2 and src.http_requests == len(yahoo_session.urls)


@pytest.mark.real
def test_session_level_offline_fails_fast(yahoo_session, universe):
    yahoo_session.fail_with = curl_exc.DNSError(
        "Failed to perform, curl: (6) Could not resolve host: query2.finance.yahoo.com"
    )
    src = replay_source(universe, with_metadata=True)
    with pytest.raises(SourceError, match=r"unreachable \(fetching AAPL, symbol 1 of 4: DNSError"):
        src.fetch(["AAPL", "BABA", "QQQ", "EURUSD=X"], date(2020, 1, 2), date(2020, 1, 2))
    # yfinance shrugs off the failed cookie and crumb fetches; the AAPL chart request is the one that aborts.
    assert not any("BABA" in u or "QQQ" in u or "EURUSD" in u for u in yahoo_session.urls)
    assert yahoo_session.urls[-1].endswith("/v8/finance/chart/AAPL")
    assert src.total_calls == 1 and src.http_requests == len(yahoo_session.urls)
