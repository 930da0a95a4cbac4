-- int_financing_events_unioned: every financing event from every origin, before keys; key (origin, event_type_code, symbol, event_date, source_reference)
-- Origins and rules:
--   vendor_actions  dividends and splits from the landed bars (int_corporate_action_checked, repeats removed);
--                   a dividend at least twice the listing's previous one is a special_dividend
--   vendor_shares   shares outstanding moving by >= 0.5% between consecutive observations: issuance or buyback
--   vendor_filings  SEC 424B*/F-3/S-3 (offering candidates) and 6-K/8-K (current reports), with their links
--   curated         deals with terms from the curated file, dated on their announce date
with window_bounds as (
    select cast(getvariable('window_start') as date) as window_start,
           cast(getvariable('window_end') as date) as window_end
),

dividend_history as (
    select symbol, bar_date, dividend_local,
        lag(dividend_local) over (partition by symbol order by bar_date) as previous_dividend
    from (
        select symbol, bar_date, dividend_local from int_corporate_action_checked
        where rejection_reason is null and action_type = 'cash_dividend'
        union all
        select p.symbol, cast(strptime(cast(p.date_key as varchar), '%Y%m%d') as date), p.dividend_local
        from published_fct_corporate_action as p
        where p.action_type = 'cash_dividend'
          and p.date_key < cast(strftime((select window_start from window_bounds), '%Y%m%d') as integer)
    )
),

actions as (
    select
        'vendor_actions' as origin,
        case
            when a.action_type = 'cash_dividend' and h.previous_dividend > 0
                and a.dividend_local >= 2 * h.previous_dividend then 'special_dividend'
            else a.action_type
        end as event_type_code,
        a.symbol,
        a.bar_date as event_date,
        a.dividend_local as amount_local,
        cast(null as varchar) as amount_currency,
        a.split_ratio,
        cast(null as double) as share_change,
        cast(null as double) as share_change_pct,
        cast(null as varchar) as instrument,
        case when a.action_type = 'cash_dividend' then 'per share' end as amount_basis,
        a.source,
        coalesce(a.source_file, a.source || ' actions') as source_reference
    from int_corporate_action_checked as a
    left join dividend_history as h on h.symbol = a.symbol and h.bar_date = a.bar_date
    where a.rejection_reason is null
      and a.bar_date between (select window_start from window_bounds) and (select window_end from window_bounds)
),

share_steps as (
    select
        *,
        lag(shares_outstanding) over (partition by symbol order by observed_date) as previous_shares
    from stg_landing__shares
),

shares as (
    select
        'vendor_shares' as origin,
        case when shares_outstanding > previous_shares then 'share_count_increase'
             else 'share_count_decrease' end as event_type_code,
        symbol,
        observed_date as event_date,
        cast(null as double) as amount_local,
        cast(null as varchar) as amount_currency,
        cast(null as double) as split_ratio,
        shares_outstanding - previous_shares as share_change,
        shares_outstanding / previous_shares - 1 as share_change_pct,
        cast(null as varchar) as instrument,
        'shares' as amount_basis,
        source,
        source || ' get_shares_full' as source_reference
    from share_steps
    where previous_shares > 0 and abs(shares_outstanding / previous_shares - 1) >= 0.005
      and observed_date between (select window_start from window_bounds) and (select window_end from window_bounds)
),

filings as (
    select
        'vendor_filings' as origin,
        case when form_type like '424B%' or form_type in ('F-3', 'S-3') then 'sec_offering_filing'
             else 'sec_current_report' end as event_type_code,
        symbol,
        filing_date as event_date,
        cast(null as double) as amount_local,
        cast(null as varchar) as amount_currency,
        cast(null as double) as split_ratio,
        cast(null as double) as share_change,
        cast(null as double) as share_change_pct,
        form_type || ': ' || coalesce(filing_title, '') as instrument,
        cast(null as varchar) as amount_basis,
        source,
        coalesce(filing_url, source || ' sec_filings') as source_reference
    from stg_landing__filings
    where (form_type like '424B%' or form_type in ('F-3', 'S-3', '6-K', '8-K'))
      and filing_date between (select window_start from window_bounds) and (select window_end from window_bounds)
),

curated as (
    select
        'curated' as origin,
        event_type as event_type_code,
        symbol,
        announce_date as event_date,
        principal as amount_local,
        currency as amount_currency,
        cast(null as double) as split_ratio,
        cast(null as double) as share_change,
        cast(null as double) as share_change_pct,
        instrument,
        'principal' as amount_basis,
        'curated' as source,
        source_reference,
        company_id as curated_company_id,
        event_id as curated_event_id,
        pricing_date,
        settlement_date,
        coupon_pct,
        maturity_date,
        conversion_price,
        conversion_premium_pct,
        is_verified
    from stg_curated__financing_events
),

unioned as (
    select * from actions
    union all by name select * from shares
    union all by name select * from filings
    union all by name select * from curated
)

select * from unioned
