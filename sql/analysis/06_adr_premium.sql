-- Question: at what premium or discount does each US ADR trade against its Hong Kong line?
-- Per ADR and US session: the ADR close in USD divided by adr_ratio (HK shares per ADS) is the USD price of
-- one HK share through the ADR; the HK close of that day (or the latest HK session before it, when Hong Kong
-- was closed; hk_close_date says which) times that day's rate_to_usd (fct_fx_rate) is the same share in Hong
-- Kong. premium = ADR_usd / adr_ratio / (HK_close x rate_to_usd) - 1; positive = the ADR is dearer.
-- adr_ratio comes from the ADR's dim_security version valid that day. Days without an HKD rate are left out.
-- Parameters: set them before `.read` to override (a value already set wins); defaults are the Sept 2025 demo.
set variable start_date = coalesce(getvariable('start_date'), date '2025-09-01');
set variable end_date = coalesce(getvariable('end_date'), date '2025-09-30');

with adr as (
    select
        p.symbol as adr_symbol,
        s.underlying_symbol,
        s.adr_ratio,
        d.calendar_date as trade_date,
        p.close_usd as adr_close_usd
    from fct_daily_price as p
    inner join dim_security as s using (security_key)
    inner join dim_date as d using (date_key)
    where s.security_type = 'adr'
      and d.calendar_date between getvariable('start_date') and getvariable('end_date')
),

home as (
    select
        p.symbol,
        s.currency_code,
        s.currency_key,
        d.calendar_date,
        p.close
    from fct_daily_price as p
    inner join dim_security as s using (security_key)
    inner join dim_date as d using (date_key)
    where s.security_type = 'equity'
      and d.calendar_date between getvariable('start_date') - interval 10 day and getvariable('end_date')
),

paired as (
    select
        adr.*,
        home.calendar_date as hk_close_date,
        home.close as hk_close,
        home.currency_code as hk_currency,
        home.currency_key as hk_currency_key
    from adr
    asof inner join home
        on home.symbol = adr.underlying_symbol
        and home.calendar_date <= adr.trade_date
),

converted as (
    select
        paired.*,
        fx.rate_to_usd as hk_rate_to_usd,
        paired.adr_close_usd / paired.adr_ratio as adr_usd_per_hk_share,
        paired.hk_close * fx.rate_to_usd as hk_close_usd
    from paired
    inner join fct_fx_rate as fx
        on fx.currency_key = paired.hk_currency_key
        and fx.date_key = cast(strftime(paired.trade_date, '%Y%m%d') as integer)
),

final as (
    select
        trade_date,
        adr_symbol,
        underlying_symbol,
        adr_ratio,
        round(adr_close_usd, 4) as adr_close_usd,
        hk_close_date,
        round(hk_close, 4) as hk_close,
        hk_currency,
        hk_rate_to_usd,
        round(adr_usd_per_hk_share, 6) as adr_usd_per_hk_share,
        round(hk_close_usd, 6) as hk_close_usd,
        round(100 * (adr_usd_per_hk_share / hk_close_usd - 1), 3) as premium_pct
    from converted
    where adr_close_usd is not null
)

select * from final
order by adr_symbol, trade_date
