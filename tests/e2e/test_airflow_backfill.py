"""An Airflow 3 backfill for real: `airflow backfill create` over past sessions, run by the scheduler.

What the test starts (each in its own process group, all stopped at the end): a temporary AIRFLOW_HOME with SQLite
metadata and the LocalExecutor (what `make airflow` runs), `airflow api-server` on a free port, `airflow scheduler`,
`airflow dag-processor`; and, in parallel, one straight `python -m etl run` over the same window in another data
dir (the reference). Then it creates a backfill of market_daily_xhkg on the sample source over Mon 2025-09-29 ..
Thu 2025-10-02 (three sessions and National Day, a holiday, across a month end) with the backfill's own
max-active-runs above 1 on purpose, and checks:

* every run succeeded, several ran at the same time, and the holiday's run skipped;
* each run processed the right market days: the window etl.schedule derives from its logical date and the XHKG
  calendar (Monday's run carries the weekend, Thursday's the holiday), read from the run's context and from the
  lineage of the published rows;
* single writer: the publish tasks ran in pool warehouse_writer, never two at once, and in date order
  (depends_on_past), however the runs around them interleaved;
* the published tables equal the straight run's (content hashes without lineage columns).
"""

from __future__ import annotations

import json
import sqlite3
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.airflow_services import Processes, airflow, airflow_env, port_open, task_logs, wait
from tests.conftest import query
from tests.reliability.conftest import warehouse_hashes

pytestmark = pytest.mark.e2e

DAG_ID = "market_daily_xhkg"
# instants: a bare date is midnight UTC, before that day's 17:30 run in Hong Kong; the last run is Oct 2's
FROM_DATE, TO_DATE = "2025-09-29", "2025-10-02T23:59:59+08:00"
MAX_ACTIVE_RUNS = 3
HK = ZoneInfo("Asia/Hong_Kong")
# local day of each cron tick (17:30 Hong Kong) -> the market window its run must cover (None: no session)
EXPECTED_WINDOWS = {
    date(2025, 9, 29): (date(2025, 9, 27), date(2025, 9, 29)),  # Monday: Saturday and Sunday's FX too
    date(2025, 9, 30): (date(2025, 9, 30), date(2025, 9, 30)),
    date(2025, 10, 1): None,  # National Day: the run skips
    date(2025, 10, 2): (date(2025, 10, 1), date(2025, 10, 2)),  # the holiday's FX quotes, then the session
}
WHOLE = (date(2025, 9, 27), date(2025, 10, 2))
SNAPSHOT_TABLES = {"fct_valuation_daily"}  # one row per listing per run by design (see test_idempotence.py)
TIMEOUT_S = 420


def _rows(db: Path, sql: str, params=()) -> list[tuple]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def _ts(text: str | None) -> datetime | None:
    """A timestamp from the metadata DB (SQLite stores UTC without an offset) or the API."""
    if not text:
        return None
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _api(port: int, path: str, body: dict, token: str | None = None) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(), method="POST",
                                 headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def _ui_dry_runs(home: Path, port: int) -> dict[str, tuple[int, dict]]:
    """What the UI's Backfill dialog asks the API (POST /api/v2/backfills/dry_run, as the simple auth manager's
    admin) for each of its three reprocess choices, over the test's range."""
    password = json.loads((home / "simple_auth_manager_passwords.json.generated").read_text())["admin"]
    status, token = _api(port, "/auth/token", {"username": "admin", "password": password})
    assert status == 201, token
    body = {"dag_id": DAG_ID, "from_date": FROM_DATE, "to_date": TO_DATE, "max_active_runs": MAX_ACTIVE_RUNS,
            "run_backwards": False, "dag_run_conf": {"source": "sample"}}
    return {choice: _api(port, "/api/v2/backfills/dry_run", {**body, "reprocess_behavior": choice},
                         token["access_token"]) for choice in ("none", "failed", "completed")}


@pytest.fixture(scope="module")
def backfill(tmp_path_factory) -> dict:
    t0 = time.monotonic()
    timings: dict[str, float] = {}
    root = tmp_path_factory.mktemp("backfill")
    home, data, ref_data = root / "airflow_home", root / "data", root / "reference_data"
    home.mkdir()
    db = home / "airflow.db"
    # SQLite's busy timeout 60 s instead of 5: the scheduler, dag-processor and api-server write the same file as
    # `airflow backfill create`, which failed once with "database is locked" on a slow minute of this 2-core VM
    env = airflow_env(home, data, "LocalExecutor", f"sqlite:///{db}?timeout=60")
    api_port = int(env["AIRFLOW__API__PORT"])
    procs = Processes(home, env, may_exit=("reference",))
    try:
        ref_env = {**env, "ETL_DATA_DIR": str(ref_data), "ETL_WAREHOUSE": str(ref_data / "warehouse.duckdb")}
        procs.start("reference", [sys.executable, "-m", "etl", "run", "--source", "sample", "--market", "XHKG",
                                  "--start", str(WHOLE[0]), "--end", str(WHOLE[1])], ref_env)
        step = time.monotonic()
        airflow(env, "db", "migrate")
        airflow(env, "pools", "set", "warehouse_writer", "1", "one task at a time publishes the warehouse")
        timings["db migrate + pool (SQLite)"] = time.monotonic() - step

        step = time.monotonic()
        procs.start_airflow(api_port)
        wait("the DAG to be parsed", lambda: _rows(db, "select 1 from serialized_dag where dag_id = ?", (DAG_ID,)),
             180, procs)
        wait("the API server", lambda: port_open(api_port), 120, procs)
        timings["services up (api-server, scheduler, dag-processor)"] = time.monotonic() - step
        wait("the simple auth manager's passwords",
             lambda: (home / "simple_auth_manager_passwords.json.generated").exists(), 60, procs)
        ui_dry_runs = _ui_dry_runs(home, api_port)

        # the UI's "Unpause on trigger": the scheduler runs no task of a paused DAG (no cron run either: the
        # test's scheduler has use_job_schedule off)
        airflow(env, "dags", "unpause", DAG_ID, "-y")
        step = time.monotonic()
        created = airflow(env, "backfill", "create", "--dag-id", DAG_ID, "--from-date", FROM_DATE,
                          "--to-date", TO_DATE, "--max-active-runs", str(MAX_ACTIVE_RUNS),
                          "--reprocess-behavior", "failed", "--dag-run-conf", json.dumps({"source": "sample"}))

        def finished():
            bad = _rows(db, "select run_id, task_id, state from task_instance where dag_id = ? "
                            "and state in ('failed', 'up_for_retry', 'upstream_failed')", (DAG_ID,))
            if bad:  # the sample source never needs a retry: fail now, not after the retry delay
                return bad
            # (the scheduler stamps backfill.completed_at only every 30 s: the runs' own states say it sooner)
            states = _rows(db, "select state from dag_run where dag_id = ? and backfill_id is not null", (DAG_ID,))
            done = len(states) == len(EXPECTED_WINDOWS) and all(s in ("success", "failed") for (s,) in states)
            return states if done else None

        outcome = wait("the backfill's runs to finish", finished, TIMEOUT_S, procs, every=2)
        timings["backfill (create to last run finished)"] = time.monotonic() - step
        runs = _rows(db, "select run_id, logical_date, state, start_date, end_date, backfill_id, run_type, conf "
                         "from dag_run where dag_id = ? order by logical_date", (DAG_ID,))
        tis = _rows(db, "select run_id, task_id, state, start_date, end_date, pool from task_instance "
                        "where dag_id = ? order by start_date", (DAG_ID,))
        backfills = _rows(db, "select id, max_active_runs, reprocess_behavior from backfill")
        if any(len(row) == 3 for row in outcome) or any(r[2] != "success" for r in runs):
            raise AssertionError(f"backfill runs did not all succeed: {outcome} {runs}\n"
                                 f"{task_logs(home, DAG_ID)}\n{procs.tails()}")
        ref_rc = procs.procs["reference"].wait(timeout=300)
        assert ref_rc == 0, f"reference run failed ({ref_rc}):\n{procs.tails(60)}"
        timings["airflow part (migrate to last run finished)"] = time.monotonic() - t0
    finally:
        procs.stop_all()
    return {"root": root, "data": data, "warehouse": data / "warehouse.duckdb",
            "reference": ref_data / "warehouse.duckdb", "created": created, "runs": runs, "tis": tis,
            "backfills": backfills, "ui_dry_runs": ui_dry_runs, "timings": timings, "alive": procs.alive(), "t0": t0}


def test_a_parallel_backfill_publishes_one_at_a_time_in_order_and_equals_one_run(backfill, capsys):
    from etl.run import safe_run_id

    r = backfill
    # the UI's Backfill dialog: its default "Missing Runs" is refused because publish depends on the previous
    # run's; "Missing and Errored Runs" and "All Runs" preview the same runs the CLI then created
    status, refused = r["ui_dry_runs"]["none"]
    assert status == 422 and "depends_on_past" in json.dumps(refused), (status, refused)
    for choice in ("failed", "completed"):
        status, preview = r["ui_dry_runs"][choice]
        assert status == 200 and [_ts(b["logical_date"]) for b in preview["backfills"]] \
            == [_ts(row[1]) for row in r["runs"]], (choice, status, preview)
    # given: one backfill, allowed MAX_ACTIVE_RUNS runs at once (not the DAG's max_active_runs=1)
    assert [(b[1], b[2]) for b in r["backfills"]] == [(MAX_ACTIVE_RUNS, "failed")]
    runs = {_ts(row[1]).astimezone(HK).date(): row for row in r["runs"]}
    assert list(runs) == list(EXPECTED_WINDOWS), f"runs created for {list(runs)}"
    assert all(row[6] == "backfill" and row[5] == r["backfills"][0][0] for row in runs.values())
    assert all(_ts(row[1]).astimezone(HK).strftime("%H:%M") == "17:30" for row in runs.values())
    assert all(json.loads(row[7]) == {"source": "sample"} for row in runs.values())
    # every run succeeded, and some ran at the same time (max-active-runs above 1 took effect)
    assert {row[2] for row in runs.values()} == {"success"}
    spans = [(_ts(row[3]), _ts(row[4])) for row in runs.values()]
    overlapping = [(a, b) for i, a in enumerate(spans) for b in spans[i + 1:] if a[0] < b[1] and b[0] < a[1]]
    assert overlapping, f"no two backfill runs ran at the same time: {spans}"

    # each run covered its market days: the context its plan task wrote, and the published rows' lineage
    tis = r["tis"]
    state = {(t[0], t[1]): t[2] for t in tis}
    covered, published_days = {}, {}
    for day, row in runs.items():
        run_id = f"XHKG__{safe_run_id(row[0])}"
        if EXPECTED_WINDOWS[day] is None:
            assert state[(row[0], "plan")] == "skipped" and state[(row[0], "publish")] == "skipped"
            continue
        ctx = json.loads((r["data"] / "work" / run_id / "run.json").read_text())
        covered[day] = (date.fromisoformat(ctx["start"]), date.fromisoformat(ctx["end"]))
        published_days[day] = [d for (d,) in query(
            r["warehouse"], "select distinct p.date_key from fct_daily_price p join dim_security s "
                            "using (security_key) where s.market_code = 'XHKG' and p.run_id = ? order by 1",
            [run_id])]
    assert covered == {d: w for d, w in EXPECTED_WINDOWS.items() if w}
    assert published_days == {d: [int(d.strftime("%Y%m%d"))] for d, w in EXPECTED_WINDOWS.items() if w}

    # single writer: publishes in pool warehouse_writer, never two at once, in date order
    publishes = [(day, state[(row[0], "publish")], next(t for t in tis if t[0] == row[0] and t[1] == "publish"))
                 for day, row in runs.items() if EXPECTED_WINDOWS[day]]
    assert {p[2][5] for p in publishes} == {"warehouse_writer"}
    assert {p[1] for p in publishes} == {"success"}
    intervals = [(_ts(p[2][3]), _ts(p[2][4])) for p in publishes]
    assert all(a[1] <= b[0] for a, b in zip(intervals, intervals[1:], strict=False)), \
        f"publishes overlapped or ran out of date order: {[(p[0], p[2][3], p[2][4]) for p in publishes]}"
    # ... while other tasks of the runs did overlap
    others = [t for t in tis if t[3] and t[4] and t[2] == "success"]
    side_by_side = [(a[0], a[1], b[0], b[1]) for i, a in enumerate(others) for b in others[i + 1:]
                    if a[0] != b[0] and _ts(a[3]) < _ts(b[4]) and _ts(b[3]) < _ts(a[4])]
    assert side_by_side, "no two tasks of different runs ran at the same time"
    assert query(r["warehouse"], "select manifest_seq from warehouse_info") == [(len(publishes),)]

    # the published tables equal one straight run over the same window
    got = warehouse_hashes(r["warehouse"], exclude_tables=SNAPSHOT_TABLES)
    want = warehouse_hashes(r["reference"], exclude_tables=SNAPSHOT_TABLES)
    assert set(got) >= {"dim_security", "fct_daily_price", "fct_fx_rate", "fct_corporate_action"}
    assert got == want, {t: (got.get(t), want.get(t)) for t in set(got) | set(want) if got.get(t) != want.get(t)}
    assert r["alive"] == []

    rebuilt = query(r["warehouse"], "select run_id, details from run_log where step = 'publish' "
                                    "and status = 'success' order by started_at")
    lines = ["", f"== airflow backfill create --dag-id {DAG_ID} --from-date {FROM_DATE} --to-date {TO_DATE} "
                 f"--max-active-runs {MAX_ACTIVE_RUNS} (SQLite, LocalExecutor)"]
    for day, row in runs.items():
        lines.append(f"   {day} {row[2]:<8} {_ts(row[3]):%H:%M:%S}..{_ts(row[4]):%H:%M:%S}  "
                     + (f"window {covered[day][0]}..{covered[day][1]}" if day in covered else "skipped (no session)"))
    for day, _, ti in publishes:
        lines.append(f"   publish {day} {_ts(ti[3]):%H:%M:%S.%f}..{_ts(ti[4]):%H:%M:%S.%f}"[:-3])
    lines.append("   rebuilt stale candidates (run: from seq): "
                 + ", ".join(f"{rid.split('__')[-1]}: {json.loads(d)['rebuilt_from_seq']}" for rid, d in rebuilt))
    lines.append(f"   runs overlapping in time: {len(overlapping)} pairs; tables equal to one run: {len(got)}")
    for what, seconds in r["timings"].items():
        lines.append(f"   {what:<50} {seconds:6.1f} s")
    lines.append(f"   {'total':<50} {time.monotonic() - r['t0']:6.1f} s")
    with capsys.disabled():
        print("\n".join(lines))
