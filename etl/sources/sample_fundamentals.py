"""Synthetic fundamentals for the sample source: shares outstanding, quarterly cash flow, SEC filings.

Deterministic like the bars: a value for (symbol, date) never depends on the window asked. Every event type
the warehouse knows appears, and September 2025 (the demo window) is guaranteed to hold a buyback step for
0700.HK, a share increase for 1810.HK and a 6-K for BABA on the day of its (real, curated) convertible.
"""

from __future__ import annotations

import hashlib
from datetime import date, timedelta

import pandas as pd

from etl.config import Universe
from etl.sources.base import FundamentalsResult

GRID_ORIGIN = date(2000, 1, 5)  # a Wednesday: share counts are observed weekly, like Yahoo's shares history
FIXED_STEPS = {("0700.HK", date(2025, 9, 10)): 0.994, ("1810.HK", date(2025, 9, 17)): 1.012}
FIXED_FILINGS = {
    ("BABA", date(2025, 9, 11)): ("6-K", "Announcement: proposed offering of convertible senior notes"),
    ("BIDU", date(2025, 9, 18)): ("424B2", "Prospectus supplement: senior notes (synthetic sample)"),
}
CASH_FLOW_LINES = ["Issuance Of Debt", "Repayment Of Debt", "Issuance Of Capital Stock",
                   "Repurchase Of Capital Stock", "Capital Expenditure", "Free Cash Flow", "Operating Cash Flow"]


def _unit(*parts: object) -> float:
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _grid(start: date, end: date) -> list[date]:
    first = GRID_ORIGIN + timedelta(days=((start - GRID_ORIGIN).days // 7) * 7)
    days = []
    day = first
    while day <= end:
        if day >= start:
            days.append(day)
        day += timedelta(days=7)
    return days


def _step(symbol: str, day: date) -> float:
    if (symbol, day) in FIXED_STEPS:
        return FIXED_STEPS[(symbol, day)]
    u = _unit("shares-step", symbol, day)
    if u < 0.02:
        return 1.015  # placement or conversion
    if u < 0.08:
        return 0.995  # buyback tranche
    return 1.0


def shares_series(universe: Universe, symbol: str, start: date, end: date) -> pd.Series:
    """Weekly shares outstanding, compounded from the grid origin so every window agrees."""
    base = 1e9 * (1 + 20 * _unit("shares-base", symbol))
    level = base
    values, index = [], []
    for day in _grid(GRID_ORIGIN, end):
        level *= _step(symbol, day)
        if day >= start:
            index.append(day)
            values.append(round(level))
    tz = universe.exchanges[universe.by_symbol[symbol].exchange]["timezone"]
    return pd.Series(values, index=pd.DatetimeIndex(index).tz_localize(tz), dtype="int64")


def quarter_ends(end: date, count: int = 5) -> list[date]:
    """The last `count` calendar quarter ends reported by `end` (a quarter is reported 45 days after it ends)."""
    out = []
    year, quarter = end.year, (end.month - 1) // 3 + 1
    while len(out) < count:
        quarter -= 1
        if quarter == 0:
            year, quarter = year - 1, 4
        month = quarter * 3
        last = (date(year + (month == 12), month % 12 + 1, 1) - timedelta(days=1))
        if last + timedelta(days=45) <= end:
            out.append(last)
    return out


def cash_flow_frame(symbol: str, end: date) -> pd.DataFrame:
    """yfinance quarterly_cashflow shape: line items x period ends (newest first), statement currency units."""
    periods = quarter_ends(end)
    scale = 1e9 * (1 + 9 * _unit("cash-scale", symbol))
    data = {}
    for period in periods:
        u = [_unit("cash", symbol, period, line) for line in CASH_FLOW_LINES]
        data[pd.Timestamp(period)] = [
            round(scale * u[0] * (u[0] > 0.3)),  # debt issued in about 70% of quarters
            -round(scale * 0.8 * u[1]),
            round(scale * 0.1 * u[2] * (u[2] > 0.8)),
            -round(scale * 0.5 * u[3]),
            -round(scale * (0.5 + u[4])),
            round(scale * (1 + u[5])),
            round(scale * (2 + u[6])),
        ]
    return pd.DataFrame(data, index=CASH_FLOW_LINES, dtype="float64")


def filings(symbol: str, start: date, end: date) -> list[dict]:
    """yfinance sec_filings shape: newest first; one 6-K on a hashed day each month, a 424B2 each year."""
    out = []
    day = start
    while day <= end:
        fixed = FIXED_FILINGS.get((symbol, day))
        if fixed or _unit("6-K", symbol, day.year, day.month) * 28 // 1 + 1 == day.day:
            form, title = fixed or ("6-K", "Report of foreign private issuer (synthetic sample)")
        elif day.month == 5 and day.day == 10 + int(10 * _unit("424", symbol, day.year)):
            form, title = "424B2", "Prospectus supplement (synthetic sample)"
        else:
            day += timedelta(days=1)
            continue
        out.append({"date": day, "epochDate": int(pd.Timestamp(day).timestamp()), "type": form, "title": title,
                    "edgarUrl": f"https://example.invalid/sample-filings/{symbol}/{day:%Y%m%d}-{form}",
                    "exhibits": {}})
        day += timedelta(days=1)
    return sorted(out, key=lambda f: f["date"], reverse=True)


def fetch_fundamentals(universe: Universe, share_symbols: list[str], filing_symbols: list[str],
                       start: date, end: date) -> FundamentalsResult:
    result = FundamentalsResult()
    for symbol in share_symbols:
        if symbol not in universe.by_symbol:
            result.missing[f"{symbol}:shares"] = "not in the universe"
            continue
        result.calls += 3  # shares, cash flow, info (statement currency), as the live client counts them
        result.shares[symbol] = shares_series(universe, symbol, start - timedelta(days=120), end)
        result.cashflow[symbol] = cash_flow_frame(symbol, end)
        result.statement_currency[symbol] = "CNY"  # the universe's issuers all report in renminbi
    for symbol in filing_symbols:
        result.calls += 1
        found = filings(symbol, start, end)
        if found:
            result.filings[symbol] = found
        else:
            result.missing[f"{symbol}:filings"] = f"no SEC filings between {start} and {end}"
    return result
