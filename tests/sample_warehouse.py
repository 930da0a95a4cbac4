"""A published sample-source warehouse for September 2025, built once per test module (serving tests).

Tests that only read the warehouse (analysis queries, report, descriptions) share one build instead of paying
a pipeline run (~10 s) each. The environment points at the module's own data directory only while the module
runs; tests that publish again use the function-scoped `data_dir` fixture instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest

from etl.config import Settings

START, END = date(2025, 9, 1), date(2025, 9, 30)


@dataclass(frozen=True)
class SampleWarehouse:
    data_dir: Path
    warehouse: Path
    run_id: str

    def settings(self) -> Settings:
        return Settings.from_env(warehouse=self.warehouse)


@contextmanager
def sample_warehouse(root: Path, start: date = START, end: date = END) -> Iterator[SampleWarehouse]:
    from etl.pipeline import run_all

    data = root / "data"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ETL_DATA_DIR", str(data))
        mp.setenv("ETL_WAREHOUSE", str(data / "warehouse.duckdb"))
        mp.delenv("ETL_UNIVERSE", raising=False)
        out = run_all("sample", start, end)
        yield SampleWarehouse(data_dir=data, warehouse=data / "warehouse.duckdb", run_id=out["run_id"])
