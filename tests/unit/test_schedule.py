"""Which session a DAG run covers, from its logical date (CronTriggerTimetable gives no real interval)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from etl.config import Settings, load_universe
from etl.schedule import market_window


@pytest.fixture
def ctx(data_dir):
    return load_universe(), Settings.from_env()


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("market", "logical", "expected"),
    [
        # a window runs from the day after the previous session to the session (weekends belong to Monday)
        ("XHKG", "2025-09-17T09:30", (date(2025, 9, 17), date(2025, 9, 17))),  # 17:30 HKT: after the close
        ("XHKG", "2025-09-17T00:00", (date(2025, 9, 16), date(2025, 9, 16))),  # 08:00 HKT: not closed yet
        ("XHKG", "2025-09-15T09:30", (date(2025, 9, 13), date(2025, 9, 15))),  # Monday: Sat + Sun + Mon
        ("XHKG", "2025-10-01T09:30", (None, None)),  # National Day
        ("XHKG", "2025-09-20T09:30", (None, None)),  # Saturday
        ("US", "2025-09-17T21:30", (date(2025, 9, 17), date(2025, 9, 17))),  # 17:30 EDT
        ("US", "2025-09-17T00:00", (date(2025, 9, 16), date(2025, 9, 16))),  # 20:00 EDT the day before
        ("US", "2025-09-01T21:30", (None, None)),  # Labor Day
        ("US", "2025-09-02T15:00", (date(2025, 8, 29), date(2025, 8, 29))),  # open; previous session skips Labor Day
        ("US", "2025-09-02T21:30", (date(2025, 8, 30), date(2025, 9, 2))),  # after Labor Day: Sat..Tue
    ],
)
def test_logical_date_maps_to_the_latest_closed_session(ctx, market, logical, expected):
    universe, settings = ctx
    window = market_window(universe, settings, market, _utc(logical))
    assert (window.start, window.end) == expected, window.reason


def test_params_turn_a_run_into_a_backfill_of_the_sessions_in_the_window(ctx):
    universe, settings = ctx
    window = market_window(universe, settings, "US", _utc("2025-09-30T21:30"), "2025-09-01", "2025-09-30")
    assert (window.start, window.end) == (date(2025, 9, 2), date(2025, 9, 30))
    empty = market_window(universe, settings, "XHKG", _utc("2025-10-01T09:30"), "2025-10-01", "2025-10-01")
    assert empty.start is None and "no XHKG sessions" in empty.reason
