-- int_security_versions: type-2 history of the run's listings; key (symbol, valid_from)
-- Tracked attributes come from the universe file (company, exchange, currency, type, ADR ratio, underlying,
-- name). When one changes, the published current row is closed the day before this run's window and a new
-- version starts on window_start (or, when the open version already starts inside the window, that version is
-- amended in place); a listing seen for the first time is valid from 1900-01-01.
-- Vendor metadata (name, sector) is type-1: refreshed in place, it never opens a version.
with attributes as (
    select
        symbol,
        company_id,
        exchange_code,
        currency as currency_code,
        security_type,
        adr_ratio,
        underlying_symbol,
        market_code,
        coalesce(listing_name, company_name) as security_name,
        vendor_name,
        vendor_sector,
        md5(concat_ws('|', symbol, coalesce(company_id, ''), exchange_code, currency, security_type,
            coalesce(cast(adr_ratio as varchar), ''), coalesce(underlying_symbol, ''),
            coalesce(listing_name, company_name, ''))) as attribute_hash
    from stg_universe__securities
    where symbol in (select symbol from run_symbols)
),

published as (
    select * from published_dim_security
    where symbol in (select symbol from run_symbols)
),

current_published as (
    select * from published where is_current
),

changes as (
    select
        attributes.*,
        attributes.symbol not in (select symbol from published) as is_new_listing,
        current_published.valid_from as current_valid_from,
        current_published.attribute_hash is distinct from attributes.attribute_hash as has_changed,
        -- the open version already starts inside this window (the window ran before): amend it in place,
        -- keeping its valid_from and so its key, instead of closing it before it began
        coalesce(current_published.valid_from >= cast(getvariable('window_start') as date), false)
            as amends_current
    from attributes
    left join current_published using (symbol)
),

opened as (
    select
        symbol, company_id, exchange_code, currency_code, security_type, adr_ratio, underlying_symbol,
        market_code, security_name, vendor_name, vendor_sector, attribute_hash,
        case
            when is_new_listing then date '1900-01-01'
            when amends_current then current_valid_from
            else cast(getvariable('window_start') as date)
        end as valid_from,
        date '9999-12-31' as valid_to
    from changes
    where has_changed
),

kept as (
    select
        published.symbol, published.company_id, published.exchange_code, published.currency_code,
        published.security_type, published.adr_ratio, published.underlying_symbol, published.market_code,
        published.security_name,
        -- type-1 vendor attributes follow the latest metadata on the open row
        case when published.is_current then coalesce(changes.vendor_name, published.vendor_name)
            else published.vendor_name end as vendor_name,
        case when published.is_current then coalesce(changes.vendor_sector, published.vendor_sector)
            else published.vendor_sector end as vendor_sector,
        published.attribute_hash,
        published.valid_from,
        case when published.is_current and changes.has_changed
            then cast(getvariable('window_start') as date) - 1 else published.valid_to end as valid_to
    from published
    left join changes using (symbol)
    where not (published.is_current and coalesce(changes.has_changed and changes.amends_current, false))
),

versions as (
    select * from kept
    union all
    select * from opened
)

select * from versions
