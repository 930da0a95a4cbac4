"""The one interface every price source implements, and the raw-frame contract it returns.

A source returns what the vendor returned: per symbol, a pandas DataFrame shaped like yfinance's
``Ticker.history(auto_adjust=False, actions=True)``: a tz-aware DatetimeIndex named ``Date`` in the
exchange's local time and some of the columns in RAW_COLUMNS. Cleaning is not the source's job: staging
SQL does it, re-runnable from landing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Protocol

import pandas as pd

RAW_COLUMNS = ["Open", "High", "Low", "Close", "Adj Close", "Volume", "Dividends", "Stock Splits"]
METADATA_FIELDS = ["longName", "shortName", "exchange", "currency", "quoteType", "sector", "industry",
                   # valuation snapshot fields (fct_valuation_daily): Yahoo serves no history of these
                   "marketCap", "sharesOutstanding", "trailingPE", "forwardPE", "financialCurrency"]
# yfinance cash-flow line items (Ticker.quarterly_cashflow index labels) kept as financing flows
CASH_FLOW_ITEMS = {
    "Issuance Of Debt": "debt_issuance",
    "Repayment Of Debt": "debt_repayment",
    "Issuance Of Capital Stock": "equity_issuance",
    "Repurchase Of Capital Stock": "equity_repurchase",
    "Capital Expenditure": "capital_expenditure",
}
# SEC form types that announce or document offerings (yfinance Ticker.sec_filings "type")
OFFERING_FORMS = ("424B", "6-K", "8-K", "F-3", "S-3")


class SourceError(RuntimeError):
    """The source could not deliver at all (unreachable, rate-limited past retries, bad directory)."""


@dataclass
class FetchResult:
    """What one extract call got: frames per symbol, and every symbol it could not get, with why."""

    frames: dict[str, pd.DataFrame] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, dict] = field(default_factory=dict)
    # Per-frame facts the landing step records beside the rows (e.g. the replay file a frame came from,
    # or whether the vendor already adjusted OHLC for dividends and splits).
    frame_info: dict[str, dict] = field(default_factory=dict)
    calls: int = 0
    # Things the operator should know that are not a missing symbol (e.g. a replay file no listing matches)
    warnings: list[str] = field(default_factory=list)


@dataclass
class FundamentalsResult:
    """Company-level data for financing events, each in the shape yfinance returns it.

    shares:    symbol -> pd.Series of shares outstanding (Ticker.get_shares_full: tz-aware DatetimeIndex)
    cashflow:  symbol -> pd.DataFrame (Ticker.quarterly_cashflow: index = line items, columns = period ends)
    filings:   symbol -> list of dicts (Ticker.sec_filings: date, type, title, edgarUrl, exhibits)
    statement_currency: symbol -> currency the statements are reported in (Ticker.info financialCurrency)
    """

    shares: dict[str, pd.Series] = field(default_factory=dict)
    cashflow: dict[str, pd.DataFrame] = field(default_factory=dict)
    filings: dict[str, list[dict]] = field(default_factory=dict)
    statement_currency: dict[str, str] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)
    calls: int = 0


class PriceSource(Protocol):
    """Daily bars, dividends and splits, and instrument metadata for a list of symbols."""

    name: str
    is_synthetic: bool

    def fetch(self, symbols: list[str], start: date, end: date) -> FetchResult:
        """Bars with start <= market date <= end (both inclusive), with actions and metadata."""
        ...

    def fetch_fundamentals(self, share_symbols: list[str], filing_symbols: list[str], start: date, end: date
                           ) -> FundamentalsResult:
        """Shares outstanding (from start - 120 days to end) and quarterly cash flow for share_symbols (one
        primary listing per company), SEC filings for filing_symbols (US-listed ADRs)."""
        ...
