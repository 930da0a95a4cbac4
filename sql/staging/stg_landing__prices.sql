-- stg_landing__prices: one row per symbol per local bar date, the latest extraction wins; key (symbol, bar_date)
-- Reads the landed raw frames of this run's window plus lookback (view landing_prices, set up by etl.transform).
-- Rules: vendor column names become snake_case; a (symbol, bar_date) landed by several runs keeps the row
-- with the latest extracted_at (a re-download supersedes, never duplicates); quirks are flagged, not fixed.
-- Duplicate dates inside one extraction: identical copies collapse into one row; copies that disagree are
-- kept as one row flagged is_conflicting_duplicate (int_prices_checked quarantines it: conflicting_duplicate_bar).
with landed as (
    select * from landing_prices
),

typed as (
    select
        symbol,
        bar_date,
        cast("Date" as varchar) as vendor_timestamp,
        cast("Open" as double) as open,
        cast("High" as double) as high,
        cast("Low" as double) as low,
        cast("Close" as double) as close,
        cast("Adj Close" as double) as adj_close_vendor,
        cast("Volume" as double) as volume,
        cast("Dividends" as double) as dividends,
        cast("Stock Splits" as double) as stock_splits,
        coalesce(auto_adjusted, false) as is_vendor_adjusted,
        source,
        cast(source_file as varchar) as source_file,
        run_id,
        extracted_at
    from landed
),

-- Only (symbol, bar_date) landed more than once need the rules below; every other row is its own latest
-- extraction and no duplicate (a 20-year backfill has 25M rows and no repeated key: no window over them).
repeated as (
    select symbol, bar_date from typed group by symbol, bar_date having count(*) > 1
),

copies as (
    select
        *,
        min(hash(open, high, low, close, adj_close_vendor, volume, dividends, stock_splits)) over extraction
            <> max(hash(open, high, low, close, adj_close_vendor, volume, dividends, stock_splits)) over extraction
            as is_conflicting_duplicate
    from typed
    semi join repeated using (symbol, bar_date)
    window extraction as (partition by symbol, bar_date, run_id, extracted_at)
),

latest as (
    select *, false as is_conflicting_duplicate
    from typed
    anti join repeated using (symbol, bar_date)
    union all
    select *
    from copies
    qualify row_number() over (
        partition by symbol, bar_date order by extracted_at desc, run_id desc, close, open, high, low, volume
    ) = 1
),

flagged as (
    select
        * exclude (is_conflicting_duplicate),
        -- A frame without Adj Close came from auto_adjust=True: its Close is already adjusted.
        coalesce(adj_close_vendor, close) as adj_close,
        high < low as is_high_low_inverted,
        coalesce(volume, 0) = 0 as is_zero_volume,
        is_conflicting_duplicate
    from latest
)

select * from flagged
