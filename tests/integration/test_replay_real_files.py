"""The full pipeline on real Yahoo-derived files from ../shared (every CSV layout, with their real quirks)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from etl.pipeline import run_all
from tests.conftest import query

pytestmark = pytest.mark.real

# One file per symbol; where ../shared has two files for a symbol, each goes to a different replay folder.
RECENT = {  # covers Aug-Sep 2025
    "yf_history/zjplab_US-Trading-Data": ["0700.HK", "0981.HK", "1810.HK", "3690.HK", "9618.HK", "9888.HK",
                                          "9988.HK", "AAPL"],
    "yf_history/Alexshch09_Stocks-prices": ["HKD=X"],
    "yf_download/hjyssg_tqqq_simulation": ["CNY=X", "^NDX", "qqq"],
    "yf_download/flippe2_blank-app": ["^HSI"],
    "yf_download/robynge_ark-trades-viz": ["BABA", "BIDU"],
}
OLDER = {  # the old single-header yf.download file and the classic Yahoo "Download CSV" files, mid-2023
    "yf_download/hjyssg_tqqq_simulation": ["^HSI", "CNY=X"],
    "yf_history/Alexshch09_Stocks-prices": ["HKD=X"],
    "yahoo_csv_download/dieperdev_yfinance-stock-data": ["BABA", "BIDU", "JD"],
}


def _replay_dir(real: Path, target: Path, layout: dict[str, list[str]]) -> Path:
    target.mkdir(parents=True)
    for folder, stems in layout.items():
        for stem in stems:
            (target / f"{stem}.csv").symlink_to(real / folder / f"{stem}.csv")
    return target


def _file_rows(path: Path, start: str, end: str) -> int:
    dates = pd.read_csv(path, usecols=[0]).iloc[:, 0].astype(str).str[:10]
    return int(((dates >= start) & (dates <= end)).sum())


def test_replay_of_real_files_aug_sep_2025(data_dir, shared_real, tmp_path):
    replay = _replay_dir(shared_real, tmp_path / "recent", RECENT)
    out = run_all("replay", date(2025, 8, 1), date(2025, 9, 30), replay_dir=str(replay))
    wh = data_dir / "warehouse.duckdb"

    # every bar in the files' window is published (none of these rows is quarantined)
    for stem in ["0700.HK", "9988.HK", "3690.HK"]:
        expected = _file_rows(replay / f"{stem}.csv", "2025-08-01", "2025-09-30")
        assert query(wh, "select count(*) from fct_daily_price where symbol = ?", [stem]) == [(expected,)]
    # values straight from the real files, per layout
    close = "select close, is_vendor_adjusted from fct_daily_price where symbol = ? and date_key = 20250917"
    # flattened yf.download (auto-adjusted)
    assert query(wh, close, ["BABA"]) == [(pytest.approx(166.17, abs=0.005), True)]
    assert query(wh, close, ["^HSI"]) == [(pytest.approx(26908.39, abs=0.01), True)]  # 3-row header, no Adj Close
    assert query(wh, close, ["QQQ"]) == [(pytest.approx(590.0, abs=0.01), False)]  # 3-row header with Adj Close
    assert query(wh, "select round(close, 2) from fct_daily_price where symbol = '9888.HK' "
                     "and date_key in (20250916, 20250917) order by date_key") == [(113.2,), (131.0,)]
    # HKD=X ends in 2024: HKD prices publish with close_usd null, a counted gap, not a blocked run
    by_currency = ("select count(*), count(close_usd) from fct_daily_price "
                   "join dim_currency using (currency_key) where currency_code = ?")
    hkd_rows, hkd_converted = query(wh, by_currency, ["HKD"])[0]
    assert hkd_rows > 0 and hkd_converted == 0
    (gap,) = query(wh, "select unexpected_count from dq_result where expectation_type = 'invariant:fx_gap'")[0]
    assert gap == query(wh, "select count(*) from fct_daily_price where close_usd is null")[0][0] > 0
    # USD listings convert at 1; CNY has a real rate
    usd_rows, usd_converted = query(wh, by_currency, ["USD"])[0]
    assert usd_rows == usd_converted > 0
    assert query(wh, "select round(units_per_usd, 4) from fct_fx_rate where currency_code = 'CNY' "
                     "and date_key = 20250917") == [(7.1142,)]
    # symbols without a file, or without rows in the window, are reported, not silently dropped
    missing = out["extract"]["missing"]
    assert "no replay file" in missing["TCEHY"]
    assert "no rows between" in missing["HKD=X"]
    details = query(wh, "select details from run_log where step = 'extract'")[0][0]
    assert json.loads(details)["missing"]["HKD=X"] == missing["HKD=X"]


def test_replay_of_older_layouts_mid_2023(data_dir, shared_real, tmp_path):
    replay = _replay_dir(shared_real, tmp_path / "older", OLDER)
    run_all("replay", date(2023, 6, 1), date(2023, 7, 31), replay_dir=str(replay))
    wh = data_dir / "warehouse.duckdb"
    close = "select round(close, 2) from fct_daily_price where symbol = ? and date_key = ?"
    assert query(wh, close, ["BABA", 20230703]) == [(84.07,)]
    assert query(wh, close, ["JD", 20230707]) == [(35.76,)]
    assert query(wh, close, ["^HSI", 20230703]) == [(19306.59,)]
    # with HKD=X covering 2023, HKD prices convert: about 7.8 HKD per USD
    (ratio,) = query(wh, "select close / close_usd from fct_daily_price where symbol = '^HSI' "
                         "and date_key = 20230703")[0]
    assert 7.75 < ratio < 7.86


def test_real_vendor_quirks_go_through_stated_rules(data_dir, shared_real, tmp_path):
    replay = _replay_dir(shared_real, tmp_path / "recent", RECENT)
    wh = data_dir / "warehouse.duckdb"

    # 0981.HK: Yahoo repeats the 10->1 consolidation on 2016-11-21 and 2016-12-07: one event, one quarantined
    run_all("replay", date(2016, 11, 1), date(2016, 12, 31), replay_dir=str(replay), market="XHKG")
    assert query(wh, "select date_key, action_type, split_ratio from fct_corporate_action "
                     "where symbol = '0981.HK'") == [(20161121, "consolidation", 0.1)]
    assert query(wh, "select bar_date, reason from quarantine where symbol = '0981.HK'") == [
        (date(2016, 12, 7), "duplicate_split_repeat")]

    # High < Low (0700.HK 2009-12-31, 2010-01-15; 0981.HK 2009-12-22) are Yahoo errors: published, flagged, warned
    run_all("replay", date(2009, 12, 1), date(2010, 1, 31), replay_dir=str(replay), market="XHKG")
    assert query(wh, "select symbol, date_key from fct_daily_price where is_high_low_inverted order by 2") == [
        ("0981.HK", 20091222), ("0700.HK", 20091231), ("0700.HK", 20100115)]
    assert query(wh, "select severity, success, unexpected_count from dq_result where table_name = 'fct_daily_price' "
                     "and expectation_type = 'expect_column_pair_values_a_to_be_greater_than_b' "
                     "and run_id = (select max(run_id) from dq_result where run_id like '%2009-12-01%')") == [
        ("warning", False, 3)]

    # HKD=X: a Saturday bar on 2024-12-07 is quarantined; Saturday takes Friday's quote
    run_all("replay", date(2024, 12, 2), date(2024, 12, 31), replay_dir=str(replay), market="XHKG")
    assert query(wh, "select bar_date, reason from quarantine where symbol = 'HKD=X'") == [
        (date(2024, 12, 7), "weekend_fx_bar")]
    assert query(wh, "select observed_date, is_carried_forward from fct_fx_rate where currency_code = 'HKD' "
                     "and date_key = 20241207") == [(date(2024, 12, 6), True)]
    # zero-volume half days are real bars (HKEX Christmas Eve half day): published and flagged
    assert query(wh, "select volume, is_zero_volume from fct_daily_price where symbol = '9988.HK' "
                     "and date_key = 20241224") == [(0, True)]
