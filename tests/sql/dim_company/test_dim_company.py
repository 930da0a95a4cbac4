"""dim_company: one row per issuer, with its listings summarised."""

from __future__ import annotations

import hashlib


def key(text: str) -> int:
    return int(hashlib.md5(text.encode()).hexdigest()[:15], 16)


def test_listing_summary_per_company(warehouse):
    warehouse.table("ref_company", [
        {"company_id": "alibaba", "company_name": "Alibaba Group Holding Ltd", "sector": "Consumer Cyclical"},
        {"company_id": "nolist", "company_name": "No Listings Ltd", "sector": None},
    ])
    warehouse.table("ref_listing", [
        {"symbol": "BABA", "company_id": "alibaba", "exchange_code": "XNYS", "security_type": "adr"},
        {"symbol": "9988.HK", "company_id": "alibaba", "exchange_code": "XHKG", "security_type": "equity"},
        {"symbol": "HKD=X", "company_id": None, "exchange_code": "XOFF", "security_type": "fx"},
    ])
    warehouse.run("dim_company")
    assert warehouse.rows("select * from dim_company order by company_code") == [
        (key("alibaba"), "alibaba", "Alibaba Group Holding Ltd", "Consumer Cyclical", 2, True, True,
         "9988.HK, BABA"),
        (key("nolist"), "nolist", "No Listings Ltd", None, 0, False, False, None),
    ]
