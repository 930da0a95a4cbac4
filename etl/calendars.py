"""Exchange sessions from exchange_calendars, cached in the store because building a calendar is slow."""

from __future__ import annotations

import hashlib
import os
from datetime import date
from pathlib import Path

import pandas as pd

from etl.config import Universe


def sessions_frame(universe: Universe, cache_dir: Path) -> pd.DataFrame:
    """(market_code, session_date) for every market in the universe over its calendar range."""
    key = "|".join(
        [str(universe.calendar_start), str(universe.calendar_end)]
        + [f"{m.code}:{m.calendar}" for m in universe.markets.values()]
    )
    path = cache_dir / f"sessions-{hashlib.md5(key.encode()).hexdigest()[:12]}.parquet"
    if path.exists():
        return pd.read_parquet(path)
    import exchange_calendars as xcals

    frames = []
    for market in universe.markets.values():
        cal = xcals.get_calendar(market.calendar, start=str(universe.calendar_start))
        end = min(pd.Timestamp(universe.calendar_end), cal.last_session)
        sessions = cal.sessions_in_range(cal.first_session, end)
        frames.append(pd.DataFrame({"market_code": market.code, "session_date": sessions.date}))
    frame = pd.concat(frames, ignore_index=True)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")  # per process: two DAGs may build it at once
    frame.to_parquet(tmp, index=False)
    tmp.replace(path)
    return frame


def market_sessions(universe: Universe, market: str, start: date, end: date, cache_dir: Path) -> list[date]:
    """Sessions of one market between start and end inclusive."""
    frame = sessions_frame(universe, cache_dir)
    chosen = frame[(frame.market_code == market) & (frame.session_date >= start) & (frame.session_date <= end)]
    return sorted(chosen.session_date.tolist())
