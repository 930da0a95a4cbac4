-- fct_corporate_action: one row per security per ex-date per action (cash dividend or split); key (security_key, date_key, action_type)
-- Rule: Yahoo repeats some splits (0981.HK's 10->1 consolidation appears on 2016-11-21 and 2016-12-07); a split
-- with the same ratio as the security's previous split less than 31 days earlier is that repeat: it is
-- quarantined (int_corporate_action_checked) and not counted twice.
with actions as (
    select * from int_corporate_action_checked
    where rejection_reason is null
      and bar_date between cast(getvariable('window_start') as date) and cast(getvariable('window_end') as date)
),

keyed as (
    select
        actions.*,
        securities.security_key,
        securities.currency_key,
        fx.rate_to_usd
    from actions
    inner join dim_security as securities
        on securities.symbol = actions.symbol
        and actions.bar_date between securities.valid_from and securities.valid_to
    left join fct_fx_rate as fx
        on fx.currency_key = securities.currency_key
        and fx.date_key = cast(strftime(actions.bar_date, '%Y%m%d') as integer)
),

final as (
    select
        -- keys
        cast(strftime(bar_date, '%Y%m%d') as integer) as date_key,
        security_key,
        currency_key,
        symbol,
        action_type,
        -- measures
        dividend_local,
        dividend_local * rate_to_usd as dividend_usd,
        split_ratio,
        -- lineage
        source,
        getvariable('is_synthetic') as is_synthetic,
        getvariable('run_id') as run_id
    from keyed
)

select * from final
