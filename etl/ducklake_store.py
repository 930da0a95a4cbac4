"""The DuckLake backend (ETL_WAREHOUSE_BACKEND=ducklake): publish into a DuckLake instead of the file store.

DuckLake keeps the catalog (tables, snapshots, which Parquet file holds what) in a SQL database — here
PostgreSQL — and the data as Parquet files under a data path (a shared directory or an object store). Every
publish is one transaction, i.e. one snapshot, so a reader on any machine that reaches PostgreSQL and the data
path sees whole publishes only, keeps its snapshot while another publish commits, and can read older snapshots
(time travel) until they are expired. publish() takes the same validated candidate and TABLE_SPECS as
etl.store.Store.publish and applies the same merge rules with DELETE + INSERT, so the two backends publish the
same tables (tests/integration/test_ducklake_store.py, test_ducklake_pipeline.py).

Concurrency, the file store's semantics without its file lock: every publish also replaces the one row of
`warehouse_info` (manifest_seq + 1). Two publishes that overlap therefore both delete that row, DuckLake refuses
the second commit with a transaction conflict, and nothing of it is visible. The loser retries: it opens a new
transaction, sees manifest_seq moved past the seq its candidate was transformed against and raises
StaleCandidate, so pipeline.publish_step transforms and validates again on the new state (a candidate built on
an older state is never merged over a newer one). Readers never wait and writers never wait for readers.

The extensions come from PyPI (duckdb-extension-ducklake, duckdb-extension-postgres, pinned with duckdb in
pyproject.toml): each wheel carries the binary for exactly one DuckDB version under extensions/v<version>/ and
is loaded by path, with extension auto-install off, so nothing is downloaded at run time.

Audit tables (run_log, dq_run, dq_result, quarantine, restatement) stay append-only Parquet files under
$ETL_DATA_DIR/store/audit on the shared data path (see README "Warehouse backends"); `reader()` shows them as
views next to the lake's tables.
"""

from __future__ import annotations

import fcntl
import importlib
import logging
import os
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb

from etl.audit import AUDIT_SCHEMAS, audit_relation, ensure_audit_schema_files
from etl.config import Settings, duckdb_config
from etl.store import TABLE_SPECS, VIEW_MARTS, StaleCandidate, TableSpec, _date_key, _months

log = logging.getLogger(__name__)

EXTENSIONS = ("ducklake", "postgres")
ALIAS = "lake"
INFO = "warehouse_info"
# commits refused for a conflict are retried this often (each retry re-checks staleness first)
CONFLICT_RETRIES = 8


class DuckLakeUnavailable(RuntimeError):
    """The DuckLake / postgres extensions cannot be loaded, or the lake is not configured."""


class NoLakeYet(RuntimeError):
    """A reader found no DuckLake catalog: nothing has been published (or init-lake has not run) yet."""


def extension_file(name: str, version: str | None = None) -> Path:
    """The .duckdb_extension file that the PyPI package duckdb-extension-<name> ships for this DuckDB."""
    version = version or f"v{duckdb.__version__}"
    try:
        module = importlib.import_module(f"duckdb_extension_{name}")
    except ImportError as exc:
        raise DuckLakeUnavailable(f"package duckdb-extension-{name} is not installed (`make venv` installs it, "
                                  "pinned to the DuckDB version in pyproject.toml)") from exc
    root = Path(module.__file__).parent / "extensions"
    path = root / version / f"{name}.duckdb_extension"
    if not path.exists():
        built = sorted(p.name for p in root.iterdir()) if root.exists() else []
        raise DuckLakeUnavailable(f"duckdb-extension-{name} has no build for DuckDB {version} (it has {built}); "
                                  f"an extension only loads into the DuckDB version it was built for")
    return path


def load_extensions(con: duckdb.DuckDBPyConnection, extension_dir: Path | None = None) -> None:
    """Install ducklake and postgres from their PyPI packages into a private extension directory, load them;
    never download anything. (`LOAD '<file>'` alone fails for postgres: DuckDB takes the entry point from the
    file name, postgres_duckdb_cpp_init, while the extension is postgres_scanner; `INSTALL '<file>'` applies
    the alias.)"""
    if extension_dir is None:
        extension_dir = Settings.from_env().data_dir / ".duckdb_extensions"
    con.execute("set autoinstall_known_extensions = false")
    con.execute("set extension_directory = ?", [str(extension_dir)])
    extension_dir.mkdir(parents=True, exist_ok=True)
    # several task processes start at once on a fresh data dir: one installs while the others wait, so no
    # process loads a file another one is still copying
    with open(extension_dir / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            for name in EXTENSIONS:
                path = extension_file(name)
                try:
                    con.execute(f"install '{path}'")
                    con.execute(f"load {name}")
                except duckdb.Error as exc:
                    raise DuckLakeUnavailable(f"cannot load {path}: {exc}") from exc
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _lake(catalog: str | None, data_path: str | Path | None) -> tuple[str, str]:
    if catalog is None or data_path is None:
        settings = Settings.from_env()
        catalog = catalog or settings.ducklake_catalog
        data_path = data_path or settings.ducklake_data
    if not catalog:
        raise DuckLakeUnavailable("no catalog: set ETL_DUCKLAKE_CATALOG (libpq string of a PostgreSQL database)")
    return catalog, str(data_path)


def attach(con: duckdb.DuckDBPyConnection, catalog: str | None = None, data_path: str | Path | None = None,
           read_only: bool = True, alias: str = ALIAS, extension_dir: Path | None = None) -> None:
    """Attach the lake to an existing connection as `alias`. A writer creates the catalog tables in
    PostgreSQL on first use; two first writers at once may collide there, so a failed first attach is retried."""
    catalog, data = _lake(catalog, data_path)
    load_extensions(con, extension_dir)
    if not read_only and "://" not in data:
        Path(data).mkdir(parents=True, exist_ok=True)
    options = f"DATA_PATH '{data.rstrip('/')}/'" + (", READ_ONLY" if read_only else "")
    for attempt in range(3):
        try:
            con.execute(f"attach 'ducklake:postgres:{catalog}' as {alias} ({options})")
            return
        except duckdb.Error as exc:
            if attempt == 2:
                raise
            log.info("attaching the lake failed (%s), retrying", exc)
            time.sleep(0.5 + random.random())


def connect(catalog: str | None = None, data_path: str | Path | None = None, read_only: bool = False,
            extension_dir: Path | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the lake attached as `lake` (and made the default database)."""
    con = duckdb.connect(config=duckdb_config())
    try:
        attach(con, catalog, data_path, read_only=read_only, extension_dir=extension_dir)
        con.execute(f"use {ALIAS}")
    except Exception:
        con.close()
        raise
    return con


def connect_settings(settings: Settings, read_only: bool = True) -> duckdb.DuckDBPyConnection:
    return connect(settings.ducklake_catalog, settings.ducklake_data, read_only=read_only,
                   extension_dir=settings.data_dir / ".duckdb_extensions")


def attach_settings(con: duckdb.DuckDBPyConnection, settings: Settings, alias: str = ALIAS) -> None:
    """Attach the lake of `settings` read-only to `con` (the transform's and the gate's connections)."""
    attach(con, settings.ducklake_catalog, settings.ducklake_data, read_only=True, alias=alias,
           extension_dir=settings.data_dir / ".duckdb_extensions")


def _exists(con: duckdb.DuckDBPyConnection, table: str, alias: str = ALIAS) -> bool:
    return bool(con.execute("select count(*) from duckdb_tables() where database_name = ? and table_name = ?",
                            [alias, table]).fetchone()[0])


def _seq(con: duckdb.DuckDBPyConnection, alias: str = ALIAS) -> int:
    if not _exists(con, INFO, alias):
        return 0
    row = con.execute(f"select max(manifest_seq) from {alias}.main.{INFO}").fetchone()
    return int(row[0] or 0)


def current(settings: Settings) -> dict:
    """The published state: {"seq": publishes so far (the file store's manifest seq), "snapshot": the DuckLake
    snapshot id that state is, "tables": published table names}."""
    con = connect_settings(settings, read_only=False)  # a writer's attach creates the catalog on first use
    try:
        con.execute("begin transaction")  # seq and snapshot of the same state
        snapshot = con.execute(f"select max(snapshot_id) from {ALIAS}.snapshots()").fetchone()[0]
        seq = _seq(con)
        tables = [r[0] for r in con.execute("select table_name from duckdb_tables() where database_name = ? "
                                            "order by 1", [ALIAS]).fetchall()]
        con.execute("commit")
        return {"seq": seq, "snapshot": int(snapshot), "tables": tables}
    finally:
        con.close()


def published_relation(con: duckdb.DuckDBPyConnection, table: str, snapshot: int | None = None,
                       alias: str = ALIAS) -> str | None:
    """SQL naming the published `table` (at `snapshot`, default the latest) in a connection the lake is attached
    to, or None when no publish has created it yet."""
    if snapshot is not None:
        try:
            con.execute(f"select 1 from {alias}.main.{table} at (version => {int(snapshot)}) limit 0")
        except duckdb.Error:
            return None
        return f"{alias}.main.{table} at (version => {int(snapshot)})"
    return f"{alias}.main.{table}" if _exists(con, table, alias) else None


def _is_conflict(exc: duckdb.Error) -> bool:
    text = str(exc).lower()
    return "conflict" in text or "failed to commit" in text


def publish(candidate: Path, run_id: str, start: date, end: date, tables: dict[str, TableSpec] = TABLE_SPECS,
            catalog: str | None = None, data_path: str | Path | None = None, expected_seq: int | None = None,
            retries: int = CONFLICT_RETRIES, extension_dir: Path | None = None) -> dict:
    """Merge a validated candidate into the lake in ONE transaction (one DuckLake snapshot), with the rules of
    etl.store.Store.publish: monthly facts replace the run's (scope x window), dimensions their scope, the rest
    whole (or `replace_where`).

    expected_seq: the warehouse_info.manifest_seq the candidate was transformed against. When another publish
    committed since, this raises StaleCandidate and publishes nothing (as the file store does). A commit that
    DuckLake refuses for a conflict with a concurrent publish is retried, which then sees the new seq."""
    catalog, data_path = _lake(catalog, data_path)
    attempts = 0
    while True:
        con = connect(catalog, data_path, extension_dir=extension_dir)
        try:
            result = _publish_once(con, candidate, run_id, start, end, tables, expected_seq, data_path)
            return result | {"conflict_retries": attempts}
        except duckdb.Error as exc:
            if not _is_conflict(exc) or attempts >= retries:
                raise
            attempts += 1
            log.warning("publish of %s: DuckLake commit conflict with a concurrent publish (%s); retry %d/%d",
                        run_id, str(exc).splitlines()[-1], attempts, retries)
            time.sleep(min(2.0, 0.1 * 2 ** attempts) * (0.5 + random.random()))
        finally:
            con.close()


def _publish_once(con: duckdb.DuckDBPyConnection, candidate: Path, run_id: str, start: date, end: date,
                  tables: dict[str, TableSpec], expected_seq: int | None, data_path: str) -> dict:
    from etl.faults import pause_point
    from etl.transform import model_sql

    changed: dict[str, int] = {}
    con.execute(f"attach '{candidate}' as cand (read_only)")
    con.execute("begin transaction")
    try:
        seq = _seq(con)
        if expected_seq is not None and seq != expected_seq:
            raise StaleCandidate(f"run {run_id} was transformed against publish {expected_seq}, the lake is at "
                                 f"{seq}: transform and validate again")
        for table, spec in tables.items():
            target = f"{ALIAS}.main.{table}"
            if not _exists(con, table):
                con.execute(f"create table {target} as select * from cand.{table} where false")
            if spec.monthly:
                deleted = inserted = 0
                for _, first_key, last_key in _months(start, end):
                    lo, hi = max(first_key, _date_key(start)), min(last_key, _date_key(end))
                    deleted += con.execute(f"delete from {target} where {spec.scope_column} in ({spec.scope_sql}) "
                                           f"and date_key between {lo} and {hi}").fetchone()[0]
                    inserted += con.execute(f"insert into {target} by name select * from cand.{table} "
                                            f"where date_key between {first_key} and {last_key} "
                                            "order by date_key").fetchone()[0]
            else:
                if spec.replace_where:
                    where = spec.replace_where.format(lo=_date_key(start), hi=_date_key(end))
                elif spec.scope_column:
                    where = f"{spec.scope_column} in ({spec.scope_sql})"
                else:
                    where = "true"
                deleted = con.execute(f"delete from {target} where {where}").fetchone()[0]
                inserted = con.execute(f"insert into {target} by name select * from cand.{table}").fetchone()[0]
            changed[table] = inserted - deleted
        if {"fct_daily_price", "dim_security", "fct_financing_event"} <= set(tables):
            con.execute(f"use {ALIAS}")  # the marts' SQL names the tables unqualified
            for view in VIEW_MARTS:
                con.execute(f"create or replace view {ALIAS}.main.{view} as {model_sql('marts/' + view)}")
        # the row every publish replaces: two overlapping publishes conflict here, whatever else they touch
        published_at = datetime.now(UTC).isoformat()
        con.execute(f"create table if not exists {ALIAS}.main.{INFO} (manifest_seq bigint, run_id varchar, "
                    "published_at varchar, data_path varchar)")
        con.execute(f"delete from {ALIAS}.main.{INFO}")
        con.execute(f"insert into {ALIAS}.main.{INFO} select ?, ?, ?, ?",
                    [seq + 1, run_id, published_at, data_path])
        con.execute(f"call {ALIAS}.set_commit_message('etl', ?)", [run_id])
        pause_point("publish:before_commit")
        con.execute("commit")
    except BaseException:
        try:
            con.execute("rollback")
        except duckdb.Error:
            pass
        raise
    snapshot = con.execute(f"select max(snapshot_id) from {ALIAS}.snapshots() where commit_message = ?",
                           [run_id]).fetchone()[0]
    return {"seq": seq + 1, "snapshot": snapshot, "run_id": run_id, "row_change": changed,
            "published_at": published_at}


def reader(settings: Settings) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the latest snapshot with the audit tables as views: what `python -m etl query`,
    `status` and the report use on this backend. A transaction (`begin`) holds one snapshot for many queries."""
    try:
        con = connect_settings(settings, read_only=True)
    except duckdb.InvalidInputException as exc:
        if "does not exist" in str(exc):
            raise NoLakeYet(f"no DuckLake catalog in {settings.ducklake_catalog.split()[0]} yet: nothing was "
                            "published (`python -m etl init-lake` creates an empty one)") from exc
        raise
    ensure_audit_schema_files(settings.store_dir)
    for table in AUDIT_SCHEMAS:  # the audit files' rows exactly once, as the file store's views read them
        con.execute(f"create or replace temp view {table} as select * from "
                    f"{audit_relation(settings.store_dir, table)}")
    return con


def local_postgres() -> dict:
    """host/port/user of the PostgreSQL the tests and `make bench-backends` borrow (PGHOST, PGPORT, PGUSER;
    default 127.0.0.1:5432 as postgres, trust auth)."""
    return {"host": os.environ.get("PGHOST", "127.0.0.1"), "port": int(os.environ.get("PGPORT", "5432")),
            "user": os.environ.get("PGUSER", "postgres")}


@contextmanager
def scratch_database(prefix: str, pg: dict | None = None) -> Iterator[str]:
    """A new empty PostgreSQL database <prefix><8 hex> for a test or benchmark (a DuckLake catalog, Airflow's
    metadata), dropped with its connections when the block ends."""
    import secrets

    import psycopg2

    pg = pg or local_postgres()
    admin = psycopg2.connect(dbname="postgres", connect_timeout=5, **pg)
    admin.autocommit = True
    name = f"{prefix}{secrets.token_hex(4)}"
    try:
        with admin.cursor() as cur:
            cur.execute(f'create database "{name}"')
        yield name
    finally:
        with admin.cursor() as cur:
            cur.execute(f'drop database if exists "{name}" with (force)')
        admin.close()


def init_catalog(settings: Settings) -> dict:
    """Create the catalog database if it is missing (connecting to the server's `postgres` database with the
    same credentials) and DuckLake's catalog tables in it; idempotent. `python -m etl init-lake` runs this once
    per deployment (docker-compose's airflow-init), so the first publishes never race to create the catalog."""
    import psycopg2
    from psycopg2 import sql
    from psycopg2.extensions import parse_dsn

    params = parse_dsn(settings.ducklake_catalog)
    name = params.get("dbname")
    created = False
    if name:
        admin = psycopg2.connect(**{**params, "dbname": "postgres"})
        admin.autocommit = True
        try:
            with admin.cursor() as cur:
                cur.execute("select 1 from pg_database where datname = %s", [name])
                if cur.fetchone() is None:
                    cur.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
                    created = True
        finally:
            admin.close()
    state = current(settings)
    return {"catalog_database": name, "created": created, "data_path": settings.ducklake_data, **state}


def cli_init_sql(settings: Settings) -> str:
    """Statements that open the lake read-only in the DuckDB CLI (`duckdb -init <file>`, `make sql`): the same
    extension files from the PyPI wheels, the lake as the default database, the audit tables as views."""
    ext_dir = settings.data_dir / ".duckdb_extensions"
    lines = ["set autoinstall_known_extensions = false;", f"set extension_directory = '{ext_dir}';"]
    for name in EXTENSIONS:
        lines += [f"install '{extension_file(name)}';", f"load {name};"]
    lines.append(f"attach 'ducklake:postgres:{settings.ducklake_catalog}' as {ALIAS} "
                 f"(DATA_PATH '{settings.ducklake_data.rstrip('/')}/', READ_ONLY);")
    lines.append(f"use {ALIAS};")
    for table in AUDIT_SCHEMAS:
        lines.append(f"create or replace temp view {table} as select * from "
                     f"{audit_relation(settings.store_dir, table)};")
    return "\n".join(lines) + "\n"
