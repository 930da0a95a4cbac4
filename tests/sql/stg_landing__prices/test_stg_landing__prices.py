"""stg_landing__prices: one row per (symbol, bar_date), latest extraction wins, vendor quirks flagged."""

from __future__ import annotations

from datetime import UTC, date, datetime

MON, TUE, WED = date(2024, 1, 8), date(2024, 1, 9), date(2024, 1, 10)


def landed(symbol="0700.HK", bar_date=MON, run_id="r1", extracted_at=datetime(2024, 1, 8, 10, tzinfo=UTC),
           **values):
    bar = {"Open": 300.0, "High": 305.0, "Low": 298.0, "Close": 302.0, "Adj Close": 301.0, "Volume": 1000.0,
           "Dividends": 0.0, "Stock Splits": 0.0, "auto_adjusted": False}
    return {"source": "sample", "symbol": symbol, "market": "XHKG", "bar_date": bar_date,
            "Date": f"{bar_date} 00:00:00+08:00", "source_file": None, "run_id": run_id,
            "extracted_at": extracted_at, **bar, **values}


def test_columns_are_snake_case_with_flags_last(warehouse):
    warehouse.table("landing_prices", [landed()])
    warehouse.run("stg_landing__prices")
    assert warehouse.columns("stg_landing__prices") == [
        "symbol", "bar_date", "vendor_timestamp", "open", "high", "low", "close", "adj_close_vendor",
        "volume", "dividends", "stock_splits", "is_vendor_adjusted", "source", "source_file", "run_id",
        "extracted_at", "adj_close", "is_high_low_inverted", "is_zero_volume", "is_conflicting_duplicate",
    ]
    assert warehouse.dicts("select * from stg_landing__prices") == [{
        "symbol": "0700.HK", "bar_date": MON, "vendor_timestamp": "2024-01-08 00:00:00+08:00",
        "open": 300.0, "high": 305.0, "low": 298.0, "close": 302.0, "adj_close_vendor": 301.0,
        "volume": 1000.0,
        "dividends": 0.0, "stock_splits": 0.0, "is_vendor_adjusted": False, "source": "sample",
        "source_file": None, "run_id": "r1", "extracted_at": datetime(2024, 1, 8, 10, tzinfo=UTC),
        "adj_close": 301.0, "is_high_low_inverted": False, "is_zero_volume": False,
        "is_conflicting_duplicate": False,
    }]


def test_a_bar_landed_by_two_runs_keeps_the_later_extraction(warehouse):
    # given Monday landed by r1 and re-downloaded later by r2 (r2 inserted first: order is not relied on),
    # Tuesday landed only by r1, and Wednesday landed twice with the same extracted_at
    same_time = datetime(2024, 1, 10, 10, tzinfo=UTC)
    warehouse.table("landing_prices", [
        landed(bar_date=MON, run_id="r2", extracted_at=datetime(2024, 1, 9, 10, tzinfo=UTC), Close=303.0),
        landed(bar_date=MON, run_id="r1", extracted_at=datetime(2024, 1, 8, 10, tzinfo=UTC), Close=302.0),
        landed(bar_date=TUE, run_id="r1", Close=310.0),
        landed(bar_date=WED, run_id="r4", extracted_at=same_time, Close=320.0),
        landed(bar_date=WED, run_id="r3", extracted_at=same_time, Close=319.0),
        landed(symbol="9988.HK", bar_date=MON, run_id="r1", Close=80.0),
    ])
    warehouse.run("stg_landing__prices")
    # then one row per (symbol, bar_date): the latest extraction, ties broken by the higher run_id
    assert warehouse.rows(
        "select symbol, bar_date, run_id, close from stg_landing__prices order by symbol, bar_date"
    ) == [
        ("0700.HK", MON, "r2", 303.0),
        ("0700.HK", TUE, "r1", 310.0),
        ("0700.HK", WED, "r4", 320.0),
        ("9988.HK", MON, "r1", 80.0),
    ]


def test_missing_adj_close_falls_back_to_close_and_adjustment_comes_from_auto_adjusted(warehouse):
    warehouse.table("landing_prices", [
        # auto_adjust=True frame: no Adj Close column, Close already adjusted
        landed(symbol="A", **{"Adj Close": None, "auto_adjusted": True}),
        # auto_adjust=False frame: the vendor's Adj Close is kept
        landed(symbol="B", **{"Adj Close": 299.5, "auto_adjusted": False}),
        # no Adj Close and no auto_adjusted recorded: Close, not adjusted
        landed(symbol="C", **{"Adj Close": None, "auto_adjusted": None}),
    ])
    warehouse.run("stg_landing__prices")
    assert warehouse.rows(
        "select symbol, close, adj_close_vendor, adj_close, is_vendor_adjusted from stg_landing__prices "
        "order by symbol"
    ) == [
        ("A", 302.0, None, 302.0, True),
        ("B", 302.0, 299.5, 299.5, False),
        ("C", 302.0, None, 302.0, False),
    ]


def test_high_below_low_and_zero_volume_are_flagged_not_fixed(warehouse):
    warehouse.table("landing_prices", [
        landed(symbol="INVERTED", High=297.0, Low=298.0),
        landed(symbol="FLAT", High=298.0, Low=298.0),
        landed(symbol="ZERO_VOL", Volume=0.0),
        landed(symbol="NULL_VOL", Volume=None),
    ])
    warehouse.run("stg_landing__prices")
    assert warehouse.rows(
        "select symbol, high, low, volume, is_high_low_inverted, is_zero_volume from stg_landing__prices "
        "order by symbol"
    ) == [
        ("FLAT", 298.0, 298.0, 1000.0, False, False),
        ("INVERTED", 297.0, 298.0, 1000.0, True, False),
        ("NULL_VOL", 305.0, 298.0, None, False, True),
        ("ZERO_VOL", 305.0, 298.0, 0.0, False, True),
    ]
