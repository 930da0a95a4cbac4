-- int_fx_rate_filled: one row per non-USD currency per calendar day of the window that has a usable rate; key (currency_code, calendar_date)
-- Rule: Yahoo's `XXX=X` quote is units of XXX per 1 USD; rate_to_usd = 1 / quote. A day without its own quote
-- (weekend, holiday, missing bar) carries over the latest quote observed at most 5 calendar days earlier.
-- Older than that is a gap: no row here, and prices in that currency get close_usd = null (counted by the gate).
with quotes as (
    select
        securities.currency as currency_code,
        prices.bar_date as observed_date,
        prices.close as units_per_usd
    from int_prices_checked as prices
    inner join stg_universe__securities as securities using (symbol)
    where securities.security_type = 'fx' and prices.rejection_reason is null
),

days as (
    select cast(unnest(generate_series(
        cast(getvariable('window_start') as date), cast(getvariable('window_end') as date), interval 1 day
    )) as date) as calendar_date
),

grid as (
    select days.calendar_date, currencies.currency_code
    from days
    cross join (select currency_code from ref_currency where currency_code <> 'USD') as currencies
),

as_of as (
    select grid.calendar_date, grid.currency_code, quotes.observed_date, quotes.units_per_usd
    from grid
    asof left join quotes
        on grid.currency_code = quotes.currency_code
        and grid.calendar_date >= quotes.observed_date
),

usable as (
    select
        *,
        1.0 / units_per_usd as rate_to_usd,
        observed_date <> calendar_date as is_carried_forward
    from as_of
    where observed_date is not null and calendar_date - observed_date <= 5
)

select * from usable
