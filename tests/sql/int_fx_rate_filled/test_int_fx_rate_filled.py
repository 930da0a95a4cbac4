"""int_fx_rate_filled: a rate per non-USD currency per window day, carried at most 5 days, else a gap."""

from __future__ import annotations

from datetime import date

import pytest


def d(day: int) -> date:
    return date(2024, 1, day)


SECURITIES = [
    {"symbol": "HKD=X", "currency": "HKD", "security_type": "fx", "market_code": "FX"},
    {"symbol": "CNY=X", "currency": "CNY", "security_type": "fx", "market_code": "FX"},
    {"symbol": "0700.HK", "currency": "HKD", "security_type": "equity", "market_code": "XHKG"},
]
# EUR: in the universe, never quoted
CURRENCIES = [{"currency_code": c} for c in ("USD", "HKD", "CNY", "EUR")]


def hkd(day: int) -> float:
    """HKD=X on 2024-01-<day>: a different quote every day, so the carried one is identifiable."""
    return 7.80 + day / 1000


def quote(symbol, bar_date, close, rejection_reason=None):
    return {"symbol": symbol, "bar_date": bar_date, "close": close, "rejection_reason": rejection_reason}


@pytest.fixture
def filled(warehouse):
    # given a window Mon 2024-01-08 .. Tue 2024-01-16 (two weekends' worth of carry-over)
    warehouse.set_variables(window_start=d(8), window_end=d(16))
    warehouse.table("stg_universe__securities", SECURITIES)
    warehouse.table("ref_currency", CURRENCIES)
    warehouse.table("int_prices_checked", [
        # HKD: a quote every weekday, Friday the 5th in the lookback
        *(quote("HKD=X", d(day), hkd(day)) for day in (5, 8, 9, 10, 11, 12, 15, 16)),
        quote("HKD=X", d(13), 0.0, "non_positive_price"),   # rejected: not a quote
        quote("0700.HK", d(14), 300.0),                     # an HKD equity: not a quote
        # CNY: a quote on Thursday the 4th, then nothing until Friday the 12th
        quote("CNY=X", d(4), 7.10),
        quote("CNY=X", d(12), 7.20),
    ])
    # when
    warehouse.run("int_fx_rate_filled")
    return warehouse


def test_columns(filled):
    assert filled.columns("int_fx_rate_filled") == [
        "calendar_date", "currency_code", "observed_date", "units_per_usd", "rate_to_usd",
        "is_carried_forward",
    ]


def test_weekdays_use_their_own_quote_and_weekends_carry_friday(filled):
    rows = filled.rows(
        "select calendar_date, observed_date, units_per_usd, rate_to_usd, is_carried_forward "
        "from int_fx_rate_filled where currency_code = 'HKD' order by calendar_date"
    )
    observed = {8: 8, 9: 9, 10: 10, 11: 11, 12: 12, 13: 12, 14: 12, 15: 15, 16: 16}
    assert rows == [
        (d(day), d(seen), hkd(seen), 1.0 / hkd(seen), day != seen) for day, seen in observed.items()
    ]


def test_a_quote_older_than_5_days_is_a_gap_with_no_row(filled):
    # then Thursday's quote covers up to Tuesday (5 days); Wed-Thu have no row; Friday's quote restarts
    assert filled.rows(
        "select calendar_date, observed_date, units_per_usd, rate_to_usd, is_carried_forward "
        "from int_fx_rate_filled where currency_code = 'CNY' order by calendar_date"
    ) == [
        (d(8), d(4), 7.10, 1.0 / 7.10, True),
        (d(9), d(4), 7.10, 1.0 / 7.10, True),
        *((d(day), d(12), 7.20, 1.0 / 7.20, day != 12) for day in range(12, 17)),
    ]


def test_usd_and_a_currency_without_quotes_have_no_rows(filled):
    assert filled.rows(
        "select currency_code, count(*) from int_fx_rate_filled group by all order by currency_code"
    ) == [("CNY", 7), ("HKD", 9)]
