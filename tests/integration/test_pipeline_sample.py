"""The whole pipeline outside Airflow on the sample source: star schema, idempotency, backfill equivalence."""

from __future__ import annotations

import json
from datetime import date

import exchange_calendars as xcals

from etl.config import load_universe
from etl.pipeline import run_all
from tests.conftest import query, table_without_lineage

MARTS = ["dim_date", "dim_exchange", "dim_currency", "dim_company", "dim_security",
         "fct_daily_price", "fct_fx_rate", "fct_corporate_action"]


def _expected_price_rows(start: date, end: date) -> int:
    universe = load_universe()
    hk = len(xcals.get_calendar("XHKG").sessions_in_range(str(start), str(end)))
    us = len(xcals.get_calendar("XNYS").sessions_in_range(str(start), str(end)))
    import pandas as pd

    weekdays = sum(1 for d in pd.date_range(start, end) if d.weekday() < 5)
    by_market = {"XHKG": hk, "US": us}
    return sum(weekdays if s.security_type == "fx" else by_market[s.market] for s in universe.listings)


def test_sample_run_publishes_every_table_with_one_row_per_security_per_session(data_dir):
    out = run_all("sample", date(2025, 9, 1), date(2025, 9, 30))
    wh = data_dir / "warehouse.duckdb"

    assert out["publish"]["seq"] == 1
    (prices,) = query(wh, "select count(*) from fct_daily_price")[0]
    assert prices == _expected_price_rows(date(2025, 9, 1), date(2025, 9, 30))
    assert query(wh, "select count(*) from fct_fx_rate")[0][0] == 3 * 30  # HKD, CNY, USD x calendar days
    assert query(wh, "select count(*) from dim_security")[0][0] == len(load_universe().listings)
    # every sample row says it is synthetic
    assert query(wh, "select distinct source, is_synthetic from fct_daily_price") == [("sample", True)]
    # keys join: no orphan facts
    assert query(wh, """select count(*) from fct_daily_price p
                        left join dim_security s using (security_key)
                        left join dim_date d using (date_key)
                        where s.security_key is null or d.date_key is null""")[0][0] == 0
    # ADR links survive into the warehouse
    baba = query(wh, "select underlying_symbol, adr_ratio from dim_security where symbol = 'BABA'")
    assert baba == [("9988.HK", 8.0)]
    # USD conversion uses that day's rate: HKD close_usd = close / (HKD per USD)
    (diff,) = query(wh, """
        select max(abs(p.close_usd - p.close / fx.units_per_usd)) from fct_daily_price p
        join fct_fx_rate fx on fx.date_key = p.date_key and fx.currency_key = p.currency_key
        where fx.currency_code = 'HKD'""")[0]
    assert diff < 1e-9
    # the synthetic split and dividend of September 2025 are in the corporate-action fact
    actions = query(wh, "select symbol, date_key, action_type from fct_corporate_action order by 1, 2")
    assert ("0700.HK", 20250912, "cash_dividend") in actions
    assert ("1810.HK", 20250915, "stock_split") in actions
    # audit: every step of the run is logged, the gate recorded results
    steps = query(wh, "select step, status from run_log order by started_at")
    assert [s for s, _ in steps] == ["extract", "land", "transform", "validate", "publish", "export"]
    assert {st for _, st in steps} == {"success"}
    from etl.quality.suites import suite_definitions

    validated = dict(query(wh, "select table_name, success from dq_run"))
    assert set(validated) == set(suite_definitions(["USD"])) | {"quarantine"}
    assert all(validated.values())
    assert query(wh, "select count(*) > 40 from dq_result")[0] == (True,)


def test_rerun_of_the_same_window_changes_nothing(data_dir):
    wh = data_dir / "warehouse.duckdb"
    run_all("sample", date(2025, 9, 1), date(2025, 9, 30))
    first = {t: table_without_lineage(wh, t) for t in MARTS}
    run_all("sample", date(2025, 9, 1), date(2025, 9, 30))
    second = {t: table_without_lineage(wh, t) for t in MARTS}

    assert query(wh, "select manifest_seq from warehouse_info") == [(2,)]
    for table in MARTS:
        assert first[table] == second[table], table


def test_backfill_in_two_windows_equals_one_straight_run(data_dir, tmp_path, monkeypatch):
    run_all("sample", date(2025, 9, 1), date(2025, 9, 30))
    straight = {t: table_without_lineage(data_dir / "warehouse.duckdb", t) for t in MARTS}

    other = tmp_path / "other"
    monkeypatch.setenv("ETL_DATA_DIR", str(other))
    monkeypatch.setenv("ETL_WAREHOUSE", str(other / "warehouse.duckdb"))
    run_all("sample", date(2025, 9, 1), date(2025, 9, 14))
    run_all("sample", date(2025, 9, 15), date(2025, 9, 30))
    split = {t: table_without_lineage(other / "warehouse.duckdb", t) for t in MARTS}

    for table in MARTS:
        assert straight[table] == split[table], table


def test_a_daily_publish_rewrites_only_the_current_month(data_dir):
    run_all("sample", date(2025, 8, 1), date(2025, 9, 30))
    manifest_path = data_dir / "store" / "manifests"
    before = json.loads((manifest_path / "manifest-000001.json").read_text())["tables"]["fct_daily_price"]
    run_all("sample", date(2025, 9, 30), date(2025, 9, 30))
    after = json.loads((manifest_path / "manifest-000002.json").read_text())["tables"]["fct_daily_price"]

    assert before["2025-08"] == after["2025-08"]  # untouched history: same immutable file
    assert before["2025-09"] != after["2025-09"]
