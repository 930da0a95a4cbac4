-- dim_date: one row per calendar day of the universe's calendar range; key (date_key)
-- Trading-day flags come from exchange_calendars sessions (XHKG for Hong Kong, XNYS for the US listings).
with days as (
    select cast(unnest(generate_series(
        cast(getvariable('calendar_start') as date), cast(getvariable('calendar_end') as date), interval 1 day
    )) as date) as calendar_date
),

flags as (
    select
        days.calendar_date,
        bool_or(sessions.market_code = 'XHKG') as is_trading_day_xhkg,
        bool_or(sessions.market_code = 'US') as is_trading_day_xnys
    from days
    left join ref_session as sessions on sessions.session_date = days.calendar_date
    group by days.calendar_date
),

final as (
    select
        -- keys
        cast(strftime(calendar_date, '%Y%m%d') as integer) as date_key,
        -- attributes
        calendar_date,
        year(calendar_date) as year,
        quarter(calendar_date) as quarter,
        month(calendar_date) as month,
        monthname(calendar_date) as month_name,
        isoyear(calendar_date) as iso_year,
        weekofyear(calendar_date) as iso_week,
        isodow(calendar_date) as weekday_number,
        dayname(calendar_date) as weekday_name,
        isodow(calendar_date) >= 6 as is_weekend,
        coalesce(is_trading_day_xhkg, false) as is_trading_day_xhkg,
        coalesce(is_trading_day_xnys, false) as is_trading_day_xnys,
        -- Nasdaq follows the NYSE holiday calendar
        coalesce(is_trading_day_xnys, false) as is_trading_day_xnas
    from flags
)

select * from final order by date_key
