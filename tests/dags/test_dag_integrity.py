"""DAG integrity: the DAG files import, have no cycles, and carry docs, owner, retries, tags and a pool."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

PROBE = textwrap.dedent("""
    import json
    from airflow.dag_processing.dagbag import DagBag
    bag = DagBag(dag_folder="{dags}")
    out = {{"errors": {{k: str(v) for k, v in bag.import_errors.items()}}, "dags": {{}}}}
    for dag_id, dag in bag.dags.items():
        tasks = {{t.task_id: {{"owner": t.owner, "retries": t.retries, "pool": t.pool,
                             "depends_on_past": t.depends_on_past,
                             "downstream": sorted(t.downstream_task_ids),
                             "outlets": [getattr(o, "name", str(o)) for o in t.outlets]}} for t in dag.tasks}}
        tt = dag.timetable
        out["dags"][dag_id] = {{"doc_md": dag.doc_md or "", "tags": sorted(dag.tags), "tasks": tasks,
                               "max_active_runs": dag.max_active_runs, "catchup": dag.catchup,
                               "timetable": type(tt).__name__, "summary": getattr(tt, "expression", None),
                               "timezone": str(getattr(tt, "timezone", ""))}}
    print("JSON:" + json.dumps(out))
""")


@pytest.fixture(scope="module")
def dagbag(tmp_path_factory) -> dict:
    import json

    home = tmp_path_factory.mktemp("airflow_home")
    env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
           "PYTHONPATH": str(REPO), "ETL_DATA_DIR": str(home / "data")}
    proc = subprocess.run([sys.executable, "-c", PROBE.format(dags=REPO / "dags")], env=env,
                          capture_output=True, text=True, timeout=180)
    line = [x for x in proc.stdout.splitlines() if x.startswith("JSON:")]
    assert line, proc.stdout[-2000:] + proc.stderr[-4000:]
    return json.loads(line[0][5:])


def test_dag_files_import_without_errors(dagbag):
    assert dagbag["errors"] == {}
    assert set(dagbag["dags"]) == {"market_daily_xhkg", "market_daily_us"}


def test_every_dag_is_documented_owned_tagged_and_single_run(dagbag):
    for dag_id, dag in dagbag["dags"].items():
        assert "When it fails" in dag["doc_md"], dag_id
        assert "market-data" in dag["tags"]
        assert dag["max_active_runs"] == 1
        assert dag["catchup"] is False
        for task_id, task in dag["tasks"].items():
            assert task["owner"] == "market-data", (dag_id, task_id)
        assert dag["tasks"]["extract"]["retries"] >= 2
        assert dag["tasks"]["validate"]["retries"] == 0


def test_tasks_run_in_order_and_publish_alone_writes_the_warehouse(dagbag):
    for dag in dagbag["dags"].values():
        tasks = dag["tasks"]
        order = ["plan", "extract", "land", "transform", "validate", "publish"]
        for upstream, downstream in zip(order, order[1:], strict=False):
            assert downstream in tasks[upstream]["downstream"], (upstream, downstream)
        assert set(tasks) == {*order, "export", "report"}
        assert tasks["publish"]["pool"] == "warehouse_writer"
        assert {t["pool"] for n, t in tasks.items() if n != "publish"} == {"default_pool"}
        # publishes in date order (a backfill runs several days at once; a day reads the day before it), while
        # every other task of a run may go ahead of the previous run's
        assert tasks["publish"]["depends_on_past"] is True
        assert not [n for n, t in tasks.items() if n != "publish" and t["depends_on_past"]]
        assert "warehouse.fct_daily_price" in tasks["publish"]["outlets"]
        # the export and the report only read what publish wrote: both after it, side by side, last, outside the
        # writer pool, neither waiting for the previous run (the export catches up in order by itself)
        assert tasks["publish"]["downstream"] == ["export", "report"]
        assert tasks["export"]["downstream"] == tasks["report"]["downstream"] == []
        assert tasks["export"]["retries"] >= 1


def test_doc_md_links_the_daily_report(dagbag):
    for dag_id, dag in dagbag["dags"].items():
        assert "report/latest.html](file://" in dag["doc_md"], dag_id
        assert "publish -> export, report" in dag["doc_md"], dag_id


def test_schedules_run_after_each_markets_close_in_its_timezone(dagbag):
    hk, us = dagbag["dags"]["market_daily_xhkg"], dagbag["dags"]["market_daily_us"]
    assert hk["timetable"] == us["timetable"] == "CronTriggerTimetable"
    assert hk["summary"] == us["summary"] == "30 17 * * 1-5"
    assert hk["timezone"] == "Asia/Hong_Kong"
    assert us["timezone"] == "America/New_York"
