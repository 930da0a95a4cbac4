"""Parquet export, a step of its own after publish: hard links to the current manifest's files, switched
atomically; it catches up on every publish since the last export, in order, is a no-op when up to date, and has a
lock of its own (a publish never waits for an export)."""

from __future__ import annotations

import json
import os
from datetime import date

import duckdb
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from etl.audit import AUDIT_SCHEMAS
from etl.config import Settings
from etl.export import KEEP_EXPORTS, ExportError, export
from etl.export_marts import MONTHLY
from etl.pipeline import (
    export_step,
    extract_step,
    land_step,
    publish_step,
    run_all,
    start_run,
    transform_step,
    validate_step,
)
from etl.store import Store, view_marts
from tests.conftest import query
from tests.integration.test_export_marts import MARTS, _same_as_the_views


def _export_files(root) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*.parquet")}


def test_each_publish_exports_the_current_manifest_as_linked_parquet(data_dir):
    run_all("sample", date(2025, 8, 1), date(2025, 8, 29))
    first = (data_dir / "export" / "current").resolve()
    run_all("sample", date(2025, 9, 1), date(2025, 9, 30))
    wh = data_dir / "warehouse.duckdb"
    current = data_dir / "export" / "current"
    store = Store(Settings.from_env())
    manifest = store.current()

    assert current.is_symlink() and current.resolve().name == "v000002"
    assert first.name == "v000001" and first.exists()  # the previous export stays for readers that hold it
    info = json.loads((current / "_export.json").read_text())
    assert info["manifest_seq"] == 2 and info["run_id"] == manifest["run_id"]

    # one folder per table: every published table, the view marts (materialised) and the audit tables
    expected = set(manifest["tables"]) | set(view_marts(manifest)) | set(AUDIT_SCHEMAS)
    assert {p.name for p in current.iterdir() if p.is_dir()} == expected == set(info["tables"])
    # only the current manifest's files, facts partitioned by month as in the store
    wanted = set()
    for table, parts in manifest["tables"].items():
        for part in parts:
            wanted.add(f"{table}/month={part}/data.parquet" if part not in ("all", "empty")
                       else f"{table}/data.parquet")
    wanted |= {f"{t}/data.parquet" for t in (set(view_marts(manifest)) - MONTHLY) | set(AUDIT_SCHEMAS)}
    # a view mart with a date (mart_adr_parity) is one file per month, like the facts
    for t in set(view_marts(manifest)) & MONTHLY:
        months = query(wh, f"select distinct strftime(strptime(cast(date_key as varchar), '%Y%m%d'), '%Y-%m') "
                           f"from {t}")
        wanted |= {f"{t}/month={m}/data.parquet" for (m,) in months}
    assert _export_files(current) == wanted
    assert {"fct_daily_price/month=2025-08/data.parquet",
            "fct_daily_price/month=2025-09/data.parquet"} <= wanted
    # hard links, not copies: the same inode as the store's immutable file
    for part, rel in manifest["tables"]["fct_daily_price"].items():
        assert os.stat(current / "fct_daily_price" / f"month={part}" / "data.parquet").st_ino == \
            os.stat(store.root / rel).st_ino

    # readable by pyarrow and by DuckDB with the same row counts as the warehouse views
    con = duckdb.connect()
    try:
        for table in sorted(expected):
            # audit tables as of the export: the export step's own run_log row is written just after it
            where = f" where finished_at <= '{info['audit_as_of']}'" if table == "run_log" else ""
            (rows,) = query(wh, f"select count(*) from {table}{where}")[0]
            files = [str(current / f) for f in info["tables"][table]["files"]]
            assert sum(pq.read_metadata(f).num_rows for f in files) == rows, table
            assert info["tables"][table]["rows"] == rows, table
            (duck,) = con.execute(f"select count(*) from read_parquet('{current / table}/**/*.parquet')").fetchone()
            assert duck == rows, table
    finally:
        con.close()
    # the month partition is a real hive partition for tools that read datasets
    prices = ds.dataset(current / "fct_daily_price", format="parquet", partitioning="hive")
    assert prices.count_rows() == query(wh, "select count(*) from fct_daily_price")[0][0]
    months = prices.to_table(columns=["month"]).column("month").unique().to_pylist()
    assert sorted(months) == ["2025-08", "2025-09"]
    # same columns as the warehouse view (the partition column aside)
    view_columns = [r[0] for r in query(wh, "describe fct_daily_price")]
    assert [f for f in prices.schema.names if f != "month"] == view_columns


def test_a_failed_export_says_the_run_is_published_then_old_exports_are_pruned(data_dir, monkeypatch):
    def broken(settings, manifest=None, keep=KEEP_EXPORTS, candidate=None):
        raise OSError("No space left on device")

    with monkeypatch.context() as patch:  # (not monkeypatch.undo: that would also undo data_dir's env)
        patch.setattr("etl.export.export", broken)  # where export_step looks it up
        with pytest.raises(ExportError, match=r"run run-x is published \(manifest 1\) but its Parquet export "
                                              r"failed: OSError: No space left on device; the published warehouse "
                                              r"is unaffected; clearing the `export` task or `python -m etl "
                                              r"export` retries it"):
            run_all("sample", date(2025, 9, 1), date(2025, 9, 5), run_id="run-x")
    wh = data_dir / "warehouse.duckdb"
    assert query(wh, "select manifest_seq from warehouse_info") == [(1,)]  # readers have the new run
    assert query(wh, "select status from run_log where step = 'publish'") == [("success",)]
    assert query(wh, "select status from run_log where step = 'export'") == [("failed",)]
    assert not (data_dir / "export" / "current").exists()
    settings = Settings.from_env()
    assert settings.data_dir == data_dir
    # the export task cleared: the same run's export step exports its manifest (its marts from its candidate)
    retried = export_step("run-x")
    assert retried["exported"] == [1] and retried["up_to_date"] is False
    root = data_dir / "export"
    assert retried["export"] == str((root / "current").resolve()) == str(root / "v000001")
    info = json.loads((root / "current" / "_export.json").read_text())
    assert info["manifest_seq"] == 1 and {info["tables"][m]["refresh"] for m in MARTS} == {"candidate"}
    assert query(wh, "select status from run_log where step = 'export'") == [("success",)]
    held = (root / "current").resolve()  # a reader that resolved `current` before the next exports
    held_files = _export_files(held)
    for _ in range(KEEP_EXPORTS + 1):
        result = export(settings)
    versions = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.is_symlink())
    assert versions == ["v000001-2", "v000001-3", "v000001-4"][-KEEP_EXPORTS:]
    assert (root / "current").resolve().name == "v000001-4" == os.path.basename(result["path"])
    # the data is unaffected by the earlier failure: same rows as the warehouse
    assert pq.read_metadata(root / "current" / "fct_daily_price" / "month=2025-09" / "data.parquet").num_rows == \
        query(wh, "select count(*) from fct_daily_price")[0][0]
    assert not held.exists()  # older than the last KEEP_EXPORTS: removed
    assert not [p for p in root.iterdir() if p.name.startswith(".tmp")]
    assert _export_files(root / "current") == held_files  # the same manifest exported again


def _publish(start: date, end: date) -> str:
    """Every step up to publish, and no export."""
    ctx = start_run("sample", start, end)
    extract_step(ctx.run_id)
    for step in (land_step, transform_step, validate_step, publish_step):
        step(ctx.run_id)
    return ctx.run_id


def test_one_export_catches_up_on_every_publish_since_the_last_in_order(data_dir, monkeypatch):
    _publish(date(2025, 9, 1), date(2025, 9, 5))
    second = _publish(date(2025, 9, 8), date(2025, 9, 12))
    root = data_dir / "export"
    assert not root.exists()  # publish does not export
    out = export_step(second)
    assert out["exported"] == [1, 2] and out["up_to_date"] is False and out["previous_seq"] is None
    assert out["export"] == str((root / "current").resolve()) == str(root / "v000002")
    first, last = (json.loads((root / v / "_export.json").read_text()) for v in ("v000001", "v000002"))
    assert (first["manifest_seq"], last["manifest_seq"]) == (1, 2) and first["exported_at"] < last["exported_at"]
    # manifest 1 is not this run's: its marts computed in full; manifest 2 refreshed from manifest 1's export
    assert {first["tables"][m]["refresh"] for m in MARTS} == {"full"}
    assert _same_as_the_views(data_dir) == {m: "incremental" for m in MARTS}
    (details,) = query(data_dir / "warehouse.duckdb",
                       f"select details from run_log where step = 'export' and run_id = '{second}'")[0]
    assert json.loads(details)["exported"] == [1, 2]

    # a broken chain (the exported manifest is gone: more than KEEP_MANIFESTS publishes ago): the current only
    monkeypatch.setattr("etl.store.KEEP_MANIFESTS", 1)
    third = _publish(date(2025, 9, 15), date(2025, 9, 19))
    assert not (data_dir / "store" / "manifests" / "manifest-000002.json").exists()
    assert export_step(third)["exported"] == [3]
    assert _same_as_the_views(data_dir) == {m: "full" for m in MARTS}


def test_an_export_of_what_is_exported_already_does_nothing(data_dir):
    run_id = run_all("sample", date(2025, 9, 1), date(2025, 9, 5))["run_id"]
    root = data_dir / "export"
    target = (root / "current").resolve()
    before = sorted(p.name for p in root.iterdir())
    again = export_step(run_id)  # a retry of the export task
    assert again == {"export": str(target), "exported": [], "up_to_date": True}
    assert (root / "current").resolve() == target and sorted(p.name for p in root.iterdir()) == before


def test_a_publish_never_waits_for_an_export_nor_an_export_for_a_publish(data_dir, monkeypatch):
    run_all("sample", date(2025, 9, 1), date(2025, 9, 5))
    root, store = data_dir / "export", Store(Settings.from_env())
    monkeypatch.setenv("ETL_PUBLISH_LOCK_TIMEOUT", "1")
    monkeypatch.setenv("ETL_EXPORT_LOCK_TIMEOUT", "1")
    with store.export_lock():  # an export in progress
        second = _publish(date(2025, 9, 8), date(2025, 9, 12))  # takes the publish lock only
        assert query(data_dir / "warehouse.duckdb", "select manifest_seq from warehouse_info") == [(2,)]
        assert (root / "current").resolve().name == "v000001"
        # a second export waits for the one in progress, then fails cleanly naming its lock
        with pytest.raises(ExportError, match=r"is published \(manifest 2\) but its Parquet export failed: "
                                              r"TimeoutError: another export holds .*\.export\.lock"):
            export_step(second)
    with store.lock():  # a publish in progress
        assert export_step(second)["exported"] == [2]
    assert (root / "current").resolve().name == "v000002"
