"""stg_universe__securities: every universe listing, with the latest landed vendor metadata if any."""

from __future__ import annotations

import json
from datetime import UTC, datetime

LISTINGS = [
    {"symbol": "0700.HK", "company_id": "tencent", "company_name": "Tencent Holdings Ltd",
     "sector": "Communication Services", "exchange_code": "XHKG", "market_code": "XHKG", "currency": "HKD",
     "security_type": "equity"},
    {"symbol": "HKD=X", "listing_name": "USD/HKD", "exchange_code": "XOFF", "market_code": "FX",
     "currency": "HKD", "security_type": "fx"},
]


def metadata(symbol, hour, **info):
    return {"symbol": symbol, "info": json.dumps(info),
            "extracted_at": datetime(2024, 1, 8, hour, tzinfo=UTC)}


def test_latest_metadata_wins_and_a_listing_without_metadata_is_kept(warehouse):
    warehouse.table("ref_listing", LISTINGS)
    warehouse.table("landing_metadata", [
        metadata("0700.HK", 12, longName="TENCENT", sector="Communication Services", quoteType="EQUITY"),
        metadata("0700.HK", 10, longName="Old name", sector="Old sector", quoteType="EQUITY"),
        metadata("NOT_LISTED", 10, longName="Nobody"),
    ])
    warehouse.run("stg_universe__securities")
    assert warehouse.columns("stg_universe__securities") == [
        *warehouse.columns("ref_listing"), "vendor_name", "vendor_sector", "vendor_quote_type", "vendor_currency",
    ]
    assert warehouse.rows(
        "select symbol, company_id, listing_name, currency, vendor_name, vendor_sector, vendor_quote_type "
        "from stg_universe__securities order by symbol"
    ) == [
        ("0700.HK", "tencent", None, "HKD", "TENCENT", "Communication Services", "EQUITY"),
        ("HKD=X", None, "USD/HKD", "HKD", None, None, None),
    ]
