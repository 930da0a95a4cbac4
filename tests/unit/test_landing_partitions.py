"""Landing a long window writes one complete file per (source, market, bar_date): no row is lost when the
window has more partitions than DuckDB keeps open at once (issue 6: a 20-year backfill has ~15,000)."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd

from etl.landing import _copy_partitioned


def test_a_window_with_many_partitions_lands_every_row_once_per_partition(tmp_path):
    days = pd.date_range("2020-01-01", periods=400).date
    symbols = [f"S{i:03d}" for i in range(300)]  # 120k rows: enough for DuckDB to split partitions
    frame = pd.DataFrame({
        "source": "sample",
        "symbol": np.repeat(symbols, len(days)),
        "market": "US",
        "bar_date": np.tile(days, len(symbols)),
        "Close": np.arange(len(days) * len(symbols), dtype="float64"),
    })
    files = _copy_partitioned(duckdb.connect(), frame, tmp_path / "landing", "r1", tmp_path / "tmp")
    assert files == len(days)
    landed = sorted((tmp_path / "landing").rglob("*.parquet"))
    assert len(landed) == len(days) and {p.name for p in landed} == {"run-r1.parquet"}
    rows, distinct, per_file = duckdb.sql(
        f"select count(*), count(distinct \"Close\"), max(n) from (select count(*) over (partition by filename) n, "
        f"\"Close\" from read_parquet('{tmp_path}/landing/*/*/*/*.parquet', filename=true, hive_partitioning=false))"
    ).fetchone()
    assert rows == distinct == len(frame)
    assert per_file == len(symbols)
