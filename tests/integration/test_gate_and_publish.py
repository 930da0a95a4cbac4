"""Bad data never reaches readers: the gate blocks, quarantine explains, readers never block or see half a run."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from datetime import date

import duckdb
import pandas as pd
import pytest

from etl.config import load_universe
from etl.pipeline import (
    extract_step,
    land_step,
    publish_step,
    run_all,
    start_run,
    transform_step,
    validate_step,
)
from etl.quality.gate import ValidationError
from etl.sources.sample import SampleSource
from etl.transform import candidate_path
from tests.conftest import query


class CorruptingSource(SampleSource):
    """The sample source with chosen rows rewritten, standing in for a vendor that sends garbage."""

    def __init__(self, universe, corrupt):
        super().__init__(universe)
        self.corrupt = corrupt

    def fetch(self, symbols, start, end):
        result = super().fetch(symbols, start, end)
        for symbol, frame in result.frames.items():
            result.frames[symbol] = self.corrupt(symbol, frame.copy())
        return result


def _run_with(source, start, end):
    ctx = start_run("sample", start, end)
    extract_step(ctx.run_id, source=source)
    land_step(ctx.run_id)
    transform_step(ctx.run_id)
    return ctx


def test_a_failed_expectation_stops_publication_and_keeps_the_previous_state(data_dir):
    wh = data_dir / "warehouse.duckdb"
    run_all("sample", date(2025, 9, 1), date(2025, 9, 30))
    before = query(wh, "select count(*), max(date_key) from fct_daily_price")

    def invert_high_low(symbol, frame):
        if symbol == "9988.HK":
            frame.loc[frame.index[0], ["High", "Low"]] = [1.0, 500.0]
        return frame

    ctx = _run_with(CorruptingSource(load_universe(), invert_high_low), date(2025, 10, 2), date(2025, 10, 10))
    with pytest.raises(ValidationError) as failure:
        validate_step(ctx.run_id)
    message = str(failure.value)
    assert "fct_daily_price" in message
    assert "expect_column_pair_values_a_to_be_greater_than_b" in message
    assert "9988.HK" in message and "20251002" in message

    with pytest.raises(RuntimeError, match="failed validation"):
        publish_step(ctx.run_id)
    assert query(wh, "select count(*), max(date_key) from fct_daily_price") == before
    assert query(wh, "select manifest_seq from warehouse_info") == [(1,)]
    # the failure is recorded and visible to SQL users
    failed = query(wh, "select table_name, expectation_type, severity, unexpected_count from dq_result "
                       "where run_id = ? and not success and severity = 'error'", [ctx.run_id])
    assert failed == [("fct_daily_price", "expect_column_pair_values_a_to_be_greater_than_b", "error", 1)]
    assert query(wh, "select status from run_log where run_id = ? and step = 'validate'", [ctx.run_id]) == [
        ("failed",)]


def test_candidate_tampering_is_caught_by_row_conditions_and_invariants(data_dir):
    ctx = _run_with(SampleSource(load_universe()), date(2025, 9, 1), date(2025, 9, 5))
    con = duckdb.connect(str(candidate_path(ctx, _settings())))
    con.execute("update dim_security set adr_ratio = -8 where symbol = 'BABA'")
    con.execute("update fct_daily_price set security_key = 42 where symbol = 'JD' and date_key = 20250903")
    # a curated deal dated before Alibaba's first listing (BABA, 2014-09-19) is a typo, not an event
    con.execute("update fct_financing_event set date_key = 20100104 "
                "where curated_event_id = 'alibaba-2025-09-convertible-2032'")
    con.close()
    with pytest.raises(ValidationError) as failure:
        validate_step(ctx.run_id)
    message = str(failure.value)
    assert "dim_security: expect_column_values_to_be_between on adr_ratio" in message
    assert "fct_daily_price: invariant:ri_security" in message
    assert "fct_financing_event: invariant:no_event_before_first_listing" in message
    assert not (data_dir / "warehouse.duckdb").exists()


def _settings():
    from etl.config import Settings

    return Settings.from_env()


def test_bad_rows_are_quarantined_with_reasons_and_the_rest_publishes(data_dir):
    def damage(symbol, frame):
        if symbol == "0700.HK":
            frame.loc[frame.index[1], "Close"] = -5.0
        if symbol == "3690.HK":
            frame.loc[frame.index[2], ["Open", "High", "Low", "Close", "Adj Close"]] = float("nan")
        if symbol == "HKD=X":  # a Saturday bar, as Yahoo sometimes sends
            saturday = pd.Timestamp("2025-09-06", tz=frame.index.tz)
            frame.loc[saturday] = frame.iloc[0]
            frame = frame.sort_index()
        return frame

    ctx = _run_with(CorruptingSource(load_universe(), damage), date(2025, 9, 1), date(2025, 9, 12))
    validate_step(ctx.run_id)
    publish_step(ctx.run_id)
    wh = data_dir / "warehouse.duckdb"
    rows = query(wh, "select symbol, bar_date, reason from quarantine order by symbol")
    assert rows == [
        ("0700.HK", date(2025, 9, 2), "non_positive_price"),
        ("3690.HK", date(2025, 9, 3), "missing_close"),
        ("HKD=X", date(2025, 9, 6), "weekend_fx_bar"),
    ]
    assert query(wh, "select count(*) from fct_daily_price where symbol = '0700.HK' and date_key = 20250902") == [(0,)]
    assert query(wh, "select count(*) from fct_daily_price where symbol = '0700.HK'") == [(9,)]
    # the weekend rate is carried over from Friday's quote, not from the Saturday bar
    assert query(wh, "select is_carried_forward, observed_date from fct_fx_rate "
                     "where currency_code = 'HKD' and date_key = 20250906") == [(True, date(2025, 9, 5))]
    warning = query(wh, "select success, unexpected_count from dq_result where run_id = ? "
                        "and expectation_type = 'invariant:no_quarantined_rows'", [ctx.run_id])
    assert warning == [(False, 3)]


READER = textwrap.dedent("""
    import sys, time, duckdb, json
    path, seconds, mode = sys.argv[1], float(sys.argv[2]), sys.argv[3]
    held = duckdb.connect(path, read_only=True) if mode == "hold" else None  # open across the whole run
    seen, errors, end = set(), [], time.time() + seconds
    while time.time() < end:
        # a fresh process-level open each time (DuckDB shares one instance per path inside a process)
        con = held or duckdb.connect(path, read_only=True)
        try:
            seen.add(con.execute("select count(*) from fct_daily_price").fetchone()[0])
        except Exception as exc:
            errors.append(str(exc))
        if held is None:
            con.close()
        time.sleep(0.02)
    print(json.dumps({"seen": sorted(seen), "errors": errors[:5]}))
""")


def test_readers_never_block_a_run_and_never_see_half_of_one(data_dir, tmp_path):
    wh = data_dir / "warehouse.duckdb"
    run_all("sample", date(2025, 9, 1), date(2025, 9, 15))
    (old_count,) = query(wh, "select count(*) from fct_daily_price")[0]
    script = tmp_path / "reader.py"
    script.write_text(READER)
    readers = {mode: subprocess.Popen([sys.executable, str(script), str(wh), "25", mode],
                                      stdout=subprocess.PIPE, text=True) for mode in ("hold", "fresh")}
    time.sleep(1.0)
    try:
        started = time.time()
        run_all("sample", date(2025, 9, 16), date(2025, 9, 30))
        assert time.time() - started < 25, "the run must finish while the readers are still connected"
    finally:
        reports = {mode: json.loads(p.communicate(timeout=60)[0]) for mode, p in readers.items()}
    (new_count,) = query(wh, "select count(*) from fct_daily_price")[0]
    for mode, report in reports.items():
        assert report["errors"] == [], mode
        assert set(report["seen"]) <= {old_count, new_count}, f"{mode} reader saw neither the old nor the new run"
    # the held connection keeps the snapshot it opened; new connections see the new run once it is published
    assert reports["hold"]["seen"] == [old_count]
    assert reports["fresh"]["seen"] == [old_count, new_count]
