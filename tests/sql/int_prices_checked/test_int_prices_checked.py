"""int_prices_checked: every staged bar kept, with the first rule it breaks as rejection_reason (or null)."""

from __future__ import annotations

from datetime import date

FRI, SAT, SUN, MON, TUE, WED = (date(2024, 1, d) for d in (5, 6, 7, 8, 9, 10))
MLK_DAY = date(2024, 1, 15)  # NYSE closed, HKEX open

SECURITIES = [
    {"symbol": "0700.HK", "security_type": "equity", "market_code": "XHKG", "exchange_code": "XHKG",
     "currency": "HKD"},
    {"symbol": "BABA", "security_type": "adr", "market_code": "US", "exchange_code": "XNYS",
     "currency": "USD"},
    {"symbol": "HKD=X", "security_type": "fx", "market_code": "FX", "exchange_code": "XOFF",
     "currency": "HKD"},
]
# FX has no calendar: ref_session has no 'FX' rows at all.
SESSIONS = [{"market_code": m, "session_date": d} for m in ("XHKG", "US") for d in (FRI, MON, TUE, WED)] + [
    {"market_code": "XHKG", "session_date": MLK_DAY},
]


def bar(symbol, bar_date, open=10.0, high=11.0, low=9.0, close=10.5):
    return {"symbol": symbol, "bar_date": bar_date, "open": open, "high": high, "low": low, "close": close,
            "adj_close": close, "volume": 100.0, "source": "sample", "run_id": "r1"}


def checked(warehouse, bars):
    warehouse.table("stg_landing__prices", bars)
    warehouse.table("stg_universe__securities", SECURITIES)
    warehouse.table("ref_session", SESSIONS)
    warehouse.run("int_prices_checked")
    return warehouse.rows(
        "select symbol, bar_date, security_type, market_code, rejection_reason from int_prices_checked "
        "order by symbol, bar_date"
    )


def test_clean_bars_have_no_reason_and_fx_weekdays_need_no_session(warehouse):
    bars = [bar("0700.HK", MON), bar("BABA", MON), bar("HKD=X", MON), bar("HKD=X", FRI)]
    assert checked(warehouse, bars) == [
        ("0700.HK", MON, "equity", "XHKG", None),
        ("BABA", MON, "adr", "US", None),
        ("HKD=X", FRI, "fx", "FX", None),
        ("HKD=X", MON, "fx", "FX", None),
    ]


def test_each_rejection_reason(warehouse):
    assert checked(warehouse, [
        bar("ZZZZ.HK", MON),                      # not in the universe
        bar("0700.HK", MON, close=None),          # empty Close
        bar("0700.HK", TUE, low=0.0),             # a zero price
        bar("0700.HK", WED, open=-1.0),           # a negative price
        bar("HKD=X", SAT),                        # Yahoo's Saturday FX bar
        bar("HKD=X", SUN),
        bar("0700.HK", SAT),                      # equity bar on a weekend
        bar("BABA", MLK_DAY),                     # US holiday; that XHKG trades that day does not count
    ]) == [
        ("0700.HK", SAT, "equity", "XHKG", "not_a_trading_day"),
        ("0700.HK", MON, "equity", "XHKG", "missing_close"),
        ("0700.HK", TUE, "equity", "XHKG", "non_positive_price"),
        ("0700.HK", WED, "equity", "XHKG", "non_positive_price"),
        ("BABA", MLK_DAY, "adr", "US", "not_a_trading_day"),
        ("HKD=X", SAT, "fx", "FX", "weekend_fx_bar"),
        ("HKD=X", SUN, "fx", "FX", "weekend_fx_bar"),
        ("ZZZZ.HK", MON, None, None, "unknown_symbol"),
    ]


def test_the_first_failing_rule_is_the_reason(warehouse):
    # unknown_symbol > missing_close > non_positive_price > weekend_fx_bar / not_a_trading_day
    assert checked(warehouse, [
        bar("ZZZZ.HK", SAT, close=None),
        bar("0700.HK", SAT, close=None),
        bar("HKD=X", SAT, low=-1.0),
        bar("0700.HK", SUN, high=0.0),
    ]) == [
        ("0700.HK", SAT, "equity", "XHKG", "missing_close"),
        ("0700.HK", SUN, "equity", "XHKG", "non_positive_price"),
        ("HKD=X", SAT, "fx", "FX", "non_positive_price"),
        ("ZZZZ.HK", SAT, None, None, "unknown_symbol"),
    ]


def test_a_missing_open_high_or_low_alone_is_not_rejected(warehouse):
    # least() ignores nulls: only Close is required
    assert checked(warehouse, [bar("0700.HK", MON, open=None, high=None, low=None)]) == [
        ("0700.HK", MON, "equity", "XHKG", None),
    ]


def test_every_staged_column_is_kept_and_no_row_is_dropped(warehouse):
    bars = [bar("0700.HK", MON), bar("ZZZZ.HK", MON), bar("HKD=X", SAT)]
    checked(warehouse, bars)
    assert warehouse.columns("int_prices_checked") == [
        *warehouse.columns("stg_landing__prices"), "security_type", "market_code", "rejection_reason",
    ]
    assert warehouse.rows("select count(*) from int_prices_checked") == [(3,)]
