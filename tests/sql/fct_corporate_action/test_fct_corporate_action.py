"""fct_corporate_action: accepted actions of the window, keyed to the security version, dividends in USD."""

from __future__ import annotations

from datetime import date

HKD_KEY, SEC_V1, SEC_V2 = 11, 101, 102


def action(bar_date, action_type="cash_dividend", dividend_local=None, split_ratio=None,
           rejection_reason=None):
    return {"symbol": "0700.HK", "bar_date": bar_date, "action_type": action_type,
            "dividend_local": dividend_local, "split_ratio": split_ratio, "source": "replay",
            "source_file": "0700.HK.csv", "rejection_reason": rejection_reason}


def test_window_actions_keyed_by_version_and_converted(warehouse):
    warehouse.set_variables(window_start=date(2024, 1, 8), window_end=date(2024, 1, 12), run_id="run-3",
                            is_synthetic=False)
    warehouse.table("int_corporate_action_checked", [
        action(date(2024, 1, 5), dividend_local=1.0),                                  # lookback
        action(date(2024, 1, 8), dividend_local=2.4),
        action(date(2024, 1, 10), "stock_split", split_ratio=2.0),
        action(date(2024, 1, 11), "stock_split", split_ratio=2.0, rejection_reason="duplicate_split_repeat"),
        action(date(2024, 1, 12), dividend_local=3.0),                                 # no FX rate that day
    ])
    warehouse.table("dim_security", [
        {"security_key": SEC_V1, "symbol": "0700.HK", "currency_key": HKD_KEY,
         "valid_from": date(1900, 1, 1), "valid_to": date(2024, 1, 9)},
        {"security_key": SEC_V2, "symbol": "0700.HK", "currency_key": HKD_KEY,
         "valid_from": date(2024, 1, 10), "valid_to": date(9999, 12, 31)},
    ])
    warehouse.table("fct_fx_rate", [
        {"currency_key": HKD_KEY, "date_key": 20240108, "rate_to_usd": 0.125},
        {"currency_key": HKD_KEY, "date_key": 20240110, "rate_to_usd": 0.125},
    ])
    warehouse.run("fct_corporate_action")
    assert warehouse.rows("select * from fct_corporate_action order by date_key") == [
        (20240108, SEC_V1, HKD_KEY, "0700.HK", "cash_dividend", 2.4, 2.4 * 0.125, None, "replay", False,
         "run-3"),
        (20240110, SEC_V2, HKD_KEY, "0700.HK", "stock_split", None, None, 2.0, "replay", False, "run-3"),
        (20240112, SEC_V2, HKD_KEY, "0700.HK", "cash_dividend", 3.0, None, None, "replay", False, "run-3"),
    ]
