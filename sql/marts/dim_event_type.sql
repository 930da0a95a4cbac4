-- dim_event_type: one row per financing event type; key (event_type_key)
with types as (
    select * from ref_event_type
),

final as (
    select
        -- keys
        surrogate_key(event_type_code) as event_type_key,
        -- attributes
        event_type_code,
        category,
        description
    from types
)

select * from final
