-- stg_landing__shares: one row per listing per observation date of shares outstanding; key (symbol, observed_date)
-- Yahoo's shares history repeats timestamps; the last value of a day in the latest extraction wins.
with landed as (
    select * from landing_shares
),

typed as (
    select
        symbol,
        cast(substr(cast("Date" as varchar), 1, 10) as date) as observed_date,
        cast(shares as double) as shares_outstanding,
        source,
        run_id,
        extracted_at
    from landed
    where shares is not null and shares > 0
),

latest as (
    select * from typed
    qualify row_number() over (partition by symbol, observed_date order by extracted_at desc, run_id desc) = 1
)

select * from latest
