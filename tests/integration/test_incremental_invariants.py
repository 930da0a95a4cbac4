"""The gate checks what the warehouse will be after a publish, reading only the published rows the run touches:
every published version of the run's listings survives, and no new price row shares a key with a kept one."""

from __future__ import annotations

from datetime import date

import duckdb
import pytest

from etl.config import Settings
from etl.pipeline import extract_step, land_step, run_all, start_run, transform_step, validate_step
from etl.quality.gate import ValidationError
from etl.transform import candidate_path


def _candidate(start, end, market=None):
    ctx = start_run("sample", start, end, market=market)
    extract_step(ctx.run_id)
    land_step(ctx.run_id)
    transform_step(ctx.run_id)
    return ctx, candidate_path(ctx, Settings.from_env())


def test_a_clean_daily_run_passes_the_incremental_invariants(data_dir):
    run_all("sample", date(2025, 9, 1), date(2025, 9, 15))
    ctx, _ = _candidate(date(2025, 9, 16), date(2025, 9, 16))
    validate_step(ctx.run_id)
    con = duckdb.connect()
    rows = con.execute(
        f"select expectation_type, success, unexpected_count from "
        f"read_parquet('{data_dir / 'store' / 'audit' / 'dq_result' / (ctx.run_id + '.parquet')}') "
        "where expectation_type in ('invariant:published_versions_kept', 'invariant:unique_after_publish') "
        "order by 1").fetchall()
    assert rows == [("invariant:published_versions_kept", True, 0), ("invariant:unique_after_publish", True, 0)]


def test_a_lost_published_version_blocks_the_publish(data_dir):
    run_all("sample", date(2025, 9, 1), date(2025, 9, 15))
    ctx, path = _candidate(date(2025, 9, 16), date(2025, 9, 30))
    con = duckdb.connect(str(path))
    # consistent inside the candidate, but the facts of Sept 1-15 would point at a version that is gone
    con.execute("update fct_daily_price set security_key = 42 where symbol = 'JD'")
    con.execute("update dim_security set security_key = 42 where symbol = 'JD'")
    con.close()
    with pytest.raises(ValidationError) as failure:
        validate_step(ctx.run_id)
    assert "dim_security: invariant:published_versions_kept: 1 offending rows" in str(failure.value)
    assert '"symbol":"JD"' in str(failure.value).replace(" ", "")


def test_a_new_row_colliding_with_a_kept_published_row_blocks_the_publish(data_dir):
    run_all("sample", date(2025, 9, 1), date(2025, 9, 15))
    ctx, path = _candidate(date(2025, 9, 16), date(2025, 9, 19), market="XHKG")
    published = data_dir / "store" / "fct_daily_price"
    con = duckdb.connect(str(path))
    # a US row of Sept 2 (published, outside this XHKG run's listings) arriving again with this run
    con.execute(f"insert into fct_daily_price by name select * from read_parquet('{published}/**/*.parquet', "
                "hive_partitioning=false) where symbol = 'BABA' and date_key = 20250902")
    con.close()
    with pytest.raises(ValidationError) as failure:
        validate_step(ctx.run_id)
    assert "fct_daily_price: invariant:unique_after_publish: 1 offending rows" in str(failure.value)
