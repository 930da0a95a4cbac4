"""The store behind the published warehouse: immutable Parquet files, a manifest, and a views-only DuckDB file.

Publishing writes new Parquet files (never rewrites one), records them in a new manifest, then builds a small
DuckDB file holding only views over those files and renames it over the published one. A reader that opened
the old file keeps reading the old, complete state (its files are kept for the next KEEP_MANIFESTS publishes);
a new reader sees the whole new run. Facts are stored one file per month, so a daily publish rewrites the
current month only: its cost follows the new data, not the history.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb

from etl.audit import AUDIT_SCHEMAS, audit_relation, compact, ensure_audit_schema_files
from etl.config import Settings, duckdb_config
from etl.faults import pause_point

KEEP_MANIFESTS = 10


class StaleCandidate(RuntimeError):
    """The candidate was built on an older publish than the current one (another run published meanwhile)."""


@dataclass(frozen=True)
class TableSpec:
    """How publish merges a candidate table: whole replace, or replace the run's scope (keys x window)."""

    scope_column: str | None = None
    scope_sql: str | None = None
    monthly: bool = False
    # for whole-file tables: the published rows this run replaces ({lo}/{hi}: the window's date keys)
    replace_where: str | None = None


TABLE_SPECS: dict[str, TableSpec] = {
    "dim_date": TableSpec(),
    "dim_exchange": TableSpec(),
    "dim_currency": TableSpec(),
    "dim_company": TableSpec(),
    "dim_security": TableSpec("symbol", "select symbol from cand.run_symbols"),
    "fct_fx_rate": TableSpec("currency_code", "select currency_code from cand.ref_currency", monthly=True),
    "fct_daily_price": TableSpec("symbol", "select symbol from cand.run_symbols", monthly=True),
    "fct_corporate_action": TableSpec("symbol", "select symbol from cand.run_symbols", monthly=True),
    "dim_event_type": TableSpec(),
    # curated deals are re-derived whole by every run; vendor events for the run's listings and window
    "fct_financing_event": TableSpec(replace_where=(
        "origin = 'curated' or (symbol in (select symbol from cand.run_symbols) "
        "and date_key between {lo} and {hi})")),
    # a statement fetch restates the periods it returns, for the companies it covers
    "fct_cash_flow_quarterly": TableSpec(replace_where=(
        "(company_code, period_end_date_key) in "
        "(select company_code, period_end_date_key from cand.fct_cash_flow_quarterly)")),
    "fct_valuation_daily": TableSpec("symbol", "select symbol from cand.run_symbols", monthly=True),
}
# Marts published as views over the facts: (name, SQL file under sql/marts)
VIEW_MARTS = ["mart_event_reaction", "mart_adr_parity"]


def view_marts(manifest: dict) -> list[str]:
    """The VIEW_MARTS a manifest can define (their base tables are published)."""
    published = set(manifest["tables"])
    if {"fct_daily_price", "dim_security", "fct_financing_event"} <= published:
        return list(VIEW_MARTS)
    return []


def _months(start: date, end: date) -> list[tuple[str, int, int]]:
    """(YYYY-MM, first date_key, last date_key) for each month touched by [start, end]."""
    out = []
    year, month = start.year, start.month
    while (year, month) <= (end.year, end.month):
        out.append((f"{year:04d}-{month:02d}", year * 10000 + month * 100 + 1, year * 10000 + month * 100 + 31))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


def _pid_alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def _date_key(d: date) -> int:
    return d.year * 10000 + d.month * 100 + d.day


@contextmanager
def file_lock(path: Path, timeout_s: float, busy: str):
    """An exclusive flock on `path` across processes, waited for up to timeout_s seconds (polled every 0.2 s);
    then TimeoutError(busy): the message says who holds it and what to do."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(busy) from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class Store:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.root = settings.store_dir
        self.manifests = self.root / "manifests"
        self._prepared_views: dict[int, Path] = {}  # manifest seq -> views file written before its commit

    # -- manifest -------------------------------------------------------------------------------------
    def current(self) -> dict:
        pointer = self.manifests / "current.json"
        if not pointer.exists():
            return {"seq": 0, "tables": {}}
        return json.loads((self.manifests / json.loads(pointer.read_text())["manifest"]).read_text())

    @contextmanager
    def lock(self, timeout_s: float | None = None):
        """One publisher at a time across processes (Airflow's pool does the same across tasks).

        A second publisher waits up to ETL_PUBLISH_LOCK_TIMEOUT seconds (default 600), then fails with
        TimeoutError naming the lock; it has written nothing by then."""
        if timeout_s is None:
            timeout_s = float(os.environ.get("ETL_PUBLISH_LOCK_TIMEOUT", "600"))
        path = self.root / ".publish.lock"
        with file_lock(path, timeout_s, (
                f"another publish holds {path} (waited {timeout_s:.0f} s, ETL_PUBLISH_LOCK_TIMEOUT); nothing was "
                "published by this run, retry it when the other one is done")):
            yield

    @contextmanager
    def export_lock(self, timeout_s: float | None = None):
        """One writer of the Parquet export (data/export) at a time. A lock of its own, so an export never
        holds up the next publish (and a publish never waits for an export).

        A second exporter waits up to ETL_EXPORT_LOCK_TIMEOUT seconds (default 600), then fails with
        TimeoutError naming the lock."""
        if timeout_s is None:
            timeout_s = float(os.environ.get("ETL_EXPORT_LOCK_TIMEOUT", "600"))
        path = self.root / ".export.lock"
        with file_lock(path, timeout_s, (
                f"another export holds {path} (waited {timeout_s:.0f} s, ETL_EXPORT_LOCK_TIMEOUT); the "
                "published warehouse is unaffected, retry the export when the other one is done")):
            yield

    # -- publish --------------------------------------------------------------------------------------
    def publish(self, candidate: Path, run_id: str, start: date, end: date,
                tables: dict[str, TableSpec] = TABLE_SPECS, expected_seq: int | None = None) -> dict:
        """Merge a validated candidate into new immutable files and swap the published views file in.

        expected_seq: the manifest the candidate was transformed against (it read published listings, rates and
        curated events from it). When another run published since, this raises StaleCandidate and publishes
        nothing: merging would overwrite that run's effect with rows derived from the older state.
        """
        with self.lock():
            manifest = self.current()
            if expected_seq is not None and manifest["seq"] != expected_seq:
                raise StaleCandidate(f"run {run_id} was transformed against manifest {expected_seq}, the "
                                     f"warehouse is at {manifest['seq']}: transform and validate again")
            new_tables: dict[str, dict[str, str]] = {t: dict(p) for t, p in manifest["tables"].items()}
            seq = manifest["seq"] + 1
            version = f"v{seq:06d}"
            con = duckdb.connect(config=duckdb_config())
            written = 0
            try:
                con.execute(f"attach '{candidate}' as cand (read_only)")
                for table, spec in tables.items():
                    parts = new_tables.setdefault(table, {})
                    if spec.monthly:
                        jobs: list[tuple[str, str, str]] = []
                        for month, first_key, last_key in _months(start, end):
                            lo, hi = max(first_key, _date_key(start)), min(last_key, _date_key(end))
                            old = parts.get(month)
                            keep = (
                                f"select * from read_parquet('{self.root / old}', hive_partitioning=false) "
                                f"where not ({spec.scope_column} in ({spec.scope_sql}) "
                                f"and date_key between {lo} and {hi}) union all by name "
                                if old else ""
                            )
                            query = (f"{keep}select * from cand.{table} "
                                     f"where date_key between {first_key} and {last_key}")
                            jobs.append((month, query, f"{table}/month={month}/{version}.parquet"))
                        for (month, _, rel), kept in zip(jobs, self._write_months(con, jobs), strict=True):
                            if kept:
                                parts[month] = rel
                                written += 1
                            else:
                                parts.pop(month, None)
                        jobs.clear()
                        if not parts:  # keep a typed, empty file so the view still has columns
                            rel = f"{table}/{version}-empty.parquet"
                            self._write(con, f"select * from cand.{table} where false", rel, allow_empty=True)
                            parts["empty"] = rel
                        elif "empty" in parts and len(parts) > 1:
                            parts.pop("empty")
                    else:
                        old = parts.get("all")
                        # the published rows the merge keeps (None: the candidate replaces the whole table)
                        kept = (f"not ({spec.replace_where.format(lo=_date_key(start), hi=_date_key(end))})"
                                if spec.replace_where else
                                f"{spec.scope_column} not in ({spec.scope_sql})" if spec.scope_column else None)
                        keep = (f"select * from read_parquet('{self.root / old}', hive_partitioning=false) "
                                f"where {kept} union all by name " if old and kept else "")
                        # a whole-table dimension the run did not change keeps its file, and so does a scoped
                        # table when the run neither replaces nor adds a row (a day without cash-flow statements).
                        # (Scoped rows carry the run's id, so they are never the same rows again.)
                        if old and (self._unchanged(con, table, self.root / old) if kept is None else
                                    self._nothing_to_merge(con, table, self.root / old, f"({kept}) is not true")):
                            continue
                        rel = f"{table}/{version}.parquet"
                        self._write(con, f"{keep}select * from cand.{table}", rel, allow_empty=True)
                        parts["all"] = rel
                        written += 1
            finally:
                con.close()
            new_manifest = {
                "seq": seq,
                "run_id": run_id,
                "window": [str(start), str(end)],
                "published_at": datetime.now(UTC).isoformat(),
                "tables": new_tables,
            }
            pause_point("publish:after_data_files")
            # Everything that needs disk space is written before the commit point (a full disk fails here,
            # with nothing committed); after it only renames remain.
            compact(self.root, seq, KEEP_MANIFESTS)  # the audit files (etl/audit.py), before the views read them
            self._prepared_views[seq] = self.write_views(new_manifest)
            pause_point("publish:before_commit")
            self._commit_manifest(new_manifest)
            pause_point("publish:before_rename")
            self.build_views(new_manifest)  # renames the file prepared above into place
            # the Parquet export (etl/export.py) is a step of its own after this one (pipeline.export_step)
            self.gc()
            return {"seq": seq, "files_written": written}

    @staticmethod
    def _nothing_to_merge(con: duckdb.DuckDBPyConnection, table: str, old: Path, replaced: str) -> bool:
        """The candidate has no rows of `table` and no published row satisfies `replaced` (the rows a merge
        drops): the merged file would be the published one."""
        return con.execute(
            f"select not exists (select 1 from cand.{table}) and not exists (select 1 from read_parquet('{old}', "
            f"hive_partitioning=false) where {replaced})").fetchone()[0]

    @staticmethod
    def _unchanged(con: duckdb.DuckDBPyConnection, table: str, old: Path) -> bool:
        """The candidate's table holds exactly the rows of the published file (same columns, same multiset)."""
        published = f"read_parquet('{old}', hive_partitioning=false)"
        try:
            if con.execute(f"describe select * from {published}").fetchall() != \
                    con.execute(f"describe select * from cand.{table}").fetchall():
                return False
            # one hash aggregate over both sides: every distinct row as often in each (4x faster than two
            # EXCEPT ALLs); NULLs and NaNs group as equal, as EXCEPT ALL compares them
            return con.execute(f"select count(*) from (select * exclude (_side) from (select *, 1 as _side from "
                               f"cand.{table} union all by name select *, -1 as _side from {published}) "
                               "group by all having sum(_side) <> 0)").fetchone()[0] == 0
        except duckdb.Error:
            return False

    def _write_months(self, con: duckdb.DuckDBPyConnection, jobs: list[tuple[str, str, str]]) -> list[bool]:
        """_write each (month, query, rel), in date order; a backfill's hundreds of month files are written
        by as many threads as cores, each on its own cursor (one month's COPY keeps one core busy, issue 6)."""
        workers = min(len(jobs), os.cpu_count() or 1, 4)
        if workers <= 1:
            return [self._write(con, query, rel, order="date_key") for _, query, rel in jobs]
        from concurrent.futures import ThreadPoolExecutor

        def one(job: tuple[str, str, str]) -> bool:
            cursor = con.cursor()
            try:
                return self._write(cursor, job[1], job[2], order="date_key")
            finally:
                cursor.close()

        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(one, jobs))

    def _write(self, con: duckdb.DuckDBPyConnection, query: str, rel: str, order: str | None = None,
               allow_empty: bool = False) -> bool:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
        ordered = f"select * from ({query}) order by {order}" if order else query
        # one pass: COPY reports the rows it wrote (a separate count ran the query twice: 240 months x 4 facts
        # in a 20-year backfill, issue 6); an empty result is not kept unless asked for
        count = con.execute(f"copy ({ordered}) to '{tmp}' (format parquet, compression zstd)").fetchone()[0]
        if count == 0 and not allow_empty:
            tmp.unlink(missing_ok=True)
            return False
        tmp.replace(path)
        return True

    def _commit_manifest(self, manifest: dict) -> None:
        self.manifests.mkdir(parents=True, exist_ok=True)
        name = f"manifest-{manifest['seq']:06d}.json"
        tmp = self.manifests / f".tmp-{name}"
        tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True))
        tmp.replace(self.manifests / name)
        pointer_tmp = self.manifests / ".tmp-current.json"
        pointer_tmp.write_text(json.dumps({"manifest": name}))
        pointer_tmp.replace(self.manifests / "current.json")  # the commit point

    # -- the published views file ---------------------------------------------------------------------
    def build_views(self, manifest: dict | None = None) -> Path:
        """Write a views-only DuckDB file next to the warehouse path and rename it into place."""
        target = self.settings.warehouse
        prepared = self._prepared_views.pop((manifest or {}).get("seq"), None)
        (prepared if prepared is not None and prepared.exists() else self.write_views(manifest)).replace(target)
        return target

    def write_views(self, manifest: dict | None = None) -> Path:
        """The views-only DuckDB file for `manifest`, under a temporary name next to the warehouse path."""
        from etl.catalog import comment_statements

        manifest = manifest or self.current()
        ensure_audit_schema_files(self.root)
        target = self.settings.warehouse
        target.parent.mkdir(parents=True, exist_ok=True)
        for stale in target.parent.glob(f".{target.name}.tmp-*"):
            if not _pid_alive(stale.name.rsplit("-", 1)[-1]):
                stale.unlink(missing_ok=True)  # left by a publish that was killed before its rename
        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        tmp.unlink(missing_ok=True)
        con = duckdb.connect(str(tmp))
        try:
            # one transaction: ~130 statements (views, COMMENT ONs) committed one by one took 3x as long
            con.execute("begin")
            for table, parts in sorted(manifest["tables"].items()):
                files = ", ".join(f"'{self.root / rel}'" for _, rel in sorted(parts.items()))
                con.execute(
                    f"create view {table} as select * from read_parquet([{files}], hive_partitioning=false)"
                )
            from etl.transform import model_sql

            for view in view_marts(manifest):
                con.execute(f"create view {view} as {model_sql('marts/' + view)}")
            for table in AUDIT_SCHEMAS:
                con.execute(f"create view {table} as select * from {audit_relation(self.root, table)}")
            con.execute(
                "create table warehouse_info as select ? as manifest_seq, ? as run_id, ? as published_at, "
                "? as store_dir", [manifest["seq"], manifest.get("run_id"), manifest.get("published_at"),
                                   str(self.root)],
            )
            for statement in comment_statements(con):
                con.execute(statement)
            con.execute("commit")
            con.execute("checkpoint")
        finally:
            con.close()
        return tmp

    def gc(self) -> int:
        """Delete data files no longer named by the last KEEP_MANIFESTS manifests (readers may hold those)."""
        manifests = sorted(self.manifests.glob("manifest-*.json"))
        keep = manifests[-KEEP_MANIFESTS:]
        live: set[str] = set()
        for path in keep:
            for parts in json.loads(path.read_text())["tables"].values():
                live.update(parts.values())
        removed = 0
        for table in TABLE_SPECS:
            for path in (self.root / table).rglob("*.parquet"):
                if str(path.relative_to(self.root)) not in live:
                    path.unlink()
                    removed += 1
        for path in manifests[:-KEEP_MANIFESTS]:
            path.unlink()
        return removed
