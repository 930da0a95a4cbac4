-- mart_event_reaction: one row per financing event of a priced listing; key (event_key)
-- Published as a view over the facts, so late prices (the days after an event) fill in by themselves.
-- Day 0 is the listing's first trading day on or after the event date. Windows are close-to-close on adj_close:
-- event_day_return = day 0 over day -1; return_1d = days -1..+1 (day +1 over day -2); return_5d = days -5..+5
-- (day +5 over day -6). The benchmark is the listing's market benchmark (dim_exchange.benchmark_symbol: HSTECH
-- for Hong Kong lines, the Nasdaq-100 for US listings) over the same dates; excess = listing minus benchmark.
-- Sized for 25M price rows (issue 6): the trading-day numbering runs on narrow rows; day 0 is an equality join
-- for events dated on a trading day (the as-of join, which sorts its inputs, only for the others and only over
-- their listings' prices); the closes around day 0 come from one join on (listing, trading day) for all five
-- offsets; the benchmark's values from as-of joins on the (two) benchmark series only.
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

on_a_trading_day as (
    select events.*, listing_prices.trading_day, listing_prices.date_key as day0_date_key,
        listing_prices.exchange_key, listing_prices.adj_close as close_day0
    from events
    inner join listing_prices
        on listing_prices.symbol = events.symbol and listing_prices.date_key = events.event_date_key
),

off_days as (
    select * from events anti join on_a_trading_day using (event_key)
),

next_trading_day as (
    select off_days.*, later.trading_day, later.date_key as day0_date_key, later.exchange_key,
        later.adj_close as close_day0
    from off_days
    asof inner join (select * from listing_prices semi join off_days using (symbol)) as later
        on later.symbol = off_days.symbol
        and off_days.event_date_key <= later.date_key
),

day_zero as (
    select * from on_a_trading_day
    union all by name
    select * from next_trading_day
),

around as (
    select
        day_zero.event_key,
        max(case when offsets.k = -1 then around.adj_close end) as close_before_day_m1,
        max(case when offsets.k = -2 then around.adj_close end) as close_before_window_1d,
        max(case when offsets.k = -6 then around.adj_close end) as close_before_window_5d,
        max(case when offsets.k = 1 then around.adj_close end) as close_day_p1,
        max(case when offsets.k = 5 then around.adj_close end) as close_day_p5,
        max(case when offsets.k = -1 then around.date_key end) as date_key_m1,
        max(case when offsets.k = -2 then around.date_key end) as date_key_m2,
        max(case when offsets.k = -6 then around.date_key end) as date_key_m6,
        max(case when offsets.k = 1 then around.date_key end) as date_key_p1,
        max(case when offsets.k = 5 then around.date_key end) as date_key_p5
    from day_zero
    cross join (values (-6), (-2), (-1), (1), (5)) as offsets(k)
    inner join listing_prices as around
        on around.symbol = day_zero.symbol and around.trading_day = day_zero.trading_day + offsets.k
    group by day_zero.event_key
),

windows as (
    select
        day_zero.* exclude (trading_day),
        exchanges.benchmark_symbol,
        around.* exclude (event_key)
    from day_zero
    left join around using (event_key)
    left join dim_exchange as exchanges on exchanges.exchange_key = day_zero.exchange_key
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
