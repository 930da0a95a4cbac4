-- Question: which financing events (cash dividends, splits, consolidations) took effect in a period, and what
-- did the dividends come to in USD?
-- Source: fct_corporate_action, one row per security per ex-date per action. dividend_usd converts the
-- per-share dividend at the ex-date's fct_fx_rate. The warehouse has no share counts, so USD totals are per
-- share: listing_dividends_usd adds up the listing's dividends in the period; for an ADR,
-- dividend_usd_per_home_share divides by adr_ratio so it compares with the HK line's own dividend
-- (TCEHY vs 0700.HK). Per-share amounts of different securities are not added together.
-- Parameters: set them before `.read` to override (a value already set wins); defaults are the Sept 2025 demo.
set variable start_date = coalesce(getvariable('start_date'), date '2025-09-01');
set variable end_date = coalesce(getvariable('end_date'), date '2025-09-30');

with events as (
    select
        d.calendar_date as ex_date,
        a.symbol,
        s.security_name,
        s.security_type,
        s.company_code,
        s.currency_code,
        s.adr_ratio,
        a.action_type,
        a.dividend_local,
        a.dividend_usd,
        a.split_ratio
    from fct_corporate_action as a
    inner join dim_security as s using (security_key)
    inner join dim_date as d using (date_key)
    where d.calendar_date between getvariable('start_date') and getvariable('end_date')
),

final as (
    select
        ex_date,
        symbol,
        security_name,
        security_type,
        company_code,
        action_type,
        dividend_local,
        currency_code,
        round(dividend_usd, 6) as dividend_usd,
        round(dividend_usd / coalesce(adr_ratio, 1), 6) as dividend_usd_per_home_share,
        split_ratio,
        case
            when action_type = 'cash_dividend' then format('{:.4f} {} per share', dividend_local, currency_code)
            when split_ratio >= 1 then format('{:g}-for-1 split', split_ratio)
            else format('1-for-{:g} consolidation', round(1 / split_ratio, 4))
        end as description,
        count(*) over (partition by symbol) as listing_events,
        round(sum(dividend_usd) over (partition by symbol), 6) as listing_dividends_usd,
        count(*) over (partition by action_type) as events_of_type
    from events
)

select * from final
order by ex_date, symbol, action_type
