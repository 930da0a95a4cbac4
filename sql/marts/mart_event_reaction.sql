-- mart_event_reaction: one row per financing event of a priced listing; key (event_key)
-- Published as a view over the facts, so late prices (the days after an event) fill in by themselves.
-- Day 0 is the listing's first trading day on or after the event date. Windows are close-to-close on adj_close:
-- event_day_return = day 0 over day -1; return_1d = days -1..+1 (day +1 over day -2); return_5d = days -5..+5
-- (day +5 over day -6). The benchmark is the listing's market benchmark (dim_exchange.benchmark_symbol: HSTECH
-- for Hong Kong lines, the Nasdaq-100 for US listings) over the same dates; excess = listing minus benchmark.
-- Computed in one pass over the prices (issue 6): the closes and dates 1, 2 and 6 trading days before and 1 and
-- 5 after each price row come from lag/lead over the listing's dates, and the benchmark's values from as-of
-- joins on the (two) benchmark series, instead of self-joins of the whole price table on a row number.
with listing_prices as (
    select
        securities.symbol,
        securities.exchange_key,
        prices.date_key,
        prices.adj_close,
        lag(prices.adj_close, 1) over listing as close_m1,
        lag(prices.adj_close, 2) over listing as close_m2,
        lag(prices.adj_close, 6) over listing as close_m6,
        lead(prices.adj_close, 1) over listing as close_p1,
        lead(prices.adj_close, 5) over listing as close_p5,
        lag(prices.date_key, 1) over listing as date_key_m1,
        lag(prices.date_key, 2) over listing as date_key_m2,
        lag(prices.date_key, 6) over listing as date_key_m6,
        lead(prices.date_key, 1) over listing as date_key_p1,
        lead(prices.date_key, 5) over listing as date_key_p5
    from fct_daily_price as prices
    inner join dim_security as securities using (security_key)
    window listing as (partition by securities.symbol order by prices.date_key)
),

events as (
    select event_key, date_key as event_date_key, symbol, event_type_code, company_code, amount_usd
    from fct_financing_event
    where symbol is not null
),

windows as (
    select
        events.*,
        listing_prices.date_key as day0_date_key,
        listing_prices.exchange_key,
        exchanges.benchmark_symbol,
        listing_prices.close_m1 as close_before_day_m1,
        listing_prices.close_m2 as close_before_window_1d,
        listing_prices.close_m6 as close_before_window_5d,
        listing_prices.adj_close as close_day0,
        listing_prices.close_p1 as close_day_p1,
        listing_prices.close_p5 as close_day_p5,
        listing_prices.date_key_m1,
        listing_prices.date_key_m2,
        listing_prices.date_key_m6,
        listing_prices.date_key_p1,
        listing_prices.date_key_p5
    from events
    asof inner join listing_prices
        on listing_prices.symbol = events.symbol
        and events.event_date_key <= listing_prices.date_key
    left join dim_exchange as exchanges on exchanges.exchange_key = listing_prices.exchange_key
),

benchmark_prices as (
    select symbol, date_key, adj_close from listing_prices
    where symbol in (select benchmark_symbol from dim_exchange)
),

-- the benchmark's close on (or, when it did not trade, just before) each date of the listing's window
with_benchmark as (
    select
        windows.*,
        -- (an as-of join matches a null date too: no date, no benchmark value)
        b0.adj_close as bench_day0,
        case when windows.date_key_m1 is not null then b1.adj_close end as bench_m1,
        case when windows.date_key_m2 is not null then b2.adj_close end as bench_m2,
        case when windows.date_key_m6 is not null then b6.adj_close end as bench_m6,
        case when windows.date_key_p1 is not null then a1.adj_close end as bench_p1,
        case when windows.date_key_p5 is not null then a5.adj_close end as bench_p5
    from windows
    asof left join benchmark_prices as b0
        on b0.symbol = windows.benchmark_symbol and windows.day0_date_key >= b0.date_key
    asof left join benchmark_prices as b1
        on b1.symbol = windows.benchmark_symbol and windows.date_key_m1 >= b1.date_key
    asof left join benchmark_prices as b2
        on b2.symbol = windows.benchmark_symbol and windows.date_key_m2 >= b2.date_key
    asof left join benchmark_prices as b6
        on b6.symbol = windows.benchmark_symbol and windows.date_key_m6 >= b6.date_key
    asof left join benchmark_prices as a1
        on a1.symbol = windows.benchmark_symbol and windows.date_key_p1 >= a1.date_key
    asof left join benchmark_prices as a5
        on a5.symbol = windows.benchmark_symbol and windows.date_key_p5 >= a5.date_key
),

final as (
    select
        -- keys
        event_key,
        event_date_key as date_key,
        day0_date_key,
        symbol,
        company_code,
        event_type_code,
        benchmark_symbol,
        -- measures
        amount_usd,
        close_day0 / close_before_day_m1 - 1 as event_day_return,
        close_day_p1 / close_before_window_1d - 1 as return_1d,
        close_day_p5 / close_before_window_5d - 1 as return_5d,
        bench_day0 / bench_m1 - 1 as benchmark_event_day_return,
        bench_p1 / bench_m2 - 1 as benchmark_return_1d,
        bench_p5 / bench_m6 - 1 as benchmark_return_5d,
        (close_day0 / close_before_day_m1) - (bench_day0 / bench_m1) as excess_event_day_return,
        (close_day_p1 / close_before_window_1d) - (bench_p1 / bench_m2) as excess_return_1d,
        (close_day_p5 / close_before_window_5d) - (bench_p5 / bench_m6) as excess_return_5d
    from with_benchmark
)

select * from final
