-- Question: how far did each security fall from its running peak in the window (maximum drawdown), from which
-- peak to which trough, has it recovered, and where does it stand now?
-- Drawdown on day t = adj_close(t) / max(adj_close up to t) - 1, so it is always <= 0 (adj_close: dividends and
-- splits are not falls). The peak is the running high before the deepest trough. One row per security.
-- Parameters: set them before `.read` to override (a value already set wins); defaults are the Sept 2025 demo.
set variable start_date = coalesce(getvariable('start_date'), date '2025-09-01');
set variable end_date = coalesce(getvariable('end_date'), date '2025-09-30');

with prices as (
    select
        p.symbol,
        s.security_type,
        d.calendar_date,
        p.adj_close
    from fct_daily_price as p
    inner join dim_security as s using (security_key)
    inner join dim_date as d using (date_key)
    where d.calendar_date between getvariable('start_date') and getvariable('end_date')
      and s.security_type <> 'fx'
),

running as (
    select
        *,
        max(adj_close) over (partition by symbol order by calendar_date
                             rows between unbounded preceding and current row) as running_peak
    from prices
),

drawdowns as (
    select
        *,
        adj_close / running_peak - 1 as drawdown
    from running
),

trough as (
    -- the deepest point (earliest if tied) and the peak it fell from
    select
        symbol,
        any_value(security_type) as security_type,
        min(drawdown) as max_drawdown,
        arg_min(calendar_date, (drawdown, calendar_date)) as trough_date,
        arg_min(running_peak, (drawdown, calendar_date)) as peak_adj_close,
        arg_max(drawdown, calendar_date) as current_drawdown,
        max(calendar_date) as last_date
    from drawdowns
    group by symbol
),

final as (
    select
        t.symbol,
        t.security_type,
        (select min(p.calendar_date) from prices as p
         where p.symbol = t.symbol and p.adj_close = t.peak_adj_close and p.calendar_date <= t.trough_date)
            as peak_date,
        t.trough_date,
        round(100 * t.max_drawdown, 2) as max_drawdown_pct,
        (select min(p.calendar_date) from prices as p
         where p.symbol = t.symbol and p.calendar_date > t.trough_date and p.adj_close >= t.peak_adj_close)
            as recovered_on,
        t.last_date,
        round(100 * t.current_drawdown, 2) as current_drawdown_pct
    from trough as t
)

select * from final
order by max_drawdown_pct, symbol
