"""etl/ducklake_store.py on its own: the same candidates, published into a DuckLake with its catalog in
PostgreSQL (a throwaway database per test), give the same tables as the file store; readers keep their snapshot;
time travel works. The pipeline on the ducklake backend: tests/integration/test_ducklake_pipeline.py.
"""

from __future__ import annotations

from datetime import date

from etl import ducklake_store as ducklake
from etl import pipeline
from tests.conftest import lake_rows as _lake_rows
from tests.conftest import table_without_lineage


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
