-- int_known_fx_rate: every rate to USD the warehouse knows after this run; key (currency_code, date_key)
-- This run's rates win over published ones for the same day. Used to convert amounts dated outside the window.
with candidate as (
    select currency_code, date_key, rate_to_usd from fct_fx_rate
),

published as (
    select currency_code, date_key, rate_to_usd from published_fct_fx_rate
    where (currency_code, date_key) not in (select currency_code, date_key from candidate)
)

select * from candidate
union all
select * from published
