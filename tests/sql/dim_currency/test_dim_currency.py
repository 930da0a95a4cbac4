"""dim_currency: one row per universe currency, keyed by surrogate_key(currency_code)."""

from __future__ import annotations

import hashlib


def test_currency_rows(warehouse):
    warehouse.table("ref_currency", [
        {"currency_code": "HKD", "currency_name": "Hong Kong Dollar", "fx_symbol": "HKD=X"},
        {"currency_code": "USD", "currency_name": "US Dollar", "fx_symbol": None},
    ])
    warehouse.run("dim_currency")
    assert warehouse.rows("select * from dim_currency order by currency_code") == [
        (int(hashlib.md5(b"HKD").hexdigest()[:15], 16), "HKD", "Hong Kong Dollar", "HKD=X"),
        (int(hashlib.md5(b"USD").hexdigest()[:15], 16), "USD", "US Dollar", None),
    ]
