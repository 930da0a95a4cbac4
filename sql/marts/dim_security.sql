-- dim_security: one row per listing version (type-2); key (security_key); natural key (symbol, valid_from)
with versions as (
    select * from int_security_versions
),

final as (
    select
        -- keys
        surrogate_key(symbol || '|' || cast(valid_from as varchar)) as security_key,
        symbol,
        case when company_id is null then null else surrogate_key(company_id) end as company_key,
        surrogate_key(exchange_code) as exchange_key,
        surrogate_key(currency_code) as currency_key,
        -- attributes
        company_id as company_code,
        security_name,
        security_type,
        exchange_code,
        market_code,
        currency_code,
        adr_ratio,
        underlying_symbol,
        vendor_name,
        vendor_sector,
        -- type-2 validity
        valid_from,
        valid_to,
        valid_to = date '9999-12-31' as is_current,
        attribute_hash,
        -- lineage
        getvariable('run_id') as run_id
    from versions
)

select * from final
