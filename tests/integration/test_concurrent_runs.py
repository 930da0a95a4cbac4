"""Two market runs whose steps interleave (what two DAGs at once do): the later publish must not undo the earlier.

Found by tests/production (HK and US DAGs at the same time on Celery): both runs transformed against an empty
warehouse, US published, then HK published curated events resolved without the US listings, so BABA's
convertible lost its security_key. publish_step now sees that its candidate is stale (another run published
after its transform), transforms and validates again on the new state, then publishes.
"""

from __future__ import annotations

from datetime import date

import pytest

from etl import pipeline
from etl.store import StaleCandidate, Store
from tests.conftest import query


def test_a_publish_after_another_runs_publish_rebuilds_on_the_new_state(data_dir):
    runs = {m: pipeline.start_run("sample", date(2025, 9, 1), date(2025, 9, 30), market=m).run_id
            for m in ("XHKG", "US")}
    for step in (pipeline.extract_step, pipeline.land_step, pipeline.transform_step, pipeline.validate_step):
        for run_id in runs.values():
            step(run_id)
    assert pipeline.publish_step(runs["US"])["rebuilt_from_seq"] == []
    assert pipeline.publish_step(runs["XHKG"])["rebuilt_from_seq"] == [0]

    wh = data_dir / "warehouse.duckdb"
    assert query(wh, "select manifest_seq from warehouse_info") == [(2,)]
    unresolved = query(wh, "select curated_event_id, symbol from fct_financing_event "
                           "where symbol in (select symbol from dim_security) and security_key is null")
    assert unresolved == []
    by_market = dict(query(wh, "select s.market_code, count(*) from fct_daily_price p "
                               "join dim_security s using (security_key) group by 1"))
    assert by_market == {"XHKG": 24 * 22, "US": 12 * 21, "FX": 2 * 22}


def test_the_store_refuses_a_candidate_built_on_an_older_publish(data_dir):
    run_id = pipeline.run_all("sample", date(2025, 9, 1), date(2025, 9, 5), market="US")["run_id"]
    from etl.run import RunContext
    from etl.transform import candidate_path

    settings = pipeline.Settings.from_env()
    ctx = RunContext.load(settings, run_id)
    with pytest.raises(StaleCandidate, match="transformed against manifest 0, the warehouse is at 1"):
        Store(settings).publish(candidate_path(ctx, settings), run_id, ctx.start, ctx.end, expected_seq=0)
    assert query(data_dir / "warehouse.duckdb", "select manifest_seq from warehouse_info") == [(1,)]
