"""Prototype (issue 5): publish into a DuckLake instead of the views-file store of etl/store.py.

DuckLake keeps the catalog (tables, snapshots, which Parquet file holds what) in a SQL database — here
PostgreSQL — and the data as Parquet files under DATA_PATH. Every publish is one transaction, so a reader sees
whole publishes only, from any machine that reaches PostgreSQL and the data path, and old snapshots stay
queryable (time travel) until they are expired. Not wired into the pipeline: `publish()` takes the same
validated candidate and TABLE_SPECS as etl.store.Store.publish and applies the same merge rules with DELETE +
INSERT, so the two backends can be compared table by table (tests/integration/test_ducklake_store.py).

The extensions come from PyPI (duckdb-extension-ducklake, duckdb-extension-postgres): each wheel carries the
binary for exactly one DuckDB version under extensions/v<version>/ and is loaded by path, with extension
auto-install off, so nothing is downloaded at run time. Those wheels exist for DuckDB 1.5.0..1.5.5 only; the
project pins duckdb>=1.5.6, so `load_extensions` raises DuckLakeUnavailable there (see README).

    ETL_DUCKLAKE_CATALOG  libpq string of the catalog database, e.g. "dbname=lake host=127.0.0.1 user=postgres"
    ETL_DUCKLAKE_DATA     where the Parquet files go (default $ETL_DATA_DIR/lake)
"""

from __future__ import annotations

import importlib
import os
from datetime import date
from pathlib import Path

import duckdb

from etl.store import TABLE_SPECS, TableSpec, _date_key, _months

EXTENSIONS = ("ducklake", "postgres")
ALIAS = "lake"


class DuckLakeUnavailable(RuntimeError):
    """The DuckLake / postgres extensions cannot be loaded into this DuckDB build."""


def extension_file(name: str, version: str | None = None) -> Path:
    """The .duckdb_extension file that the PyPI package duckdb-extension-<name> ships for this DuckDB."""
    version = version or f"v{duckdb.__version__}"
    try:
        module = importlib.import_module(f"duckdb_extension_{name}")
    except ImportError as exc:
        raise DuckLakeUnavailable(f"package duckdb-extension-{name} is not installed: its wheels exist for "
                                  f"DuckDB 1.5.0..1.5.5, this is {version}; `make test-ducklake` builds a side "
                                  "venv with DuckDB 1.5.5 and the extensions") from exc
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
        from etl.config import Settings

        extension_dir = Settings.from_env().data_dir / ".duckdb_extensions"
    con.execute("set autoinstall_known_extensions = false")
    con.execute("set extension_directory = ?", [str(extension_dir)])
    for name in EXTENSIONS:
        path = extension_file(name)
        try:
            con.execute(f"install '{path}'")
            con.execute(f"load {name}")
        except duckdb.Error as exc:
            raise DuckLakeUnavailable(f"cannot load {path}: {exc}") from exc


def connect(catalog: str | None = None, data_path: str | Path | None = None, read_only: bool = False,
            ) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the lake attached as `lake` (and made the default schema)."""
    catalog = catalog or os.environ.get("ETL_DUCKLAKE_CATALOG")
    if not catalog:
        raise DuckLakeUnavailable("no catalog: set ETL_DUCKLAKE_CATALOG (libpq string of a PostgreSQL database)")
    if data_path is None:
        from etl.config import Settings

        data_path = os.environ.get("ETL_DUCKLAKE_DATA") or Settings.from_env().data_dir / "lake"
    con = duckdb.connect()
    try:
        load_extensions(con)
        if not read_only:
            Path(data_path).mkdir(parents=True, exist_ok=True)
        options = f"DATA_PATH '{Path(data_path)}/'" + (", READ_ONLY" if read_only else "")
        con.execute(f"attach 'ducklake:postgres:{catalog}' as {ALIAS} ({options})")
        con.execute(f"use {ALIAS}")
    except Exception:
        con.close()
        raise
    return con


def _exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    return bool(con.execute("select count(*) from duckdb_tables() where database_name = ? and table_name = ?",
                            [ALIAS, table]).fetchone()[0])


def publish(candidate: Path, run_id: str, start: date, end: date, tables: dict[str, TableSpec] = TABLE_SPECS,
            catalog: str | None = None, data_path: str | Path | None = None) -> dict:
    """Merge a validated candidate into the lake in ONE transaction (one DuckLake snapshot), with the rules of
    etl.store.Store.publish: monthly facts replace the run's (scope x window), dimensions their scope, the rest
    whole (or `replace_where`)."""
    con = connect(catalog, data_path)
    changed: dict[str, int] = {}
    try:
        con.execute(f"attach '{candidate}' as cand (read_only)")
        con.execute("begin transaction")
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
                                            f"where date_key between {first_key} and {last_key}").fetchone()[0]
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
        try:  # the snapshot says which run made it (DuckLake >= 0.3)
            con.execute(f"call {ALIAS}.set_commit_message('etl', ?)", [run_id])
        except duckdb.Error:
            pass
        con.execute("commit")
        snapshot = con.execute(f"select max(snapshot_id) from {ALIAS}.snapshots()").fetchone()[0]
    except Exception:
        try:
            con.execute("rollback")
        except duckdb.Error:
            pass
        raise
    finally:
        con.close()
    return {"snapshot": snapshot, "run_id": run_id, "row_change": changed}
