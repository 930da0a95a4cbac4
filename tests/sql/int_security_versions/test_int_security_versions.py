"""int_security_versions: type-2 history of the run's listings against the published dim_security."""

from __future__ import annotations

import hashlib
from datetime import date

import pytest

WINDOW_START = date(2024, 1, 8)
FIRST, OPEN = date(1900, 1, 1), date(9999, 12, 31)


def attribute_hash(*parts: str) -> str:
    """The model's md5 of the tracked attributes, spelled out: changing it reopens every published version."""
    return hashlib.md5("|".join(parts).encode()).hexdigest()


BABA = {"symbol": "BABA", "company_id": "alibaba", "company_name": "Alibaba Group Holding Ltd",
        "sector": "Consumer Cyclical", "listing_name": None, "exchange_code": "XNYS", "market_code": "US",
        "currency": "USD", "security_type": "adr", "adr_ratio": 8.0, "underlying_symbol": "9988.HK",
        "vendor_name": "Alibaba Group Holding Limited", "vendor_sector": "Consumer Cyclical",
        "vendor_quote_type": "EQUITY"}
BABA_HASH = attribute_hash("BABA", "alibaba", "XNYS", "USD", "adr", "8.0", "9988.HK",
                           "Alibaba Group Holding Ltd")
HKD_X = {"symbol": "HKD=X", "company_id": None, "company_name": None, "listing_name": "USD/HKD",
         "exchange_code": "XOFF", "market_code": "FX", "currency": "HKD", "security_type": "fx"}
HKD_X_HASH = attribute_hash("HKD=X", "", "XOFF", "HKD", "fx", "", "", "USD/HKD")

COLUMNS = ("symbol, company_id, exchange_code, currency_code, security_type, adr_ratio, underlying_symbol, "
           "market_code, security_name, vendor_name, vendor_sector, attribute_hash, valid_from, valid_to")


def published(**values):
    row = {"symbol": "BABA", "company_id": "alibaba", "exchange_code": "XNYS", "currency_code": "USD",
           "security_type": "adr", "adr_ratio": 8.0, "underlying_symbol": "9988.HK", "market_code": "US",
           "security_name": "Alibaba Group Holding Ltd", "vendor_name": "Alibaba Group Holding Limited",
           "vendor_sector": "Consumer Cyclical", "attribute_hash": BABA_HASH, "valid_from": FIRST,
           "valid_to": OPEN, "is_current": True}
    return row | values


def as_version(row):
    """A published row as the model outputs it (no is_current)."""
    return tuple(v for k, v in row.items() if k != "is_current")


@pytest.fixture
def versions(warehouse):
    def build(listings, published_rows=(), run_symbols=("BABA",)):
        warehouse.set_variables(window_start=WINDOW_START)
        warehouse.table("stg_universe__securities", listings)
        warehouse.table("published_dim_security", published_rows)
        warehouse.table("run_symbols", [{"symbol": s} for s in run_symbols])
        warehouse.run("int_security_versions")
        return warehouse.rows(f"select {COLUMNS} from int_security_versions order by symbol, valid_from")
    return build


def test_columns(versions, warehouse):
    versions([BABA])
    assert warehouse.columns("int_security_versions") == [c.strip() for c in COLUMNS.split(",")]


def test_a_new_listing_is_one_version_valid_forever(versions):
    # given nothing published and two run symbols (the FX pair has no company, ratio, underlying)
    assert versions([BABA, HKD_X, BABA | {"symbol": "NOT_IN_RUN"}], run_symbols=("BABA", "HKD=X")) == [
        ("BABA", "alibaba", "XNYS", "USD", "adr", 8.0, "9988.HK", "US", "Alibaba Group Holding Ltd",
         "Alibaba Group Holding Limited", "Consumer Cyclical", BABA_HASH, FIRST, OPEN),
        ("HKD=X", None, "XOFF", "HKD", "fx", None, None, "FX", "USD/HKD", None, None, HKD_X_HASH,
         FIRST, OPEN),
    ]


def test_unchanged_attributes_keep_the_published_rows_and_open_no_version(versions):
    history = published(valid_to=date(2020, 12, 31), is_current=False, adr_ratio=4.0, attribute_hash="old")
    current = published(valid_from=date(2021, 1, 1))
    other = published(symbol="JD", attribute_hash="jd")  # published, not a run symbol: left out
    assert versions([BABA], [history, current, other]) == [as_version(history), as_version(current)]


def test_a_changed_attribute_closes_the_open_row_before_the_window_and_opens_a_new_one(versions):
    # given BABA's ADR ratio changes from 8 to 4 in the universe file
    history = published(valid_to=date(2020, 12, 31), is_current=False, attribute_hash="older")
    current = published(valid_from=date(2021, 1, 1))
    new_hash = attribute_hash("BABA", "alibaba", "XNYS", "USD", "adr", "4.0", "9988.HK",
                              "Alibaba Group Holding Ltd")
    assert versions([BABA | {"adr_ratio": 4.0}], [history, current]) == [
        as_version(history),
        as_version(current | {"valid_to": date(2024, 1, 7)}),
        ("BABA", "alibaba", "XNYS", "USD", "adr", 4.0, "9988.HK", "US", "Alibaba Group Holding Ltd",
         "Alibaba Group Holding Limited", "Consumer Cyclical", new_hash, WINDOW_START, OPEN),
    ]


def test_a_renamed_listing_is_a_new_version(versions):
    # listing_name wins over company_name for security_name and is tracked
    renamed = attribute_hash("BABA", "alibaba", "XNYS", "USD", "adr", "8.0", "9988.HK", "Alibaba ADS")
    rows = versions([BABA | {"listing_name": "Alibaba ADS"}], [published()])
    assert [(r[0], r[8], r[11], r[12], r[13]) for r in rows] == [
        ("BABA", "Alibaba Group Holding Ltd", BABA_HASH, FIRST, date(2024, 1, 7)),
        ("BABA", "Alibaba ADS", renamed, WINDOW_START, OPEN),
    ]


def test_vendor_name_and_sector_are_refreshed_in_place_on_the_open_row_only(versions):
    history = published(valid_to=date(2020, 12, 31), is_current=False, vendor_name="Old Name",
                        vendor_sector="Old Sector", attribute_hash="older")
    current = published(valid_from=date(2021, 1, 1), vendor_name="Old Name", vendor_sector="Old Sector")
    refreshed = BABA | {"vendor_name": "New Name", "vendor_sector": "New Sector"}
    assert versions([refreshed], [history, current]) == [
        as_version(history),
        as_version(current | {"vendor_name": "New Name", "vendor_sector": "New Sector"}),
    ]


def test_no_metadata_this_run_keeps_the_published_vendor_attributes(versions):
    current = published(vendor_name="Kept Name", vendor_sector="Kept Sector")
    assert versions([BABA | {"vendor_name": None, "vendor_sector": None}], [current]) == [as_version(current)]


def test_a_second_change_in_the_same_window_leaves_valid_non_duplicate_versions(versions):
    # given an earlier run of this window already opened the adr_ratio 4 version on window_start
    first = published(valid_to=date(2024, 1, 7), is_current=False)
    opened_by_earlier_run = published(valid_from=WINDOW_START, adr_ratio=4.0, attribute_hash="ratio-4")
    # when the universe changes again (ratio 2) and the window is run again
    rows = versions([BABA | {"adr_ratio": 2.0}], [first, opened_by_earlier_run])
    # then every version is a proper interval and (symbol, valid_from) stays a key
    assert [r for r in rows if r[13] < r[12]] == []
    assert len({(r[0], r[12]) for r in rows}) == len(rows)
    # and the version opened by the earlier run is amended in place (same valid_from, so the same key)
    assert [(r[5], r[12], r[13]) for r in rows if r[13] == OPEN] == [(2.0, WINDOW_START, OPEN)]
