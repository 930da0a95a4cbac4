-- int_prices_checked: every staged bar with the reason it cannot be published (null when it can); key (symbol, bar_date)
-- Rules (each rejected row is quarantined with its reason, never dropped silently):
--   missing_close       Close is empty (e.g. the all-empty 1398.HK 2024-07-05 row in yfinance's test data)
--   non_positive_price  any of open/high/low/close <= 0
--   weekend_fx_bar      Yahoo sometimes emits a Saturday/Sunday FX bar (HKD=X 2024-12-07); FX days come from
--                       weekday quotes, weekends are carried over in fct_fx_rate instead
--   not_a_trading_day   an exchange-listed bar on a date that is not a session of its market's calendar
-- High < Low and zero-volume bars are real Yahoo quirks (HKEX half days): kept and flagged, GX warns.
with staged as (
    select * from stg_landing__prices
),

securities as (
    select symbol, security_type, market_code from stg_universe__securities
),

sessions as (
    select market_code, session_date from ref_session
),

checked as (
    select
        staged.*,
        securities.security_type,
        securities.market_code,
        case
            when securities.symbol is null then 'unknown_symbol'
            when staged.close is null then 'missing_close'
            when least(staged.open, staged.high, staged.low, staged.close) <= 0 then 'non_positive_price'
            when securities.security_type = 'fx' and dayofweek(staged.bar_date) in (0, 6) then 'weekend_fx_bar'
            when securities.security_type <> 'fx' and sessions.session_date is null then 'not_a_trading_day'
        end as rejection_reason
    from staged
    left join securities using (symbol)
    left join sessions
        on sessions.market_code = securities.market_code
        and sessions.session_date = staged.bar_date
)

select * from checked
