-- Question: which financing events took effect in a period (capital raised, capital returned, corporate actions,
-- disclosures), and what do they come to in USD?
-- Source: fct_financing_event (one row per event per company, per listing when listing-specific) with its
-- dim_event_type category. amount_usd converts amount_local at the event day's rate (null without one).
-- Amounts have a basis: 'principal' (deal size: bonds, convertibles, placements) adds up, so
-- company_raised_usd and period_raised_usd total the capital_raised principal in USD; 'per share'
-- (dividends) does not add up across securities without share counts, so listing_per_share_usd totals one
-- listing's per-share amounts only; 'shares' events carry share_change instead of an amount.
-- Parameters: set them before `.read` to override (a value already set wins); defaults are the Sept 2025 demo.
-- categories: any of capital_raised, capital_returned, corporate_action, disclosure.
set variable start_date = coalesce(getvariable('start_date'), date '2025-09-01');
set variable end_date = coalesce(getvariable('end_date'), date '2025-09-30');
set variable categories = coalesce(getvariable('categories'),
    ['capital_raised', 'capital_returned', 'corporate_action', 'disclosure']);

with events as (
    select
        d.calendar_date as event_date,
        e.company_code,
        e.symbol,
        e.event_type_code,
        t.category,
        e.amount_local,
        e.amount_basis,
        e.currency_code,
        e.fx_rate_to_usd,
        e.amount_usd,
        e.split_ratio,
        e.share_change,
        e.instrument,
        e.origin,
        e.is_verified,
        e.is_synthetic
    from fct_financing_event as e
    inner join dim_event_type as t using (event_type_key)
    inner join dim_date as d using (date_key)
    where d.calendar_date between getvariable('start_date') and getvariable('end_date')
      and list_contains(getvariable('categories'), t.category)
),

final as (
    select
        event_date,
        company_code,
        symbol,
        event_type_code,
        category,
        case
            when amount_basis = 'per share' then format('{:.4f} {} per share', amount_local, currency_code)
            when amount_basis = 'principal' and amount_local >= 1e9
                then format('{} {:.2f} bn', currency_code, amount_local / 1e9)
            when amount_basis = 'principal' then format('{} {:.1f} m', currency_code, amount_local / 1e6)
            when share_change is not null then format('{:+.1f} m shares', share_change / 1e6)
            when split_ratio >= 1 then format('{:g}-for-1 split', split_ratio)
            when split_ratio > 0 then format('1-for-{:g} consolidation', round(1 / split_ratio, 4))
            else coalesce(instrument, event_type_code)
        end as description,
        amount_local,
        amount_basis,
        currency_code,
        round(amount_usd, 6) as amount_usd,
        split_ratio,
        share_change,
        instrument,
        origin,
        is_verified,
        is_synthetic,
        round(sum(amount_usd) filter (where category = 'capital_raised' and amount_basis = 'principal')
              over (partition by company_code), 2) as company_raised_usd,
        round(sum(amount_usd) filter (where category = 'capital_raised' and amount_basis = 'principal')
              over (), 2) as period_raised_usd,
        round(sum(amount_usd) filter (where amount_basis = 'per share')
              over (partition by symbol), 6) as listing_per_share_usd,
        count(*) over (partition by category) as events_in_category
    from events
)

select * from final
order by event_date, company_code, symbol, event_type_code
