-- fct_financing_event: one row per financing event per company (and per listing when the event is listing-specific); key (event_key)
-- Amounts: amount_local is in amount_currency (the listing currency for dividends, the deal currency for curated
-- deals); amount_usd uses the USD rate of the event day, carried over from at most 5 days earlier (weekends,
-- holidays: int_usd_rate_by_day, the rule of fct_fx_rate), null when no rate is known. Dividends are per share; curated deals are
-- principal. Share-count events carry share_change instead of an amount.
with events as (
    select * from int_financing_events_unioned
),

listings as (
    select * from ref_listing
),

securities as (
    select * from int_known_security
),

resolved as (
    select
        events.*,
        coalesce(events.curated_company_id, listings.company_id) as company_code,
        coalesce(events.amount_currency, listings.currency) as currency_code,
        securities.security_key
    from events
    left join listings on listings.symbol = events.symbol
    left join securities
        on securities.symbol = events.symbol
        and events.event_date between securities.valid_from and securities.valid_to
),

converted as (
    select
        resolved.*,
        case when resolved.currency_code = 'USD' then 1.0 else rates.rate_to_usd end as fx_rate_to_usd
    from resolved
    left join int_usd_rate_by_day as rates
        on rates.currency_code = resolved.currency_code
        and rates.rate_day = resolved.event_date
),

final as (
    select
        -- keys
        surrogate_key(concat_ws('|', origin, event_type_code, coalesce(company_code, ''), coalesce(symbol, ''),
            cast(event_date as varchar), coalesce(source_reference, ''))) as event_key,
        cast(strftime(event_date, '%Y%m%d') as integer) as date_key,
        surrogate_key(company_code) as company_key,
        security_key,
        surrogate_key(event_type_code) as event_type_key,
        event_type_code,
        company_code,
        symbol,
        -- measures
        amount_local,
        amount_basis,
        currency_code,
        fx_rate_to_usd,
        amount_local * fx_rate_to_usd as amount_usd,
        split_ratio,
        share_change,
        share_change_pct,
        -- instrument terms (curated deals)
        instrument,
        coupon_pct,
        maturity_date,
        conversion_price,
        conversion_premium_pct,
        pricing_date,
        settlement_date,
        -- lineage
        origin,
        source,
        source_reference,
        curated_event_id,
        is_verified,
        source = 'sample' as is_synthetic,
        getvariable('run_id') as run_id
    from converted
)

select * from final
