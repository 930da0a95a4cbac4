-- int_corporate_action_checked: one row per landed dividend or split, with a rejection reason or null; key (symbol, bar_date, action_type)
with staged as (
    select * from stg_landing__prices
),

dividends as (
    select symbol, bar_date, 'cash_dividend' as action_type, dividends as dividend_local,
        cast(null as double) as split_ratio, source, source_file, close as bar_close
    from staged
    -- Yahoo writes 0 on days without a dividend; anything else is a dividend, and a non-positive one is refused
    where dividends is not null and dividends <> 0
),

splits as (
    select symbol, bar_date,
        case when stock_splits >= 1 then 'stock_split' else 'consolidation' end as action_type,
        cast(null as double) as dividend_local, stock_splits as split_ratio, source, source_file
    from staged
    -- Yahoo writes 0 (and some exports 1) on days without a split
    where stock_splits is not null and stock_splits <> 0 and stock_splits <> 1
),

split_history as (
    select
        *,
        lag(bar_date) over (partition by symbol order by bar_date) as previous_split_date,
        lag(split_ratio) over (partition by symbol order by bar_date) as previous_split_ratio
    from splits
),

checked as (
    select * exclude (previous_split_date, previous_split_ratio),
        case
            when split_ratio < 0 then 'invalid_split_ratio'
            when previous_split_ratio = split_ratio and bar_date - previous_split_date <= 30
                then 'duplicate_split_repeat'
        end as rejection_reason
    from split_history
    union all
    select * exclude (bar_close),
        case
            when dividend_local is null or dividend_local <= 0 then 'invalid_dividend'
            -- a cash dividend at least as large as the share price is a unit or scale error, not a payment
            when dividend_local >= bar_close then 'dividend_exceeds_price'
        end
    from dividends
)

select * from checked
