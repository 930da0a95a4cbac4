"""fct_fx_rate: the filled rates keyed by date and currency, plus USD at 1.0 on every window day."""

from __future__ import annotations

import hashlib
from datetime import date


def key(code: str) -> int:
    return int(hashlib.md5(code.encode()).hexdigest()[:15], 16)


def test_filled_rates_keyed_and_usd_added_for_every_day(warehouse):
    warehouse.set_variables(window_start=date(2024, 1, 12), window_end=date(2024, 1, 13), source="replay",
                            run_id="run-7")
    warehouse.table("int_fx_rate_filled", [
        {"calendar_date": date(2024, 1, 12), "currency_code": "HKD", "observed_date": date(2024, 1, 12),
         "units_per_usd": 8.0, "rate_to_usd": 0.125, "is_carried_forward": False},
        {"calendar_date": date(2024, 1, 13), "currency_code": "HKD", "observed_date": date(2024, 1, 12),
         "units_per_usd": 8.0, "rate_to_usd": 0.125, "is_carried_forward": True},
    ])
    warehouse.run("fct_fx_rate")
    assert warehouse.rows("select * from fct_fx_rate order by currency_code, date_key") == [
        (20240112, key("HKD"), "HKD", 0.125, 8.0, date(2024, 1, 12), False, "replay", "run-7"),
        (20240113, key("HKD"), "HKD", 0.125, 8.0, date(2024, 1, 12), True, "replay", "run-7"),
        (20240112, key("USD"), "USD", 1.0, 1.0, date(2024, 1, 12), False, "replay", "run-7"),
        (20240113, key("USD"), "USD", 1.0, 1.0, date(2024, 1, 13), False, "replay", "run-7"),
    ]
