"""Deterministic synthetic daily bars shaped exactly like yfinance ``Ticker.history(auto_adjust=False,
actions=True)``, for the demo and the tests (no network).

Shape: per symbol a DataFrame with a tz-aware DatetimeIndex named ``Date`` at local midnight in the
exchange's timezone (FX in Europe/London, like Yahoo) and the columns RAW_COLUMNS; prices float64,
Volume int64. Days are the sessions of the market's exchange_calendars calendar (XHKG, XNYS); FX trades
Monday to Friday.

Adjustment convention (the yfinance one, so staging treats this source and the real one alike):
  * Open/High/Low/Close are split-adjusted but not dividend-adjusted. A split therefore shows only as a
    ``Stock Splits`` ratio on its ex-date; Close does not jump there (the raw pre-split price would be
    Close x ratio). Volume and Dividends are on the same split-adjusted scale.
  * Adj Close is back-adjusted for every dividend (CRSP/Yahoo factor 1 - D / previous Close) up to a fixed
    horizon, ``universe.calendar_end``, as if downloaded on that day, so it never depends on the window.

Determinism: every random number is a pure function of (symbol, stream, calendar day) through a
splitmix64 hash, and price paths are anchored on ANCHOR_DATE at plausible Sep-2025 levels, so a bar is
identical whatever window is asked. Each symbol's whole series (calendar_start..calendar_end) is built
once per source instance, vectorised, and windows are sliced from it.

Model: equities follow a geometric random walk driven by a per-market factor (indices and the ETF load on
it too); ADRs are their home listing x adr_ratio converted at the FX rate, with a small mean-reverting
premium; FX is a slow mean-reverting series around its level (HKD kept inside the 7.75-7.85 peg band).
Equities and ETFs pay a cash dividend once or twice a year on hashed month/days; ADRs pay their home
listing's dividend. Fixed actions in the September 2025 demo window: 0700.HK dividend of 2.0 HKD ex
2025-09-12, 9618.HK dividends of 1.0 (2025-09-03) and 3.0 HKD (2025-09-24, a special dividend), a 2:1 split of
1810.HK on 2025-09-15 and a 10-to-1 consolidation of 0020.HK on 2025-09-22 (all XHKG sessions).
"""

from __future__ import annotations

import hashlib
import math
from datetime import date
from functools import lru_cache

import numpy as np
import pandas as pd

from etl.config import Listing, Universe
from etl.sources.base import RAW_COLUMNS, FetchResult, FundamentalsResult

ANCHOR_DATE = date(2025, 9, 1)

# Close levels on the first session on/after ANCHOR_DATE (split-adjusted). Symbols not listed, and not
# ADRs, get a hashed level in 5..500.
BASE_LEVELS: dict[str, float] = {
    "0700.HK": 640.0,
    "9988.HK": 150.0,
    "9888.HK": 112.0,
    "9618.HK": 130.0,
    "3690.HK": 100.0,
    "1810.HK": 27.0,  # ~54 HKD before the 2:1 split of 2025-09-15, quoted split-adjusted
    "0981.HK": 55.0,
    "9999.HK": 190.0,
    "1024.HK": 70.0,
    "9961.HK": 520.0,
    "2015.HK": 95.0,
    "9868.HK": 85.0,
    "9866.HK": 45.0,
    "9626.HK": 180.0,
    "0992.HK": 11.0,
    "0268.HK": 15.0,
    "2382.HK": 80.0,
    "0285.HK": 38.0,
    "1347.HK": 55.0,
    "6618.HK": 50.0,
    "0241.HK": 5.5,
    "0020.HK": 2.0,
    "^HSI": 26000.0,
    "HSTECH.HK": 6000.0,
    "^NDX": 24000.0,
    "QQQ": 590.0,
    "HKD=X": 7.80,
    "CNY=X": 7.12,
}
FIXED_DIVIDENDS: dict[str, dict[date, float]] = {
    "0700.HK": {date(2025, 9, 12): 2.0},
    # an ordinary dividend then a special one (more than twice it) inside the demo window
    "9618.HK": {date(2025, 9, 3): 1.0, date(2025, 9, 24): 3.0},
}
FIXED_SPLITS: dict[str, dict[date, float]] = {
    "1810.HK": {date(2025, 9, 15): 2.0},
    "0020.HK": {date(2025, 9, 22): 0.1},  # a 10-to-1 consolidation
}
# Hashed dividends this close to a fixed one are dropped, so the fixed one is that period's payment.
_FIXED_DIVIDEND_EXCLUSION_DAYS = 120
# FX band edges for pegged currencies (Close, Open, High and Low are all clipped into it).
FX_BANDS: dict[str, tuple[float, float]] = {"HKD=X": (7.7501, 7.8499)}

QUOTE_TYPES = {"equity": "EQUITY", "adr": "EQUITY", "index": "INDEX", "etf": "ETF", "fx": "CURRENCY"}
_FLOAT_COLUMNS = [c for c in RAW_COLUMNS if c != "Volume"]
_EPOCH = date(1970, 1, 1)
_MASK64 = (1 << 64) - 1


@lru_cache(maxsize=16)
def _calendar_sessions(code: str, start: date, end: date) -> np.ndarray:
    """Session dates (datetime64[D]) of an exchange_calendars calendar, built once per process."""
    import exchange_calendars as xcals

    cal = xcals.get_calendar(code, start=pd.Timestamp(start), end=pd.Timestamp(end))
    return cal.sessions.values.astype("datetime64[D]")


@lru_cache(maxsize=4)
def _weekdays(start: date, end: date) -> np.ndarray:
    """Monday-to-Friday dates (datetime64[D]) in [start, end]."""
    days = np.arange(np.datetime64(start, "D"), np.datetime64(end, "D") + 1)
    return days[np.is_busday(days)]


def _hash_int(text: str) -> int:
    """Stable 64-bit integer from text (hashlib, unlike hash(), is the same in every process)."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


def _hash_unit(text: str) -> float:
    """Stable uniform number in [0, 1) from text."""
    return _hash_int(text) / 2.0**64


def _splitmix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser over a uint64 array (wrapping arithmetic is the point)."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _normals(key: str, days: np.ndarray) -> np.ndarray:
    """Standard normals that depend only on (key, calendar day), via Box-Muller on hashed uniforms."""
    day_numbers = (days - np.datetime64(_EPOCH, "D")).astype(np.int64).astype(np.uint64)
    base = np.full(day_numbers.shape, _hash_int(key), dtype=np.uint64)
    z1 = _splitmix(base ^ _splitmix(day_numbers * np.uint64(2)))
    z2 = _splitmix(base ^ _splitmix(day_numbers * np.uint64(2) + np.uint64(1)))
    u1 = ((z1 >> np.uint64(11)).astype(np.float64) + 0.5) / 2.0**53
    u2 = (z2 >> np.uint64(11)).astype(np.float64) / 2.0**53
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


def _moving_sum(x: np.ndarray, window: int) -> np.ndarray:
    """Trailing sum over `window` points (shorter at the start): a stationary, local noise process."""
    c = np.cumsum(x)
    out = c.copy()
    out[window:] = c[window:] - c[:-window]
    return out


def _asof(dates: np.ndarray, values: np.ndarray, at: np.ndarray) -> np.ndarray:
    """values at the last of `dates` on or before each of `at` (the first value before the series starts)."""
    pos = np.searchsorted(dates, at, side="right") - 1
    return values[np.clip(pos, 0, len(values) - 1)]


class _Series:
    """One symbol's full synthetic history as arrays (days, OHLC, volume, actions)."""

    __slots__ = ("days", "open", "high", "low", "close", "adj_close", "volume", "dividends", "splits")

    def __init__(self, days: np.ndarray, close: np.ndarray) -> None:
        n = len(days)
        self.days = days
        self.close = close
        self.open = close.copy()
        self.high = close.copy()
        self.low = close.copy()
        self.adj_close = close.copy()
        self.volume = np.zeros(n, dtype=np.int64)
        self.dividends = np.zeros(n)
        self.splits = np.zeros(n)


class SampleSource:
    """Synthetic, deterministic PriceSource over the universe's listings."""

    name = "sample"
    is_synthetic = True

    def __init__(self, universe: Universe) -> None:
        self.universe = universe
        self._companies = {c["id"]: c for c in universe.companies}
        self._series: dict[str, _Series] = {}
        self._factors: dict[str, np.ndarray] = {}

    def fetch(self, symbols: list[str], start: date, end: date) -> FetchResult:
        """Bars with start <= market date <= end (both inclusive), with actions and metadata."""
        result = FetchResult()
        lo, hi = np.datetime64(pd.Timestamp(start).date(), "D"), np.datetime64(pd.Timestamp(end).date(), "D")
        for symbol in dict.fromkeys(symbols):
            listing = self.universe.by_symbol.get(symbol)
            if listing is None:
                result.missing[symbol] = "not in the universe"
                continue
            result.calls += 1
            frame = self._frame(listing, lo, hi)
            if frame.empty:
                # Like the replay and yfinance sources: a window without bars is a miss with its reason.
                result.missing[symbol] = f"no trading days between {start} and {end}"
                continue
            result.frames[symbol] = frame
            result.frame_info[symbol] = {"auto_adjusted": False}
            result.metadata[symbol] = self._metadata(listing) | self._valuation(listing, frame, end)
        return result

    def _valuation(self, listing: Listing, frame: pd.DataFrame, end: date) -> dict:
        """Ticker.info valuation fields as of the window's last bar (equities and ADRs only)."""
        if listing.security_type not in ("equity", "adr"):
            return {}
        from etl.sources.sample_fundamentals import _unit, shares_series

        home = listing.underlying or listing.symbol
        shares = float(shares_series(self.universe, home, end - pd.Timedelta(days=7), end).iloc[-1])
        if listing.adr_ratio:
            shares /= listing.adr_ratio  # Yahoo quotes ADR shares outstanding in ADS
        trailing = 8 + 30 * _unit("pe", listing.symbol, end)
        return {
            "marketCap": round(float(frame["Close"].iloc[-1]) * shares),
            "sharesOutstanding": round(shares),
            "trailingPE": round(trailing, 2),
            "forwardPE": round(trailing * (0.7 + 0.2 * _unit("fpe", listing.symbol, end)), 2),
            "financialCurrency": "CNY",
        }

    def fetch_fundamentals(self, share_symbols: list[str], filing_symbols: list[str], start: date, end: date
                           ) -> FundamentalsResult:
        """Synthetic shares outstanding, quarterly cash flow and SEC filings (see sample_fundamentals)."""
        from etl.sources import sample_fundamentals

        return sample_fundamentals.fetch_fundamentals(self.universe, share_symbols, filing_symbols, start, end)

    # -- frames -------------------------------------------------------------------------------------

    def _frame(self, listing: Listing, lo: np.datetime64, hi: np.datetime64) -> pd.DataFrame:
        """The window [lo, hi] of a listing's full series as a yfinance-shaped frame."""
        s = self._full(listing.symbol)
        i, j = np.searchsorted(s.days, lo, side="left"), np.searchsorted(s.days, hi, side="right")
        tz = self.universe.exchanges[listing.exchange]["timezone"]
        index = pd.DatetimeIndex(s.days[i:j].astype("datetime64[ns]"), name="Date").tz_localize(tz)
        frame = pd.DataFrame(
            {
                "Open": s.open[i:j],
                "High": s.high[i:j],
                "Low": s.low[i:j],
                "Close": s.close[i:j],
                "Adj Close": s.adj_close[i:j],
                "Volume": s.volume[i:j],
                "Dividends": s.dividends[i:j],
                "Stock Splits": s.splits[i:j],
            },
            index=index,
        )
        return frame.astype({c: "float64" for c in _FLOAT_COLUMNS} | {"Volume": "int64"})

    def _metadata(self, listing: Listing) -> dict:
        """Yahoo-style info fields from the universe."""
        company = self._companies.get(listing.company_id or "", {})
        long_name = listing.name or company.get("name") or listing.symbol
        meta = {
            "longName": long_name,
            "shortName": long_name,
            "exchange": listing.exchange,
            "currency": listing.currency,
            "quoteType": QUOTE_TYPES[listing.security_type],
        }
        if company.get("sector"):
            meta["sector"] = company["sector"]
        return meta

    # -- full series --------------------------------------------------------------------------------

    def _days(self, listing: Listing) -> np.ndarray:
        """Trading days of the listing between calendar_start and calendar_end."""
        u = self.universe
        if listing.security_type == "fx" or listing.market not in u.markets:
            return _weekdays(u.calendar_start, u.calendar_end)
        return _calendar_sessions(u.markets[listing.market].calendar, u.calendar_start, u.calendar_end)

    def _full(self, symbol: str) -> _Series:
        """A symbol's whole series, built on first use."""
        if symbol not in self._series:
            listing = self.universe.by_symbol[symbol]
            if listing.security_type == "fx":
                s = self._fx(listing)
            elif listing.security_type == "adr":
                s = self._adr(listing)
            else:
                s = self._walk(listing)
            self._series[symbol] = s
        return self._series[symbol]

    def _factor(self, market: str, days: np.ndarray) -> np.ndarray:
        """Daily log-return of a market-wide factor, shared by that market's listings."""
        if market not in self._factors:
            self._factors[market] = 0.011 * _normals(f"factor|{market}", days)
        return self._factors[market]

    def _walk(self, listing: Listing) -> _Series:
        """Equity, index or ETF: factor-driven geometric random walk anchored at its Sep-2025 level."""
        sym, stype = listing.symbol, listing.security_type
        days = self._days(listing)
        n = len(days)
        if stype == "equity":
            beta, idio = 0.7 + 0.7 * _hash_unit(f"{sym}|beta"), 0.012 + 0.01 * _hash_unit(f"{sym}|vol")
            drift = 0.0002 + 0.0004 * _hash_unit(f"{sym}|drift")
        else:
            beta, idio, drift = 0.85 + 0.4 * _hash_unit(f"{sym}|beta"), 0.002, 0.0003
        sigma = math.hypot(beta * 0.011, idio)
        # The drift (~5-15% a year) makes levels before the anchor lower, as in real long histories.
        ret = drift + beta * self._factor(listing.market, days) + idio * _normals(f"{sym}|ret", days)
        # Part of each day's return happens overnight (the gap into Open), the rest intraday.
        gap = 0.35 * ret + 0.25 * sigma * _normals(f"{sym}|gap", days)

        s = _Series(days, np.ones(n))
        splits = self._splits(sym, days)
        s.splits[list(splits)] = list(splits.values())
        drops = np.zeros(n)
        yields, fixed = self._dividend_plan(sym, days) if stype in ("equity", "etf") else ({}, {})
        for row, y in yields.items():
            drops[row] += math.log1p(-y)

        anchor = min(int(np.searchsorted(days, np.datetime64(ANCHOR_DATE, "D"))), n - 1)
        level = BASE_LEVELS.get(sym) or 5.0 * 100.0 ** _hash_unit(f"{sym}|level")
        log_close = np.log(level) + self._anchored_cumsum(ret + drops, anchor)
        if fixed:
            # Fixed amounts: size each drop from the close before it, then rebuild the path with them.
            close = np.exp(log_close)
            for row, amount in fixed.items():
                drops[row] += math.log1p(-min(amount / close[row - 1], 0.5))
            log_close = np.log(level) + self._anchored_cumsum(ret + drops, anchor)
        close = np.exp(log_close)
        dividends = {row: round(y * close[row - 1], 3) for row, y in yields.items()} | fixed

        prev_close = np.concatenate(([close[0] * math.exp(-ret[0])], close[:-1]))
        open_ = prev_close * np.exp(gap + drops)
        volume_base = {"index": 2e9, "etf": 4e7}.get(stype, 2e6 * 25.0 ** _hash_unit(f"{sym}|volume"))
        volume = volume_base * np.exp(0.35 * _normals(f"{sym}|volume", days) + 8.0 * np.abs(ret))
        self._finish(s, sym, open_, close, 0.4 * sigma, dividends, volume)
        return s

    def _adr(self, listing: Listing) -> _Series:
        """ADR: home listing x adr_ratio at the FX rate on each US session, plus a small premium."""
        sym = listing.symbol
        days = self._days(listing)
        home_listing = self.universe.by_symbol[listing.underlying or ""]
        home = self._full(home_listing.symbol)
        per_home = self._usd_rate(listing.currency, days) / self._usd_rate(home_listing.currency, days)
        home_close = _asof(home.days, home.close, days)
        # Mean-reverting premium (sd ~0.3%) so ADR premium over the home line stays near zero.
        premium = 0.0007 * _moving_sum(_normals(f"{sym}|premium", days), 20)
        close = home_close * float(listing.adr_ratio or 1.0) * per_home * np.exp(premium)

        s = _Series(days, close)
        dividends: dict[int, float] = {}
        for row in np.flatnonzero(home.dividends):
            at = int(np.searchsorted(days, home.days[row]))
            if 0 < at < len(days):
                amount = home.dividends[row] * float(listing.adr_ratio or 1.0) * per_home[at]
                dividends[at] = dividends.get(at, 0.0) + round(float(amount), 4)
        prev_close = np.concatenate(([close[0]], close[:-1]))
        gap = np.log(np.maximum(close, 1e-12) / prev_close)
        open_ = prev_close * np.exp(0.5 * gap + 0.004 * _normals(f"{sym}|gap", days))
        volume = 3e6 * 10.0 ** _hash_unit(f"{sym}|volume") * np.exp(0.35 * _normals(f"{sym}|volume", days))
        self._finish(s, sym, open_, close, 0.008, dividends, volume)
        return s

    def _fx(self, listing: Listing) -> _Series:
        """FX pair (units per USD): slow mean-reverting wander around its level, no volume."""
        sym = listing.symbol
        days = self._days(listing)
        level = BASE_LEVELS.get(sym) or 0.5 + 10.0 * _hash_unit(f"{sym}|level")
        # A trailing sum of daily shocks: daily moves ~0.05% yet the level stays near `level` forever.
        close = level * np.exp(0.00035 * _moving_sum(_normals(f"{sym}|ret", days), 60))
        prev_close = np.concatenate(([close[0]], close[:-1]))
        open_ = prev_close * np.exp(0.0001 * _normals(f"{sym}|gap", days))
        s = _Series(days, close)
        self._finish(s, sym, open_, close, 0.0003, {}, np.zeros(len(days)))
        band = FX_BANDS.get(sym)
        if band:
            for col in ("open", "high", "low", "close"):
                setattr(s, col, np.clip(getattr(s, col), *band))
            s.adj_close = s.close.copy()
        return s

    def _finish(
        self,
        s: _Series,
        sym: str,
        open_: np.ndarray,
        close: np.ndarray,
        wick: float,
        dividends: dict[int, float],
        volume: np.ndarray,
    ) -> None:
        """Fill OHLC, volume, dividends and the dividend-adjusted close into `s`."""
        days = s.days
        high = np.maximum(open_, close) * np.exp(wick * np.abs(_normals(f"{sym}|high", days)))
        low = np.minimum(open_, close) * np.exp(-wick * np.abs(_normals(f"{sym}|low", days)))
        # Rounding is monotone, so Low <= Open, Close <= High survives it.
        s.open, s.high, s.low, s.close = (np.maximum(np.round(a, 4), 1e-4) for a in (open_, high, low, close))
        s.volume = np.maximum(np.round(volume), 0).astype(np.int64)
        if volume.any():
            s.volume = np.maximum(s.volume, 1)
        factor = np.ones(len(days))
        for row, amount in dividends.items():
            s.dividends[row] = amount
            factor[row] = 1.0 - amount / s.close[row - 1]
        # Adj Close on day t carries every dividend with ex-date after t (up to the horizon).
        after = np.cumprod(factor[::-1])[::-1]
        s.adj_close = s.close * np.concatenate((after[1:], [1.0]))

    @staticmethod
    def _anchored_cumsum(x: np.ndarray, anchor: int) -> np.ndarray:
        """Cumulative sum of daily log-returns, zero at `anchor`."""
        c = np.cumsum(x)
        return c - c[anchor]

    def _usd_rate(self, currency: str, days: np.ndarray) -> np.ndarray:
        """Units of `currency` per USD on each of `days` (1 for USD)."""
        if currency == "USD":
            return np.ones(len(days))
        fx = self._full(self.universe.currencies[currency]["fx_symbol"])
        return _asof(fx.days, fx.close, days)

    def _splits(self, sym: str, days: np.ndarray) -> dict[int, float]:
        """Rows of fixed splits that fall on a trading day of the series."""
        out = {}
        for when, ratio in FIXED_SPLITS.get(sym, {}).items():
            row = int(np.searchsorted(days, np.datetime64(when, "D")))
            if row < len(days) and days[row] == np.datetime64(when, "D"):
                out[row] = ratio
        return out

    def _dividend_plan(self, sym: str, days: np.ndarray) -> tuple[dict[int, float], dict[int, float]]:
        """(row -> yield of hashed dividends, row -> amount of fixed dividends) for one listing."""
        h = _hash_int(f"{sym}|dividends")
        per_year = 1 + h % 2
        month, day = 1 + (h >> 8) % 12, 1 + (h >> 16) % 28
        months = [month] if per_year == 1 else [month, (month + 5) % 12 + 1]
        fixed_dates = FIXED_DIVIDENDS.get(sym, {})
        fixed: dict[int, float] = {}
        for when, amount in fixed_dates.items():
            row = int(np.searchsorted(days, np.datetime64(when, "D")))
            if 0 < row < len(days):
                fixed[row] = float(amount)
        yields: dict[int, float] = {}
        first, last = days[0].astype(object).year, days[-1].astype(object).year
        for year in range(first, last + 1):
            for k, m in enumerate(months):
                nominal = date(year, m, day)
                if any(abs((nominal - f).days) < _FIXED_DIVIDEND_EXCLUSION_DAYS for f in fixed_dates):
                    continue
                row = int(np.searchsorted(days, np.datetime64(nominal, "D")))
                if 0 < row < len(days) and row not in fixed:
                    yields[row] = 0.003 + 0.012 * _hash_unit(f"{sym}|dividend|{year}|{k}")
        return yields, fixed
