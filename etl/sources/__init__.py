"""Source factory: one name per implementation of PriceSource."""

from __future__ import annotations

from pathlib import Path

from etl.config import Universe
from etl.sources.base import FetchResult, PriceSource, SourceError

SOURCE_NAMES = ("sample", "replay", "yfinance")


def make_source(name: str, universe: Universe, replay_dir: str | Path | None = None, budget=None) -> PriceSource:
    """Build the named source; heavy imports (yfinance) happen only for the source asked for.

    `budget` (etl.sources.budget.RequestBudget) is the Yahoo request budget shared by the run's tasks."""
    if name == "sample":
        from etl.sources.sample import SampleSource

        return SampleSource(universe)
    if name == "replay":
        if replay_dir is None:
            raise SourceError("the replay source needs --replay-dir DIR (a folder of yfinance CSV files)")
        from etl.sources.replay import ReplaySource

        return ReplaySource(universe, Path(replay_dir))
    if name == "yfinance":
        from etl.sources.yfinance_source import YFinanceSource

        return YFinanceSource(universe, budget=budget)
    raise SourceError(f"unknown source {name!r}; choose one of {', '.join(SOURCE_NAMES)}")


__all__ = ["FetchResult", "PriceSource", "SourceError", "SOURCE_NAMES", "make_source"]
