"""quarantine: every rejected price bar and corporate action of the window, with its reason and raw record."""

from __future__ import annotations

import json
from datetime import date


def test_rejected_rows_of_the_window_only(warehouse):
    warehouse.set_variables(window_start=date(2024, 1, 8), window_end=date(2024, 1, 12), run_id="run-5")
    warehouse.table("int_prices_checked", [
        {"symbol": "0700.HK", "bar_date": date(2024, 1, 8), "vendor_timestamp": "2024-01-08 00:00:00+08:00",
         "open": 1.0, "high": 2.0, "low": 0.0, "close": 1.5, "adj_close_vendor": None, "volume": 10.0,
         "source": "sample", "source_file": "f.csv", "rejection_reason": "non_positive_price"},
        {"symbol": "0700.HK", "bar_date": date(2024, 1, 9), "close": 1.5, "rejection_reason": None},
        {"symbol": "0700.HK", "bar_date": date(2024, 1, 5), "close": None,
         "rejection_reason": "missing_close"},
    ])
    warehouse.table("int_corporate_action_checked", [
        {"symbol": "0981.HK", "bar_date": date(2024, 1, 10), "action_type": "consolidation",
         "split_ratio": 0.1,
         "source": "replay", "source_file": "0981.csv", "rejection_reason": "duplicate_split_repeat"},
        {"symbol": "0981.HK", "bar_date": date(2024, 1, 9), "action_type": "consolidation",
         "split_ratio": 0.1,
         "source": "replay", "source_file": "0981.csv", "rejection_reason": None},
    ])
    warehouse.run("quarantine")
    rows = warehouse.rows("select * from quarantine order by table_name")
    assert [(*r[:6], json.loads(r[6]), r[7]) for r in rows] == [
        ("fct_corporate_action", "0981.HK", date(2024, 1, 10), "duplicate_split_repeat", "replay", "0981.csv",
         {"action_type": "consolidation", "dividend_local": None, "split_ratio": 0.1}, "run-5"),
        ("fct_daily_price", "0700.HK", date(2024, 1, 8), "non_positive_price", "sample", "f.csv",
         {"vendor_timestamp": "2024-01-08 00:00:00+08:00", "open": 1.0, "high": 2.0, "low": 0.0, "close": 1.5,
          "adj_close_vendor": None, "volume": 10.0}, "run-5"),
    ]
