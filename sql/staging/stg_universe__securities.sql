-- stg_universe__securities: one row per listing in the universe file; key (symbol)
-- Reads ref_listing (the universe YAML, loaded by etl.transform) and the latest landed vendor metadata.
with listings as (
    select * from ref_listing
),

metadata as (
    select symbol, info
    from landing_metadata
    qualify row_number() over (partition by symbol order by extracted_at desc) = 1
),

joined as (
    select
        listings.*,
        json_extract_string(metadata.info, '$.longName') as vendor_name,
        json_extract_string(metadata.info, '$.sector') as vendor_sector,
        json_extract_string(metadata.info, '$.quoteType') as vendor_quote_type,
        -- the currency the vendor quotes the listing in (Yahoo Ticker.info currency); checked in int_prices_checked
        json_extract_string(metadata.info, '$.currency') as vendor_currency
    from listings
    left join metadata using (symbol)
)

select * from joined
