-- mart_adr_parity: one row per ADR per date both the ADR and its Hong Kong line closed; key (adr_symbol, date_key)
-- Published as a view. Same calendar date on both sides (Hong Kong closes before New York opens).
-- adr_close_per_share_usd = ADR close / adr_ratio (ordinary shares per ADS); hk_close_usd = HK close x that
-- day's HKD rate (fct_fx_rate); premium_pct = ADR per share / HK close in USD - 1 (null on an FX gap).
with adrs as (
    select symbol as adr_symbol, underlying_symbol as hk_symbol, adr_ratio, company_key
    from dim_security
    where security_type = 'adr' and is_current
),

-- only the prices of the ADRs and their home lines (a few percent of a large universe's rows)
closes as (
    select securities.symbol, prices.date_key, prices.close, prices.close_usd, prices.fx_rate_to_usd
    from fct_daily_price as prices
    inner join dim_security as securities using (security_key)
    where securities.symbol in (select adr_symbol from adrs union all select hk_symbol from adrs)
),

paired as (
    select
        adrs.adr_symbol,
        adrs.hk_symbol,
        adrs.company_key,
        adr.date_key,
        adrs.adr_ratio,
        hk.close as hk_close_local,
        hk.fx_rate_to_usd as hk_fx_rate_to_usd,
        hk.close_usd as hk_close_usd,
        adr.close as adr_close_usd,
        adr.close / adrs.adr_ratio as adr_close_per_share_usd
    from adrs
    inner join closes as adr on adr.symbol = adrs.adr_symbol
    inner join closes as hk on hk.symbol = adrs.hk_symbol and hk.date_key = adr.date_key
),

final as (
    select
        *,
        adr_close_per_share_usd / hk_close_usd - 1 as premium_pct
    from paired
)

select * from final
