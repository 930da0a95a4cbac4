"""Audit files are compacted as runs accumulate, so publish and audit queries do not slow down with history:
every row stays visible exactly once, through new and older views files, and replaced files go away later."""

from __future__ import annotations

import shutil
from datetime import date, timedelta

from etl import store
from etl.pipeline import run_all
from tests.conftest import query

AUDIT_KEYS = {
    "run_log": "run_id, step",
    "dq_run": "run_id, table_name",
}


def _snapshot(warehouse):
    return {t: sorted(query(warehouse, f"select {k}, count(*) from {t} group by all")) for t, k in AUDIT_KEYS.items()}


def test_compaction_keeps_every_audit_row_exactly_once(data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("ETL_AUDIT_COMPACT_AT", "4")
    monkeypatch.setenv("ETL_AUDIT_COMPACT_MIN_AGE_S", "0")
    keep = 3
    monkeypatch.setattr(store, "KEEP_MANIFESTS", keep)
    warehouse = data_dir / "warehouse.duckdb"
    day, runs, held = date(2025, 9, 1), [], None
    for i in range(keep + 4):
        while day.weekday() >= 5:
            day += timedelta(days=1)
        runs.append(run_all("sample", day, day, market="XHKG")["run_id"])
        day += timedelta(days=1)
        if i == 1:  # a reader's copy of an early views file, before any compaction
            held = tmp_path / "held.duckdb"
            shutil.copy(warehouse, held)
            held_rows = _snapshot(held)
        snap = _snapshot(warehouse)
        # every step of every run so far, once; every validated table of every run, once
        assert {r for r, *_ in snap["run_log"]} == set(runs)
        assert all(n == 1 for *_, n in snap["run_log"] + snap["dq_run"])
        # a views file published earlier (a reader holding it) reads the loose files live: it never shows a row
        # twice, and keeps every row it showed while its manifest is among the last KEEP_MANIFESTS
        if held is not None and i <= keep:
            old = _snapshot(held)
            assert all(n == 1 for *_, n in old["run_log"] + old["dq_run"])
            assert all(set(held_rows[t]) <= set(old[t]) for t in AUDIT_KEYS)

    run_log = data_dir / "store" / "audit" / "run_log"
    compacted = sorted((run_log / "compacted").glob("c*.parquet"))
    assert compacted, "run_log was compacted"
    loose = [p for p in run_log.glob("*.parquet") if p.name != "_schema.parquet"]
    # the files replaced by the first compaction are gone; what is left loose is less than all steps of all runs
    steps = query(warehouse, "select count(*) from run_log")[0][0]
    assert len(loose) < steps
    assert query(warehouse, "select count(*) from run_log") == [(steps,)]
