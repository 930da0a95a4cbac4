"""Parquet export of the published warehouse for tools that do not speak DuckDB (Spark, pandas, Power BI, ...).

Layout, under ETL_DATA_DIR/export/:

    current -> v000012/                      symlink, switched atomically after each export
    v000012/_export.json                     manifest seq, run, tables, files and row counts
    v000012/fct_daily_price/month=2025-09/data.parquet
    v000012/dim_security/data.parquet
    v000012/run_log/data.parquet             audit tables, one compacted file each

The store's Parquet files are immutable and named by the manifest, so an export is a new directory of hard
links to the current manifest's files (no data is copied; a copy only where hard links are impossible, e.g.
another filesystem). Marts the warehouse publishes as views (mart_event_reaction, mart_adr_parity) are
materialised, and the audit tables (many small append-only files) compacted, into one file each.
The directory is built under a temporary name, renamed, and only then does `current` switch, so a reader never
sees half an export. The last KEEP_EXPORTS directories are kept for readers that resolved `current` earlier; once
there are that many, the oldest is not deleted but renamed to the temporary name and reconciled into the new
export (`_recycle`, `_reconcile`), so a daily export touches what changed, not ~1,200 folders and links.

The export is a pipeline step of its own, after publish (etl.pipeline.export_step, the DAG's `export` task), under
a lock of its own (Store.export_lock): it exports, in order, every manifest published since the one `current`
shows (`pending`), so each refreshes its view marts from the export before it.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from etl.audit import AUDIT_SCHEMAS, audit_relation, ensure_audit_schema_files
from etl.config import Settings, duckdb_config
from etl.export_marts import MONTHLY, materialise, previous_export

KEEP_EXPORTS = 3
CURRENT = "current"
MANIFEST_FILE = "_export.json"


class ExportError(RuntimeError):
    """The warehouse was published but its Parquet export could not be written."""


def export_dir(settings: Settings) -> Path:
    return settings.data_dir / "export"


def exported(settings: Settings) -> dict | None:
    """The _export.json of export/current (its manifest_seq, run_id, published_at, ...); None before the first
    export."""
    try:
        return json.loads((export_dir(settings) / CURRENT / MANIFEST_FILE).read_text())
    except (OSError, ValueError):
        return None


def pending(settings: Settings) -> tuple[dict | None, list[dict]]:
    """(what export/current shows, the manifests to export, in order, to bring it up to the store's current one).

    Every manifest after the exported one (from the first one when nothing was exported yet), so each export
    refreshes its view marts incrementally from the one before (etl/export_marts.py needs the previous export to
    be of seq - 1, else it recomputes them in full); only while the exported manifest and every one after it are
    still on disk, no more than KEEP_MANIFESTS back (the store deletes older manifests and their files).
    Otherwise (a broken chain, or a store rebuilt under an older export) just the current manifest. Empty when
    the current manifest is the exported one, or nothing is published."""
    from etl.store import KEEP_MANIFESTS, Store

    store = Store(settings)
    current = store.current()
    shown = exported(settings)
    if current["seq"] == 0:
        return shown, []
    seq = shown.get("manifest_seq") if shown else None
    if seq == current["seq"] and shown.get("published_at") == current.get("published_at"):
        return shown, []
    chain: list[dict] = []
    if shown is None:
        seq = 0  # no export yet: from the first manifest, while it is on disk
    if isinstance(seq, int) and current["seq"] - KEEP_MANIFESTS <= seq < current["seq"]:
        try:
            manifests = [json.loads((store.manifests / f"manifest-{k:06d}.json").read_text())
                         for k in range(max(seq, 1), current["seq"])]
        except (OSError, ValueError):
            manifests = None  # gone (older than KEEP_MANIFESTS publishes) or unreadable: the chain is broken
        if manifests is not None and seq == 0:
            chain = manifests
        elif manifests and manifests[0].get("published_at") == shown.get("published_at"):
            chain = manifests[1:]  # (a store rebuilt since that export has other manifests under its seqs)
    return shown, [*chain, current]


def _recycle(root: Path, keep: int, tmp: Path) -> str | None:
    """Rename the export directory the next gc would remove (the oldest of `keep`, never the current one) to
    `tmp`, to be reconciled into the new export instead of building ~1,200 directories and links from nothing
    and deleting as many: on a 20-year warehouse that churn was most of a daily export and grew with history
    (issue 6). A reader that still held the old directory sees it gone, as it would after gc. Its name, or
    None when there is nothing to recycle."""
    versions = _versions(root)
    if not keep or len(versions) < keep:
        return None
    current = (root / CURRENT).resolve() if (root / CURRENT).exists() else None
    oldest = versions[0]
    if oldest.resolve() == current:
        return None
    oldest.rename(tmp)
    return oldest.name


def _reconcile(tmp: Path, links: dict[Path, Path]) -> tuple[set[Path], list[Path]]:
    """Keep the files of a recycled directory that are already hard links to the store file the new export
    wants at that path (`links`: target -> source); unlink every other file (stale partitions, view marts,
    audit tables, _export.json: written or linked again, never written through a shared inode). Returns (the
    kept targets, the directories emptied, deepest first, to remove if still empty at the end)."""
    kept: set[Path] = set()
    emptied: list[Path] = []
    for folder, _dirs, files in os.walk(tmp, topdown=False):
        folder_path = Path(folder)
        left = False
        for name in files:
            path = folder_path / name
            source = links.get(path)
            if source is not None:
                try:
                    same = os.path.samefile(path, source)
                except OSError:
                    same = False
                if same:
                    kept.add(path)
                    left = True
                    continue
            path.unlink()
        if not left:
            emptied.append(folder_path)
    return kept, emptied


def _link_or_copy(source: Path, target: Path) -> str:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
        return "link"
    except OSError:  # another filesystem, or one without hard links
        shutil.copy2(source, target)
        return "copy"


def _target(folder: Path, table: str, part: str) -> Path:
    """Where a store file of `table` goes in an export directory: month=YYYY-MM/data.parquet, or data.parquet."""
    return (folder / table / f"month={part}" / "data.parquet" if part not in ("all", "empty")
            else folder / table / "data.parquet")


def _sort_key(path: Path) -> tuple[int, int]:
    seq, _, n = path.name[1:].partition("-")
    return int(seq), int(n or 0)


def _versions(root: Path) -> list[Path]:
    """Export directories, oldest first."""
    return sorted((p for p in root.glob("v[0-9]*") if p.is_dir() and not p.is_symlink()), key=_sort_key)


def _version_name(root: Path, seq: int) -> str:
    """v<seq>, or v<seq>-<n> (n above any earlier one) when that manifest was exported before (a re-export)."""
    earlier = [_sort_key(p)[1] for p in _versions(root) if _sort_key(p)[0] == seq]
    return f"v{seq:06d}" if not earlier else f"v{seq:06d}-{max(earlier) + 1}"


def export(settings: Settings, manifest: dict | None = None, keep: int = KEEP_EXPORTS,
           candidate: Path | None = None) -> dict:
    """Export the manifest's tables (default: the current one) and switch export/current to it.

    candidate: the candidate just published as the store's first manifest; its view marts were computed over
    exactly the published rows, so they are copied instead of computed again (a 25M-row backfill: ~12 s)."""
    from etl.store import Store, view_marts
    from etl.transform import model_sql

    store = Store(settings)
    manifest = manifest or store.current()
    root = export_dir(settings)
    root.mkdir(parents=True, exist_ok=True)
    name = _version_name(root, manifest["seq"])
    tmp = root / f".tmp-{name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tables: dict[str, dict] = {}
    modes: set[str] = set()
    # store files are immutable: their row counts are carried from the previous export instead of reading
    # every file's footer again (960 month files in a 20-year warehouse)
    known_rows = dict((exported(settings) or {}).get("store_rows", {}))
    store_rows: dict[str, int] = {}
    links = {_target(tmp, table, part): store.root / rel
             for table, parts in manifest["tables"].items() for part, rel in parts.items()}
    recycled = _recycle(root, keep, tmp)
    try:
        kept, emptied = _reconcile(tmp, links) if recycled else (set(), [])
        for table, parts in sorted(manifest["tables"].items()):
            files, rows = [], 0
            for part, rel in sorted(parts.items()):
                target = _target(tmp, table, part)
                modes.add("link" if target in kept else _link_or_copy(store.root / rel, target))
                files.append(str(target.relative_to(tmp)))
                count = known_rows.get(rel)
                store_rows[rel] = pq.read_metadata(target).num_rows if count is None else count
                rows += store_rows[rel]
            tables[table] = {"files": files, "rows": rows, "partitioned_by": "month" if files and
                             "month=" in files[0] else None}
        con = duckdb.connect(config=duckdb_config())
        try:
            # marts published as views over the facts (etl/store.py VIEW_MARTS) are materialised from the same
            # manifest files, in a private in-memory database (never the published file)
            for table, parts in sorted(manifest["tables"].items()):
                files = ", ".join(f"'{store.root / rel}'" for _, rel in sorted(parts.items()))
                con.execute(f"create view {table} as select * from read_parquet([{files}], hive_partitioning=false)")
            # refreshed from the previous export where only the publish window changed (etl/export_marts.py)
            previous, previous_dir = previous_export(root, store.manifests)
            adopt = candidate is not None and manifest["seq"] == 1
            if adopt:
                con.execute(f"attach '{candidate}' as cand (read_only)")
            for view in view_marts(manifest):
                (tmp / view).mkdir(parents=True, exist_ok=True)

                def link(source: Path, target: Path) -> None:
                    modes.add(_link_or_copy(source, target))

                refresh, written = materialise(con, view, model_sql("marts/" + view), store.root, manifest,
                                               previous, previous_dir, tmp / view, link,
                                               adopt=f"cand.{view}" if adopt else None)
                files = sorted(str(f.relative_to(tmp)) for f in written)
                tables[view] = {"files": files, "rows": sum(pq.read_metadata(f).num_rows for f in written),
                                "partitioned_by": "month" if view in MONTHLY else None, "materialised_view": True,
                                "refresh": refresh}
            audit_as_of = datetime.now(UTC).isoformat()  # audit rows written later are in the next export
            ensure_audit_schema_files(store.root)
            for table in AUDIT_SCHEMAS:
                target = tmp / table / "data.parquet"
                target.parent.mkdir(parents=True, exist_ok=True)
                con.execute(f"copy (select * from {audit_relation(store.root, table)}) to '{target}' "
                            "(format parquet, compression zstd)")
                tables[table] = {"files": [str(target.relative_to(tmp))], "rows": pq.read_metadata(target).num_rows,
                                 "partitioned_by": None}
        finally:
            con.close()
        info = {
            "manifest_seq": manifest["seq"],
            "run_id": manifest.get("run_id"),
            "published_at": manifest.get("published_at"),
            "exported_at": datetime.now(UTC).isoformat(),
            "audit_as_of": audit_as_of,
            "tables": tables,
            "store_rows": store_rows,
        }
        (tmp / MANIFEST_FILE).write_text(json.dumps(info, indent=1, sort_keys=True))
        for folder in emptied:  # a recycled directory's partitions and tables the new export has no file in
            try:
                folder.rmdir()
            except OSError:  # refilled: not empty
                pass
        tmp.rename(root / name)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    pointer = root / f".tmp-{CURRENT}-{os.getpid()}"
    pointer.unlink(missing_ok=True)
    pointer.symlink_to(name, target_is_directory=True)
    pointer.replace(root / CURRENT)  # the switch: rename over the old symlink is atomic
    removed = ([recycled] if recycled else []) + gc(settings, keep)
    return {"path": str(root / name), "current": str(root / CURRENT), "tables": len(tables),
            "files": sum(len(t["files"]) for t in tables.values()), "mode": sorted(modes) or ["link"],
            "removed": removed}


def gc(settings: Settings, keep: int = KEEP_EXPORTS) -> list[str]:
    """Remove export directories beyond the last `keep` (never the current one) and stale temporaries."""
    root = export_dir(settings)
    current = (root / CURRENT).resolve() if (root / CURRENT).exists() else None
    versions = _versions(root)
    removed = []
    for path in versions[:-keep] if keep else versions:
        if path.resolve() != current:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path.name)
    for path in root.glob(".tmp-*"):
        if not str(path.name).endswith(f"-{os.getpid()}"):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
    return removed
