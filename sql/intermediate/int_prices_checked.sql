-- int_prices_checked: every staged bar with the reason it cannot be published (null when it can); key (symbol, bar_date)
-- Rules (each rejected row is quarantined with its reason, never dropped silently):
--   missing_close       Close is empty (e.g. the all-empty 1398.HK 2024-07-05 row in yfinance's test data)
--   non_positive_price  any of open/high/low/close <= 0
--   weekend_fx_bar      Yahoo sometimes emits a Saturday/Sunday FX bar (HKD=X 2024-12-07); FX days come from
--                       weekday quotes, weekends are carried over in fct_fx_rate instead
--   not_a_trading_day   an exchange-listed bar on a date that is not a session of its market's calendar
--   non_finite_price    an infinite or NaN price (a "inf" cell, a division by zero upstream)
--   negative_volume     Volume < 0
--   missing_adj_close   the source sends Adj Close (not auto-adjusted) but this row's is empty: the adjusted
--                       series would silently fall back to the raw close
--   timestamp_not_local_midnight  a daily bar stamped at another hour of the exchange's local day: a
--                       timezone-shifted file (e.g. HK bars written in UTC without an offset), date unreliable
--   conflicting_duplicate_bar     the same date twice in one extraction with different values
--   implausible_fx_rate an FX quote outside the pair's quote_range in the universe (inverted or mis-scaled)
--   currency_mismatch   the vendor quotes the listing in another currency than the universe says
-- (non-positive Adj Close counts as non_positive_price.)
-- High < Low and zero-volume bars are real Yahoo quirks (HKEX half days): kept and flagged, GX warns.
with staged as (
    select * from stg_landing__prices
),

securities as (
    select symbol, security_type, market_code, currency, quote_min, quote_max, vendor_currency
    from stg_universe__securities
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
            when not (isfinite(staged.close) and isfinite(coalesce(staged.open, 0)) and isfinite(coalesce(staged.high, 0))
                      and isfinite(coalesce(staged.low, 0)) and isfinite(coalesce(staged.adj_close, 0)))
                then 'non_finite_price'
            when least(staged.open, staged.high, staged.low, staged.close, staged.adj_close) <= 0
                then 'non_positive_price'
            when securities.security_type = 'fx' and dayofweek(staged.bar_date) in (0, 6) then 'weekend_fx_bar'
            when securities.security_type <> 'fx' and sessions.session_date is null then 'not_a_trading_day'
            when staged.volume < 0 then 'negative_volume'
            when not staged.is_vendor_adjusted and staged.adj_close_vendor is null then 'missing_adj_close'
            when length(staged.vendor_timestamp) > 10 and substr(staged.vendor_timestamp, 12, 8) <> '00:00:00'
                then 'timestamp_not_local_midnight'
            when staged.is_conflicting_duplicate then 'conflicting_duplicate_bar'
            when securities.security_type = 'fx'
                and (staged.close < securities.quote_min or staged.close > securities.quote_max)
                then 'implausible_fx_rate'
            when securities.vendor_currency <> securities.currency then 'currency_mismatch'
        end as rejection_reason
    from staged
    left join securities using (symbol)
    left join sessions
        on sessions.market_code = securities.market_code
        and sessions.session_date = staged.bar_date
)

select * from checked
