"""int_usd_rate_by_day: each calendar day takes the latest known rate of at most 5 days earlier, never one past
a later known day (a gap stays a gap), nothing past 5 days, no rows for USD."""

from __future__ import annotations

from datetime import date

import pytest


def key(day: int) -> int:
    return 20240100 + day


@pytest.fixture
def by_day(warehouse):
    # given: HKD known on Fri 5th and Mon 8th, then a gap row (null) on Tue 9th; CNY only on Thu 4th
    warehouse.table("int_known_fx_rate", [
        {"currency_code": "HKD", "date_key": key(5), "rate_to_usd": 0.128},
        {"currency_code": "HKD", "date_key": key(8), "rate_to_usd": 0.129},
        {"currency_code": "HKD", "date_key": key(9), "rate_to_usd": None},
        {"currency_code": "CNY", "date_key": key(4), "rate_to_usd": 0.140},
        {"currency_code": "USD", "date_key": key(8), "rate_to_usd": 1.0},
    ])
    # when
    warehouse.run("int_usd_rate_by_day")
    return warehouse


def rate(warehouse, currency: str, day: int):
    rows = warehouse.rows("select rate_to_usd from int_usd_rate_by_day where currency_code = ? and rate_day = ?",
                          [currency, date(2024, 1, day)])
    assert len(rows) <= 1, "one rate per currency and day"
    return rows[0][0] if rows else "no row"


def test_the_weekend_carries_fridays_rate_until_the_next_known_day(by_day):
    assert [rate(by_day, "HKD", d) for d in (5, 6, 7, 8)] == [0.128, 0.128, 0.128, 0.129]


def test_a_gap_is_not_filled_by_an_older_rate(by_day):
    # the 9th is known to have no rate: it and the days it would cover stay null
    assert [rate(by_day, "HKD", d) for d in (9, 10, 14)] == [None, None, None]
    assert rate(by_day, "HKD", 15) == "no row"


def test_a_rate_applies_five_days_at_most(by_day):
    assert rate(by_day, "CNY", 9) == 0.140   # Thursday 4th + 5 days
    assert rate(by_day, "CNY", 10) == "no row"
    assert rate(by_day, "CNY", 3) == "no row"  # nothing before the first known day


def test_usd_has_no_rows(by_day):
    assert by_day.rows("select count(*) from int_usd_rate_by_day where currency_code = 'USD'") == [(0,)]
