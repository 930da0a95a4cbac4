-- fct_daily_price: one row per security per trading day; key (security_key, date_key)
-- Prices stay in the listing's currency (open/high/low/close as the source gave them); close_usd uses that
-- day's fct_fx_rate and is null, never guessed, when the rate is a gap. daily_return is on adj_close against
-- the previous published-quality bar, which may fall in the lookback before the window.
with prices as (
    select * from int_prices_checked where rejection_reason is null
),

with_returns as (
    select
        *,
        adj_close / lag(adj_close) over (partition by symbol order by bar_date) - 1 as daily_return
    from prices
),

in_window as (
    select * from with_returns
    where bar_date between cast(getvariable('window_start') as date) and cast(getvariable('window_end') as date)
),

keyed as (
    select
        in_window.*,
        securities.security_key,
        securities.currency_key,
        securities.exchange_key,
        fx.rate_to_usd
    from in_window
    inner join dim_security as securities
        on securities.symbol = in_window.symbol
        and in_window.bar_date between securities.valid_from and securities.valid_to
    left join fct_fx_rate as fx
        on fx.currency_key = securities.currency_key
        and fx.date_key = cast(strftime(in_window.bar_date, '%Y%m%d') as integer)
),

final as (
    select
        -- keys
        cast(strftime(bar_date, '%Y%m%d') as integer) as date_key,
        security_key,
        exchange_key,
        currency_key,
        symbol,
        -- measures (local currency)
        open,
        high,
        low,
        close,
        adj_close,
        cast(volume as bigint) as volume,
        daily_return,
        -- measures (USD)
        rate_to_usd as fx_rate_to_usd,
        close * rate_to_usd as close_usd,
        -- attributes
        is_vendor_adjusted,
        is_high_low_inverted,
        is_zero_volume,
        -- lineage
        source,
        getvariable('is_synthetic') as is_synthetic,
        source_file,
        run_id as landed_run_id,
        getvariable('run_id') as run_id
    from keyed
)

select * from final
