-- stg_landing__filings: one row per SEC filing of a listing; key (symbol, filing_date, form_type, filing_url)
with landed as (
    select * from landing_filings
),

typed as (
    select
        symbol,
        cast(filing_date as date) as filing_date,
        upper(trim(form_type)) as form_type,
        title as filing_title,
        url as filing_url,
        source,
        run_id,
        extracted_at
    from landed
    where filing_date is not null and form_type is not null
),

latest as (
    select * from typed
    qualify row_number() over (
        partition by symbol, filing_date, form_type, coalesce(filing_url, '') order by extracted_at desc
    ) = 1
)

select * from latest
