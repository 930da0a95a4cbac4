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
METADATA_FIELDS = ["longName", "shortName", "exchange", "currency", "quoteType", "sector", "industry"]


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


class PriceSource(Protocol):
    """Daily bars, dividends and splits, and instrument metadata for a list of symbols."""

    name: str
    is_synthetic: bool

    def fetch(self, symbols: list[str], start: date, end: date) -> FetchResult:
        """Bars with start <= market date <= end (both inclusive), with actions and metadata."""
        ...
