"""The pipeline on ETL_WAREHOUSE_BACKEND=ducklake (catalog in a throwaway PostgreSQL database, data under the
test's tmp dir): the same tables as the file backend, the same gate (a refused run leaves the lake's latest
snapshot as it was), two market publishes at once both land, and a reader only ever sees whole publishes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from datetime import date
from pathlib import Path

import pytest

from etl import ducklake_store, pipeline
from etl.__main__ import main as cli
from etl.config import Settings, load_universe
from etl.quality.gate import ValidationError
from etl.store import TABLE_SPECS, VIEW_MARTS
from tests.conftest import lake_rows, query, table_without_lineage
from tests.integration.test_gate_and_publish import CorruptingSource

WINDOW = (date(2025, 9, 1), date(2025, 9, 12))
MARKETS = ("XHKG", "US")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """Both markets, one after the other, on the default file backend in a data dir of their own."""
    ref = tmp_path_factory.mktemp("file-backend")
    with pytest.MonkeyPatch.context() as m:
        m.setenv("ETL_WAREHOUSE_BACKEND", "file")
        m.setenv("ETL_DATA_DIR", str(ref))
        m.setenv("ETL_WAREHOUSE", str(ref / "warehouse.duckdb"))
        m.delenv("ETL_UNIVERSE", raising=False)
        for market in MARKETS:
            pipeline.run_all("sample", *WINDOW, market=market)
    return ref / "warehouse.duckdb"


def test_run_all_on_ducklake_publishes_what_the_file_backend_publishes(reference, ducklake_backend, data_dir,
                                                                       capsys):
    outs = [pipeline.run_all("sample", *WINDOW, market=market) for market in MARKETS]
    published = [out["publish"] for out in outs]
    # the export step has nothing to export on a lake, and says why
    assert [out["export"] for out in outs] == [{"export": None, "export_skipped": "ducklake backend"}] * 2

    assert [p["backend"] for p in published] == ["ducklake", "ducklake"]
    assert [p["seq"] for p in published] == [1, 2] and published[0]["snapshot"] < published[1]["snapshot"]
    assert [p["rebuilt_from_seq"] for p in published] == [[], []]
    assert not (data_dir / "warehouse.duckdb").exists() and not (data_dir / "export").exists()
    con = ducklake_store.reader(Settings.from_env())
    try:
        for table in [*TABLE_SPECS, *VIEW_MARTS]:
            assert lake_rows(con, table) == table_without_lineage(reference, table), table
        assert con.execute("select manifest_seq, split_part(run_id, '__', 3) from warehouse_info").fetchall() == [
            (2, "US")]
        # audit tables on the shared data path, next to the lake's tables
        assert con.execute("select count(*) from run_log where step = 'publish' and status = 'success'"
                           ).fetchone() == (2,)
        run_log_rows = con.execute("select count(*) from run_log").fetchone()[0]
    finally:
        con.close()

    # the readers' tools work on the lake: python -m etl query / status, and the report
    assert cli(["query", "select count(distinct symbol) as n from fct_daily_price"]) == 0
    assert cli(["status"]) == 0
    out = capsys.readouterr().out
    assert "manifest_seq" in out and "fct_daily_price" in out
    assert cli(["report"]) == 0
    summary = json.loads((data_dir / "report" / "latest.json").read_text())
    assert summary["as_of"] == "2025-09-12"
    assert cli(["export"]) == 1  # refused with a reason: the lake is the export

    # the DuckDB CLI (duckdb-cli, same version) on the lake: what `make sql` runs
    capsys.readouterr()
    assert cli(["lake-sql"]) == 0
    init = data_dir / "lake-init.sql"
    init.write_text(capsys.readouterr().out)
    shown = subprocess.run([str(Path(sys.executable).with_name("duckdb")), "-init", str(init), "-csv", "-c",
                            "select count(*) as n from fct_daily_price; select count(*) as n from run_log"],
                           capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    rows = len(table_without_lineage(reference, "fct_daily_price"))
    assert shown.stdout.split() == ["n", str(rows), "n", str(run_log_rows)]


def test_a_refused_run_leaves_the_lakes_latest_snapshot_unchanged(ducklake_backend):
    pipeline.run_all("sample", *WINDOW)
    settings = Settings.from_env()
    before = ducklake_store.current(settings)

    def invert_high_low(symbol, frame):
        if symbol == "9988.HK":
            frame.loc[frame.index[0], ["High", "Low"]] = [1.0, 500.0]
        return frame

    ctx = pipeline.start_run("sample", date(2025, 9, 15), date(2025, 9, 19))
    pipeline.extract_step(ctx.run_id, source=CorruptingSource(load_universe(), invert_high_low))
    pipeline.land_step(ctx.run_id)
    pipeline.transform_step(ctx.run_id)
    with pytest.raises(ValidationError, match="expect_column_pair_values_a_to_be_greater_than_b"):
        pipeline.validate_step(ctx.run_id)
    with pytest.raises(RuntimeError, match="failed validation"):
        pipeline.publish_step(ctx.run_id)

    assert ducklake_store.current(settings) == before  # no new snapshot, nothing of the refused run
    con = ducklake_store.reader(settings)
    try:
        assert con.execute("select max(date_key) from fct_daily_price").fetchone() == (20250912,)
        assert con.execute("select status from run_log where run_id = ? and step = 'validate'",
                           [ctx.run_id]).fetchall() == [("failed",)]
    finally:
        con.close()


def _read_whole_snapshots(settings: Settings, stop: threading.Event, seen: list, errors: list) -> None:
    """A reader holding one snapshot per round: the publish count and the fact rows per market it shows."""
    sql = ("select s.market_code, count(*) from fct_daily_price p join dim_security s using (security_key) "
           "group by 1 order by 1")
    while not stop.is_set():
        try:
            con = ducklake_store.reader(settings)
            try:
                con.execute("begin transaction")
                if not ducklake_store._exists(con, "warehouse_info"):
                    continue
                seq = con.execute("select manifest_seq from warehouse_info").fetchone()[0]
                markets = dict(con.execute(sql).fetchall())
                time.sleep(0.05)
                again = dict(con.execute(sql).fetchall())
                assert again == markets, f"one snapshot, two states: {markets} then {again}"
                seen.append((seq, json.dumps(markets, sort_keys=True)))
                con.execute("commit")
            finally:
                con.close()
        except Exception as exc:  # noqa: BLE001 - counted by the test
            errors.append(f"{type(exc).__name__}: {exc}")
        time.sleep(0.02)


def test_two_markets_publishing_at_once_both_land_and_readers_see_whole_snapshots(reference, ducklake_backend):
    settings = Settings.from_env()
    runs = {m: pipeline.start_run("sample", *WINDOW, market=m).run_id for m in MARKETS}
    for step in (pipeline.extract_step, pipeline.land_step, pipeline.transform_step, pipeline.validate_step):
        for run_id in runs.values():
            step(run_id)  # both candidates are built against the empty lake

    stop, seen, errors = threading.Event(), [], []
    reader = threading.Thread(target=_read_whole_snapshots, args=(settings, stop, seen, errors))
    reader.start()
    results, failures = {}, {}
    barrier = threading.Barrier(len(runs))

    def publish(market: str) -> None:
        barrier.wait()
        try:
            results[market] = pipeline.publish_step(runs[market])
        except Exception as exc:  # noqa: BLE001 - asserted below
            failures[market] = exc

    writers = [threading.Thread(target=publish, args=(m,)) for m in MARKETS]
    for t in writers:
        t.start()
    for t in writers:
        t.join(timeout=300)
    time.sleep(0.3)
    stop.set()
    reader.join(timeout=60)

    assert not failures, failures
    # one of them committed first; the other was refused (conflict, or stale at its check) and rebuilt its
    # candidate on the first one's publish, as the file store does
    assert sorted(r["seq"] for r in results.values()) == [1, 2]
    assert sorted(len(r["rebuilt_from_seq"]) for r in results.values()) == [0, 1]
    con = ducklake_store.reader(settings)
    try:
        for table in [*TABLE_SPECS, *VIEW_MARTS]:
            assert lake_rows(con, table) == table_without_lineage(reference, table), table
        final = dict(con.execute("select s.market_code, count(*) from fct_daily_price p "
                                 "join dim_security s using (security_key) group by 1").fetchall())
    finally:
        con.close()
    assert query(reference, "select count(*) from fct_daily_price")[0][0] == sum(final.values())

    assert not errors, errors[:3]
    states: dict[int, set] = {}
    for seq, markets in seen:
        states.setdefault(seq, set()).add(markets)
    assert all(len(v) == 1 for v in states.values()), f"two states under one publish: {states}"
    first_market = next(m for m, r in results.items() if r["seq"] == 1)
    if 1 in states:  # the first publish: one market whole, with the FX pairs, nothing of the other
        first = json.loads(next(iter(states[1])))
        assert set(first) == {"FX", {"XHKG": "XHKG", "US": "US"}[first_market]}
        assert first[first_market] == final[first_market]
    if 2 in states:
        assert json.loads(next(iter(states[2]))) == final


def test_the_lakes_readers_see_compacted_audit_rows_exactly_once(ducklake_backend, monkeypatch):
    """Audit files compacted on this data directory (etl/audit.py; e.g. by the file store before a switch to
    DuckLake) stay visible once through the lake's reader and its `make sql` init, as through the file store."""
    from etl import audit

    ducklake_store.init_catalog(Settings.from_env())
    settings = Settings.from_env()
    for i in range(5):
        audit.append(settings.store_dir, "dq_run", [{"run_id": f"r{i}", "table_name": "t"}], f"r{i}")
    monkeypatch.setenv(audit.COMPACT_AT_ENV, "3")
    monkeypatch.setenv(audit.COMPACT_MIN_AGE_ENV, "0")
    assert audit.compact(settings.store_dir, seq=1, keep_manifests=10)["dq_run"] == 5
    audit.compact(settings.store_dir, seq=11, keep_manifests=10)  # the replaced loose files are deleted now
    assert not [p for p in (settings.store_dir / "audit" / "dq_run").glob("r*.parquet")]
    con = ducklake_store.reader(settings)
    try:
        assert con.execute("select run_id, count(*) from dq_run group by 1 order by 1").fetchall() == \
            [(f"r{i}", 1) for i in range(5)]
    finally:
        con.close()
    init = ducklake_store.cli_init_sql(settings)
    assert str(settings.store_dir / "audit" / "dq_run" / "compacted" / "c000001.parquet") in init
