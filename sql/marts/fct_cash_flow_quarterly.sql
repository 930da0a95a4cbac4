-- fct_cash_flow_quarterly: one row per company per fiscal quarter per financing flow; key (company_key, period_end_date_key, flow_type)
-- Period flows from yfinance quarterly cash-flow statements (Issuance/Repayment Of Debt, Issuance/Repurchase Of
-- Capital Stock, Capital Expenditure), signed as reported (outflows negative), in the statement currency; USD at
-- the period end's rate (carried over at most 5 days: int_usd_rate_by_day), null while that rate is not in the warehouse.
with flows as (
    select * from stg_landing__cash_flow
),

listings as (
    select symbol, company_id from ref_listing
),

converted as (
    select
        flows.*,
        listings.company_id,
        case when flows.currency_code = 'USD' then 1.0 else rates.rate_to_usd end as fx_rate_to_usd
    from flows
    inner join listings using (symbol)
    left join int_usd_rate_by_day as rates
        on rates.currency_code = flows.currency_code
        and rates.rate_day = flows.period_end_date
),

final as (
    select
        -- keys
        surrogate_key(company_id) as company_key,
        cast(strftime(period_end_date, '%Y%m%d') as integer) as period_end_date_key,
        company_id as company_code,
        symbol as reported_by_symbol,
        -- attributes
        period_end_date,
        year(period_end_date) as calendar_year,
        quarter(period_end_date) as calendar_quarter,
        flow_type,
        currency_code,
        -- measures
        amount_local,
        fx_rate_to_usd,
        amount_local * fx_rate_to_usd as amount_usd,
        -- lineage
        source,
        source = 'sample' as is_synthetic,
        getvariable('run_id') as run_id
    from converted
)

select * from final
