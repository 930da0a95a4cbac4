"""Publish writes new files only for what changed: an unchanged whole-table dimension keeps its file, a changed
one gets a new file with the new rows."""

from __future__ import annotations

import re
from datetime import date

from etl.config import Settings
from etl.pipeline import run_all
from etl.store import Store
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
    assert second["dim_security"] != first["dim_security"]  # scoped: rewritten with the run's listings
    assert second["fct_daily_price"]["2025-09"] != first["fct_daily_price"]["2025-09"]

    # an exchange renamed in the universe: dim_exchange gets a new file holding the new name
    text = (REPO / "etl" / "universe.yaml").read_text()
    renamed = re.sub(r"(XHKG:\s*\{\s*name:\s*)[^,}]+", r"\1Hong Kong Exchanges (renamed)", text, count=1)
    assert renamed != text
    path = tmp_path / "universe.yaml"
    path.write_text(renamed)
    monkeypatch.setenv("ETL_UNIVERSE", str(path))
    run_all("sample", date(2025, 9, 15), date(2025, 9, 15))
    third = _files()
    assert third["dim_exchange"] != second["dim_exchange"]
    assert third["dim_date"] == second["dim_date"]
    assert query(data_dir / "warehouse.duckdb",
                 "select exchange_name from dim_exchange where exchange_code = 'XHKG'") == \
        [("Hong Kong Exchanges (renamed)",)]
