"""The production configuration for real: PostgreSQL metadata, CeleryExecutor, a Redis broker, two DAGs at once,
publishing into the DuckLake warehouse (catalog in PostgreSQL, data files under the shared data dir).

What the test starts (each in its own process group, all killed at the end, passed or not):
  fresh PostgreSQL databases `airflow_ci_<random>` (Airflow metadata, Celery results) and `lake_ci_<random>`
  (the DuckLake catalog), both dropped at the end, a Redis DB number claimed for this run (flushed at the end)
  and a queue of its own, a temporary AIRFLOW_HOME and ETL_DATA_DIR;
  `airflow api-server` (Airflow 3 tasks report through its execution API), `airflow scheduler`,
  `airflow dag-processor`, `airflow celery worker` and a reader process querying the lake throughout.
Then it unpauses market_daily_xhkg and market_daily_us, triggers both together (sample source, September 2025)
and checks: both runs succeed and overlap in time, every task ran on the Celery worker and its result went to the
PostgreSQL result backend, the two publish tasks ran through pool warehouse_writer with 2 slots (DuckLake lets
writers commit concurrently; the one that loses the race rebuilds its stale candidate), the lake holds both
markets in two snapshots, the reader never failed and only ever saw whole publishes, and every published table
equals what the embedded default (etl.pipeline.run_all per market on the file backend, in a separate data dir)
produces for the same window, lineage columns aside.

The file backend under the same two-writer race is covered without Airflow by
tests/integration/test_concurrent_runs.py (and is the reference here); running this test on both backends
would double its ~2 minutes.

Needs PostgreSQL and Redis on 127.0.0.1 (PGHOST/PGPORT/PGUSER, REDIS_URL move them). Without them the test skips,
except under CI=true, where it fails. A summary (runs, durations, equality) is printed at the end.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

from etl.ducklake_store import scratch_database
from tests.airflow_services import AIRFLOW, REPO, Processes, airflow, airflow_env, port_open, task_logs, wait
from tests.conftest import LINEAGE, lake_rows, query, table_without_lineage

pytestmark = [pytest.mark.production, pytest.mark.e2e]

DAGS = ("market_daily_xhkg", "market_daily_us")
MARKET_OF = {"market_daily_xhkg": "XHKG", "market_daily_us": "US"}
CONF = {"source": "sample", "start": "2025-09-01", "end": "2025-09-30"}
TASKS = ("plan", "extract", "land", "transform", "validate", "publish", "export", "report")
PG_HOST = os.environ.get("PGHOST", "127.0.0.1")
PG_PORT = int(os.environ.get("PGPORT", "5432"))
PG_USER = os.environ.get("PGUSER", "postgres")
PG = {"host": PG_HOST, "port": PG_PORT, "user": PG_USER}
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379")
RUN_TIMEOUT_S = int(os.environ.get("PRODUCTION_TEST_TIMEOUT", "480"))
REFERENCE_SCRIPT = """
import json, sys, time
from datetime import date
from etl.pipeline import run_all
t = time.monotonic()
for market in ("XHKG", "US"):
    run_all("sample", date.fromisoformat(sys.argv[1]), date.fromisoformat(sys.argv[2]), market=market)
print(json.dumps({"seconds": time.monotonic() - t}))
"""
# audit tables carry timings and per-run values; every other published table must match the reference
AUDIT_ONLY = {"run_log", "dq_run", "dq_result", "warehouse_info"}
WRITER_SLOTS = 2


def _unavailable(reason: str):
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"production test cannot run in CI: {reason}")
    pytest.skip(reason)


def _pg_admin():
    import psycopg2

    con = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", connect_timeout=5)
    con.autocommit = True
    return con


# -- the services the test borrows: a PostgreSQL database and a Redis DB number ---------------------------------
@pytest.fixture(scope="module")
def pg_database():
    import importlib.util

    missing = [m for m in ("psycopg2", "redis", "celery", "airflow.providers.celery")
               if importlib.util.find_spec(m) is None]
    if missing:
        _unavailable(f"production extra not installed ({', '.join(missing)}); `make venv` installs it")
    try:
        _pg_admin().close()
    except Exception as exc:
        _unavailable(f"PostgreSQL not reachable at {PG_HOST}:{PG_PORT} as {PG_USER}: {exc}")
    with scratch_database("airflow_ci_", PG) as name:
        yield name


@pytest.fixture(scope="module")
def lake_database(pg_database):
    """The DuckLake catalog database, next to the metadata database in the same PostgreSQL."""
    with scratch_database("lake_ci_", PG) as name:
        yield name


@pytest.fixture(scope="module")
def redis_db():
    """A Redis DB number nobody uses, claimed with a key for this run; flushed at the end if still ours."""
    import redis

    token = secrets.token_hex(4)
    for number in list(range(15, 0, -1)):
        try:
            client = redis.Redis.from_url(f"{REDIS_URL}/{number}", socket_connect_timeout=5)
            if client.dbsize() == 0 and client.set("airflow_ci_claim", token, nx=True, ex=3600):
                break
        except Exception as exc:
            _unavailable(f"Redis not reachable at {REDIS_URL}: {exc}")
    else:
        _unavailable(f"no free Redis DB number at {REDIS_URL} (1..15 all hold keys)")
    try:
        yield number, token
    finally:
        if client.get("airflow_ci_claim") == token.encode():
            client.flushdb()
        client.close()


def _pg_rows(dbname: str, sql: str, params=None) -> list[tuple]:
    import psycopg2

    con = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=dbname, connect_timeout=5)
    try:
        with con.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()
    finally:
        con.close()


# -- the test ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def production_run(tmp_path_factory, pg_database, lake_database, redis_db):
    t0 = time.monotonic()
    timings: dict[str, float] = {}
    root = tmp_path_factory.mktemp("production")
    home, data, ref_data = root / "airflow_home", root / "data", root / "reference_data"
    home.mkdir()
    redis_number, token = redis_db
    queue = f"etl_ci_{token}"
    pg_url = f"postgresql+psycopg2://{PG_USER}@{PG_HOST}:{PG_PORT}/{pg_database}"
    env = airflow_env(
        home, data, "CeleryExecutor", pg_url,
        AIRFLOW__CELERY__BROKER_URL=f"{REDIS_URL}/{redis_number}",
        AIRFLOW__CELERY__RESULT_BACKEND=f"db+postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{pg_database}",
        AIRFLOW__CELERY__WORKER_CONCURRENCY="4",
        AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT="21600",
        AIRFLOW__OPERATORS__DEFAULT_QUEUE=queue,
        ETL_WAREHOUSE_BACKEND="ducklake",
        ETL_DUCKLAKE_CATALOG=f"dbname={lake_database} host={PG_HOST} port={PG_PORT} user={PG_USER}",
        ETL_DUCKLAKE_DATA=str(data / "lake"),
    )
    api_port = int(env["AIRFLOW__API__PORT"])
    procs = Processes(home, env, may_exit=("reader", "reference"))
    try:
        # the embedded default for the same window (etl.pipeline.run_all per market) in its own data dir, in the
        # background while Airflow starts
        ref_env = {**{k: v for k, v in env.items() if not k.startswith("ETL_DUCKLAKE")}, "ETL_DATA_DIR": str(ref_data),
                   "ETL_WAREHOUSE": str(ref_data / "warehouse.duckdb"), "ETL_WAREHOUSE_BACKEND": "file"}
        procs.start("reference", [sys.executable, "-c", REFERENCE_SCRIPT, CONF["start"], CONF["end"]], ref_env)

        step = time.monotonic()
        airflow(env, "db", "migrate")
        airflow(env, "pools", "set", "warehouse_writer", str(WRITER_SLOTS), "DuckLake: concurrent publishes")
        timings["db migrate + pool (PostgreSQL)"] = time.monotonic() - step
        step = time.monotonic()
        # what docker-compose's airflow-init does on the ducklake backend: the catalog exists before any writer
        init = subprocess.run([sys.executable, "-m", "etl", "init-lake"], env=env, cwd=REPO, capture_output=True,
                              text=True, timeout=120)
        assert init.returncode == 0, init.stderr[-3000:]
        timings["python -m etl init-lake (DuckLake catalog in PostgreSQL)"] = time.monotonic() - step

        step = time.monotonic()
        procs.start_airflow(api_port)
        procs.start("celery-worker", [AIRFLOW, "celery", "worker", "--queues", queue, "--concurrency", "4",
                                      "--celery-hostname", f"ci-{token}@%h", "--skip-serve-logs",
                                      "--without-gossip", "--without-mingle"])
        wait("the DAGs to be parsed into PostgreSQL",
             lambda: len(_pg_rows(pg_database, "select dag_id from dag where dag_id = any(%s) and not is_stale",
                                  (list(DAGS),))) == 2, 180, procs)

        wait("the API server", lambda: port_open(api_port), 120, procs)
        wait("the Celery worker", lambda: "ready." in (home / "celery-worker.log").read_text(), 120, procs)
        timings["services up (api-server, scheduler, dag-processor, celery worker)"] = time.monotonic() - step

        procs.start("reader", [sys.executable, str(Path(__file__).with_name("warehouse_reader.py")),
                               "ducklake", str(root / "reader.jsonl"), str(root / "reader.stop")])
        step = time.monotonic()
        airflow(env, "dags", "unpause", "--treat-dag-id-as-regex", "-y", f"^({'|'.join(DAGS)})$")
        # triggered together: both trigger commands run at the same time
        triggers = [subprocess.Popen([AIRFLOW, "dags", "trigger", dag_id, "--conf", json.dumps(CONF),
                                      "--run-id", f"ci__{token}__{dag_id}"], env=env, cwd=REPO,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                    for dag_id in DAGS]
        for trigger in triggers:
            out, _ = trigger.communicate(timeout=120)
            assert trigger.returncode == 0, out[-3000:]
        triggered = time.monotonic()

        def finished():
            bad = _pg_rows(pg_database, "select dag_id, task_id, state from task_instance where dag_id = any(%s) "
                                        "and state in ('failed', 'up_for_retry', 'upstream_failed')", (list(DAGS),))
            if bad:  # the sample source never needs a retry: fail now, not after the retry delay
                return {f"{d}.{t}": s for d, t, s in bad}
            rows = _pg_rows(pg_database, "select dag_id, state from dag_run where dag_id = any(%s)", (list(DAGS),))
            states = dict(rows)
            return states if len(states) == 2 and all(s in ("success", "failed") for s in states.values()) else None

        states = wait("both DAG runs to finish", finished, RUN_TIMEOUT_S, procs, every=2)
        timings["both DAG runs (trigger to last run finished)"] = time.monotonic() - triggered
        (root / "reader.stop").touch()
        procs.procs["reader"].wait(timeout=30)
        if set(states) != set(DAGS) or any(s != "success" for s in states.values()):
            raise AssertionError(f"DAG runs did not all succeed: {states}\n"
                                 + "\n".join(task_logs(home, d) for d in DAGS) + "\n" + procs.tails())

        dag_runs = _pg_rows(pg_database, "select dag_id, run_id, state, start_date, end_date, conf::text "
                                         "from dag_run where dag_id = any(%s) order by dag_id", (list(DAGS),))
        task_instances = _pg_rows(
            pg_database,
            "select dag_id, task_id, state, start_date, end_date, pool, queue, hostname, try_number, executor "
            "from task_instance where dag_id = any(%s) order by start_date", (list(DAGS),))
        # the worker stores a task's result just after the task instance turned success: wait for the last ones
        pool_slots = _pg_rows(pg_database, "select slots from slot_pool where pool = 'warehouse_writer'")
        celery_results = wait(
            "the Celery results of every task in PostgreSQL",
            lambda: (rows := dict(_pg_rows(pg_database, "select status, count(*) from celery_taskmeta group by 1")))
            and sum(rows.values()) >= len(task_instances) and set(rows) == {"SUCCESS"} and rows, 30, procs)
        timings["airflow part (migrate to runs done)"] = time.monotonic() - t0
        ref_rc = procs.procs["reference"].wait(timeout=600)
        assert ref_rc == 0, f"embedded reference failed ({ref_rc}):\n{procs.tails(60)}"
        timings["embedded reference (run_all XHKG then US, in parallel with the above)"] = json.loads(
            (home / "reference.log").read_text().splitlines()[-1])["seconds"]
    finally:
        procs.stop_all()

    reads = [json.loads(line) for line in (root / "reader.jsonl").read_text().splitlines()]
    return {
        "root": root, "home": home, "env": env,
        "reference": ref_data / "warehouse.duckdb", "queue": queue, "pg_database": pg_database,
        "redis_db": redis_number, "dag_runs": dag_runs, "task_instances": task_instances,
        "celery_results": celery_results, "pool_slots": pool_slots, "reads": reads, "timings": timings,
        "processes_alive_after_stop": [n for n, p in procs.procs.items() if p.poll() is None], "t0": t0,
    }


def _published_tables_file(warehouse: Path) -> list[str]:
    names = query(warehouse, "select view_name from duckdb_views() where not internal "
                             "union select table_name from duckdb_tables() order by 1")
    return [n for (n,) in names if n not in AUDIT_ONLY]


def _published_tables(con) -> list[str]:
    """The lake's tables and views, and the audit views the reader adds (quarantine, restatement: compared too)."""
    names = con.execute("select view_name from duckdb_views() where database_name in ('lake', 'temp') "
                        "and not internal "
                        "union select table_name from duckdb_tables() where database_name = 'lake' "
                        "order by 1").fetchall()
    return [n for (n,) in names if n not in AUDIT_ONLY]


def _lake_reader(env: dict):
    from etl import ducklake_store
    from etl.config import Settings

    data = Path(env["ETL_DATA_DIR"])
    settings = Settings(data_dir=data, warehouse=Path(env["ETL_WAREHOUSE"]), universe_file=REPO / "etl" /
                        "universe.yaml", backend="ducklake", ducklake_catalog=env["ETL_DUCKLAKE_CATALOG"],
                        ducklake_data=env["ETL_DUCKLAKE_DATA"])
    return ducklake_store.reader(settings)


def test_two_dags_at_once_on_celery_and_postgres(production_run, capsys):
    r = production_run
    runs = {row[0]: row for row in r["dag_runs"]}
    assert set(runs) == set(DAGS) and all(row[2] == "success" for row in runs.values())
    assert all(json.loads(row[5]) == CONF for row in runs.values())

    # at the same time: each run started before the other one ended
    (_, _, _, s1, e1, _), (_, _, _, s2, e2, _) = runs.values()
    assert s1 < e2 and s2 < e1, f"the runs did not overlap: {s1}..{e1} and {s2}..{e2}"

    # every task of both DAGs ran once, on the Celery worker, from the test's queue; results in PostgreSQL
    tis = r["task_instances"]
    assert sorted((t[0], t[1]) for t in tis) == sorted((d, t) for d in DAGS for t in TASKS)
    assert all(t[2] == "success" for t in tis), [t[:3] for t in tis if t[2] != "success"]
    assert {t[6] for t in tis} == {r["queue"]}
    assert all(t[9] in (None, "CeleryExecutor") for t in tis)
    assert sum(r["celery_results"].values()) >= len(tis) and set(r["celery_results"]) == {"SUCCESS"}

    # both publishes went through pool warehouse_writer, whose 2 slots let them run at the same time
    publishes = sorted((t for t in tis if t[1] == "publish"), key=lambda t: t[3])
    assert r["pool_slots"] == [(WRITER_SLOTS,)]
    assert [t[5] for t in publishes] == ["warehouse_writer", "warehouse_writer"]
    publishes_overlapped = publishes[1][3] < publishes[0][4]
    # tasks of the two DAGs did run side by side somewhere (not one DAG after the other)
    overlapping = [(a[0], a[1], b[0], b[1]) for a in tis for b in tis
                   if a[0] < b[0] and a[3] < b[4] and b[3] < a[4]]
    assert overlapping, "no task of one DAG ran while a task of the other one was running"

    con = _lake_reader(r["env"])
    try:
        # the final lake holds both markets and both publishes
        by_market = dict(con.execute("select s.market_code, count(*) from fct_daily_price p "
                                     "join dim_security s using (security_key) group by 1").fetchall())
        assert set(by_market) == {"XHKG", "US", "FX"}
        assert con.execute("select manifest_seq from warehouse_info").fetchall() == [(2,)]
        snapshots = con.execute("select snapshot_id, split_part(commit_message, '__', 1) from lake.snapshots() "
                                "where commit_message is not null order by 1").fetchall()
        published_by = con.execute("select split_part(run_id, '__', 1), details from run_log "
                                   "where step = 'publish' and status = 'success' order by 1").fetchall()
        tables = _published_tables(con)
        got = {t: lake_rows(con, t) for t in tables}
    finally:
        con.close()
    assert len(snapshots) == 2, snapshots  # one DuckLake snapshot per publish, named by its run
    assert sorted(m for m, _ in published_by) == ["US", "XHKG"]
    details = {m: json.loads(d) for m, d in published_by}
    first = next(m for m, d in details.items() if d["seq"] == 1)
    second = next(m for m, d in details.items() if d["seq"] == 2)
    rebuilt = {m: d["rebuilt_from_seq"] for m, d in details.items()}
    # the first committer published the candidate it had; the second rebuilt if its candidate predates it
    assert rebuilt[first] == [], rebuilt
    assert [m for _, m in snapshots] == [first, second]

    # the reader: never an error, and only whole publishes: one state per publish seq, the first publish holds
    # one market complete (and its FX), the second is the final warehouse
    reads = r["reads"]
    errors = [x for x in reads if "error" in x]
    assert not errors, errors[:5]
    by_seq: dict[int, set] = {}
    for x in reads:
        if "seq" in x:
            by_seq.setdefault(x["seq"], set()).add(json.dumps([x["markets"], x["fx"]], sort_keys=True))
    assert by_seq, "the reader never saw a published warehouse"
    assert all(len(v) == 1 for v in by_seq.values()), f"two states under one publish: {by_seq}"
    seen = {seq: json.loads(next(iter(v))) for seq, v in sorted(by_seq.items())}
    if 1 in seen:
        first_state = seen[1][0]
        equities = set(first_state) - {"FX"}
        assert equities == {first} and first_state[first] == by_market[first], f"partial publish: {first_state}"
        assert first_state.get("FX"), f"first publish without FX: {first_state}"
    if 2 in seen:
        assert seen[2][0] == by_market, seen[2]

    # the published tables equal the embedded default's (file backend), lineage columns aside
    assert tables == _published_tables_file(r["reference"])
    equal, rows = {}, {}
    for table in tables:
        want = table_without_lineage(r["reference"], table)
        equal[table], rows[table] = got[table] == want, len(got[table])
    assert not [t for t, ok in equal.items() if not ok], {t: ok for t, ok in equal.items() if not ok}

    assert r["processes_alive_after_stop"] == []

    def iso(ts: datetime) -> str:
        return ts.strftime("%H:%M:%S")

    lines = ["", "== production configuration: PostgreSQL metadata + CeleryExecutor (Redis broker, "
             "PostgreSQL result backend), DuckLake warehouse (catalog in PostgreSQL)",
             f"   database {r['pg_database']} (dropped after), Redis DB {r['redis_db']}, queue {r['queue']}, "
             f"1 Celery worker x 4 slots"]
    for dag_id, run_id, state, start, end, _ in r["dag_runs"]:
        lines.append(f"   {dag_id:<18} {state:<8} {iso(start)}..{iso(end)}  {(end - start).total_seconds():5.1f} s"
                     f"  run_id={run_id}")
    for t in publishes:
        lines.append(f"   publish {t[0]:<18} pool={t[5]} {iso(t[3])}..{iso(t[4])} "
                     f"({(t[4] - t[3]).total_seconds():.1f} s)  on {t[7]}")
    lines.append(f"   publishes overlapped in time: {publishes_overlapped}; lake snapshots {snapshots}; first "
                 f"committer {first}, second ({second}) rebuilt its stale candidate from publish seq "
                 f"{rebuilt[second]} after {details[second].get('conflict_retries', 0)} commit conflict(s)")
    lines.append(f"   celery results in PostgreSQL: {r['celery_results']}; task instances: {len(tis)}, all success")
    lines.append(f"   reader: {len(reads)} rounds, {len(errors)} errors, states seen (seq: rows by market) "
                 f"{ {seq: v[0] for seq, v in seen.items()} } "
                 f"(before first publish: {sum(1 for x in reads if x.get('absent'))} rounds)")
    lines.append(f"   fct_daily_price by market: {by_market}")
    lines.append(f"   equality with embedded run_all (without {sorted(LINEAGE)}): "
                 f"{sum(equal.values())}/{len(equal)} tables equal: "
                 + ", ".join(f"{t}={rows[t]}" for t in tables))
    for what, seconds in r["timings"].items():
        lines.append(f"   {what:<70} {seconds:6.1f} s")
    lines.append(f"   {'total':<70} {time.monotonic() - r['t0']:6.1f} s")
    with capsys.disabled():
        print("\n".join(lines))
