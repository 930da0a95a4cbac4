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


def test_two_publishes_past_their_check_at_once_conflict_and_the_stale_one_commits_nothing(data_dir, lake_catalog,
                                                                                         monkeypatch):
    """Both publishes read the same publish number and merge; the one committing second is refused by DuckLake
    (both replaced warehouse_info's row), retries, and then raises StaleCandidate instead of merging a candidate
    built on the older state. Without an expected seq (a plain retry) it commits on top."""
    import threading

    from etl import faults
    from etl.run import RunContext
    from etl.store import StaleCandidate
    from etl.transform import candidate_path

    settings = pipeline.Settings.from_env()
    lake_data = data_dir / "lake"
    runs = {}
    for market in ("XHKG", "US"):
        run_id = pipeline.run_all("sample", date(2025, 9, 1), date(2025, 9, 5), market=market)["run_id"]
        ctx = RunContext.load(settings, run_id)
        runs[market] = (candidate_path(ctx, settings), run_id, ctx.effective_start, ctx.end)
    ducklake.connect(lake_catalog, lake_data).close()  # the catalog exists before the race

    hk_merged, us_committed = threading.Event(), threading.Event()
    original = faults.pause_point

    def pause(name: str) -> None:  # HK waits before its commit until US has committed
        if name == "publish:before_commit" and threading.current_thread().name == "hk":
            hk_merged.set()
            assert us_committed.wait(120)
        original(name)

    monkeypatch.setattr(faults, "pause_point", pause)
    outcome = {}

    def hk(expected):
        try:
            outcome["hk"] = ducklake.publish(*runs["XHKG"], catalog=lake_catalog, data_path=lake_data,
                                             expected_seq=expected)
        except Exception as exc:  # noqa: BLE001 - asserted below
            outcome["hk"] = exc

    def race(expected_hk, expected_us):
        hk_merged.clear()
        us_committed.clear()
        writer = threading.Thread(target=hk, args=(expected_hk,), name="hk")
        writer.start()
        assert hk_merged.wait(120)
        outcome["us"] = ducklake.publish(*runs["US"], catalog=lake_catalog, data_path=lake_data,
                                         expected_seq=expected_us)
        us_committed.set()
        writer.join(120)

    race(0, 0)
    assert isinstance(outcome["hk"], StaleCandidate), outcome["hk"]
    assert outcome["us"]["seq"] == 1
    con = ducklake.connect(lake_catalog, lake_data, read_only=True)
    try:
        assert con.execute("select manifest_seq, split_part(run_id, '__', 3) from warehouse_info").fetchall() == [
            (1, "US")]
        markets = con.execute("select distinct market_code from dim_security order by 1").fetchall()
        assert markets == [("FX",), ("US",)]  # nothing of the refused HK merge
    finally:
        con.close()

    race(None, 1)  # no staleness check: the refused commit is retried on the new snapshot and lands
    assert outcome["us"]["seq"] == 2
    assert outcome["hk"]["conflict_retries"] == 1 and outcome["hk"]["seq"] == 3
