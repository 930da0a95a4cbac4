-- dim_exchange: one row per exchange (ISO 10383 MIC) in the universe; key (exchange_key)
with exchanges as (
    select * from ref_exchange
),

final as (
    select
        -- keys
        surrogate_key(exchange_code) as exchange_key,
        -- attributes
        exchange_code,
        exchange_name,
        market_code,
        timezone,
        country_code,
        -- the index event studies compare this exchange's listings with
        benchmark_symbol
    from exchanges
)

select * from final
