-- Question: how did the price react around each corporate action (dividend, split): on the ex-date and over
-- +-1 and +-5 trading days, raw and against the market's benchmark?
-- Trading days are the security's own sessions (the whole published history, so a window may reach outside
-- the event period). Returns compound daily_return (adj_close), so the mechanical drop of a dividend or the
-- split ratio is not counted as a reaction. ret_m1_p1 covers sessions -1..+1, ret_m5_p5 -5..+5 (day 0 = the
-- ex-date, or the first session after it). A window short of sessions (history or data not there yet) is
-- null, with sessions_available saying how many there were. abnormal_* = return - benchmark's return over the
-- same calendar span.
-- Parameters: set them before `.read` to override (a value already set wins); defaults are the Sept 2025 demo.
set variable start_date = coalesce(getvariable('start_date'), date '2025-09-01');
set variable end_date = coalesce(getvariable('end_date'), date '2025-09-30');
set variable benchmarks = coalesce(getvariable('benchmarks'), map {'XHKG': 'HSTECH.HK', 'US': '^NDX'});

with events as (
    select
        d.calendar_date as ex_date,
        a.symbol,
        a.action_type,
        a.dividend_local,
        a.split_ratio,
        s.market_code
    from fct_corporate_action as a
    inner join dim_security as s using (security_key)
    inner join dim_date as d using (date_key)
    where d.calendar_date between getvariable('start_date') and getvariable('end_date')
),

sessions as (
    select
        p.symbol,
        d.calendar_date,
        p.daily_return,
        row_number() over (partition by p.symbol order by d.calendar_date) as session_number
    from fct_daily_price as p
    inner join dim_date as d using (date_key)
    where p.symbol in (select symbol from events)
       or p.symbol in (select unnest(map_values(getvariable('benchmarks'))))
),

day_zero as (
    select
        events.*,
        (select min(s.session_number) from sessions as s
         where s.symbol = events.symbol and s.calendar_date >= events.ex_date) as zero
    from events
),

windows as (
    select
        z.symbol,
        z.ex_date,
        z.action_type,
        k.half_width,
        count(s.daily_return) as sessions_available,
        exp(sum(ln(1 + s.daily_return))) - 1 as window_return,
        min(s.calendar_date) as window_first,
        max(s.calendar_date) as window_last
    from day_zero as z
    cross join (values (0), (1), (5)) as k(half_width)
    left join sessions as s
        on s.symbol = z.symbol
        and s.session_number between z.zero - k.half_width and z.zero + k.half_width
    group by all
),

benchmark_windows as (
    select
        w.symbol,
        w.ex_date,
        w.action_type,
        w.half_width,
        exp(sum(ln(1 + b.daily_return))) - 1 as benchmark_return
    from windows as w
    inner join day_zero as z using (symbol, ex_date, action_type)
    inner join sessions as b
        on b.symbol = getvariable('benchmarks')[z.market_code]
        and b.calendar_date between w.window_first and w.window_last
    group by all
),

complete as (
    select
        w.*,
        b.benchmark_return,
        w.sessions_available = 2 * w.half_width + 1 as is_complete
    from windows as w
    left join benchmark_windows as b using (symbol, ex_date, action_type, half_width)
),

final as (
    select
        z.ex_date,
        z.symbol,
        z.action_type,
        z.dividend_local,
        z.split_ratio,
        getvariable('benchmarks')[z.market_code] as benchmark,
        round(100 * max(c.window_return) filter (where c.half_width = 0 and c.is_complete), 3) as ret_ex_day_pct,
        round(100 * max(c.window_return) filter (where c.half_width = 1 and c.is_complete), 3) as ret_m1_p1_pct,
        round(100 * max(c.window_return) filter (where c.half_width = 5 and c.is_complete), 3) as ret_m5_p5_pct,
        round(100 * max(c.window_return - c.benchmark_return) filter (where c.half_width = 1 and c.is_complete), 3)
            as abnormal_m1_p1_pct,
        round(100 * max(c.window_return - c.benchmark_return) filter (where c.half_width = 5 and c.is_complete), 3)
            as abnormal_m5_p5_pct,
        max(c.sessions_available) filter (where c.half_width = 5) as sessions_available,
        max(c.window_first) filter (where c.half_width = 5) as window_first,
        max(c.window_last) filter (where c.half_width = 5) as window_last
    from day_zero as z
    inner join complete as c using (symbol, ex_date, action_type)
    group by all
)

select * from final
order by ex_date, symbol, action_type
