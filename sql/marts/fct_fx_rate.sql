-- fct_fx_rate: one row per currency per calendar day of the window with a usable rate to USD; key (currency_key, date_key)
-- USD is included at 1.0 so every price joins the same way; see int_fx_rate_filled for the carry-over rule.
with filled as (
    select * from int_fx_rate_filled
),

usd as (
    select cast(unnest(generate_series(
        cast(getvariable('window_start') as date), cast(getvariable('window_end') as date), interval 1 day
    )) as date) as calendar_date
),

rates as (
    select currency_code, calendar_date, observed_date, units_per_usd, rate_to_usd, is_carried_forward
    from filled
    union all
    select 'USD', calendar_date, calendar_date, 1.0, 1.0, false
    from usd
),

final as (
    select
        -- keys
        cast(strftime(calendar_date, '%Y%m%d') as integer) as date_key,
        surrogate_key(currency_code) as currency_key,
        currency_code,
        -- measures
        rate_to_usd,
        units_per_usd,
        -- attributes
        observed_date,
        is_carried_forward,
        -- lineage
        getvariable('source') as source,
        getvariable('run_id') as run_id
    from rates
)

select * from final
