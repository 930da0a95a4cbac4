-- dim_company: one row per issuer in the universe, linking its listings; key (company_key)
with companies as (
    select * from ref_company
),

listings as (
    select
        company_id,
        count(*) as listing_count,
        bool_or(exchange_code = 'XHKG' and security_type = 'equity') as has_hong_kong_listing,
        bool_or(security_type = 'adr') as has_us_adr,
        string_agg(symbol, ', ' order by symbol) as listing_symbols
    from ref_listing
    where company_id is not null
    group by company_id
),

final as (
    select
        -- keys
        surrogate_key(companies.company_id) as company_key,
        -- attributes
        companies.company_id as company_code,
        companies.company_name,
        companies.sector,
        coalesce(listings.listing_count, 0) as listing_count,
        coalesce(listings.has_hong_kong_listing, false) as has_hong_kong_listing,
        coalesce(listings.has_us_adr, false) as has_us_adr,
        listings.listing_symbols
    from companies
    left join listings using (company_id)
)

select * from final
