"""Which market window a DAG run covers, from its logical date and the exchange calendar.

Airflow 3 cron schedules use CronTriggerTimetable, where data_interval_start == data_interval_end ==
logical_date, so the interval says nothing about the market day. The rule instead: take the logical date in
the market's timezone; if that local day is not a session, there is nothing to do (skip); if it is a session
that has closed by then, the run covers that day; if it has not closed yet, the run covers the previous
session (the latest closed one). A run with explicit `start`/`end` params covers those sessions instead.

A scheduled run's window starts the day after the previous session and ends on its session, so consecutive
daily runs tile the calendar: the weekend and holiday days in between get their carried-over FX rows from
the run after them, and a backfill of daily runs publishes exactly what one run over the range does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from etl.calendars import market_sessions
from etl.config import Settings, Universe


@dataclass(frozen=True)
class MarketWindow:
    market: str
    start: date | None  # None: nothing to do
    end: date | None
    reason: str


def market_window(universe: Universe, settings: Settings, market: str, logical_date: datetime,
                  start: str | None = None, end: str | None = None) -> MarketWindow:
    spec = universe.markets[market]
    cache = settings.store_dir / "reference"
    if start or end:
        first = date.fromisoformat(start or end)
        last = date.fromisoformat(end or start)
        sessions = market_sessions(universe, market, first, last, cache)
        if not sessions:
            return MarketWindow(market, None, None, f"no {market} sessions between {first} and {last}")
        return MarketWindow(market, sessions[0], sessions[-1], f"backfill window {first}..{last}")
    local = logical_date.astimezone(ZoneInfo(spec.timezone))
    today = local.date()
    if not market_sessions(universe, market, today, today, cache):
        return MarketWindow(market, None, None, f"{today} is not a {spec.calendar} session")
    earlier = market_sessions(universe, market, date(today.year - 1, 1, 1), today, cache)[:-1]
    if local.time() >= time.fromisoformat(spec.close_local):
        return MarketWindow(market, earlier[-1] + timedelta(days=1), today,
                            f"{today} session closed at {spec.close_local} {spec.timezone}")
    previous = earlier[-1]
    return MarketWindow(market, earlier[-2] + timedelta(days=1), previous,
                        f"{today} session still open at {local:%H:%M}; latest closed session is {previous}")
