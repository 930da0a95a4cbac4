-- fct_valuation_daily: one row per listing per run snapshot date of what Ticker.info reported; key (security_key, date_key)
-- Yahoo serves no valuation history: capturing the snapshot every run builds it. The snapshot date is the
-- market date the run ends on.
with metadata as (
    select * from landing_metadata
    qualify row_number() over (partition by symbol, bar_date order by extracted_at desc) = 1
),

typed as (
    select
        symbol,
        cast(bar_date as date) as snapshot_date,
        try_cast(json_extract_string(info, '$.marketCap') as double) as market_cap_local,
        try_cast(json_extract_string(info, '$.sharesOutstanding') as double) as shares_outstanding,
        try_cast(json_extract_string(info, '$.trailingPE') as double) as trailing_pe,
        try_cast(json_extract_string(info, '$.forwardPE') as double) as forward_pe,
        json_extract_string(info, '$.financialCurrency') as statement_currency,
        source
    from metadata
),

keyed as (
    select
        typed.*,
        securities.security_key,
        securities.currency_key,
        securities.currency_code,
        fx.rate_to_usd
    from typed
    inner join dim_security as securities
        on securities.symbol = typed.symbol
        and typed.snapshot_date between securities.valid_from and securities.valid_to
    left join int_known_fx_rate as fx
        on fx.currency_code = securities.currency_code
        and fx.date_key = cast(strftime(typed.snapshot_date, '%Y%m%d') as integer)
    where coalesce(market_cap_local, shares_outstanding, trailing_pe, forward_pe) is not null
),

final as (
    select
        -- keys
        cast(strftime(snapshot_date, '%Y%m%d') as integer) as date_key,
        security_key,
        currency_key,
        symbol,
        -- measures
        market_cap_local,
        market_cap_local * rate_to_usd as market_cap_usd,
        shares_outstanding,
        trailing_pe,
        forward_pe,
        -- attributes
        currency_code,
        statement_currency,
        -- lineage
        source,
        source = 'sample' as is_synthetic,
        getvariable('run_id') as run_id
    from keyed
)

select * from final
