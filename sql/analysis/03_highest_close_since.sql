-- Question: what is each security's highest close since a given date, when was it, and how far below it is
-- the latest close?
-- close is the listing-currency close as the source gave it (split-adjusted, not dividend-adjusted, like
-- yfinance with auto_adjust=False). One row per security (FX pairs excluded) with a session in the period;
-- is_at_high is true when the latest close is the high itself.
-- Parameters: set them before `.read` to override (a value already set wins); defaults are the Sept 2025 demo.
set variable since_date = coalesce(getvariable('since_date'), date '2025-09-08');
set variable as_of_date = coalesce(getvariable('as_of_date'), date '2025-09-30');

with prices as (
    select
        p.symbol,
        s.security_name,
        s.security_type,
        s.currency_code,
        d.calendar_date,
        p.close
    from fct_daily_price as p
    inner join dim_security as s using (security_key)
    inner join dim_date as d using (date_key)
    where d.calendar_date between getvariable('since_date') and getvariable('as_of_date')
      and s.security_type <> 'fx'
),

per_security as (
    select
        symbol,
        any_value(security_name) as security_name,
        any_value(security_type) as security_type,
        any_value(currency_code) as currency_code,
        max(close) as highest_close,
        -- the first session that reached the high (earliest date among equal highest closes)
        arg_min(calendar_date, (-close, calendar_date)) as highest_close_date,
        arg_max(close, calendar_date) as latest_close,
        max(calendar_date) as latest_date,
        count(*) as sessions
    from prices
    group by symbol
),

final as (
    select
        symbol,
        security_name,
        security_type,
        currency_code,
        getvariable('since_date') as since_date,
        round(highest_close, 4) as highest_close,
        highest_close_date,
        latest_date,
        round(latest_close, 4) as latest_close,
        round(100 * (latest_close / highest_close - 1), 2) as pct_below_high,
        latest_close = highest_close as is_at_high,
        sessions
    from per_security
)

select * from final
order by pct_below_high desc, symbol
