-- dim_currency: one row per currency in the universe; key (currency_key)
with currencies as (
    select * from ref_currency
),

final as (
    select
        -- keys
        surrogate_key(currency_code) as currency_key,
        -- attributes
        currency_code,
        currency_name,
        fx_symbol
    from currencies
)

select * from final
