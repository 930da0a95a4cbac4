"""End to end through Airflow itself: `airflow dags test` on the sample source, then the published tables."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import query

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]
AIRFLOW = str(Path(sys.executable).parent / "airflow")


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory) -> dict:
    home = tmp_path_factory.mktemp("airflow_home")
    data = home / "data"
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "PYTHONPATH": str(REPO),
        "ETL_DATA_DIR": str(data),
        "ETL_WAREHOUSE": str(data / "warehouse.duckdb"),
        "GX_ANALYTICS_ENABLED": "false",
    }
    subprocess.run([AIRFLOW, "db", "migrate"], env=env, check=True, capture_output=True, timeout=300)
    return env


def _dags_test(env: dict, dag_id: str, logical_date: str, conf: dict | None = None) -> str:
    cmd = [AIRFLOW, "dags", "test", dag_id, logical_date]
    if conf:
        cmd += ["-c", json.dumps(conf)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-5000:]
    return output


def test_both_market_dags_publish_a_september_backfill(airflow_env):
    conf = {"source": "sample", "start": "2025-09-01", "end": "2025-09-30"}
    for dag_id in ("market_daily_xhkg", "market_daily_us"):
        out = _dags_test(airflow_env, dag_id, "2025-09-30", conf)
        assert f"DagRun Finished: dag_id={dag_id}" in out and "state=success" in out
    wh = Path(airflow_env["ETL_WAREHOUSE"])
    by_market = dict(query(wh, "select s.market_code, count(*) from fct_daily_price p "
                               "join dim_security s using (security_key) group by 1"))
    assert by_market == {"XHKG": 24 * 22, "US": 12 * 21, "FX": 2 * 22}
    runs = query(wh, "select distinct split_part(run_id, '__', 1) from run_log where step = 'publish' order by 1")
    assert runs == [("US",), ("XHKG",)]
    assert query(wh, "select manifest_seq from warehouse_info") == [(2,)]
    # after publish: the Parquet export of that publish, and the report task's page
    data = Path(airflow_env["ETL_DATA_DIR"])
    assert (data / "export" / "current").resolve().name == "v000002"
    report = (data / "report" / "latest.html").read_text()
    assert '<svg id="chart-adr-premium"' in report and "US__" in report  # the US run came last
    assert (data / "report" / "2025-09-30_XHKG.html").exists() and (data / "report" / "2025-09-30_US.html").exists()


def test_a_non_session_day_is_skipped_and_a_scheduled_day_covers_its_session(airflow_env):
    wh = Path(airflow_env["ETL_WAREHOUSE"])
    before = query(wh, "select manifest_seq from warehouse_info") if wh.exists() else [(0,)]
    # 2025-10-01 18:00 in Hong Kong: National Day, no session
    out = _dags_test(airflow_env, "market_daily_xhkg", "2025-10-01T10:00:00+00:00", {"source": "sample"})
    assert "is not a XHKG session" in out
    after = query(wh, "select manifest_seq from warehouse_info") if wh.exists() else [(0,)]
    assert after == before
    # 2025-10-02 17:30 in Hong Kong (the scheduled time): the run covers the days since the previous session,
    # so that day's session for the HK listings, and the holiday's own FX quotes (FX trades on Oct 1)
    _dags_test(airflow_env, "market_daily_xhkg", "2025-10-02T09:30:00+00:00", {"source": "sample"})
    days = query(wh, "select distinct p.date_key, s.security_type = 'fx' from fct_daily_price p "
                     "join dim_security s using (security_key) where p.date_key > 20250930 order by 1, 2")
    assert days == [(20251001, True), (20251002, False), (20251002, True)]
