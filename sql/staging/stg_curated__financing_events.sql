-- stg_curated__financing_events: one row per curated deal (etl/events/curated_financing_events.yaml); key (event_id)
-- The file is checked on load (etl/events): unknown companies, impossible dates or amounts, missing source.
select * from ref_curated_event
