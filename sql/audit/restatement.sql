-- restatement: one row per security per day of the window whose values this run landed differ from the extraction an earlier run landed; key (symbol, bar_date)
-- Rule: Yahoo re-adjusts history (Adj Close after a dividend, OHLC after a split); a run re-reads the last
-- restatement_lookback_days (etl/universe.yaml extract:) and staging publishes its newer row, replacing the old
-- one. This model records what changed so the update is visible, never a second row: it compares this run's
-- extraction of each (symbol, bar_date) with the latest extraction of an earlier run. Values are equal when
-- within 1e-9 relative (float noise between downloads is not a restatement).
with in_window as (
    select * from landing_prices
    where bar_date between cast(getvariable('window_start') as date) and cast(getvariable('window_end') as date)
),

-- only a (symbol, bar_date) an earlier run also landed can be restated: the comparison below runs on those
-- alone (a backfill's window holds millions of rows landed by this run only, and none of them qualifies)
earlier as (
    select distinct symbol, bar_date from in_window
    where run_id <> getvariable('run_id')
        -- etl.transform knows from the file names whether any other run landed in the window at all
        and coalesce(getvariable('window_has_other_runs'), true)
),

extractions as (
    select
        symbol,
        bar_date,
        run_id,
        extracted_at,
        cast("Open" as double) as open,
        cast("High" as double) as high,
        cast("Low" as double) as low,
        cast("Close" as double) as close,
        cast("Adj Close" as double) as adj_close,
        cast("Volume" as double) as volume,
        cast("Dividends" as double) as dividends,
        cast("Stock Splits" as double) as stock_splits
    from in_window
    semi join earlier using (symbol, bar_date)
    -- one row per extraction, chosen as staging chooses among duplicate dates
    qualify row_number() over (
        partition by symbol, bar_date, run_id, extracted_at order by "Close", "Open", "High", "Low", "Volume"
    ) = 1
),

current_run as (
    select * from extractions where run_id = getvariable('run_id')
),

previous as (
    select * from extractions where run_id <> getvariable('run_id')
    qualify row_number() over (partition by symbol, bar_date order by extracted_at desc, run_id desc) = 1
),

compared as (
    select
        cur.symbol,
        cur.bar_date,
        prev.run_id as previous_run_id,
        concat_ws(',',
            case when not (cur.open is not distinct from prev.open
                or abs(cur.open - prev.open) <= 1e-9 * greatest(abs(cur.open), abs(prev.open))) then 'open' end,
            case when not (cur.high is not distinct from prev.high
                or abs(cur.high - prev.high) <= 1e-9 * greatest(abs(cur.high), abs(prev.high))) then 'high' end,
            case when not (cur.low is not distinct from prev.low
                or abs(cur.low - prev.low) <= 1e-9 * greatest(abs(cur.low), abs(prev.low))) then 'low' end,
            case when not (cur.close is not distinct from prev.close
                or abs(cur.close - prev.close) <= 1e-9 * greatest(abs(cur.close), abs(prev.close))) then 'close' end,
            case when not (cur.adj_close is not distinct from prev.adj_close
                or abs(cur.adj_close - prev.adj_close) <= 1e-9 * greatest(abs(cur.adj_close), abs(prev.adj_close)))
                then 'adj_close' end,
            case when cur.volume is distinct from prev.volume then 'volume' end,
            case when cur.dividends is distinct from prev.dividends then 'dividends' end,
            case when cur.stock_splits is distinct from prev.stock_splits then 'stock_splits' end
        ) as changed_columns,
        to_json(struct_pack(open := prev.open, high := prev.high, low := prev.low, close := prev.close,
            adj_close := prev.adj_close, volume := prev.volume, dividends := prev.dividends,
            stock_splits := prev.stock_splits)) as previous_record,
        to_json(struct_pack(open := cur.open, high := cur.high, low := cur.low, close := cur.close,
            adj_close := cur.adj_close, volume := cur.volume, dividends := cur.dividends,
            stock_splits := cur.stock_splits)) as new_record
    from current_run as cur
    inner join previous as prev using (symbol, bar_date)
),

final as (
    select
        'fct_daily_price' as table_name, symbol, bar_date, changed_columns, cast(previous_record as varchar)
            as previous_record, cast(new_record as varchar) as new_record, previous_run_id,
        getvariable('source') as source, getvariable('run_id') as run_id
    from compared
    where changed_columns <> ''
)

select * from final
