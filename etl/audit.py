"""Audit tables (run log, data-quality runs and results, quarantine): append-only Parquet files in the store.

They are written the moment a step ends, whether it passed or not, so a failed gate is visible to SQL users
through the published warehouse's audit views even though no mart changed.
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


def _tmp_path(path: Path) -> Path:
    """Where a file is written before its rename: a sub-folder the audit views' glob (<table>/*.parquet) never
    reads, so a writer killed half-way cannot leave a broken or duplicate file behind the views."""
    tmp_dir = path.parent / ".tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    return tmp_dir / f"{os.getpid()}-{path.name}"


def ensure_audit_schema_files(store_dir: Path) -> None:
    """An empty typed file per audit table, so its view exists before the first row does."""
    con = None
    for table, ddl in AUDIT_SCHEMAS.items():
        path = audit_dir(store_dir, table) / "_schema.parquet"
        if path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        con = con or duckdb.connect()
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
    con = duckdb.connect()
    try:
        con.execute(f"create temp table t ({AUDIT_SCHEMAS[table]})")
        if len(frame):
            con.register("frame", frame)
            columns = ", ".join(f'"{c}"' for c in frame.columns)
            con.execute(f"insert into t ({columns}) select {columns} from frame")
        con.execute(f"copy t to '{tmp}' (format parquet)")
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
