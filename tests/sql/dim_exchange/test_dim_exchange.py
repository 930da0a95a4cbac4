"""dim_exchange: one row per universe exchange (MIC), keyed by surrogate_key(exchange_code)."""

from __future__ import annotations

import hashlib


def test_exchange_rows(warehouse):
    warehouse.table("ref_exchange", [
        {"exchange_code": "XHKG", "exchange_name": "Hong Kong Exchanges and Clearing", "market_code": "XHKG",
         "timezone": "Asia/Hong_Kong", "country_code": "HK", "benchmark_symbol": "HSTECH.HK"},
    ])
    warehouse.run("dim_exchange")
    assert warehouse.rows("select * from dim_exchange") == [
        (int(hashlib.md5(b"XHKG").hexdigest()[:15], 16), "XHKG", "Hong Kong Exchanges and Clearing", "XHKG",
         "Asia/Hong_Kong", "HK", "HSTECH.HK"),
    ]
