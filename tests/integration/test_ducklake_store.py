"""Prototype DuckLake backend (etl/ducklake_store.py): the same candidates, published into a DuckLake with its
catalog in PostgreSQL, give the same tables as the file store; readers keep their snapshot; time travel works.

Skips unless the DuckLake and postgres extensions load into the installed DuckDB (their PyPI wheels exist for
DuckDB <= 1.5.5, the project pins >= 1.5.6) and PostgreSQL is reachable. To run it, see README "DuckLake".
"""

from __future__ import annotations

import os
import secrets
from datetime import date

import pytest

from etl import pipeline
from tests.conftest import LINEAGE, table_without_lineage

ducklake = pytest.importorskip("etl.ducklake_store")
PG = dict(host=os.environ.get("PGHOST", "127.0.0.1"), port=int(os.environ.get("PGPORT", "5432")),
          user=os.environ.get("PGUSER", "postgres"))


@pytest.fixture
def lake_catalog():
    try:
        for name in ducklake.EXTENSIONS:
            ducklake.extension_file(name)
    except ducklake.DuckLakeUnavailable as exc:
        pytest.skip(str(exc))
    psycopg2 = pytest.importorskip("psycopg2")
    try:
        admin = psycopg2.connect(dbname="postgres", connect_timeout=5, **PG)
    except Exception as exc:
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    admin.autocommit = True
    name = f"ducklake_ci_{secrets.token_hex(4)}"
    with admin.cursor() as cur:
        cur.execute(f'create database "{name}"')
    try:
        yield f"dbname={name} host={PG['host']} port={PG['port']} user={PG['user']}"
    finally:
        with admin.cursor() as cur:
            cur.execute(f'drop database if exists "{name}" with (force)')
        admin.close()


def _lake_rows(con, table: str) -> list[tuple]:
    columns = [r[0] for r in con.execute(f"describe {table}").fetchall() if r[0] not in LINEAGE]
    return sorted(con.execute(f"select {', '.join(columns)} from {table}").fetchall(), key=repr)


def test_ducklake_publish_matches_the_file_store_and_keeps_snapshots(data_dir, lake_catalog):
    from etl.run import RunContext
    from etl.store import TABLE_SPECS
    from etl.transform import candidate_path

    settings = pipeline.Settings.from_env()
    lake_data = data_dir / "lake"
    snapshots = []
    reader = None
    for market in ("XHKG", "US"):
        run_id = pipeline.run_all("sample", date(2025, 9, 1), date(2025, 9, 5), market=market)["run_id"]
        ctx = RunContext.load(settings, run_id)
        if reader is not None:  # a reader inside a transaction keeps the first publish while the second commits
            reader.execute("begin transaction")
            before = reader.execute("select count(*) from fct_daily_price").fetchone()[0]
        result = ducklake.publish(candidate_path(ctx, settings), run_id, ctx.effective_start, ctx.end,
                                  catalog=lake_catalog, data_path=lake_data)
        snapshots.append(result["snapshot"])
        if reader is None:
            reader = ducklake.connect(lake_catalog, lake_data, read_only=True)
        else:
            assert reader.execute("select count(*) from fct_daily_price").fetchone()[0] == before
            reader.execute("commit")
    reader.close()

    con = ducklake.connect(lake_catalog, lake_data, read_only=True)
    try:
        for table in TABLE_SPECS:
            assert _lake_rows(con, table) == table_without_lineage(settings.warehouse, table), table
        first, last = snapshots
        hk_only = con.execute(f"select count(*) from fct_daily_price at (version => {first})").fetchone()[0]
        assert hk_only < con.execute("select count(*) from fct_daily_price").fetchone()[0]
        messages = con.execute(f"select commit_message from {ducklake.ALIAS}.snapshots() "
                               f"where snapshot_id in ({first}, {last}) order by snapshot_id").fetchall()
        assert [m.split("__")[2] for (m,) in messages] == ["XHKG", "US"]  # the run id names the snapshot
    finally:
        con.close()
