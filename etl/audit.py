"""Audit tables (run log, data-quality runs and results, quarantine): append-only Parquet files in the store.

They are written the moment a step ends, whether it passed or not, so a failed gate is visible to SQL users
through the published warehouse's audit views even though no mart changed.

Every run adds files (one per run and table, one per step for run_log), so reading them all would make every
publish and every audit query slower as history grows. Publish therefore compacts them (see `compact`): once
ETL_AUDIT_COMPACT_AT (64) loose files of a table are at least a day old, their rows are copied into one file
under <table>/compacted/, recorded with the names it replaces; the views read the compacted files plus the loose
files not replaced, so a reader never sees a row twice or loses one. The replaced loose files are deleted only
KEEP_MANIFESTS publishes later, when no published views file still reads them.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd

from etl.faults import pause_point

AUDIT_SCHEMAS: dict[str, str] = {
    "run_log": (
        "run_id varchar, step varchar, source varchar, market varchar, window_start date, window_end date, "
        "status varchar, rows_in bigint, rows_out bigint, rows_rejected bigint, details varchar, "
        "started_at timestamptz, finished_at timestamptz"
    ),
    "dq_run": (
        "run_id varchar, table_name varchar, suite_name varchar, rows_validated bigint, expectations bigint, "
        "failed_blocking bigint, failed_warning bigint, success boolean, validated_at timestamptz, "
        "duration_s double"
    ),
    "dq_result": (
        "run_id varchar, table_name varchar, suite_name varchar, expectation_type varchar, column_name varchar, "
        "severity varchar, success boolean, observed_value varchar, unexpected_count bigint, "
        "unexpected_percent double, examples varchar, kwargs varchar, validated_at timestamptz"
    ),
    "quarantine": (
        "table_name varchar, symbol varchar, bar_date date, reason varchar, source varchar, "
        "source_file varchar, raw_record varchar, run_id varchar"
    ),
    # a vendor restatement this run published: the values an earlier run had landed and the new ones
    "restatement": (
        "table_name varchar, symbol varchar, bar_date date, changed_columns varchar, previous_record varchar, "
        "new_record varchar, previous_run_id varchar, source varchar, run_id varchar"
    ),
}


def audit_dir(store_dir: Path, table: str) -> Path:
    return store_dir / "audit" / table


COMPACT_AT_ENV = "ETL_AUDIT_COMPACT_AT"
COMPACT_MIN_AGE_ENV = "ETL_AUDIT_COMPACT_MIN_AGE_S"
DEFAULT_COMPACT_AT = 64
DEFAULT_COMPACT_MIN_AGE_S = 86_400  # a run's audit files are left alone for a day (retries, late publish)


def _tmp_path(path: Path) -> Path:
    """Where a file is written before its rename: a sub-folder the audit views' glob (<table>/*.parquet) never
    reads, so a writer killed half-way cannot leave a broken or duplicate file behind the views."""
    tmp_dir = path.parent / ".tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    return tmp_dir / f"{os.getpid()}-{path.name}"


_connection: tuple[int, duckdb.DuckDBPyConnection] | None = None


def _cursor() -> duckdb.DuckDBPyConnection:
    """A cursor on this process's in-memory DuckDB for audit writes: a run appends ~10 audit files, and opening
    a database for each was two thirds of the ~18 ms one append took (issue 6). Per process (a forked child
    opens its own), one cursor per call (threads)."""
    global _connection
    if _connection is None or _connection[0] != os.getpid():
        _connection = (os.getpid(), duckdb.connect())
    return _connection[1].cursor()


def ensure_audit_schema_files(store_dir: Path) -> None:
    """An empty typed file per audit table, so its view exists before the first row does."""
    con = None
    for table, ddl in AUDIT_SCHEMAS.items():
        path = audit_dir(store_dir, table) / "_schema.parquet"
        if path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        con = con or _cursor()
        con.execute(f"create or replace temp table t ({ddl})")
        tmp = _tmp_path(path)
        con.execute(f"copy t to '{tmp}' (format parquet)")
        tmp.replace(path)
    if con:
        con.close()


def append(store_dir: Path, table: str, rows: pd.DataFrame | list[dict], name: str) -> Path:
    """Write rows as audit/<table>/<name>.parquet atomically (a retry with the same name replaces it)."""
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)
    ensure_audit_schema_files(store_dir)
    path = audit_dir(store_dir, table) / f"{name}.parquet"
    tmp = _tmp_path(path)
    con = _cursor()
    try:
        # temp tables belong to the cursor's own connection state: a name per table, replaced each call
        con.execute(f"create or replace temp table audit_rows ({AUDIT_SCHEMAS[table]})")
        if len(frame):
            con.register("frame", frame)
            columns = ", ".join(f'"{c}"' for c in frame.columns)
            con.execute(f"insert into audit_rows ({columns}) select {columns} from frame")
            con.unregister("frame")
        con.execute(f"copy audit_rows to '{tmp}' (format parquet)")
        con.execute("drop table audit_rows")
    finally:
        con.close()
    pause_point("audit:before_replace")
    tmp.replace(path)
    return path


def log_step(store_dir: Path, ctx, step: str, status: str, started_at: datetime, rows_in: int | None = None,
             rows_out: int | None = None, rows_rejected: int | None = None, details: dict | None = None) -> None:
    """One run_log row per step attempt; the file name keeps one row per (run, step)."""
    append(
        store_dir,
        "run_log",
        [
            {
                "run_id": ctx.run_id,
                "step": step,
                "source": ctx.source,
                "market": ctx.market or "all",
                "window_start": ctx.start,
                "window_end": ctx.end,
                "status": status,
                "rows_in": rows_in,
                "rows_out": rows_out,
                "rows_rejected": rows_rejected,
                "details": json.dumps(details or {}, default=str),
                "started_at": started_at,
                "finished_at": datetime.now(UTC),
            }
        ],
        f"{ctx.run_id}__{step}",
    )


# -- compaction (see the module docstring) ---------------------------------------------------------------------
def _compactions(store_dir: Path, table: str) -> list[tuple[Path, dict]]:
    """(record path, record) of each finished compaction of `table`, oldest first."""
    folder = audit_dir(store_dir, table) / "compacted"
    return [(p, json.loads(p.read_text())) for p in sorted(folder.glob("c*.json"))]


def _stat(path: Path) -> list[int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return [st.st_size, st.st_mtime_ns]


def audit_relation(store_dir: Path, table: str) -> str:
    """SQL relation of every row of an audit table: the compacted files plus the loose files not compacted.
    A loose file rewritten since its compaction (a retry of an old run) is read again."""
    folder = audit_dir(store_dir, table)
    replaced, compacted = [], []
    for _, record in _compactions(store_dir, table):
        compacted.append(str(folder / "compacted" / record["file"]))
        replaced += [name for name, stat in record["replaced"].items()
                     if not record.get("deleted") and _stat(folder / name) == stat]
    loose = (f"select * exclude (filename) from read_parquet('{folder / '*.parquet'}', union_by_name=true, "
             "hive_partitioning=false, filename=true)")
    if replaced:
        names = ", ".join("'" + n.replace("'", "''") + "'" for n in sorted(replaced))
        loose += f" where parse_filename(filename) not in ({names})"
    if not compacted:
        return f"({loose})"
    files = ", ".join(f"'{f}'" for f in compacted)
    return (f"({loose} union all by name select * from read_parquet([{files}], union_by_name=true, "
            "hive_partitioning=false))")


def compact(store_dir: Path, seq: int, keep_manifests: int) -> dict[str, int]:
    """Called by publish under its lock (one compactor at a time), before the views file of manifest `seq` is
    written. Deletes loose files replaced at least keep_manifests publishes ago, then compacts each table whose
    loose files (old enough, not yet replaced) reach ETL_AUDIT_COMPACT_AT. Returns files compacted per table."""
    at = int(os.environ.get(COMPACT_AT_ENV) or DEFAULT_COMPACT_AT)
    min_age = float(os.environ.get(COMPACT_MIN_AGE_ENV) or DEFAULT_COMPACT_MIN_AGE_S)
    now = datetime.now(UTC).timestamp()
    done: dict[str, int] = {}
    for table in AUDIT_SCHEMAS:
        folder = audit_dir(store_dir, table)
        compacted_dir = folder / "compacted"
        records = _compactions(store_dir, table)
        recorded = {r["file"] for _, r in records}
        for orphan in compacted_dir.glob("c*.parquet"):  # a compaction killed before its record was written
            if orphan.name not in recorded:
                orphan.unlink()
        replaced: set[str] = set()
        for path, record in records:
            if not record.get("deleted") and record["seq"] <= seq - keep_manifests:
                for name, stat in record["replaced"].items():
                    if _stat(folder / name) == stat:  # not rewritten since
                        (folder / name).unlink()
                record["deleted"] = True
                tmp = _tmp_path(path)
                tmp.write_text(json.dumps(record))
                tmp.replace(path)
            if not record.get("deleted"):
                replaced |= set(record["replaced"])
        loose = sorted(p for p in folder.glob("*.parquet") if p.name != "_schema.parquet"
                       and p.name not in replaced and now - p.stat().st_mtime >= min_age)
        if len(loose) < at:
            continue
        compacted_dir.mkdir(parents=True, exist_ok=True)
        name = f"c{seq:06d}"
        target = compacted_dir / f"{name}.parquet"
        tmp = _tmp_path(target)
        stats = {p.name: _stat(p) for p in loose}
        files = ", ".join(f"'{p}'" for p in loose)
        con = _cursor()
        try:
            con.execute(f"create or replace temp table t ({AUDIT_SCHEMAS[table]})")
            con.execute(f"insert into t by name select * from read_parquet([{files}], union_by_name=true, "
                        "hive_partitioning=false)")
            con.execute(f"copy t to '{tmp}' (format parquet, compression zstd)")
        finally:
            con.close()
        tmp.replace(target)
        record_tmp = _tmp_path(compacted_dir / f"{name}.json")
        record_tmp.write_text(json.dumps({"seq": seq, "file": target.name, "replaced": stats}))
        record_tmp.replace(compacted_dir / f"{name}.json")  # the compaction's commit point
        done[table] = len(loose)
    return done
