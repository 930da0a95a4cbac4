"""Parquet export after each publish: hard links to the current manifest's files, switched atomically."""

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
from etl.pipeline import run_all
from etl.store import Store, view_marts
from tests.conftest import query


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
            # audit tables as of the export: the publish step's own run_log row is written just after it
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
    def broken(settings, manifest=None, keep=KEEP_EXPORTS):
        raise OSError("No space left on device")

    with monkeypatch.context() as patch:  # (not monkeypatch.undo: that would also undo data_dir's env)
        patch.setattr("etl.store.export", broken)
        with pytest.raises(ExportError, match=r"is published \(manifest 1\).*python -m etl export"):
            run_all("sample", date(2025, 9, 1), date(2025, 9, 5))
    wh = data_dir / "warehouse.duckdb"
    assert query(wh, "select manifest_seq from warehouse_info") == [(1,)]  # readers have the new run
    assert not (data_dir / "export" / "current").exists()
    settings = Settings.from_env()
    assert settings.data_dir == data_dir
    export(settings)  # what `python -m etl export` does
    root = data_dir / "export"
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
