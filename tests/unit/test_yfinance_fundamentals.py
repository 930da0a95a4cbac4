"""YFinanceSource.fetch_fundamentals: fakes shaped like yfinance's return values, and recorded Yahoo HTTP
replayed through real yfinance (Ticker.quarterly_cashflow parsing the fundamentals-timeseries answer)."""

from __future__ import annotations

import json
import math
import time
from datetime import date
from urllib.parse import parse_qs, urlsplit

import pandas as pd
import pytest
import yfinance as yf
from curl_cffi.requests import exceptions as curl_exc
from yfinance.exceptions import YFDataException, YFException, YFRateLimitError

from etl.sources.base import CASH_FLOW_ITEMS, FundamentalsResult, SourceError
from etl.sources.yfinance_source import NO_FILINGS, YFinanceSource
from tests.unit.yf_fakes import FIXTURES, SHARED, FakeTime, serve, source

CASHFLOW_Q = FIXTURES / "fundamentalsTimeSeries-AAPL-cash-flow-quarterly.json"
TIMESERIES_PATH = "/ws/fundamentals-timeseries/v1/finance/timeseries/"

START, END = date(2024, 4, 1), date(2024, 12, 31)


# --------------------------------------------------------------------------- what yfinance returns


def shares_full(tz: str = "America/New_York") -> pd.Series:
    """Like Ticker.get_shares_full: unnamed int64 Series, tz-aware index, duplicate timestamps possible."""
    index = pd.to_datetime(
        ["2023-12-05 00:00", "2024-02-02 00:00", "2024-02-02 00:00", "2024-05-03 00:00", "2024-11-01 00:00"]
    ).tz_localize(tz)
    return pd.Series([15_552_752_000, 15_441_900_000, 15_460_223_000, 15_337_700_000, 15_115_800_000], index=index)


def quarterly_cashflow() -> pd.DataFrame:
    """Like Ticker.quarterly_cashflow: index = pretty line items, columns = naive period-end Timestamps, newest
    first, float64 with NaN where Yahoo has no value."""
    columns = pd.to_datetime(["2024-12-31", "2024-09-30", "2024-06-30", "2024-03-31"])
    rows = {
        "Free Cash Flow": [26.995e9, 23.903e9, 26.707e9, 20.694e9],
        "Repurchase Of Capital Stock": [-23.606e9, -25.083e9, -26.522e9, -23.205e9],
        "Repayment Of Debt": [-8.953e9, 0.427e9, -3.253e9, -3.148e9],
        "Issuance Of Debt": [math.nan, 0.0, math.nan, math.nan],
        "Capital Expenditure": [-2.940e9, -2.908e9, -2.151e9, -1.996e9],
    }
    return pd.DataFrame.from_dict(rows, orient="index", columns=columns).astype("float64")


def sec_filings() -> list[dict]:
    """Like Ticker.sec_filings: dicts with a datetime.date, exhibits turned into {type: url} by yfinance."""
    return [
        {
            "date": date(2024, 11, 1),
            "epochDate": 1730419200,
            "type": "10-K",
            "title": "Annual Report",
            "edgarUrl": "https://finance.yahoo.com/sec-filing/AAPL/000032019324000123_320193",
            "exhibits": {"10-K": "https://cdn.yahoofinance.com/prod/sec-filings/0000320193/000032019324000123/aapl-20240928.htm"},
            "maxAge": 1,
        },
        {
            "date": date(2024, 5, 3),
            "epochDate": 1714694400,
            "type": "8-K",
            "title": "Corporate Changes & Voting Matters, Financial Exhibit",
            "edgarUrl": "https://finance.yahoo.com/sec-filing/AAPL/000114036124023909_320193",
            "exhibits": {},
            "maxAge": 1,
        },
    ]


# --------------------------------------------------------------------------- fakes of yf.Ticker


class FakeTicker:
    """Stands in for yf.Ticker: each attribute serves a list of values/exceptions, one per call."""

    def __init__(self, symbol, shares=None, cashflow=None, filings=None, info=None, history=None, clock=None):
        self.symbol = symbol
        self._served = {
            "shares": [shares_full()] if shares is None else list(shares),
            "cashflow": [quarterly_cashflow()] if cashflow is None else list(cashflow),
            "filings": [sec_filings()] if filings is None else list(filings),
            "info": [{"currency": "USD", "financialCurrency": "USD"}] if info is None else list(info),
            "history": list(history or [YFException("no history served")]),
        }
        self._clock = clock
        self.calls: list[str] = []
        self.call_times: list[float] = []
        self.shares_kwargs: list[dict] = []
        self.hide_exceptions_seen: list[bool] = []

    def _next(self, kind: str):
        self.calls.append(kind)
        self.hide_exceptions_seen.append(yf.config.debug.hide_exceptions)
        if self._clock is not None:
            self.call_times.append(self._clock.now)
            self._clock.now += 0.1  # the call itself takes 0.1 s
        return serve(self._served[kind])

    def get_shares_full(self, start=None, end=None):
        self.shares_kwargs.append({"start": start, "end": end})
        return self._next("shares")

    @property
    def quarterly_cashflow(self):
        return self._next("cashflow")

    @property
    def sec_filings(self):
        return self._next("filings")

    @property
    def info(self):
        return self._next("info")

    def history(self, **kwargs):
        return self._next("history")


# --------------------------------------------------------------------------- control flow with fakes


def test_returns_each_call_as_yfinance_returns_it():
    aapl = FakeTicker("AAPL")
    src = source({"AAPL": aapl})
    result = src.fetch_fundamentals(["AAPL"], ["AAPL"], START, END)

    assert isinstance(result, FundamentalsResult)
    assert result.missing == {}
    shares = result.shares["AAPL"]
    pd.testing.assert_series_equal(shares, shares_full())
    assert shares.name is None and str(shares.index.tz) == "America/New_York"
    assert shares.index.duplicated().sum() == 1  # kept as Yahoo served it; staging resolves duplicates
    # Every line item is kept (staging picks CASH_FLOW_ITEMS), in yfinance's own row and column order.
    pd.testing.assert_frame_equal(result.cashflow["AAPL"], quarterly_cashflow())
    assert "Free Cash Flow" in result.cashflow["AAPL"].index
    assert set(CASH_FLOW_ITEMS) - {"Issuance Of Capital Stock"} <= set(result.cashflow["AAPL"].index)
    assert result.filings["AAPL"] == sec_filings()
    assert result.filings["AAPL"][0]["date"] == date(2024, 11, 1)
    assert result.statement_currency == {"AAPL": "USD"}

    # Shares from 120 days before start; yfinance's end is exclusive, so end + 1 day.
    assert aapl.shares_kwargs == [{"start": date(2023, 12, 3), "end": date(2025, 1, 1)}]
    assert aapl.calls == ["shares", "cashflow", "info", "filings"]
    assert src.ticker_factory.created == ["AAPL"]  # one Ticker for both lists
    # yfinance must raise (not log and return empty) while we call it, and be restored afterwards.
    assert aapl.hide_exceptions_seen == [False] * 4
    assert yf.config.debug.hide_exceptions is True
    assert result.calls == 4
    assert src.calls_by_kind == {"shares": 1, "cashflow": 1, "info": 1, "filings": 1}
    assert src.calls_by_symbol == {"AAPL": 4}


def test_share_and_filing_lists_are_fetched_separately():
    tickers = {
        "9988.HK": FakeTicker("9988.HK", shares=[shares_full("Asia/Hong_Kong")], info=[{"financialCurrency": "CNY"}]),
        "BABA": FakeTicker("BABA"),
    }
    src = source(tickers)
    result = src.fetch_fundamentals(["9988.HK"], ["BABA"], START, END)

    assert set(result.shares) == set(result.cashflow) == {"9988.HK"}
    assert str(result.shares["9988.HK"].index.tz) == "Asia/Hong_Kong"
    assert result.statement_currency == {"9988.HK": "CNY"}  # statements in CNY, the listing trades in HKD
    assert set(result.filings) == {"BABA"}
    assert tickers["9988.HK"].calls == ["shares", "cashflow", "info"]
    assert tickers["BABA"].calls == ["filings"]
    assert src.ticker_factory.created == ["9988.HK", "BABA"]
    assert result.calls == 4


def test_nothing_from_yahoo_is_missing_with_a_reason_and_the_fetch_goes_on():
    empty_shares = pd.Series([], dtype="int64", index=pd.DatetimeIndex([], tz="America/New_York"))
    tickers = {
        "NOSHARES": FakeTicker("NOSHARES", shares=[None]),
        "EMPTYSHARES": FakeTicker("EMPTYSHARES", shares=[empty_shares], info=[{"currency": "USD"}]),
        "NOCASH": FakeTicker("NOCASH", cashflow=[pd.DataFrame()]),
        "NOFILINGS": FakeTicker("NOFILINGS", filings=[[]]),
        "EMPTYDICT": FakeTicker("EMPTYDICT", filings=[{}]),  # what yfinance gives when the fetch returned None
        "OK": FakeTicker("OK"),
    }
    src = source(tickers)
    result = src.fetch_fundamentals(
        ["NOSHARES", "EMPTYSHARES", "NOCASH", "OK"], ["NOFILINGS", "EMPTYDICT", "OK"], START, END
    )

    assert result.missing == {
        "NOSHARES:shares": "no shares outstanding from Yahoo",
        "EMPTYSHARES:shares": "no shares outstanding from Yahoo",
        "EMPTYSHARES:statement_currency": "no financialCurrency in Ticker.info",
        "NOCASH:cashflow": "empty quarterly cash flow from Yahoo",
        "NOFILINGS:filings": NO_FILINGS,
        "EMPTYDICT:filings": NO_FILINGS,
    }
    assert NO_FILINGS == "no SEC filings from Yahoo"
    assert set(result.shares) == {"NOCASH", "OK"}
    assert set(result.cashflow) == {"NOSHARES", "EMPTYSHARES", "OK"}
    assert set(result.filings) == {"OK"}
    # Without a cash flow statement there is no currency to look up: no info call.
    assert tickers["NOCASH"].calls == ["shares", "cashflow"]
    assert "NOCASH" not in result.statement_currency


def test_yfinance_errors_per_symbol_are_missing_with_yfinance_wording():
    tickers = {
        "HTTP": FakeTicker(
            "HTTP",
            shares=[KeyError("timeseries")],  # yfinance on Yahoo's {"finance": {"error": ...}} answer
            cashflow=[YFException("Empty fundamentals-timeseries result")],
        ),
        "NONUS": FakeTicker("NONUS", filings=[KeyError("secFilings")]),  # an answer without the module
        "GONE": FakeTicker("GONE", filings=[curl_exc.HTTPError("HTTP Error 404: Quote not found")]),
    }
    src = source(tickers)
    result = src.fetch_fundamentals(["HTTP"], ["NONUS", "GONE"], START, END)

    assert result.missing == {
        "HTTP:shares": "shares call failed: KeyError: 'timeseries'",
        "HTTP:cashflow": "Empty fundamentals-timeseries result",
        "NONUS:filings": NO_FILINGS,
        # a 404 is Yahoo answering, not an outage
        "GONE:filings": "filings call failed: HTTPError: HTTP Error 404: Quote not found",
    }
    assert result.shares == result.cashflow == result.filings == {}
    assert src.ticker_factory.created == ["HTTP", "NONUS", "GONE"]


def test_statement_currency_reuses_the_info_fetch_already_made():
    aapl = FakeTicker("AAPL", history=[_week()], info=[{"currency": "USD", "financialCurrency": "USD"}])
    src = source({"AAPL": aapl})
    prices = src.fetch(["AAPL"], START, END)
    assert prices.metadata["AAPL"]["financialCurrency"] == "USD"

    result = src.fetch_fundamentals(["AAPL"], [], START, END)
    assert result.statement_currency == {"AAPL": "USD"}
    assert aapl.calls == ["history", "info", "shares", "cashflow"]  # no second info call
    assert result.calls == 2 and src.calls_by_kind == {"history": 1, "info": 1, "shares": 1, "cashflow": 1}

    # ... and a fundamentals-only run fetches info once, then reuses it too.
    other = FakeTicker("MSFT")
    src2 = source({"MSFT": other})
    src2.fetch_fundamentals(["MSFT"], [], START, END)
    src2.fetch_fundamentals(["MSFT"], [], START, END)
    assert other.calls.count("info") == 1 and src2.calls_by_kind["info"] == 1


def test_info_failure_leaves_the_statements_and_records_why():
    tickers = {
        "BROKEN": FakeTicker("BROKEN", info=[curl_exc.HTTPError("HTTP Error 404: Quote not found")]),
        "LIMITED": FakeTicker("LIMITED", info=[YFRateLimitError()]),
    }
    fake_time = FakeTime()
    src = source(tickers, fake_time, max_attempts=2)
    result = src.fetch_fundamentals(["BROKEN", "LIMITED"], [], START, END)

    assert set(result.cashflow) == set(result.shares) == {"BROKEN", "LIMITED"}
    assert result.statement_currency == {}
    assert result.missing["BROKEN:statement_currency"] == "info call failed: HTTPError: HTTP Error 404: Quote not found"
    # As in fetch()'s metadata: a rate-limited info call costs the currency, not the statements.
    assert "rate-limited the info call for LIMITED 2 times" in result.missing["LIMITED:statement_currency"]
    assert tickers["LIMITED"].calls.count("info") == 2 and fake_time.sleeps == [2.0]


@pytest.mark.parametrize("kind", ["shares", "cashflow", "filings"])
def test_rate_limit_is_retried_with_exponential_backoff(kind):
    aapl = FakeTicker("AAPL", **{kind: [YFRateLimitError(), YFRateLimitError(), _good(kind)]})
    fake_time = FakeTime()
    src = source({"AAPL": aapl}, fake_time, base_delay=2.0)
    result = src.fetch_fundamentals(["AAPL"], ["AAPL"], START, END)

    assert fake_time.sleeps == [2.0, 4.0]
    assert aapl.calls.count(kind) == 3
    assert result.missing == {}
    assert set(result.shares) == set(result.cashflow) == set(result.filings) == {"AAPL"}
    assert result.calls == 6  # three attempts of one kind, one each of the other three
    assert src.calls_by_kind[kind] == 3


def test_persistent_rate_limit_stops_the_fetch_naming_call_and_symbol():
    tickers = {"AAPL": FakeTicker("AAPL", cashflow=[YFRateLimitError()]), "MSFT": FakeTicker("MSFT")}
    fake_time = FakeTime()
    src = source(tickers, fake_time, max_attempts=3)
    with pytest.raises(SourceError, match=r"rate-limited the cashflow call for AAPL 3 times") as err:
        src.fetch_fundamentals(["AAPL", "MSFT"], [], START, END)

    assert isinstance(err.value.__cause__, YFRateLimitError)
    assert tickers["AAPL"].calls == ["shares", "cashflow", "cashflow", "cashflow"]
    assert fake_time.sleeps == [2.0, 4.0]  # no sleep after the last attempt
    assert src.ticker_factory.created == ["AAPL"]


@pytest.mark.parametrize(
    "exc",
    [
        curl_exc.DNSError("Failed to perform, curl: (6) Could not resolve host: query2.finance.yahoo.com"),
        curl_exc.ConnectTimeout("Failed to perform, curl: (28) Connection timed out"),
        ConnectionRefusedError(111, "Connection refused"),
        YFDataException("*** YAHOO! FINANCE IS CURRENTLY DOWN! ***"),
    ],
    ids=lambda e: type(e).__name__,
)
@pytest.mark.parametrize("kind", ["shares", "cashflow", "info", "filings"])
def test_unreachable_yahoo_fails_fast(kind, exc):
    tickers = {"AAPL": FakeTicker("AAPL", **{kind: [exc]}), "MSFT": FakeTicker("MSFT")}
    fake_time = FakeTime()
    src = source(tickers, fake_time)
    started = time.monotonic()
    with pytest.raises(
        SourceError,
        match=rf"Yahoo Finance is unreachable \(fetching {kind} for AAPL, symbol 1 of 2: .*no fallback to offline data",
    ) as err:
        src.fetch_fundamentals(["AAPL", "MSFT"], ["AAPL", "MSFT"], START, END)

    assert time.monotonic() - started < 1.0
    assert err.value.__cause__ is exc
    # Shares and cash flow come first for every share symbol, then filings: nothing after the outage is tried.
    assert src.ticker_factory.created == (["AAPL", "MSFT"] if kind == "filings" else ["AAPL"])
    assert "filings" not in tickers["MSFT"].calls
    assert tickers["AAPL"].calls[-1] == kind and tickers["AAPL"].calls.count(kind) == 1  # not retried
    assert fake_time.sleeps == []
    assert yf.config.debug.hide_exceptions is True


def test_outage_on_a_later_symbol_says_which():
    tickers = {
        "AAPL": FakeTicker("AAPL"),
        "BABA": FakeTicker("BABA", filings=[curl_exc.ConnectionError("curl: (7) Couldn't connect")]),
    }
    src = source(tickers)
    with pytest.raises(SourceError, match=r"unreachable \(fetching filings for BABA, symbol 2 of 2: ConnectionError"):
        src.fetch_fundamentals(["AAPL"], ["AAPL", "BABA"], START, END)
    assert src.total_calls == 5  # AAPL's shares, cashflow, info and filings, then BABA's filings


def test_calls_are_counted_per_fetch_and_over_the_sources_life():
    tickers = {
        "A": FakeTicker("A"),
        "B": FakeTicker("B", cashflow=[pd.DataFrame()]),
        "C": FakeTicker("C", shares=[YFRateLimitError(), shares_full()]),
    }
    src = source(tickers)
    first = src.fetch_fundamentals(["A", "B", "C"], ["A"], START, END)
    # A: shares, cashflow, info, filings; B: shares, cashflow (empty: no info); C: 2 shares, cashflow, info
    assert first.calls == 10
    assert src.calls_by_kind == {"shares": 4, "cashflow": 3, "info": 2, "filings": 1}
    assert src.calls_by_symbol == {"A": 4, "B": 2, "C": 4}

    second = src.fetch_fundamentals(["A"], [], START, END)
    assert second.calls == 2  # info is reused from the first run
    assert src.total_calls == 12


def test_throttle_spaces_every_fundamentals_call():
    fake_time = FakeTime()
    aapl = FakeTicker("AAPL", clock=fake_time)
    src = source({"AAPL": aapl}, fake_time, min_interval=0.5)
    src.fetch_fundamentals(["AAPL"], ["AAPL"], START, END)

    assert aapl.calls == ["shares", "cashflow", "info", "filings"]
    assert [round(b - a, 9) for a, b in zip(aapl.call_times, aapl.call_times[1:], strict=False)] == [0.5] * 3
    assert [round(s, 9) for s in fake_time.sleeps] == [0.4] * 3  # each call itself took 0.1 s


def test_end_before_start_is_rejected():
    with pytest.raises(ValueError, match="before start"):
        source({}).fetch_fundamentals(["AAPL"], [], END, START)


def _good(kind: str):
    return {"shares": shares_full(), "cashflow": quarterly_cashflow(), "filings": sec_filings()}[kind]


def _week() -> pd.DataFrame:
    index = pd.DatetimeIndex(pd.to_datetime(["2024-04-01", "2024-04-02"])).tz_localize("America/New_York")
    index.name = "Date"
    return pd.DataFrame(
        {"Open": [1.0, 2.0], "High": [1.0, 2.0], "Low": [1.0, 2.0], "Close": [1.0, 2.0], "Adj Close": [1.0, 2.0],
         "Volume": [1, 2], "Dividends": [0.0, 0.0], "Stock Splits": [0.0, 0.0]},
        index=index,
    )


# --------------------------------------------------------------------------- recorded Yahoo HTTP


class RecordedResponse:
    """Enough of a curl_cffi Response for yfinance: status_code, url, text, json(), raise_for_status()."""

    def __init__(self, url: str, status: int, body: dict) -> None:
        self.url = url
        self.status_code = status
        self.text = json.dumps(body)

    def json(self) -> dict:
        return json.loads(self.text)

    def raise_for_status(self) -> None:
        if self.status_code >= 400:
            raise curl_exc.HTTPError(f"HTTP Error {self.status_code}", response=self)


class RecordedYahoo:
    """Serves the recorded AAPL quarterly cash-flow timeseries and AAPL chart (yfinance's timezone lookup);
    anything else gets a 404 shaped like Yahoo's."""

    def __init__(self) -> None:
        self.cashflow = json.loads(CASHFLOW_Q.read_text())["response"]
        self.chart = json.loads((FIXTURES / "chart-AAPL-2020-08-31-to-2020-11-07.json").read_text())["response"]
        self.requests: list[str] = []
        self.fail_with: BaseException | None = None
        self.fail_if = lambda url: True

    def make_request(self, url: str, params: dict | None = None, **kwargs) -> RecordedResponse:
        # yfinance builds the fundamentals URLs with their query string; params carry only the crumb then.
        query = "&".join(f"{k}={v}" for k, v in (params or {}).items())
        full = f"{url}{'&' if '?' in url else '?'}{query}" if query else url
        self.requests.append(full)
        if self.fail_with is not None and self.fail_if(url):
            raise self.fail_with
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        if parts.path == TIMESERIES_PATH + "AAPL" and any(t.startswith("quarterly") for t in query.get("type", [""])):
            return RecordedResponse(url, self.cashflow["status"], self.cashflow["bodyJson"])
        if parts.path == "/v8/finance/chart/AAPL":
            return RecordedResponse(url, self.chart["status"], self.chart["bodyJson"])
        if parts.path.startswith(TIMESERIES_PATH):
            error = {"code": "Not Found", "description": "HTTP 404 Not Found"}
            return RecordedResponse(url, 404, {"finance": {"result": None, "error": error}})
        error = {"code": "Not Found", "description": "Quote not found for symbol"}
        return RecordedResponse(url, 404, {"quoteSummary": {"result": None, "error": error}})

    def paths(self) -> list[str]:
        return [urlsplit(u).path for u in self.requests]


@pytest.fixture
def yahoo(monkeypatch):
    """Real yfinance with its one HTTP choke point (YfData._make_request) answered from recordings."""
    if not SHARED.is_dir():
        pytest.skip(f"recorded Yahoo responses live in {SHARED} (../shared beside the repo): absent")
    recorded = RecordedYahoo()

    def make_request(self, url, request_method=None, **kwargs):
        return recorded.make_request(url, **kwargs)

    monkeypatch.setattr(yf.data.YfData, "_make_request", make_request)
    monkeypatch.setattr(yf.cache, "get_tz_cache", lambda: yf.cache._TzCacheDummy())
    # yfinance switches to chunked fundamentals requests for the whole process after one failure: start clean.
    monkeypatch.setattr(yf.data.YfData(), "fundamentals_use_chunked", False)
    yf.data.YfData.cache_get.cache_clear()
    yield recorded
    yf.data.YfData.cache_get.cache_clear()


@pytest.mark.real
def test_replay_quarterly_cashflow_through_real_yfinance(yahoo):
    src = YFinanceSource(None, min_interval=0.0)
    result = src.fetch_fundamentals(["AAPL"], [], START, END)

    cashflow = result.cashflow["AAPL"]
    quarters = [pd.Timestamp(d) for d in ["2024-12-31", "2024-09-30", "2024-06-30", "2024-03-31"]]
    assert list(cashflow.columns) == quarters  # naive period ends, newest first
    assert (cashflow.dtypes == "float64").all()
    # The recorded reportedValue.raw of quarterlyRepurchaseOfCapitalStock etc., one per quarter.
    assert cashflow.loc["Repurchase Of Capital Stock"].tolist() == [-23_606e6, -25_083e6, -26_522e6, -23_205e6]
    assert cashflow.loc["Repayment Of Debt"].tolist() == [-8_953e6, 427e6, -3_253e6, -3_148e6]
    assert cashflow.loc["Capital Expenditure"].tolist() == [-2_940e6, -2_908e6, -2_151e6, -1_996e6]
    issuance = cashflow.loc["Issuance Of Debt"]
    assert issuance[pd.Timestamp("2024-09-30")] == 0.0 and issuance.drop(pd.Timestamp("2024-09-30")).isna().all()
    # Not filtered: Yahoo's other line items stay, and one it has no values for is simply absent.
    assert cashflow.loc["Free Cash Flow"].tolist() == [26_995e6, 23_903e6, 26_707e6, 20_694e6]
    assert len(cashflow) == 46 and "Issuance Of Capital Stock" not in cashflow.index

    # yfinance asked the timeseries endpoint for quarterly cash-flow types, the same URL as the recording.
    cash_urls = [u for u in yahoo.requests if "type=" in u]
    assert len(cash_urls) == 1
    types = parse_qs(urlsplit(cash_urls[0]).query)["type"][0].split(",")
    assert "quarterlyRepurchaseOfCapitalStock" in types and all(t.startswith("quarterly") for t in types)

    # Nothing recorded for the share count, SEC filings or quoteSummary: each is missing with yfinance's answer.
    shares_urls = [u for u in yahoo.requests if urlsplit(u).path == TIMESERIES_PATH + "AAPL" and "type=" not in u]
    assert len(shares_urls) == 1
    query = parse_qs(urlsplit(shares_urls[0]).query)
    # start - 120 days = 2023-12-03 and end + 1 day = 2025-01-01, both local midnight in New York (EST)
    assert (int(query["period1"][0]), int(query["period2"][0])) == (1701579600, 1735707600)
    assert result.missing == {
        "AAPL:shares": "shares call failed: KeyError: 'timeseries'",
        "AAPL:statement_currency": "info call failed: HTTPError: HTTP Error 404",
    }
    assert result.calls == 3 and src.calls_by_kind == {"shares": 1, "cashflow": 1, "info": 1}


@pytest.mark.real
def test_replay_filings_without_a_recording_are_missing(yahoo):
    result = YFinanceSource(None, min_interval=0.0).fetch_fundamentals([], ["AAPL"], START, END)
    assert result.missing == {"AAPL:filings": "filings call failed: HTTPError: HTTP Error 404"}
    assert any(p.startswith("/v10/finance/quoteSummary/AAPL") for p in yahoo.paths())


@pytest.mark.real
def test_replay_offline_cashflow_fails_fast_through_real_yfinance(yahoo):
    yahoo.fail_with = curl_exc.DNSError("Failed to perform, curl: (6) Could not resolve host: query2.finance.yahoo.com")
    yahoo.fail_if = lambda url: "type=" in url  # the share count gets through, the cash flow does not
    src = YFinanceSource(None, min_interval=0.0)
    with pytest.raises(SourceError, match=r"unreachable \(fetching cashflow for AAPL, symbol 1 of 2: DNSError"):
        src.fetch_fundamentals(["AAPL", "MSFT"], [], START, END)
    # yfinance retried the long URL as chunks before giving up, then put its sticky flag back.
    assert len([u for u in yahoo.requests if "type=" in u]) > 1
    assert yf.data.YfData().fundamentals_use_chunked is False
    assert not any("MSFT" in u for u in yahoo.requests)
    assert yf.config.debug.hide_exceptions is True
