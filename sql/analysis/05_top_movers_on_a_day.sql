-- Question: which stocks and ADRs moved the most on a given day, up and down?
-- The day's move is daily_return (adj_close over the previous session's adj_close, so a dividend or split is
-- not a move). Equities and ADRs only; a market without a session that day simply has no rows.
-- One row per mover: direction (gainer / loser), its rank, the close and volume.
-- Parameters: set them before `.read` to override (a value already set wins); defaults are the Sept 2025 demo.
set variable on_date = coalesce(getvariable('on_date'), date '2025-09-15');
set variable top_n = coalesce(getvariable('top_n'), 5);

with moves as (
    select
        p.symbol,
        s.security_name,
        s.security_type,
        s.market_code,
        s.currency_code,
        d.calendar_date as trade_date,
        p.close,
        p.close_usd,
        p.volume,
        p.daily_return
    from fct_daily_price as p
    inner join dim_security as s using (security_key)
    inner join dim_date as d using (date_key)
    where d.calendar_date = getvariable('on_date')
      and s.security_type in ('equity', 'adr')
      and p.daily_return is not null
),

ranked as (
    select *, 'gainer' as direction, row_number() over (order by daily_return desc, symbol) as rank
    from moves where daily_return > 0
    union all
    select *, 'loser' as direction, row_number() over (order by daily_return, symbol) as rank
    from moves where daily_return < 0
),

final as (
    select
        trade_date,
        direction,
        rank,
        symbol,
        security_name,
        security_type,
        market_code,
        round(100 * daily_return, 2) as return_pct,
        round(close, 4) as close,
        currency_code,
        round(close_usd, 4) as close_usd,
        volume
    from ranked
    where rank <= getvariable('top_n')
)

select * from final
order by direction, rank
