"""A daily export reuses the export directory gc would delete next instead of building ~1,200 directories and
links from nothing (etl/export.py _recycle): the result is exactly the new manifest's export, no file of the old
one is left, and the export directories still kept for readers never change (no write goes through a hard link
they share)."""

from __future__ import annotations

import hashlib
import json
from datetime import date

import duckdb

from etl.config import Settings
from etl.export import KEEP_EXPORTS
from etl.pipeline import run_all
from etl.store import Store
from tests.conftest import query
from tests.integration.test_export_marts import _same_as_the_views


def _tree(folder) -> dict[str, tuple[str, int]]:
    return {str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_ino)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_recycled_export_is_the_new_manifest_and_leaves_the_kept_exports_alone(data_dir):
    assert KEEP_EXPORTS == 3
    windows = [(date(2025, 8, 1), date(2025, 8, 29)), (date(2025, 9, 1), date(2025, 9, 12)),
               (date(2025, 9, 15), date(2025, 9, 19))]
    for start, end in windows:
        run_all("sample", start, end)
    root = data_dir / "export"
    kept = {v: _tree(root / v) for v in ("v000002", "v000003")}
    oldest = _tree(root / "v000001")
    oldest_folder = (root / "v000001").stat().st_ino

    out = run_all("sample", date(2025, 9, 22), date(2025, 9, 30))

    assert out["export"]["exported"] == [4]
    assert sorted(p.name for p in root.iterdir() if p.name.startswith("v")) == ["v000002", "v000003", "v000004"]
    assert (root / "current").resolve().name == "v000004"
    assert (root / "v000004").stat().st_ino == oldest_folder  # v000001's folder, renamed and reconciled
    # the versions readers may still hold: byte for byte and inode for inode as before
    for version, tree in kept.items():
        assert _tree(root / version) == tree, version
    current = root / "current"
    info = json.loads((current / "_export.json").read_text())
    assert info["manifest_seq"] == 4
    # exactly the files the new export lists: nothing left over from v000001, no empty folder
    listed = {f for table in info["tables"].values() for f in table["files"]} | {"_export.json"}
    assert set(_tree(current)) == listed
    assert all(any(p.iterdir()) for p in current.rglob("*") if p.is_dir())
    # the recycled directory's audit tables and marts were rewritten, not kept: the audit tables have run 4's rows
    assert _tree(current)["run_log/data.parquet"][0] != oldest["run_log/data.parquet"][0]
    # store files are hard links (the same inode as the store's file), with the warehouse's row counts
    store = Store(Settings.from_env())
    wh = data_dir / "warehouse.duckdb"
    for table, parts in store.current()["tables"].items():
        for part, rel in parts.items():
            target = current / table / (f"month={part}/data.parquet" if part not in ("all", "empty")
                                        else "data.parquet")
            assert target.stat().st_ino == (store.root / rel).stat().st_ino, target
        (rows,) = duckdb.sql(f"select count(*) from read_parquet('{current / table}/**/*.parquet')").fetchone()
        assert rows == query(wh, f"select count(*) from {table}")[0][0], table
    # the view marts equal the warehouse's views, refreshed incrementally from v000003
    assert _same_as_the_views(data_dir) == {"mart_adr_parity": "incremental", "mart_event_reaction": "incremental"}
