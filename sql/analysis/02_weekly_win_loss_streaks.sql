-- Question: which securities strung together winning or losing weeks, and how long is each streak?
-- A week is an ISO week (Monday..Sunday) of the security's own sessions in the window; its return compounds
-- the daily returns (adj_close, so dividends and splits do not count as moves). A win is a week > 0, a loss
-- < 0, a flat week breaks both. One row per streak (consecutive weeks of the same sign), with its length,
-- compounded return, whether it is the security's longest of its kind and whether it is still running.
-- Parameters: set them before `.read` to override (a value already set wins); defaults are the Sept 2025 demo.
set variable start_date = coalesce(getvariable('start_date'), date '2025-09-01');
set variable end_date = coalesce(getvariable('end_date'), date '2025-09-30');

with daily as (
    select
        p.symbol,
        s.security_type,
        d.iso_year,
        d.iso_week,
        d.calendar_date,
        p.daily_return
    from fct_daily_price as p
    inner join dim_security as s using (security_key)
    inner join dim_date as d using (date_key)
    where d.calendar_date between getvariable('start_date') and getvariable('end_date')
      and s.security_type <> 'fx'
),

weekly as (
    select
        symbol,
        any_value(security_type) as security_type,
        iso_year,
        iso_week,
        min(calendar_date) as week_first_session,
        max(calendar_date) as week_last_session,
        exp(sum(ln(1 + daily_return))) - 1 as weekly_return
    from daily
    where daily_return is not null
    group by symbol, iso_year, iso_week
),

signed as (
    select
        *,
        case when weekly_return > 0 then 'win' when weekly_return < 0 then 'loss' else 'flat' end as outcome,
        row_number() over (partition by symbol order by iso_year, iso_week) as week_number
    from weekly
),

islands as (
    select
        *,
        week_number - row_number() over (partition by symbol, outcome order by iso_year, iso_week) as island
    from signed
),

streaks as (
    select
        symbol,
        any_value(security_type) as security_type,
        outcome as streak,
        count(*) as weeks,
        min(week_first_session) as first_session,
        max(week_last_session) as last_session,
        exp(sum(ln(1 + weekly_return))) - 1 as streak_return,
        max(week_number) as last_week_number
    from islands
    where outcome <> 'flat'
    group by symbol, outcome, island
),

final as (
    select
        symbol,
        security_type,
        streak,
        weeks,
        first_session,
        last_session,
        round(100 * streak_return, 2) as streak_return_pct,
        weeks = max(weeks) over (partition by symbol, streak) as is_longest_of_kind,
        last_week_number = max(last_week_number) over (partition by symbol) as is_current
    from streaks
)

select * from final
order by weeks desc, streak, symbol, first_session
