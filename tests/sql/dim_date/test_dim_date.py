"""dim_date: one row per calendar day, ISO fields, trading flags from ref_session."""

from __future__ import annotations

from datetime import date


def d(month_day: str) -> date:
    year = 2024 if month_day.startswith("12") else 2025
    return date.fromisoformat(f"{year}-{month_day}")


# Real 2024/25 year end: HKEX shut on Christmas and Boxing Day, NYSE only on Christmas; both shut on New Year.
XHKG_SESSIONS = ["12-24", "12-27", "12-30", "12-31"]
US_SESSIONS = ["12-24", "12-26", "12-27", "12-30", "12-31"]


def test_one_row_per_day_with_iso_fields_and_trading_flags(warehouse):
    warehouse.set_variables(calendar_start=date(2024, 12, 24), calendar_end=date(2025, 1, 1))
    warehouse.table("ref_session", [
        *({"market_code": "XHKG", "session_date": d(s)} for s in XHKG_SESSIONS),
        *({"market_code": "US", "session_date": d(s)} for s in US_SESSIONS),
        {"market_code": "FX", "session_date": d("12-28")},         # another market: sets no flag
        {"market_code": "XHKG", "session_date": date(2025, 1, 2)},  # outside the calendar: no row
    ])
    warehouse.run("dim_date")
    assert warehouse.columns("dim_date") == [
        "date_key", "calendar_date", "year", "quarter", "month", "month_name", "iso_year", "iso_week",
        "weekday_number", "weekday_name", "is_weekend", "is_trading_day_xhkg", "is_trading_day_xnys",
        "is_trading_day_xnas",
    ]
    assert warehouse.rows("select * from dim_date order by date_key") == [
        (20241224, d("12-24"), 2024, 4, 12, "December", 2024, 52, 2, "Tuesday", False, True, True, True),
        (20241225, d("12-25"), 2024, 4, 12, "December", 2024, 52, 3, "Wednesday", False, False, False, False),
        (20241226, d("12-26"), 2024, 4, 12, "December", 2024, 52, 4, "Thursday", False, False, True, True),
        (20241227, d("12-27"), 2024, 4, 12, "December", 2024, 52, 5, "Friday", False, True, True, True),
        (20241228, d("12-28"), 2024, 4, 12, "December", 2024, 52, 6, "Saturday", True, False, False, False),
        (20241229, d("12-29"), 2024, 4, 12, "December", 2024, 52, 7, "Sunday", True, False, False, False),
        # ISO week 1 of 2025 starts on Monday 2024-12-30
        (20241230, d("12-30"), 2024, 4, 12, "December", 2025, 1, 1, "Monday", False, True, True, True),
        (20241231, d("12-31"), 2024, 4, 12, "December", 2025, 1, 2, "Tuesday", False, True, True, True),
        (20250101, d("01-01"), 2025, 1, 1, "January", 2025, 1, 3, "Wednesday", False, False, False, False),
    ]


def test_date_key_is_yyyymmdd_over_the_whole_calendar(warehouse):
    warehouse.set_variables(calendar_start=date(2000, 1, 1), calendar_end=date(2027, 11, 30))
    warehouse.table("ref_session")
    warehouse.run("dim_date")
    days = (date(2027, 11, 30) - date(2000, 1, 1)).days + 1
    assert warehouse.rows(
        "select count(*), count(distinct date_key), min(date_key), max(date_key), "
        "count(*) filter (where date_key <> year * 10000 + month * 100 + day(calendar_date)), "
        "count(*) filter (where is_trading_day_xhkg or is_trading_day_xnys) from dim_date"
    ) == [(days, days, 20000101, 20271130, 0, 0)]
