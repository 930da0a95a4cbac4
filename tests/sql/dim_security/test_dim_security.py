"""dim_security: the versions with surrogate keys, is_current from valid_to, and the run id."""

from __future__ import annotations

import hashlib
from datetime import date


def key(text: str) -> int:
    return int(hashlib.md5(text.encode()).hexdigest()[:15], 16)


def version(symbol, company_id, valid_from, valid_to, **values):
    return {"symbol": symbol, "company_id": company_id, "exchange_code": "XNYS", "currency_code": "USD",
            "security_type": "adr", "security_name": symbol, "attribute_hash": "h", "valid_from": valid_from,
            "valid_to": valid_to, **values}


def test_keys_and_currency_of_each_version(warehouse):
    warehouse.set_variables(run_id="run-9")
    warehouse.table("int_security_versions", [
        version("BABA", "alibaba", date(1900, 1, 1), date(2024, 1, 7), adr_ratio=8.0),
        version("BABA", "alibaba", date(2024, 1, 8), date(9999, 12, 31), adr_ratio=4.0),
        version("HKD=X", None, date(1900, 1, 1), date(9999, 12, 31),
                exchange_code="XOFF", currency_code="HKD"),
    ])
    warehouse.run("dim_security")
    assert warehouse.rows(
        "select security_key, symbol, company_key, exchange_key, currency_key, company_code, adr_ratio, "
        "valid_from, valid_to, is_current, run_id from dim_security order by symbol, valid_from"
    ) == [
        (key("BABA|1900-01-01"), "BABA", key("alibaba"), key("XNYS"), key("USD"), "alibaba", 8.0,
         date(1900, 1, 1), date(2024, 1, 7), False, "run-9"),
        (key("BABA|2024-01-08"), "BABA", key("alibaba"), key("XNYS"), key("USD"), "alibaba", 4.0,
         date(2024, 1, 8), date(9999, 12, 31), True, "run-9"),
        (key("HKD=X|1900-01-01"), "HKD=X", None, key("XOFF"), key("HKD"), None, None,
         date(1900, 1, 1), date(9999, 12, 31), True, "run-9"),
    ]
