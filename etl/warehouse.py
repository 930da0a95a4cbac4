"""Read-only access to the published warehouse on either backend (ETL_WAREHOUSE_BACKEND)."""

from __future__ import annotations

import duckdb

from etl.config import Settings


def connect_reader(settings: Settings) -> duckdb.DuckDBPyConnection:
    """The published tables, marts and audit views, read-only: the views-only DuckDB file of the file store,
    or the latest DuckLake snapshot (hold one snapshot across queries with `begin` ... `commit`)."""
    if settings.is_ducklake:
        from etl import ducklake_store

        return ducklake_store.reader(settings)
    return duckdb.connect(str(settings.warehouse), read_only=True)

