-- stg_landing__cash_flow: one row per listing per fiscal period end per financing flow; key (symbol, period_end_date, flow_type)
-- Only the line items in ref_cash_flow_item (yfinance labels such as 'Issuance Of Debt') are financing flows.
-- A restated period in a later extraction replaces the earlier value.
with landed as (
    select * from landing_cashflow
),

typed as (
    select
        landed.symbol,
        cast(landed.period_end as date) as period_end_date,
        items.flow_type,
        cast(landed.value as double) as amount_local,
        landed.statement_currency as currency_code,
        landed.source,
        landed.run_id,
        landed.extracted_at
    from landed
    inner join ref_cash_flow_item as items on items.line_item = landed.line_item
    where landed.value is not null and not isnan(cast(landed.value as double))
),

latest as (
    select * from typed
    qualify row_number() over (
        partition by symbol, period_end_date, flow_type order by extracted_at desc, run_id desc
    ) = 1
)

select * from latest
