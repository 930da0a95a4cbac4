-- quarantine: one row per landed record this run refused to publish, with its reason; key (table_name, symbol, bar_date, reason)
with prices as (
    select
        'fct_daily_price' as table_name, symbol, bar_date, rejection_reason as reason, source, source_file,
        to_json(struct_pack(vendor_timestamp, open, high, low, close, adj_close_vendor, volume)) as raw_record
    from int_prices_checked
    where rejection_reason is not null
      and bar_date between cast(getvariable('window_start') as date) and cast(getvariable('window_end') as date)
),

actions as (
    select
        'fct_corporate_action' as table_name, symbol, bar_date, rejection_reason as reason, source, source_file,
        to_json(struct_pack(action_type, dividend_local, split_ratio)) as raw_record
    from int_corporate_action_checked
    where rejection_reason is not null
      and bar_date between cast(getvariable('window_start') as date) and cast(getvariable('window_end') as date)
),

final as (
    select *, getvariable('run_id') as run_id from prices
    union all
    select *, getvariable('run_id') as run_id from actions
)

select * from final
