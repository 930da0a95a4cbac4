"""The DuckDB translation of the GX suites (etl/quality/sql_engine.py) agrees with GX itself, and the gate uses
it for big tables: same verdicts, counts and percentages on a real candidate, clean and tampered."""

from __future__ import annotations

import math
import shutil
from datetime import date

import duckdb
import pytest

from etl.config import Settings, load_universe
from etl.pipeline import extract_step, land_step, start_run, transform_step, validate_step
from etl.quality import gate, sql_engine
from etl.quality.suites import suite_definitions
from etl.transform import candidate_path
from tests.conftest import query

TAMPER = [
    # one row per kind of violation, so every expectation type sees offending rows
    "update fct_daily_price set close = null where symbol = '0700.HK' and date_key = 20250902",
    "update fct_daily_price set open = -1 where symbol = '9988.HK' and date_key = 20250903",
    "update fct_daily_price set high = 1, low = 500 where symbol = 'JD' and date_key = 20250904",
    "update fct_daily_price set daily_return = 'nan'::double where symbol = 'BABA' and date_key = 20250904",
    "update fct_daily_price set daily_return = 10 where symbol = 'BIDU' and date_key = 20250905",
    "update fct_daily_price set close_usd = null where symbol = 'NIO' and date_key = 20250905",
    "update fct_daily_price set source = 'elsewhere', volume = -5 where symbol = 'LI' and date_key = 20250903",
    "insert into fct_daily_price select * from fct_daily_price where symbol = 'QQQ' and date_key = 20250903",
    "update dim_security set adr_ratio = -8 where symbol = 'BABA'",
    "update dim_security set underlying_symbol = null where symbol = 'JD'",
    "update dim_security set valid_to = date '1899-01-01' where symbol = 'NIO'",
    "update dim_security set security_type = 'bond' where symbol = '0700.HK'",
    "update dim_exchange set exchange_code = 'X1' where exchange_code = 'OTCM'",
    "insert into dim_date select * from dim_date where date_key = 20250901",
    "update fct_fx_rate set rate_to_usd = 50 where currency_code = 'HKD' and date_key = 20250902",
]


@pytest.fixture
def candidate(data_dir):
    ctx = start_run("sample", date(2025, 9, 1), date(2025, 9, 12))
    extract_step(ctx.run_id)
    land_step(ctx.run_id)
    transform_step(ctx.run_id)
    return ctx, candidate_path(ctx, Settings.from_env())


def _by_engine(path, engine, monkeypatch) -> dict:
    monkeypatch.setenv(gate.GX_ENGINE_ENV, engine)
    con = duckdb.connect(str(path), read_only=True)
    try:
        rows = gate._gx_results(con, "sample", sorted(load_universe().currencies))
    finally:
        con.close()
    return {(r["table_name"], r["expectation_type"], r["column_name"], r["kwargs"]): r for r in rows}


def _assert_same(gx_rows: dict, db_rows: dict) -> int:
    assert gx_rows.keys() == db_rows.keys()
    failed = 0
    for key, expected in gx_rows.items():
        got = db_rows[key]
        assert got["success"] == expected["success"], key
        assert got["severity"] == expected["severity"], key
        assert (got["unexpected_count"] or 0) == (expected["unexpected_count"] or 0), key
        e, g = expected["unexpected_percent"], got["unexpected_percent"]
        if e is None or (isinstance(e, float) and math.isnan(e)):
            assert g in (None, 0) or (isinstance(g, float) and math.isnan(g)), key
        else:
            assert g == pytest.approx(e), key
        failed += not expected["success"]
    return failed


def test_duckdb_and_gx_agree_on_a_clean_candidate(candidate, monkeypatch):
    _, path = candidate
    gx_rows, db_rows = _by_engine(path, "gx", monkeypatch), _by_engine(path, "duckdb", monkeypatch)
    _assert_same(gx_rows, db_rows)
    assert all('"engine": "duckdb"' in r["observed_value"] or r["expectation_type"].startswith("expect_table")
               for r in db_rows.values())


def test_duckdb_and_gx_agree_on_every_kind_of_violation(candidate, monkeypatch, tmp_path):
    _, path = candidate
    tampered = tmp_path / "tampered.duckdb"
    shutil.copy(path, tampered)
    con = duckdb.connect(str(tampered))
    for statement in TAMPER:
        con.execute(statement)
    con.close()
    gx_rows, db_rows = _by_engine(tampered, "gx", monkeypatch), _by_engine(tampered, "duckdb", monkeypatch)
    failed = _assert_same(gx_rows, db_rows)
    assert failed >= 12
    # the examples name the offending rows like GX's unexpected_index_list
    for rows in (db_rows, gx_rows):  # GX: its second pass, COMPLETE on the failed expectations only
        (pair,) = [r for k, r in rows.items() if k[:3] == ("fct_daily_price",
                   "expect_column_pair_values_a_to_be_greater_than_b", "high,low")]
        assert '"symbol": "JD"' in pair["examples"] and "20250904" in pair["examples"]
    # a passing expectation keeps BASIC's counts; a failing one has its offending rows' keys
    assert all(r["examples"] == "[]" for r in gx_rows.values() if r["success"])
    assert all(r["unexpected_count"] in (0, None) for r in gx_rows.values() if r["success"])


def test_every_suite_expectation_translates(candidate):
    _, path = candidate
    con = duckdb.connect(str(path), read_only=True)
    try:
        for table, expectations in suite_definitions(sorted(load_universe().currencies)).items():
            types = sql_engine.column_types(con, table)
            missing = [e.configuration.type for e in expectations if sql_engine.compile_expectation(e, types) is None]
            assert missing == [], table
    finally:
        con.close()


def test_the_gate_switches_to_duckdb_above_the_row_limit_and_still_blocks(candidate, monkeypatch, data_dir):
    ctx, path = candidate
    monkeypatch.setenv(gate.GX_MAX_ROWS_ENV, "100")  # fct_daily_price (~300 rows) goes to DuckDB, dims stay in GX
    con = duckdb.connect(str(path))
    con.execute("update fct_daily_price set high = 1, low = 500 where symbol = '9988.HK' and date_key = 20250902")
    con.close()
    with pytest.raises(gate.ValidationError) as failure:
        validate_step(ctx.run_id)
    assert "expect_column_pair_values_a_to_be_greater_than_b on high,low: 1 offending rows" in str(failure.value)
    assert "9988.HK" in str(failure.value)
    engines = dict(query(data_dir / "warehouse.duckdb", """
        select table_name, bool_and(observed_value like '%"engine": "duckdb"%') from dq_result
        where run_id = ? and suite_name like '%_suite' and expectation_type not like 'expect_table%'
        group by 1""", [ctx.run_id])) if (data_dir / "warehouse.duckdb").exists() else None
    if engines is None:  # nothing published yet: read the audit file directly
        engines = dict(duckdb.sql(f"""
            select table_name, bool_and(observed_value like '%"engine": "duckdb"%')
            from read_parquet('{data_dir / 'store' / 'audit' / 'dq_result' / (ctx.run_id + '.parquet')}')
            where suite_name like '%_suite' and expectation_type not like 'expect_table%' group by 1""").fetchall())
    assert engines["fct_daily_price"] is True
    assert engines["dim_security"] is False


def test_gx_suites_split_over_two_processes_give_the_same_results_in_the_same_order(candidate, monkeypatch):
    """ETL_GX_PROCESSES=2 runs half the GX suites in a forked child: same rows, same order, failures included."""
    _, path = candidate
    con = duckdb.connect(str(path))
    for statement in TAMPER:
        con.execute(statement)
    con.close()
    monkeypatch.setenv(gate.GX_ENGINE_ENV, "gx")
    results = {}
    for processes in ("1", "2"):
        monkeypatch.setenv(gate.GX_PROCESSES_ENV, processes)
        groups = gate._split_for_processes([(t, None, e) for t, e in suite_definitions(["USD"]).items()])
        assert len(groups) == int(processes)
        con = duckdb.connect(str(path), read_only=True)
        try:
            rows = gate._gx_results(con, "sample", sorted(load_universe().currencies))
        finally:
            con.close()
        results[processes] = [{k: v for k, v in r.items() if k != "seconds"} for r in rows]
    assert results["1"] == results["2"]
    assert sum(not r["success"] for r in results["2"]) >= len(TAMPER) - 2  # the tampering is seen by both


def _gx_in_daemon(path, queue):
    con = duckdb.connect(str(path), read_only=True)
    try:
        queue.put([{k: v for k, v in r.items() if k != "seconds"}
                   for r in gate._gx_results(con, "sample", sorted(load_universe().currencies))])
    finally:
        con.close()


def test_the_split_works_inside_a_daemonic_process_like_a_celery_worker(candidate, monkeypatch):
    """Celery's prefork pool runs tasks in daemonic processes, which multiprocessing forbids to have children."""
    import multiprocessing

    _, path = candidate
    monkeypatch.setenv(gate.GX_ENGINE_ENV, "gx")
    monkeypatch.setenv(gate.GX_PROCESSES_ENV, "2")
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    worker = ctx.Process(target=_gx_in_daemon, args=(path, queue), daemon=True)
    worker.start()
    rows = queue.get(timeout=120)
    worker.join(timeout=30)
    assert worker.exitcode == 0
    monkeypatch.setenv(gate.GX_PROCESSES_ENV, "1")
    con = duckdb.connect(str(path), read_only=True)
    try:
        alone = [{k: v for k, v in r.items() if k != "seconds"}
                 for r in gate._gx_results(con, "sample", sorted(load_universe().currencies))]
    finally:
        con.close()
    assert rows == alone and len(rows) > 50


def _boom():
    raise RuntimeError("the child fails")


def test_a_failed_child_gives_no_result_so_the_parent_redoes_its_half():
    assert gate._join(gate._fork(_boom)) is None
    assert gate._join(gate._fork(sorted, [3, 1, 2])) == [1, 2, 3]


def test_dq_run_durations_add_up_to_the_gate_time(candidate, data_dir):
    ctx, _ = candidate
    result = validate_step(ctx.run_id)
    audit = data_dir / "store" / "audit" / "dq_run" / f"{ctx.run_id}.parquet"
    durations = dict(duckdb.sql(f"select table_name, duration_s from read_parquet('{audit}')").fetchall())
    assert all(d is not None and d >= 0 for d in durations.values())
    # each suite's time once (its rows share it), not once per expectation; two processes at most overlap
    assert 0 < sum(durations.values()) <= 2 * result["seconds"] + 0.05, (durations, result["seconds"])
