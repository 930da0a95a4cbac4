-- int_usd_rate_by_day: the rate to USD that applies on each calendar day, for amounts dated anywhere in the
-- warehouse's history (events, quarter ends); key (currency_code, rate_day)
-- The rule of fct_fx_rate: a day uses the latest known rate of that day or of at most 5 days earlier; past 5
-- days there is no row (the amount's USD value is null, never guessed). A known day whose rate is null (a gap
-- in fct_fx_rate) is not carried over by a later day either. USD is 1.0 by definition and has no rows here.
with rates as (
    select
        currency_code,
        cast(strptime(cast(date_key as varchar), '%Y%m%d') as date) as rate_date,
        rate_to_usd
    from int_known_fx_rate
    where currency_code <> 'USD'
),

spans as (
    select
        *,
        -- a rate applies up to 5 days on, and never past the next known day
        least(
            rate_date + 5,
            coalesce(lead(rate_date) over (partition by currency_code order by rate_date) - 1, rate_date + 5)
        ) as last_day
    from rates
),

final as (
    select
        currency_code,
        cast(day as date) as rate_day,
        rate_date,
        rate_to_usd
    from spans,
        unnest(generate_series(cast(rate_date as timestamp), cast(last_day as timestamp), interval 1 day)) as t(day)
)

select * from final
