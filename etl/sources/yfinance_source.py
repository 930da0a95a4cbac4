"""Live Yahoo Finance prices and metadata through yfinance, throttled, retried on rate limits, never faked."""

from __future__ import annotations

import logging
import os
import random
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from typing import Any, TypeVar

import pandas as pd
import yfinance as yf
from yfinance.exceptions import YFDataException, YFException, YFRateLimitError

from etl.config import Universe
from etl.sources.base import METADATA_FIELDS, FetchResult, FundamentalsResult, SourceError

log = logging.getLogger(__name__)

DEFAULT_MIN_INTERVAL = 0.5
MIN_INTERVAL_ENV = "ETL_YF_MIN_INTERVAL"
UNREACHABLE = "Yahoo Finance is unreachable"
# Shares outstanding are fetched from this long before the window, so the count in force on its first day is known.
SHARES_LOOKBACK = timedelta(days=120)
NO_FILINGS = "no SEC filings from Yahoo"

T = TypeVar("T")


def _network_error_types() -> tuple[type[BaseException], ...]:
    """Exception classes meaning "could not talk to Yahoo at all", for whichever HTTP backend is installed."""
    # socket.gaierror is an OSError but not a ConnectionError; the curl_cffi and requests classes are
    # OSErrors too, but so are their HTTPErrors (a 404 is an answer, not an outage), so OSError is too wide.
    types: list[type[BaseException]] = [ConnectionError, TimeoutError, socket.gaierror]
    try:
        from curl_cffi.requests import exceptions as curl_exc

        types += [curl_exc.ConnectionError, curl_exc.Timeout, curl_exc.ProxyError]
    except ImportError:
        pass
    try:
        from requests import exceptions as req_exc

        types += [req_exc.ConnectionError, req_exc.Timeout]
    except ImportError:
        pass
    return tuple(types)


NETWORK_ERRORS = _network_error_types()


def is_rate_limited(exc: BaseException) -> bool:
    """True for yfinance's YFRateLimitError and for a bare HTTP 429 / "Too Many Requests" answer."""
    if isinstance(exc, YFRateLimitError):
        return True
    response = getattr(exc, "response", None)
    if getattr(response, "status_code", None) == 429:
        return True
    text = str(exc)
    return "429" in text and ("Too Many Requests" in text or "HTTP Error 429" in text)


def is_network_error(exc: BaseException) -> bool:
    """True if `exc`, or anything it was raised from, says Yahoo could not be reached."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, NETWORK_ERRORS):
            return True
        # yfinance raises this when Yahoo serves its "Will be right back" outage page.
        if isinstance(current, YFDataException) and "CURRENTLY DOWN" in str(current):
            return True
        current = current.__cause__ or current.__context__
    return False


@contextmanager
def yfinance_raises() -> Iterator[None]:
    """Make yfinance raise its errors instead of logging them and returning an empty frame."""
    # history(raise_errors=True) is deprecated in 1.7 and does not reach the timezone lookup that runs
    # before history(): offline, that lookup logs the DNSError and returns None, yfinance then tries
    # .info (first two tickers per process only) and history() raises YFTzMissingError "possibly
    # delisted", so an outage would look like a universe of delisted symbols.
    previous = yf.config.debug.hide_exceptions
    yf.config.debug.hide_exceptions = False
    try:
        yield
    finally:
        yf.config.debug.hide_exceptions = previous


def _counting_session() -> Any | None:
    """The curl_cffi session yfinance would make for itself, counting every HTTP request it sends."""
    try:
        from curl_cffi import requests as curl_requests
    except ImportError:
        return None

    class CountingSession(curl_requests.Session):
        """curl_cffi Session that counts requests (cookie, crumb, timezone lookup and data calls alike)."""

        requests_sent = 0

        def request(self, *args: Any, **kwargs: Any) -> Any:
            self.requests_sent += 1
            return super().request(*args, **kwargs)

    # Same browser impersonation as yfinance._http.new_session(); without it Yahoo may throttle or block.
    return CountingSession(impersonate="chrome")


def _min_interval_from_env() -> float:
    """Seconds between Yahoo calls from ETL_YF_MIN_INTERVAL, or the default when it is unset."""
    raw = os.environ.get(MIN_INTERVAL_ENV)
    if raw is None or raw.strip() == "":
        return DEFAULT_MIN_INTERVAL
    try:
        value = float(raw)
    except ValueError:
        raise SourceError(f"{MIN_INTERVAL_ENV} must be a number of seconds, got {raw!r}") from None
    if value < 0:
        raise SourceError(f"{MIN_INTERVAL_ENV} must be >= 0 seconds, got {raw!r}")
    return value


class YFinanceSource:
    """Daily bars (unadjusted, with actions) and instrument metadata from Yahoo Finance via yfinance."""

    name = "yfinance"
    is_synthetic = False

    def __init__(
        self,
        universe: Universe | None = None,
        *,
        with_metadata: bool = True,
        min_interval: float | None = None,
        max_attempts: int = 5,
        base_delay: float = 2.0,
        timeout: float = 10.0,
        ticker_factory: Callable[[str], Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        max_delay: float = 60.0,
        jitter: float = 0.25,
        rng: Callable[[], float] = random.random,
        budget: Any | None = None,
    ) -> None:
        """min_interval None reads ETL_YF_MIN_INTERVAL (default 0.5 s); ticker_factory None is yf.Ticker.

        Rate limits (YFRateLimitError or HTTP 429) are retried max_attempts - 1 times; the n-th wait is
        min(max_delay, base_delay * 2**(n-1)) scaled by a random factor in [1 - jitter, 1 + jitter], so
        parallel tasks do not retry in lock step. `budget` (etl.sources.budget.RequestBudget) replaces the
        in-process throttle with the one shared by every process of the data directory.
        """
        if max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        if not 0 <= jitter < 1:
            raise ValueError("jitter must be in [0, 1)")
        self.max_delay = max_delay
        self.jitter = jitter
        self._rng = rng
        self.budget = budget
        self.universe = universe
        self.with_metadata = with_metadata
        self.min_interval = _min_interval_from_env() if min_interval is None else float(min_interval)
        if self.min_interval < 0:
            raise ValueError("min_interval must be >= 0")
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.timeout = timeout
        self._session: Any | None = None
        if ticker_factory is None:
            self._session = _counting_session()
            ticker_factory = self._live_ticker
        self.ticker_factory = ticker_factory
        self._clock = clock
        self._sleep = sleep
        self._last_call: float | None = None
        # Cumulative over this object's life, so a benchmark can report calls per security.
        self.calls_by_kind: Counter[str] = Counter()
        self.calls_by_symbol: Counter[str] = Counter()
        # Ticker.info cut to METADATA_FIELDS per symbol, so fetch_fundamentals reuses what fetch() already got.
        self._info_cache: dict[str, dict] = {}

    def _live_ticker(self, symbol: str) -> yf.Ticker:
        """yf.Ticker on the counting session (yfinance keeps one session per process, the last one given)."""
        return yf.Ticker(symbol, session=self._session)

    @property
    def http_requests(self) -> int | None:
        """HTTP requests yfinance really sent for this source; None with a custom ticker_factory."""
        return None if self._session is None else self._session.requests_sent

    @property
    def total_calls(self) -> int:
        """Every history and info call this source made, retries included (see http_requests for HTTP)."""
        return sum(self.calls_by_kind.values())

    def calls_per_symbol(self) -> float:
        """Average Yahoo API calls per symbol fetched so far (0.0 before any fetch)."""
        return self.total_calls / len(self.calls_by_symbol) if self.calls_by_symbol else 0.0

    def fetch(self, symbols: list[str], start: date, end: date) -> FetchResult:
        """Bars with start <= market date <= end (both inclusive), with actions and metadata."""
        if end < start:
            raise ValueError(f"end {end} is before start {start}")
        result = FetchResult()
        try:
            self._fetch_into(result, symbols, start, end)
        except SourceError as exc:
            # what came back before the failure travels with it: extract keeps it, a rerun asks for the rest
            exc.partial = result
            raise
        return result

    def _fetch_into(self, result: FetchResult, symbols: list[str], start: date, end: date) -> None:
        with yfinance_raises():
            for done, symbol in enumerate(symbols):
                ticker = self.ticker_factory(symbol)
                try:
                    frame = self._history(ticker, symbol, start, end, result)
                except SourceError:
                    raise
                except Exception as exc:
                    if is_network_error(exc):
                        raise SourceError(
                            f"{UNREACHABLE} (fetching {symbol}, symbol {done + 1} of {len(symbols)}: "
                            f"{type(exc).__name__}: {exc}); stopped the whole fetch, "
                            "no fallback to offline data"
                        ) from exc
                    result.missing[symbol] = self._reason("history", exc)
                    log.warning("yfinance: %s missing: %s", symbol, result.missing[symbol])
                    continue
                if frame is None:
                    continue
                result.frames[symbol] = frame
                result.frame_info[symbol] = {"auto_adjusted": False}
                if self.with_metadata:
                    self._metadata(ticker, symbol, result)

    def _history(
        self, ticker: Any, symbol: str, start: date, end: date, result: FetchResult
    ) -> pd.DataFrame | None:
        """One history call; the frame cut to the window, or None with the reason in result.missing."""
        frame = self._call(
            "history",
            symbol,
            result,
            lambda: ticker.history(
                start=start,
                end=end + timedelta(days=1),  # yfinance's end is exclusive
                interval="1d",
                auto_adjust=False,
                actions=True,
                timeout=self.timeout,
            ),
        )
        if frame is None or frame.empty:
            result.missing[symbol] = "empty frame from Yahoo"
            return None
        market_dates = pd.Index(frame.index.date)
        # Yahoo may append the live bar past the end asked for, and end+1 day can reach a bar in the
        # exchange's next session, so cut to market dates explicitly.
        in_window = (market_dates >= start) & (market_dates <= end)
        if not in_window.any():
            result.missing[symbol] = (
                f"no bars between {start} and {end} (Yahoo returned {len(frame)} rows, "
                f"{market_dates.min()} .. {market_dates.max()})"
            )
            return None
        return frame if in_window.all() else frame.loc[in_window]

    def _metadata(self, ticker: Any, symbol: str, result: FetchResult) -> None:
        """Ticker.info cut to METADATA_FIELDS; a failure is recorded in frame_info, prices stay."""
        try:
            info = self._call("info", symbol, result, lambda: ticker.info) or {}
        except Exception as exc:
            reason = str(exc) if isinstance(exc, SourceError) else self._reason("info", exc)
            result.frame_info[symbol]["metadata_error"] = reason
            log.warning("yfinance: %s metadata failed: %s", symbol, reason)
            return
        result.metadata[symbol] = {k: info[k] for k in METADATA_FIELDS if info.get(k) not in (None, "")}
        self._info_cache[symbol] = result.metadata[symbol]

    def fetch_fundamentals(
        self, share_symbols: list[str], filing_symbols: list[str], start: date, end: date
    ) -> FundamentalsResult:
        """Shares outstanding (start - 120 days .. end) and quarterly cash flow (with the statement currency)
        for share_symbols, SEC filings for filing_symbols, each as yfinance returns it.

        What Yahoo has not got is in result.missing under "<symbol>:<kind>" (shares, cashflow,
        statement_currency, filings) with the reason; an outage or a rate limit past the retries stops the
        whole fetch with SourceError, as in fetch().
        """
        if end < start:
            raise ValueError(f"end {end} is before start {start}")
        result = FundamentalsResult()
        symbols = list(dict.fromkeys([*share_symbols, *filing_symbols]))
        tickers: dict[str, Any] = {}

        def where(symbol: str) -> str:
            return f"symbol {symbols.index(symbol) + 1} of {len(symbols)}"

        def ticker_for(symbol: str) -> Any:
            if symbol not in tickers:
                tickers[symbol] = self.ticker_factory(symbol)
            return tickers[symbol]

        with yfinance_raises():
            for symbol in dict.fromkeys(share_symbols):
                ticker = ticker_for(symbol)
                shares = self._fundamental(
                    "shares",
                    symbol,
                    where(symbol),
                    result,
                    lambda t=ticker: t.get_shares_full(
                        start=start - SHARES_LOOKBACK,
                        end=end + timedelta(days=1),  # yfinance's end is exclusive
                    ),
                )
                if shares is not None and len(shares) > 0:
                    result.shares[symbol] = shares
                else:
                    result.missing.setdefault(f"{symbol}:shares", "no shares outstanding from Yahoo")
                cashflow = self._fundamental(
                    "cashflow", symbol, where(symbol), result, lambda t=ticker: t.quarterly_cashflow
                )
                if cashflow is not None and not cashflow.empty:
                    result.cashflow[symbol] = cashflow
                    self._statement_currency(ticker, symbol, where(symbol), result)
                else:
                    result.missing.setdefault(f"{symbol}:cashflow", "empty quarterly cash flow from Yahoo")
            for symbol in dict.fromkeys(filing_symbols):
                ticker = ticker_for(symbol)
                filings = self._fundamental("filings", symbol, where(symbol), result, lambda t=ticker: t.sec_filings)
                if filings:
                    result.filings[symbol] = filings
                else:
                    result.missing.setdefault(f"{symbol}:filings", NO_FILINGS)
        return result

    def _statement_currency(self, ticker: Any, symbol: str, where: str, result: FundamentalsResult) -> None:
        """Ticker.info financialCurrency: from what fetch() already got for the symbol, else one info call."""
        info = self._info_cache.get(symbol)
        if info is None:
            raw = self._fundamental(
                "info", symbol, where, result, lambda: ticker.info, missing_key="statement_currency", optional=True
            )
            if raw is None:
                return
            info = {k: raw[k] for k in METADATA_FIELDS if raw.get(k) not in (None, "")}
            self._info_cache[symbol] = info
        currency = info.get("financialCurrency")
        if currency:
            result.statement_currency[symbol] = currency
        else:
            result.missing[f"{symbol}:statement_currency"] = "no financialCurrency in Ticker.info"

    def _fundamental(
        self,
        kind: str,
        symbol: str,
        where: str,
        result: FundamentalsResult,
        fn: Callable[[], T],
        *,
        missing_key: str | None = None,
        optional: bool = False,
    ) -> T | None:
        """One throttled, retried, counted call; None with the reason in result.missing["<symbol>:<kind>"].

        An outage always raises SourceError; a rate limit past the retries does too unless `optional`.
        """
        key = f"{symbol}:{missing_key or kind}"
        try:
            return self._call(kind, symbol, result, fn)
        except SourceError as exc:  # rate-limited max_attempts times
            if not optional:
                raise
            reason = str(exc)
        except Exception as exc:
            if is_network_error(exc):
                raise SourceError(
                    f"{UNREACHABLE} (fetching {kind} for {symbol}, {where}: {type(exc).__name__}: {exc}); "
                    "stopped the whole fundamentals fetch, no fallback to offline data"
                ) from exc
            if kind == "filings" and isinstance(exc, KeyError) and exc.args[:1] in (("secFilings",), ("filings",)):
                # yfinance indexes quoteSummary.result[0].secFilings.filings: an answer without them
                reason = NO_FILINGS
            else:
                reason = self._reason(kind, exc)
        result.missing[key] = reason
        log.warning("yfinance: %s missing: %s", key, reason)
        return None

    def _call(self, kind: str, symbol: str, result: FetchResult | FundamentalsResult, fn: Callable[[], T]) -> T:
        """Run one Yahoo call, throttled and counted; back off and retry while Yahoo rate-limits."""
        for attempt in range(1, self.max_attempts + 1):
            self._throttle(f"the {kind} call for {symbol}")
            self.calls_by_kind[kind] += 1
            self.calls_by_symbol[symbol] += 1
            result.calls += 1
            try:
                return fn()
            except Exception as exc:
                if not is_rate_limited(exc):
                    raise
                if attempt == self.max_attempts:
                    raise SourceError(
                        f"Yahoo Finance rate-limited the {kind} call for {symbol} "
                        f"{self.max_attempts} times in a row (HTTP 429 / YFRateLimitError); giving up. "
                        "Rerun later; what was fetched before is kept"
                    ) from exc
                delay = self.backoff(attempt)
                log.warning(
                    "yfinance: %s %s rate-limited (attempt %d/%d), retrying in %.1f s",
                    symbol,
                    kind,
                    attempt,
                    self.max_attempts,
                    delay,
                )
                self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after the attempt-th rate-limited try: capped exponential, with jitter."""
        delay = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return delay * (1 + self.jitter * (2 * self._rng() - 1)) if self.jitter else delay

    def _throttle(self, what: str = "a call") -> None:
        """Keep at least min_interval seconds between the starts of two Yahoo calls."""
        if self.budget is not None:
            self.budget.acquire(what)  # shared by every process of the data directory, capped per run
            return
        if self._last_call is not None:
            wait = self.min_interval - (self._clock() - self._last_call)
            if wait > 0:
                self._sleep(wait)
        self._last_call = self._clock()

    @staticmethod
    def _reason(kind: str, exc: BaseException) -> str:
        """Why a call failed: yfinance's own wording (e.g. "possibly delisted; ...") where it has one."""
        if isinstance(exc, YFException):
            return str(exc) or type(exc).__name__
        return f"{kind} call failed: {type(exc).__name__}: {exc}"
