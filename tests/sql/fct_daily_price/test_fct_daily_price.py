"""fct_daily_price: clean bars of the window, keyed to the day's security version, returns, USD close."""

from __future__ import annotations

from datetime import date

import pytest


def d(day: int) -> date:
    return date(2024, 1, day)


HKD_KEY, USD_KEY, XHKG_KEY, XNYS_KEY = 11, 12, 21, 22
TENCENT_V1, TENCENT_V2, BABA_V1 = 101, 102, 201

SECURITIES = [
    # 0700.HK got a new version on 2024-01-10
    {"security_key": TENCENT_V1, "symbol": "0700.HK", "exchange_key": XHKG_KEY, "currency_key": HKD_KEY,
     "valid_from": date(1900, 1, 1), "valid_to": d(9)},
    {"security_key": TENCENT_V2, "symbol": "0700.HK", "exchange_key": XHKG_KEY, "currency_key": HKD_KEY,
     "valid_from": d(10), "valid_to": date(9999, 12, 31)},
    {"security_key": BABA_V1, "symbol": "BABA", "exchange_key": XNYS_KEY, "currency_key": USD_KEY,
     "valid_from": date(1900, 1, 1), "valid_to": date(9999, 12, 31)},
]
FX = [
    {"currency_key": HKD_KEY, "date_key": 20240108, "rate_to_usd": 0.128},
    {"currency_key": HKD_KEY, "date_key": 20240109, "rate_to_usd": 0.125},
    # no HKD rate on the 10th: a gap
    {"currency_key": USD_KEY, "date_key": 20240108, "rate_to_usd": 1.0},
    {"currency_key": USD_KEY, "date_key": 20240110, "rate_to_usd": 1.0},
]


def bar(symbol, day, adj_close, rejection_reason=None, **values):
    return {"symbol": symbol, "bar_date": d(day), "open": adj_close - 1, "high": adj_close + 1,
            "low": adj_close - 2, "close": adj_close + 0.5, "adj_close": adj_close, "volume": 1234.0,
            "is_vendor_adjusted": False, "is_high_low_inverted": False, "is_zero_volume": False,
            "source": "sample", "source_file": None, "run_id": f"landed-{day}",
            "rejection_reason": rejection_reason} | values


@pytest.fixture
def facts(warehouse):
    # given a window Mon 2024-01-08 .. Fri 2024-01-12 and a lookback before it
    warehouse.table("int_prices_checked", [
        bar("0700.HK", 4, 90.0),                                   # lookback
        bar("0700.HK", 5, 100.0),                                  # lookback: the previous bar of the 8th
        bar("0700.HK", 8, 110.0),
        bar("0700.HK", 9, 999.0, rejection_reason="missing_close"),  # quarantined: not a previous bar either
        bar("0700.HK", 10, 121.0),
        bar("0700.HK", 15, 130.0),                                 # after the window
        bar("BABA", 8, 80.0),                                      # first bar ever: no return
        bar("BABA", 10, 84.0),
        bar("BABA", 11, 50.0, rejection_reason="not_a_trading_day"),
    ])
    warehouse.table("dim_security", SECURITIES)
    warehouse.table("fct_fx_rate", FX)
    # when
    warehouse.run("fct_daily_price")
    return warehouse


def test_columns(facts):
    assert facts.columns("fct_daily_price") == [
        "date_key", "security_key", "exchange_key", "currency_key", "symbol", "open", "high", "low", "close",
        "adj_close", "volume", "daily_return", "fx_rate_to_usd", "close_usd", "is_vendor_adjusted",
        "is_high_low_inverted", "is_zero_volume", "source", "is_synthetic", "source_file", "landed_run_id",
        "run_id",
    ]


def test_window_rows_keyed_by_the_version_valid_that_day_with_returns_and_usd_close(facts):
    assert facts.rows(
        "select date_key, security_key, exchange_key, currency_key, symbol, adj_close, daily_return, "
        "fx_rate_to_usd, close, close_usd from fct_daily_price order by symbol, date_key"
    ) == [
        # the 8th's return is against the 5th, in the lookback
        (20240108, TENCENT_V1, XHKG_KEY, HKD_KEY, "0700.HK", 110.0, 110.0 / 100.0 - 1, 0.128, 110.5,
         110.5 * 0.128),
        # the 9th is quarantined, so the 10th's return is against the 8th; no HKD rate on the 10th: no USD
        (20240110, TENCENT_V2, XHKG_KEY, HKD_KEY, "0700.HK", 121.0, 121.0 / 110.0 - 1, None, 121.5, None),
        (20240108, BABA_V1, XNYS_KEY, USD_KEY, "BABA", 80.0, None, 1.0, 80.5, 80.5),
        (20240110, BABA_V1, XNYS_KEY, USD_KEY, "BABA", 84.0, 84.0 / 80.0 - 1, 1.0, 84.5, 84.5),
    ]


def test_measures_and_lineage_pass_through(facts):
    facts.set_variables(run_id="run-42", is_synthetic=False)
    facts.run("fct_daily_price")
    assert facts.dicts(
        "select * exclude (date_key, security_key, exchange_key, currency_key, daily_return, fx_rate_to_usd, "
        "close_usd) from fct_daily_price where symbol = 'BABA' and date_key = 20240110"
    ) == [{
        "symbol": "BABA", "open": 83.0, "high": 85.0, "low": 82.0, "close": 84.5, "adj_close": 84.0,
        "volume": 1234, "is_vendor_adjusted": False, "is_high_low_inverted": False, "is_zero_volume": False,
        "source": "sample", "is_synthetic": False, "source_file": None, "landed_run_id": "landed-10",
        "run_id": "run-42",
    }]


def test_a_bar_without_a_security_version_that_day_has_no_row(warehouse):
    warehouse.table("int_prices_checked", [bar("0700.HK", 8, 110.0)])
    warehouse.table("dim_security", [SECURITIES[1]])  # only the version from the 10th
    warehouse.table("fct_fx_rate", FX)
    warehouse.run("fct_daily_price")
    assert warehouse.rows("select count(*) from fct_daily_price") == [(0,)]
