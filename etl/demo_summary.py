"""Print where the published warehouse is, its row counts, and two example queries (used by `make demo`)."""

import duckdb

from etl.config import Settings

settings = Settings.from_env()
con = duckdb.connect(str(settings.warehouse), read_only=True)
print(f"\nPublished warehouse: {settings.warehouse}")
print(f"Open it read-only:   duckdb -readonly {settings.warehouse}\n")
tables = ["dim_date", "dim_exchange", "dim_currency", "dim_company", "dim_security",
          "fct_daily_price", "fct_fx_rate", "fct_corporate_action", "quarantine", "dq_result", "run_log"]
print(con.sql(" union all ".join(f"select '{t}' as table_name, count(*) as row_count from {t}" for t in tables)))
print("Hang Seng TECH names and their ADRs over the window (synthetic sample data):")
print(con.sql("""
    select s.symbol, s.security_type, s.currency_code,
           round(first(p.close order by p.date_key), 2) as first_close,
           round(last(p.close order by p.date_key), 2) as last_close,
           round(100 * (last(p.adj_close order by p.date_key) / first(p.adj_close order by p.date_key) - 1), 2)
               as return_pct,
           any_value(p.source) as source
    from fct_daily_price p join dim_security s using (security_key)
    where s.symbol in ('9988.HK', 'BABA', '0700.HK', '9888.HK', 'BIDU', '^HSI', 'HSTECH.HK', '^NDX')
    group by all order by s.symbol
"""))
print("Corporate actions in the window:")
print(con.sql("""
    select d.calendar_date as ex_date, a.symbol, a.action_type, a.dividend_local,
           round(a.dividend_usd, 4) as dividend_usd, a.split_ratio
    from fct_corporate_action a join dim_date d using (date_key) order by ex_date, symbol
"""))
print("Financing events by type (curated deals are real; vendor-origin rows here are synthetic sample data):")
print(con.sql("""
    select e.event_type_code, t.category, e.origin, count(*) as events, round(sum(e.amount_usd) / 1e9, 3) as usd_bn
    from fct_financing_event e join dim_event_type t using (event_type_key)
    group by all order by t.category, e.event_type_code
"""))
print("Curated September 2025 deals, FX-normalised, and how the listing traded around them:")
print(con.sql("""
    select e.curated_event_id, e.symbol, e.amount_local, e.currency_code, round(e.amount_usd / 1e9, 3) as usd_bn,
           round(100 * r.event_day_return, 2) as day0_pct, round(100 * r.return_5d, 2) as pm5d_pct,
           r.benchmark_symbol, round(100 * r.excess_return_5d, 2) as excess_pm5d_pct
    from fct_financing_event e left join mart_event_reaction r using (event_key)
    where e.origin = 'curated' and e.date_key >= 20250901 order by e.date_key
"""))
print("ADR parity on 2025-09-17:")
print(con.sql("""
    select adr_symbol, hk_symbol, adr_ratio, round(adr_close_per_share_usd, 3) as adr_per_share_usd,
           round(hk_close_usd, 3) as hk_close_usd, round(100 * premium_pct, 3) as premium_pct
    from mart_adr_parity where date_key = 20250917 order by adr_symbol limit 5
"""))
