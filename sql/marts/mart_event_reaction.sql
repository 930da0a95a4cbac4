-- mart_event_reaction: one row per financing event of a priced listing; key (event_key)
-- Published as a view over the facts, so late prices (the days after an event) fill in by themselves.
-- Day 0 is the listing's first trading day on or after the event date. Windows are close-to-close on adj_close:
-- event_day_return = day 0 over day -1; return_1d = days -1..+1 (day +1 over day -2); return_5d = days -5..+5
-- (day +5 over day -6). The benchmark is the listing's market benchmark (dim_exchange.benchmark_symbol: HSTECH
-- for Hong Kong lines, the Nasdaq-100 for US listings) over the same dates; excess = listing minus benchmark.
with listing_prices as (
    select
        securities.symbol,
        securities.exchange_key,
        prices.date_key,
        prices.adj_close,
        row_number() over (partition by securities.symbol order by prices.date_key) as trading_day
    from fct_daily_price as prices
    inner join dim_security as securities using (security_key)
),

events as (
    select event_key, date_key as event_date_key, symbol, event_type_code, company_code, amount_usd
    from fct_financing_event
    where symbol is not null
),

day_zero as (
    select events.*, listing_prices.trading_day, listing_prices.date_key as day0_date_key,
        listing_prices.exchange_key
    from events
    asof inner join listing_prices
        on listing_prices.symbol = events.symbol
        and events.event_date_key <= listing_prices.date_key
),

windows as (
    select
        day_zero.*,
        exchanges.benchmark_symbol,
        before_1.adj_close as close_before_day_m1,
        before_2.adj_close as close_before_window_1d,
        before_6.adj_close as close_before_window_5d,
        day0.adj_close as close_day0,
        after_1.adj_close as close_day_p1,
        after_5.adj_close as close_day_p5,
        before_1.date_key as date_key_m1,
        before_2.date_key as date_key_m2,
        before_6.date_key as date_key_m6,
        after_1.date_key as date_key_p1,
        after_5.date_key as date_key_p5
    from day_zero
    left join dim_exchange as exchanges on exchanges.exchange_key = day_zero.exchange_key
    left join listing_prices as day0 on day0.symbol = day_zero.symbol and day0.trading_day = day_zero.trading_day
    left join listing_prices as before_1
        on before_1.symbol = day_zero.symbol and before_1.trading_day = day_zero.trading_day - 1
    left join listing_prices as before_2
        on before_2.symbol = day_zero.symbol and before_2.trading_day = day_zero.trading_day - 2
    left join listing_prices as before_6
        on before_6.symbol = day_zero.symbol and before_6.trading_day = day_zero.trading_day - 6
    left join listing_prices as after_1
        on after_1.symbol = day_zero.symbol and after_1.trading_day = day_zero.trading_day + 1
    left join listing_prices as after_5
        on after_5.symbol = day_zero.symbol and after_5.trading_day = day_zero.trading_day + 5
),

benchmark_prices as (
    select symbol, date_key, adj_close from listing_prices
),

-- the benchmark's close on (or, when it did not trade, just before) each date of the listing's window
with_benchmark as (
    select
        windows.*,
        (select b.adj_close from benchmark_prices b where b.symbol = windows.benchmark_symbol
            and b.date_key <= windows.day0_date_key order by b.date_key desc limit 1) as bench_day0,
        (select b.adj_close from benchmark_prices b where b.symbol = windows.benchmark_symbol
            and b.date_key <= windows.date_key_m1 order by b.date_key desc limit 1) as bench_m1,
        (select b.adj_close from benchmark_prices b where b.symbol = windows.benchmark_symbol
            and b.date_key <= windows.date_key_m2 order by b.date_key desc limit 1) as bench_m2,
        (select b.adj_close from benchmark_prices b where b.symbol = windows.benchmark_symbol
            and b.date_key <= windows.date_key_m6 order by b.date_key desc limit 1) as bench_m6,
        (select b.adj_close from benchmark_prices b where b.symbol = windows.benchmark_symbol
            and b.date_key <= windows.date_key_p1 order by b.date_key desc limit 1) as bench_p1,
        (select b.adj_close from benchmark_prices b where b.symbol = windows.benchmark_symbol
            and b.date_key <= windows.date_key_p5 order by b.date_key desc limit 1) as bench_p5
    from windows
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
