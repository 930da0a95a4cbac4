"""Shared fixtures: an isolated data directory per test, and the real Yahoo-derived files in ../shared."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import pytest

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

REPO = Path(__file__).resolve().parents[1]
SHARED_REAL = REPO.parent / "shared" / "data" / "real"


@pytest.fixture
def data_dir(tmp_path, monkeypatch) -> Path:
    """ETL_DATA_DIR and ETL_WAREHOUSE pointed into tmp_path, so tests never touch ./data."""
    root = tmp_path / "data"
    monkeypatch.setenv("ETL_DATA_DIR", str(root))
    monkeypatch.setenv("ETL_WAREHOUSE", str(root / "warehouse.duckdb"))
    monkeypatch.delenv("ETL_UNIVERSE", raising=False)
    return root


@pytest.fixture
def shared_real() -> Path:
    if not SHARED_REAL.is_dir():
        pytest.skip(f"real Yahoo-derived files not found at {SHARED_REAL} (../shared is absent)")
    return SHARED_REAL


def query(warehouse: Path, sql: str, params=None) -> list[tuple]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


LINEAGE = {"run_id", "landed_run_id", "source_file"}


def table_without_lineage(warehouse: Path, table: str) -> list[tuple]:
    """All rows of a published table, lineage columns removed, sorted: for equality checks across runs."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        columns = [r[0] for r in con.execute(f"describe {table}").fetchall() if r[0] not in LINEAGE]
        rows = con.execute(f"select {', '.join(columns)} from {table}").fetchall()
    finally:
        con.close()
    return sorted(rows, key=repr)


@pytest.fixture
def lake_catalog():
    """A throwaway PostgreSQL database for a DuckLake catalog (libpq string), dropped after the test. PostgreSQL
    on 127.0.0.1 is part of the test environment (README "Tests"): unreachable, the test fails, never skips."""
    from etl.ducklake_store import local_postgres, scratch_database

    pg = local_postgres()
    with scratch_database("ducklake_ci_", pg) as name:
        yield f"dbname={name} host={pg['host']} port={pg['port']} user={pg['user']}"


@pytest.fixture
def ducklake_backend(data_dir, lake_catalog, monkeypatch) -> str:
    """ETL_WAREHOUSE_BACKEND=ducklake with a fresh catalog database and the data files under data_dir/lake."""
    monkeypatch.setenv("ETL_WAREHOUSE_BACKEND", "ducklake")
    monkeypatch.setenv("ETL_DUCKLAKE_CATALOG", lake_catalog)
    monkeypatch.setenv("ETL_DUCKLAKE_DATA", str(data_dir / "lake"))
    return lake_catalog


def lake_rows(con, table: str) -> list[tuple]:
    """table_without_lineage for a connection to the lake (etl.ducklake_store.connect / reader)."""
    columns = [r[0] for r in con.execute(f"describe {table}").fetchall() if r[0] not in LINEAGE]
    return sorted(con.execute(f"select {', '.join(columns)} from {table}").fetchall(), key=repr)
