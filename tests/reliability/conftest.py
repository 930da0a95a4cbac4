"""Helpers for the fault, bad-input and idempotence tests (issue 4): content hashes, curated replay files,
steps in a subprocess that can be paused and killed."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pandas as pd

from tests.conftest import LINEAGE, REPO

HK_TZ = "Asia/Hong_Kong"


def published_tables(warehouse: Path) -> list[str]:
    """Every mart the warehouse publishes (views over the store; audit tables and warehouse_info excluded)."""
    from etl.audit import AUDIT_SCHEMAS

    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        names = [r[0] for r in con.execute("select view_name from duckdb_views() where not internal").fetchall()]
    finally:
        con.close()
    return sorted(n for n in names if n not in AUDIT_SCHEMAS)


def content_hash(warehouse: Path, table: str, exclude: set[str] = frozenset()) -> str:
    """sha256 of a published table's rows without lineage columns, independent of row order."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        columns = [r[0] for r in con.execute(f"describe {table}").fetchall()
                   if r[0] not in LINEAGE and r[0] not in exclude]
        rows = con.execute(f"select {', '.join(columns)} from {table}").fetchall()
    finally:
        con.close()
    digest = hashlib.sha256(repr(columns).encode())
    for line in sorted(repr(r) for r in rows):
        digest.update(line.encode())
    return f"{len(rows)}:{digest.hexdigest()[:16]}"


def warehouse_hashes(warehouse: Path, exclude_tables: set[str] = frozenset()) -> dict[str, str]:
    return {t: content_hash(warehouse, t) for t in published_tables(warehouse) if t not in exclude_tables}


def open_everything(warehouse: Path) -> dict:
    """Open the published warehouse read-only and query every view (marts and audit): what a reader does."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        views = [r[0] for r in con.execute("select view_name from duckdb_views() where not internal").fetchall()]
        counts = {v: con.execute(f"select count(*) from {v}").fetchone()[0] for v in views}
        seq = con.execute("select manifest_seq from warehouse_info").fetchone()[0]
    finally:
        con.close()
    return {"seq": seq, "counts": counts}


# ------------------------------------------------------------------ curated replay files (yf_history layout)

HEADER = ["Date", "Open", "High", "Low", "Close", "Adj Close", "Volume", "Dividends", "Stock Splits"]


def sample_rows(symbols: list[str], start: date, end: date) -> dict[str, list[list[str]]]:
    """The sample source's bars per symbol as yfinance `Ticker.history().to_csv()` rows (text cells)."""
    from etl.config import load_universe
    from etl.sources.sample import SampleSource

    frames = SampleSource(load_universe()).fetch(list(symbols), start, end).frames
    return {
        symbol: [
            [ts.isoformat(sep=" "), *(repr(float(v[c])) for c in HEADER[1:6]), str(int(v["Volume"])),
             repr(float(v["Dividends"])), repr(float(v["Stock Splits"]))]
            for ts, v in frame.iterrows()
        ]
        for symbol, frame in frames.items()
    }


def write_csv(path: Path, rows: list[list[str]], header: list[str] = HEADER, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join(",".join(r) for r in [header, *rows]) + "\n"
    path.write_bytes(text.encode(encoding))
    return path


# ------------------------------------------------------------------ yf.Ticker fakes serving sample bars

class SampleTicker:
    """A yf.Ticker stand-in serving the sample source's bars; `fail` raises instead, `empty` answers nothing."""

    def __init__(self, symbol, sample, fail=None, empty=False, info=None):
        self.symbol, self.sample, self.fail, self.empty, self.extra_info = symbol, sample, fail, empty, info or {}

    def history(self, start, end, **kwargs):
        if self.fail is not None:
            raise self.fail
        frame = self.sample.fetch([self.symbol], start, end - timedelta(days=1)).frames.get(self.symbol)
        if self.empty or frame is None:
            return pd.DataFrame(columns=["Open", "High", "Low", "Close", "Adj Close", "Volume"])
        return frame

    @property
    def info(self):
        listing = self.sample.universe.by_symbol[self.symbol]
        return {"currency": listing.currency, "longName": listing.name or self.symbol, **self.extra_info}


class FakeYahoo:
    def __init__(self, fail=None, empty=(), info=None):
        from etl.config import load_universe
        from etl.sources.sample import SampleSource

        self.sample = SampleSource(load_universe())
        self.info = info or {}
        self.fail, self.empty, self.created = fail or {}, set(empty), []

    def __call__(self, symbol):
        self.created.append(symbol)
        return SampleTicker(symbol, self.sample, fail=self.fail.get(symbol), empty=symbol in self.empty,
                            info=self.info.get(symbol))


# ------------------------------------------------------------------ a step in a subprocess, paused, killed

def step_env(data_dir: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETL_TEST_")}
    env.update({"ETL_DATA_DIR": str(data_dir), "ETL_WAREHOUSE": str(data_dir / "warehouse.duckdb"),
                "GX_ANALYTICS_ENABLED": "false", "PYTHONPATH": str(REPO)}, **extra)
    return env


def start_paused_step(step: str, run_id: str, data_dir: Path, point: str, marker: Path,
                      extra_env: dict | None = None) -> subprocess.Popen:
    """`python -m etl <step> --run-id <run_id>` that stops at `point` (etl/faults.py) until killed."""
    env = step_env(data_dir, ETL_TEST_PAUSE_AT=point, ETL_TEST_PAUSE_MARKER=str(marker), **(extra_env or {}))
    return subprocess.Popen([sys.executable, "-m", "etl", step, "--run-id", run_id], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_marker(proc: subprocess.Popen, marker: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not marker.exists():
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"the step ended (rc {proc.returncode}) before its pause point:\n{err[-3000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"the step did not reach its pause point within {timeout} s")
        time.sleep(0.02)


def kill(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    return proc.returncode
