"""int_corporate_action_checked: dividends and splits from staged bars, Yahoo's split repeats rejected."""

from __future__ import annotations

from datetime import date


def staged(symbol, bar_date, dividends=0.0, stock_splits=0.0):
    return {"symbol": symbol, "bar_date": bar_date, "close": 10.0, "dividends": dividends,
            "stock_splits": stock_splits, "source": "replay", "source_file": f"{symbol}.csv"}


def actions(warehouse, bars):
    warehouse.table("stg_landing__prices", bars)
    warehouse.run("int_corporate_action_checked")
    return warehouse.rows(
        "select symbol, bar_date, action_type, dividend_local, split_ratio, rejection_reason "
        "from int_corporate_action_checked order by symbol, bar_date, action_type"
    )


def test_columns_and_lineage(warehouse):
    actions(warehouse, [staged("0700.HK", date(2024, 5, 17), dividends=2.4)])
    assert warehouse.dicts("select * from int_corporate_action_checked") == [{
        "symbol": "0700.HK", "bar_date": date(2024, 5, 17), "action_type": "cash_dividend",
        "dividend_local": 2.4, "split_ratio": None, "source": "replay", "source_file": "0700.HK.csv",
        "rejection_reason": None,
    }]


def test_yahoo_repeat_of_the_0981_hk_consolidation_is_rejected_and_the_first_kept(warehouse):
    # given SMIC's 10->1 consolidation, which Yahoo shows on 2016-11-21 and again 16 days later
    assert actions(warehouse, [
        staged("0981.HK", date(2016, 11, 18)),
        staged("0981.HK", date(2016, 11, 21), stock_splits=0.1),
        staged("0981.HK", date(2016, 11, 22)),
        staged("0981.HK", date(2016, 12, 7), stock_splits=0.1),
    ]) == [
        ("0981.HK", date(2016, 11, 21), "consolidation", None, 0.1, None),
        ("0981.HK", date(2016, 12, 7), "consolidation", None, 0.1, "duplicate_split_repeat"),
    ]


def test_same_ratio_60_days_apart_is_two_real_splits(warehouse):
    assert actions(warehouse, [
        staged("AAA", date(2020, 1, 2), stock_splits=2.0),
        staged("AAA", date(2020, 3, 2), stock_splits=2.0),
    ]) == [
        ("AAA", date(2020, 1, 2), "stock_split", None, 2.0, None),
        ("AAA", date(2020, 3, 2), "stock_split", None, 2.0, None),
    ]


def test_repeat_window_is_30_days_inclusive_same_ratio_same_symbol_only(warehouse):
    assert actions(warehouse, [
        staged("D30", date(2021, 1, 1), stock_splits=2.0),
        staged("D30", date(2021, 1, 31), stock_splits=2.0),     # 30 days later: a repeat
        staged("D31", date(2021, 1, 1), stock_splits=2.0),
        staged("D31", date(2021, 2, 1), stock_splits=2.0),      # 31 days later: a new split
        staged("RATIO", date(2021, 1, 1), stock_splits=2.0),
        staged("RATIO", date(2021, 1, 11), stock_splits=3.0),   # other ratio: a new split
        staged("X1", date(2021, 1, 1), stock_splits=2.0),
        staged("X2", date(2021, 1, 5), stock_splits=2.0),       # other symbol: not compared
    ]) == [
        ("D30", date(2021, 1, 1), "stock_split", None, 2.0, None),
        ("D30", date(2021, 1, 31), "stock_split", None, 2.0, "duplicate_split_repeat"),
        ("D31", date(2021, 1, 1), "stock_split", None, 2.0, None),
        ("D31", date(2021, 2, 1), "stock_split", None, 2.0, None),
        ("RATIO", date(2021, 1, 1), "stock_split", None, 2.0, None),
        ("RATIO", date(2021, 1, 11), "stock_split", None, 3.0, None),
        ("X1", date(2021, 1, 1), "stock_split", None, 2.0, None),
        ("X2", date(2021, 1, 5), "stock_split", None, 2.0, None),
    ]


def test_dividends_are_kept_and_split_columns_0_and_1_are_not_splits(warehouse):
    assert actions(warehouse, [
        staged("0700.HK", date(2024, 5, 17), dividends=2.4),
        staged("0700.HK", date(2024, 5, 20), stock_splits=0.0),
        staged("0700.HK", date(2024, 5, 21), stock_splits=1.0),
        staged("0700.HK", date(2024, 5, 22), dividends=None, stock_splits=None),
        # a dividend on the day of a split: two actions; the dividend does not hide the split from the rule
        staged("BBB", date(2024, 6, 3), dividends=0.5, stock_splits=4.0),
        staged("BBB", date(2024, 6, 10), dividends=0.5),
        staged("BBB", date(2024, 6, 20), stock_splits=4.0),
    ]) == [
        ("0700.HK", date(2024, 5, 17), "cash_dividend", 2.4, None, None),
        ("BBB", date(2024, 6, 3), "cash_dividend", 0.5, None, None),
        ("BBB", date(2024, 6, 3), "stock_split", None, 4.0, None),
        ("BBB", date(2024, 6, 10), "cash_dividend", 0.5, None, None),
        ("BBB", date(2024, 6, 20), "stock_split", None, 4.0, "duplicate_split_repeat"),
    ]


def test_a_negative_dividend_is_quarantined_as_invalid(warehouse):
    assert actions(warehouse, [staged("0700.HK", date(2024, 5, 17), dividends=-2.4)]) == [
        ("0700.HK", date(2024, 5, 17), "cash_dividend", -2.4, None, "invalid_dividend"),
    ]
