"""Every model in etl.transform.MODELS order, from a tiny landing to the marts: the layers' keys agree."""

from __future__ import annotations

from datetime import UTC, date, datetime


def landed(symbol, market, day, close, run_id="r1"):
    return {"source": "sample", "symbol": symbol, "market": market, "bar_date": date(2024, 1, day),
            "Date": f"2024-01-{day:02d} 00:00:00", "Open": close, "High": close, "Low": close, "Close": close,
            "Adj Close": close, "Volume": 100.0, "Dividends": 0.0, "Stock Splits": 0.0,
            "auto_adjusted": False,
            "extracted_at": datetime(2024, 1, day, 12, tzinfo=UTC), "run_id": run_id}


def test_hkd_price_gets_its_usd_close_through_the_whole_chain(warehouse):
    # given a window Mon 8 .. Tue 9 January 2024, a lookback Friday, and Saturday's FX bar that Yahoo emits
    warehouse.set_variables(window_start=date(2024, 1, 8), window_end=date(2024, 1, 9),
                            calendar_start=date(2024, 1, 1), calendar_end=date(2024, 1, 31))
    warehouse.table("landing_prices", [
        landed("0700.HK", "XHKG", 5, 100.0),
        landed("0700.HK", "XHKG", 8, 110.0),
        landed("0700.HK", "XHKG", 9, 99.0),
        landed("HKD=X", "FX", 5, 8.0),
        landed("HKD=X", "FX", 6, 7.0),    # weekend_fx_bar: must not become Monday's rate
        # Tuesday's quote, re-downloaded: the later extraction wins
        landed("HKD=X", "FX", 9, 7.5, run_id="r1") | {"extracted_at": datetime(2024, 1, 9, 12, tzinfo=UTC)},
        landed("HKD=X", "FX", 9, 6.4, run_id="r2") | {"extracted_at": datetime(2024, 1, 10, 12, tzinfo=UTC)},
    ])
    warehouse.table("landing_metadata")
    warehouse.table("ref_listing", [
        {"symbol": "0700.HK", "company_id": "tencent", "company_name": "Tencent Holdings Ltd",
         "exchange_code": "XHKG", "market_code": "XHKG", "currency": "HKD", "security_type": "equity"},
        {"symbol": "HKD=X", "listing_name": "USD/HKD", "exchange_code": "XOFF", "market_code": "FX",
         "currency": "HKD", "security_type": "fx"},
    ])
    warehouse.table("ref_company", [{"company_id": "tencent", "company_name": "Tencent Holdings Ltd"}])
    warehouse.table("ref_exchange", [{"exchange_code": "XHKG", "market_code": "XHKG"},
                                     {"exchange_code": "XOFF", "market_code": "FX"}])
    warehouse.table("ref_currency", [{"currency_code": "USD"},
                                     {"currency_code": "HKD", "fx_symbol": "HKD=X"}])
    warehouse.table("ref_session", [{"market_code": "XHKG", "session_date": date(2024, 1, day)}
                                    for day in (5, 8, 9)])
    warehouse.table("run_symbols", [{"symbol": "0700.HK"}, {"symbol": "HKD=X"}])
    warehouse.table("published_dim_security")
    # when
    warehouse.run_all()
    # then
    assert warehouse.rows(
        "select p.symbol, p.date_key, p.daily_return, p.fx_rate_to_usd, p.close_usd, s.valid_from, "
        "c.currency_code "
        "from fct_daily_price p join dim_security s using (security_key) "
        "join dim_currency c on c.currency_key = p.currency_key order by p.symbol, p.date_key"
    ) == [
        ("0700.HK", 20240108, 110.0 / 100.0 - 1, 1.0 / 8.0, 110.0 / 8.0, date(1900, 1, 1), "HKD"),
        ("0700.HK", 20240109, 99.0 / 110.0 - 1, 1.0 / 6.4, 99.0 * (1.0 / 6.4), date(1900, 1, 1), "HKD"),
        # the FX pair is a row too; its "close in USD" is 1.0 by construction
        ("HKD=X", 20240109, 6.4 / 8.0 - 1, 1.0 / 6.4, 6.4 * (1.0 / 6.4), date(1900, 1, 1), "HKD"),
    ]
    assert warehouse.rows("select table_name, symbol, bar_date, reason from quarantine") == []
    assert warehouse.rows("select count(*) from dim_date") == [(31,)]
