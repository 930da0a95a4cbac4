-- Question: how did the indices and each stock perform over a window, in local currency and in USD, and
-- against their market's benchmark?
-- One row per security (FX pairs excluded): first and last session in the window, their closes, the total
-- return on adj_close (dividends and splits included) from the first to the last session, the same in USD
-- (adj_close x that day's fx_rate_to_usd), and the excess return over the market's benchmark in local terms.
-- Parameters: set them before `.read` to override (a value already set wins); defaults are the Sept 2025 demo.
set variable start_date = coalesce(getvariable('start_date'), date '2025-09-01');
set variable end_date = coalesce(getvariable('end_date'), date '2025-09-30');
set variable benchmarks = coalesce(getvariable('benchmarks'), map {'XHKG': 'HSTECH.HK', 'US': '^NDX'});

with prices as (
    select
        p.symbol,
        s.security_name,
        s.security_type,
        s.market_code,
        s.currency_code,
        d.calendar_date,
        p.close,
        p.adj_close,
        p.adj_close * p.fx_rate_to_usd as adj_close_usd
    from fct_daily_price as p
    inner join dim_security as s using (security_key)
    inner join dim_date as d using (date_key)
    where d.calendar_date between getvariable('start_date') and getvariable('end_date')
      and s.security_type <> 'fx'
),

per_security as (
    select
        symbol,
        any_value(security_name) as security_name,
        any_value(security_type) as security_type,
        any_value(market_code) as market_code,
        any_value(currency_code) as currency_code,
        count(*) as sessions,
        min(calendar_date) as first_date,
        max(calendar_date) as last_date,
        arg_min(close, calendar_date) as first_close,
        arg_max(close, calendar_date) as last_close,
        arg_max(adj_close, calendar_date) / arg_min(adj_close, calendar_date) - 1 as total_return,
        arg_max(adj_close_usd, calendar_date) / arg_min(adj_close_usd, calendar_date) - 1 as total_return_usd,
        max(close) as high_close,
        min(close) as low_close
    from prices
    group by symbol
),

final as (
    select
        sec.symbol,
        sec.security_name,
        sec.security_type,
        sec.market_code,
        sec.currency_code,
        sec.sessions,
        sec.first_date,
        sec.last_date,
        round(sec.first_close, 4) as first_close,
        round(sec.last_close, 4) as last_close,
        round(sec.low_close, 4) as low_close,
        round(sec.high_close, 4) as high_close,
        round(100 * sec.total_return, 2) as return_pct,
        round(100 * sec.total_return_usd, 2) as return_usd_pct,
        bench.symbol as benchmark,
        round(100 * (sec.total_return - bench.total_return), 2) as excess_vs_benchmark_pct
    from per_security as sec
    left join per_security as bench
        on bench.symbol = getvariable('benchmarks')[sec.market_code]
)

select * from final
order by security_type in ('index', 'etf') desc, market_code, return_pct desc
