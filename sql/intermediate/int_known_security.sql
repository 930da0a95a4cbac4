-- int_known_security: every listing version known after this run (this run's versions replace published ones); key (security_key)
with candidate as (
    select symbol, security_key, company_key, valid_from, valid_to, market_code, security_type
    from dim_security
),

published as (
    select symbol, security_key, company_key, valid_from, valid_to, market_code, security_type
    from published_dim_security
    where symbol not in (select symbol from candidate)
)

select * from candidate
union all
select * from published
