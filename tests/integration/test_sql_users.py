"""SQL users: the bundled DuckDB CLI opens the published warehouse read-only, also while a run publishes, and
sees the descriptions from etl/catalog.yaml."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from datetime import date
from pathlib import Path

import duckdb
import pytest

from etl.catalog import catalog
from etl.pipeline import run_all
from etl.store import Store
from tests.conftest import query
from tests.sample_warehouse import sample_warehouse

REPO = Path(__file__).resolve().parents[2]
DUCKDB_CLI = Path(sys.executable).parent / "duckdb"
COUNT = "select count(*) from fct_daily_price"


def cli(warehouse: Path, sql: str) -> subprocess.CompletedProcess:
    """The CLI binary, non-interactively, as a SQL user would call it."""
    return subprocess.run([str(DUCKDB_CLI), "-readonly", "-csv", "-noheader", str(warehouse), "-c", sql],
                          capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    with sample_warehouse(tmp_path_factory.mktemp("sql_users")) as wh:
        yield wh


def test_the_cli_ships_with_the_project_and_matches_the_library():
    assert DUCKDB_CLI.exists(), "duckdb-cli is a project dependency (pyproject.toml)"
    out = subprocess.run([str(DUCKDB_CLI), "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[0] == f"v{duckdb.__version__}"  # same 1.5.x line as the file format we write


def test_make_sql_opens_the_warehouse_that_etl_warehouse_names(published):
    env = {**os.environ, "ETL_WAREHOUSE": str(published.warehouse)}
    out = subprocess.run(["make", "-s", "-o", "venv", "sql", f"Q={COUNT}"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert str(query(published.warehouse, COUNT)[0][0]) in out.stdout
    # read-only: a write is refused, and the published file is unchanged
    write = cli(published.warehouse, "create table scratch as select 1")
    assert write.returncode != 0 and "read-only" in write.stderr.lower()


def test_the_cli_reads_while_a_run_publishes_without_lock_errors_either_side(data_dir, monkeypatch):
    wh = data_dir / "warehouse.duckdb"
    run_all("sample", date(2025, 9, 1), date(2025, 9, 15))
    (old,) = query(wh, COUNT)[0]

    # 1. an interactive session opened before the run and kept open across it
    held = subprocess.Popen([str(DUCKDB_CLI), "-readonly", "-csv", "-noheader", str(wh)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    held.stdin.write(f"{COUNT};\n")
    held.stdin.flush()
    # 2. one-shot CLI calls in a loop for the whole run
    calls: list[subprocess.CompletedProcess] = []
    stop = threading.Event()

    def loop():
        while not stop.is_set():
            calls.append(cli(wh, COUNT))
            time.sleep(0.02)

    looper = threading.Thread(target=loop)
    # 3. CLI calls inside the publish itself: new files and manifest committed, views file not yet swapped,
    #    then right after the swap - the moments a lock conflict would show
    inside: dict[str, subprocess.CompletedProcess] = {}
    original = Store.build_views

    def build_views_with_readers(self, manifest=None):
        inside["before_swap"] = cli(wh, COUNT)
        path = original(self, manifest)
        inside["after_swap"] = cli(wh, COUNT)
        return path

    monkeypatch.setattr(Store, "build_views", build_views_with_readers)
    looper.start()
    try:
        out = run_all("sample", date(2025, 9, 16), date(2025, 9, 30))
    finally:
        stop.set()
        looper.join(timeout=60)
        held_out, held_err = held.communicate(f"{COUNT};\n.quit\n", timeout=60)
    (new,) = query(wh, COUNT)[0]

    assert out["publish"]["seq"] == 2 and new > old
    assert held.returncode == 0, held_err
    assert held_out.split() == [str(old), str(old)], "a held session keeps the snapshot it opened"
    assert inside["before_swap"].returncode == 0 and inside["before_swap"].stdout.strip() == str(old)
    assert inside["after_swap"].returncode == 0 and inside["after_swap"].stdout.strip() == str(new)
    assert len(calls) >= 5
    failures = [c.stderr for c in calls if c.returncode != 0 or c.stderr]
    assert failures == [], failures[:3]
    assert {int(c.stdout) for c in calls} <= {old, new}
    assert int(calls[-1].stdout) == new
    assert cli(wh, COUNT).stdout.strip() == str(new)


def test_every_catalog_description_is_on_the_published_views(published):
    con = duckdb.connect(str(published.warehouse), read_only=True)
    try:
        views = dict(con.execute("select view_name, comment from duckdb_views() where not internal").fetchall())
        columns = {(t, c): comment for t, c, comment in con.execute(
            "select table_name, column_name, comment from duckdb_columns()").fetchall()}
    finally:
        con.close()
    missing = []
    for table, spec in catalog().items():
        assert table in views, f"{table} is described in etl/catalog.yaml but not published"
        assert views[table] == spec["grain"], table
        for column, text in (spec.get("columns") or {}).items():
            if (table, column) not in columns:
                missing.append(f"{table}.{column}")
            else:
                assert columns[(table, column)] == text, f"{table}.{column}"
    assert missing == [], f"catalog.yaml describes columns the views do not have: {missing}"
    # DuckDB 1.5's DESCRIBE has no comment column; duckdb_columns() is where the CLI and BI tools read them
    described = cli(published.warehouse, "select comment from duckdb_columns() "
                                         "where table_name = 'fct_daily_price' and column_name = 'close_usd'")
    assert described.stdout.strip() == catalog()["fct_daily_price"]["columns"]["close_usd"]
    assert cli(published.warehouse, "describe fct_daily_price").returncode == 0


def test_etl_docs_prints_the_same_descriptions():
    out = subprocess.run([sys.executable, "-m", "etl", "docs"], capture_output=True, text=True, timeout=120,
                         cwd=REPO)
    assert out.returncode == 0, out.stderr
    for table, spec in catalog().items():
        assert f"## `{table}`" in out.stdout
        assert spec["grain"] in out.stdout
        for column, text in (spec.get("columns") or {}).items():
            assert f"| `{column}` | {text} |" in out.stdout, f"{table}.{column}"
