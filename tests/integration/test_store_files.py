"""Publish writes new files only for what changed: an unchanged whole-table dimension keeps its file, and so does a
scoped table the run adds no row to and replaces none of (cash flows on a day without statements); a changed one
gets a new file with the new rows."""

from __future__ import annotations

import re
import shutil
from datetime import date

import duckdb

from etl.config import Settings
from etl.pipeline import run_all
from etl.run import RunContext
from etl.store import Store
from etl.transform import candidate_path
from tests.conftest import REPO, query


def _files() -> dict:
    return {t: dict(p) for t, p in Store(Settings.from_env()).current()["tables"].items()}


def test_unchanged_dimensions_keep_their_files_and_changed_ones_are_rewritten(data_dir, tmp_path, monkeypatch):
    run_all("sample", date(2025, 9, 1), date(2025, 9, 5))
    first = _files()
    run_all("sample", date(2025, 9, 8), date(2025, 9, 12))
    second = _files()
    for table in ("dim_date", "dim_exchange", "dim_currency", "dim_company", "dim_event_type"):
        assert second[table] == first[table], table
    assert second["dim_security"] != first["dim_security"]  # scoped: rewritten with the run's listings (and run id)
    assert second["fct_daily_price"]["2025-09"] != first["fct_daily_price"]["2025-09"]

    # an exchange renamed in the universe: dim_exchange gets a new file holding the new name
    text = (REPO / "etl" / "universe.yaml").read_text()
    renamed = re.sub(r"(XHKG:\s*\{\s*name:\s*)[^,}]+", r"\1Hong Kong Exchanges (renamed)", text, count=1)
    assert renamed != text
    # and a listing renamed: dim_security gets a new version of it, in a new file
    renamed = renamed.replace("- {symbol: 0700.HK, exchange: XHKG,", "- {symbol: 0700.HK, name: Tencent (renamed), "
                              "exchange: XHKG,", 1)
    assert "Tencent (renamed)" in renamed
    path = tmp_path / "universe.yaml"
    path.write_text(renamed)
    monkeypatch.setenv("ETL_UNIVERSE", str(path))
    run_all("sample", date(2025, 9, 15), date(2025, 9, 15))
    third = _files()
    assert third["dim_exchange"] != second["dim_exchange"]
    assert third["dim_date"] == second["dim_date"]
    assert third["dim_security"] != second["dim_security"]
    assert query(data_dir / "warehouse.duckdb", "select security_name from dim_security "
                 "where symbol = '0700.HK' and is_current") == [("Tencent (renamed)",)]
    assert query(data_dir / "warehouse.duckdb",
                 "select exchange_name from dim_exchange where exchange_code = 'XHKG'") == \
        [("Hong Kong Exchanges (renamed)",)]


def test_a_scoped_table_the_run_adds_nothing_to_keeps_its_file(data_dir, tmp_path):
    out = run_all("sample", date(2025, 9, 1), date(2025, 9, 5))
    settings = Settings.from_env()
    ctx = RunContext.load(settings, out["run_id"])
    before = _files()
    (flows,) = query(data_dir / "warehouse.duckdb", "select count(*) from fct_cash_flow_quarterly")[0]
    assert flows > 0
    # the same candidate without its cash-flow statements (a day the source had none)
    candidate = tmp_path / "candidate.duckdb"
    shutil.copy(candidate_path(ctx, settings), candidate)
    con = duckdb.connect(str(candidate))
    con.execute("delete from fct_cash_flow_quarterly")
    con.close()
    result = Store(settings).publish(candidate, ctx.run_id, ctx.effective_start, ctx.end)
    after = _files()
    assert after["fct_cash_flow_quarterly"] == before["fct_cash_flow_quarterly"]  # nothing replaced, nothing new
    assert after["dim_security"] != before["dim_security"]  # scoped rows of the run: written again
    assert result["files_written"] >= 1
    assert query(data_dir / "warehouse.duckdb", "select count(*) from fct_cash_flow_quarterly")[0][0] == flows
