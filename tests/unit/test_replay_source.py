"""ReplaySource on the real yfinance/Yahoo CSV files in shared/data/real and on small temp files."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from etl.config import Universe, load_universe
from etl.sources import make_source
from etl.sources.base import RAW_COLUMNS, SourceError
from etl.sources.replay import ReplaySource

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real"
HISTORY = REAL / "yf_history" / "zjplab_US-Trading-Data"
HISTORY_FX = REAL / "yf_history" / "Alexshch09_Stocks-prices"
DOWNLOAD = REAL / "yf_download" / "hjyssg_tqqq_simulation"
DOWNLOAD_FLIPPE2 = REAL / "yf_download" / "flippe2_blank-app"
DOWNLOAD_FLAT = REAL / "yf_download" / "robynge_ark-trades-viz"
YAHOO_CSV = REAL / "yahoo_csv_download" / "dieperdev_yfinance-stock-data"
REPAIR = REAL / "yfinance_repair_testdata" / "ranaroussi_yfinance"

ALL_TIME = (date(1970, 1, 1), date(2030, 12, 31))
SEP17 = date(2025, 9, 17)


def needs_real(test: Callable[..., None]) -> Callable[..., None]:
    """Mark a test as reading shared/data/real and skip it, saying why, when that folder is absent."""
    skip = pytest.mark.skipif(not REAL.is_dir(), reason=f"real market data not found at {REAL}")
    return pytest.mark.real(skip(test))


# The default universe has no AAPL or 1398.HK; this one copies its structure for those two.
EXTRA_UNIVERSE = """
calendar: {start: "2000-01-01", end: "2027-11-30"}
markets:
  XHKG: {name: Hong Kong, calendar: XHKG, timezone: Asia/Hong_Kong, close_local: "16:10",
         schedule: "30 17 * * 1-5"}
  US: {name: United States, calendar: XNYS, timezone: America/New_York, close_local: "16:00",
       schedule: "30 17 * * 1-5"}
exchanges:
  XHKG: {name: Hong Kong Exchanges and Clearing, market: XHKG, timezone: Asia/Hong_Kong, country: HK}
  XNAS: {name: Nasdaq, market: US, timezone: America/New_York, country: US}
  XOFF: {name: Off-exchange (FX), market: FX, timezone: Europe/London, country: GB}
currencies:
  USD: {name: US Dollar, fx_symbol: null}
  HKD: {name: Hong Kong Dollar, fx_symbol: HKD=X}
fx:
  - {symbol: HKD=X, currency: HKD, name: USD/HKD}
companies:
  - id: icbc
    name: Industrial and Commercial Bank of China
    listings:
      - {symbol: 1398.HK, exchange: XHKG, currency: HKD, security_type: equity}
  - id: apple
    name: Apple Inc
    listings:
      - {symbol: AAPL, exchange: XNAS, currency: USD, security_type: equity}
"""


@pytest.fixture(scope="module")
def universe() -> Universe:
    return load_universe()


@pytest.fixture(scope="module")
def extra_universe(tmp_path_factory: pytest.TempPathFactory) -> Universe:
    path = tmp_path_factory.mktemp("universe") / "universe.yaml"
    path.write_text(EXTRA_UNIVERSE)
    return load_universe(path)


def fetch_one(universe: Universe, folder: Path, symbol: str, start: date, end: date) -> pd.DataFrame:
    """Fetch one symbol and assert it came back as a frame honouring the raw-frame contract."""
    result = ReplaySource(universe, folder).fetch([symbol], start, end)
    assert result.missing == {}, result.missing
    assert result.calls == 1 and result.metadata == {}
    frame = result.frames[symbol]
    assert isinstance(frame.index, pd.DatetimeIndex) and frame.index.name == "Date"
    assert list(frame.columns) == [c for c in RAW_COLUMNS if c in frame.columns]
    assert all(dtype == "float64" for dtype in frame.dtypes)
    return frame


def info(universe: Universe, folder: Path, symbol: str) -> dict:
    """The frame_info recorded for `symbol` over the whole file."""
    return ReplaySource(universe, folder).fetch([symbol], *ALL_TIME).frame_info[symbol]


def at(frame: pd.DataFrame, day: str) -> pd.DataFrame:
    """Rows whose local market date is `day`."""
    return frame[frame.index.strftime("%Y-%m-%d") == day]


# --- a) Ticker.history().to_csv() ---------------------------------------------------------------------


@needs_real
def test_history_hk_equity_dividends_split_and_tz(universe: Universe) -> None:
    frame = fetch_one(universe, HISTORY, "0700.HK", *ALL_TIME)
    assert str(frame.index.tz) == "Asia/Hong_Kong"
    assert list(frame.columns) == ["Open", "High", "Low", "Close", "Volume", "Dividends", "Stock Splits"]
    assert len(frame) == 5477
    assert frame.index[0] == pd.Timestamp("2004-06-16", tz="Asia/Hong_Kong")
    assert (frame["Dividends"] > 0).sum() == 19
    assert at(frame, "2025-05-16")["Dividends"].item() == 4.5
    assert at(frame, "2026-05-15")["Dividends"].item() == 5.3
    assert at(frame, "2014-05-15")["Stock Splits"].item() == 5.0
    assert at(frame, "2025-09-17")["Close"].item() == pytest.approx(653.88, abs=0.005)
    # Yahoo's raw High < Low rows reach landing untouched.
    bad = at(frame, "2009-12-31")
    assert bad["High"].item() < bad["Low"].item()
    meta = info(universe, HISTORY, "0700.HK")
    assert meta == {
        "source_file": str(HISTORY / "0700.HK.csv"),
        "layout": "yf_history",
        "auto_adjusted": True,
        "dropped_columns": [],
    }


@needs_real
def test_history_duplicate_split_rows_kept(universe: Universe) -> None:
    frame = fetch_one(universe, HISTORY, "0981.HK", date(2016, 11, 1), date(2016, 12, 31))
    splits = frame[frame["Stock Splits"] != 0]["Stock Splits"]
    assert list(splits.index.strftime("%Y-%m-%d")) == ["2016-11-21", "2016-12-07"]
    assert list(splits) == [0.1, 0.1]
    assert frame.index.min() >= pd.Timestamp("2016-11-01", tz="Asia/Hong_Kong")
    assert frame.index.max() <= pd.Timestamp("2016-12-31", tz="Asia/Hong_Kong")


@needs_real
def test_history_fx_london_offsets_and_saturday_bar(universe: Universe) -> None:
    frame = fetch_one(universe, HISTORY_FX, "HKD=X", *ALL_TIME)
    assert str(frame.index.tz) == "Europe/London"
    assert len(frame) == 5915
    # +01:00 (BST) and +00:00 (GMT) stamps both become London midnight.
    assert frame.index[0] == pd.Timestamp("2001-07-16 00:00", tz="Europe/London")
    assert (frame.index.hour == 0).all()
    last = frame.iloc[-1]
    assert frame.index[-1] == pd.Timestamp("2024-12-07", tz="Europe/London")
    assert frame.index[-1].day_name() == "Saturday"
    assert last["Close"] == pytest.approx(7.7791, abs=1e-4)
    assert (frame["Volume"] == 0).all()


@needs_real
def test_history_us_equity_new_york_offsets(extra_universe: Universe) -> None:
    frame = fetch_one(extra_universe, HISTORY, "AAPL", *ALL_TIME)
    assert str(frame.index.tz) == "America/New_York"
    assert len(frame) == 11515
    splits = frame[frame["Stock Splits"] != 0]["Stock Splits"]
    assert list(splits.index.strftime("%Y-%m-%d")) == [
        "1987-06-16",
        "2000-06-21",
        "2005-02-28",
        "2014-06-09",
        "2020-08-31",
    ]
    assert list(splits) == [2.0, 2.0, 2.0, 7.0, 4.0]
    assert (frame["Dividends"] > 0).sum() == 92


# --- b) yf.download() with the 3-row MultiIndex header ------------------------------------------------


@needs_real
def test_multiindex_with_adj_close_from_lowercase_file(universe: Universe) -> None:
    frame = fetch_one(universe, DOWNLOAD, "QQQ", date(2025, 9, 16), SEP17)
    assert str(frame.index.tz) == "America/New_York"
    assert list(frame.columns) == ["Open", "High", "Low", "Close", "Adj Close", "Volume"]
    assert list(frame.index) == [
        pd.Timestamp("2025-09-16", tz="America/New_York"),
        pd.Timestamp("2025-09-17", tz="America/New_York"),
    ]
    assert frame["Close"].iloc[-1] == 590.0
    assert frame["Volume"].iloc[-1] == 69384800
    meta = info(universe, DOWNLOAD, "QQQ")
    assert meta["source_file"] == str(DOWNLOAD / "qqq.csv")
    assert meta["layout"] == "yf_download_multiindex"
    assert meta["auto_adjusted"] is False


@needs_real
def test_multiindex_fx_and_index(universe: Universe) -> None:
    cny = fetch_one(universe, DOWNLOAD, "CNY=X", SEP17, SEP17)
    assert cny.index[0] == pd.Timestamp("2025-09-17", tz="Europe/London")
    assert cny["Close"].item() == pytest.approx(7.1142, abs=1e-4)
    assert cny["Volume"].item() == 0
    ndx = fetch_one(universe, DOWNLOAD, "^NDX", SEP17, SEP17)
    assert ndx["Close"].item() == pytest.approx(24223.69, abs=0.005)


@needs_real
def test_multiindex_without_adj_close(universe: Universe) -> None:
    frame = fetch_one(universe, DOWNLOAD_FLIPPE2, "^HSI", *ALL_TIME)
    assert str(frame.index.tz) == "Asia/Hong_Kong"
    assert len(frame) == 121
    assert list(frame.columns) == ["Open", "High", "Low", "Close", "Volume"]
    assert at(frame, "2025-09-16")["Close"].item() == pytest.approx(26438.51, abs=0.005)
    assert at(frame, "2025-09-17")["Close"].item() == pytest.approx(26908.39, abs=0.005)
    assert at(frame, "2025-09-17").index[0] == pd.Timestamp("2025-09-17", tz="Asia/Hong_Kong")
    meta = info(universe, DOWNLOAD_FLIPPE2, "^HSI")
    assert meta["layout"] == "yf_download_multiindex" and meta["auto_adjusted"] is True


# --- c) yf.download() with one header row (old yfinance, and a flattened header) ----------------------


@needs_real
def test_old_single_header_download(universe: Universe) -> None:
    frame = fetch_one(universe, DOWNLOAD, "^HSI", *ALL_TIME)
    assert len(frame) == 9280
    assert list(frame.columns) == ["Open", "High", "Low", "Close", "Adj Close", "Volume"]
    assert at(frame, "2023-07-03")["Close"].item() == pytest.approx(19306.59, abs=0.005)
    assert frame["Volume"].iloc[0] == 0
    meta = info(universe, DOWNLOAD, "^HSI")
    assert meta["layout"] == "ohlcv_single_header" and meta["auto_adjusted"] is False


@needs_real
def test_flattened_download_is_auto_adjusted(universe: Universe) -> None:
    frame = fetch_one(universe, DOWNLOAD_FLAT, "BABA", date(2025, 9, 16), SEP17)
    assert str(frame.index.tz) == "America/New_York"
    # No Adj Close and no actions in the file, so none are invented.
    assert list(frame.columns) == ["Open", "High", "Low", "Close", "Volume"]
    assert list(frame["Close"].round(2)) == [162.21, 166.17]
    meta = info(universe, DOWNLOAD_FLAT, "BABA")
    assert meta["layout"] == "ohlcv_single_header"
    assert meta["auto_adjusted"] is True
    assert meta["dropped_columns"] == []


# --- d) Yahoo's own "Download CSV" ---------------------------------------------------------------------


@needs_real
def test_yahoo_csv_without_trailing_newline_keeps_last_row(universe: Universe) -> None:
    assert not (YAHOO_CSV / "BIDU.csv").read_bytes().endswith(b"\n")
    frame = fetch_one(universe, YAHOO_CSV, "BIDU", *ALL_TIME)
    assert len(frame) == 4679
    assert frame.index[-1] == pd.Timestamp("2024-03-08", tz="America/New_York")
    last = frame.iloc[-1]
    assert (last["Close"], last["Adj Close"], last["Volume"]) == (98.269997, 98.269997, 2322300.0)
    baba = fetch_one(universe, YAHOO_CSV, "BABA", date(2023, 7, 3), date(2023, 7, 3))
    assert baba["Close"].item() == pytest.approx(84.07, abs=0.005)


# --- e) yfinance's price-repair test data --------------------------------------------------------------


@needs_real
@pytest.mark.parametrize(
    ("upstream", "dropped"),
    [("1398-HK-1d-bad-div.csv", []), ("1398-HK-1d-bad-div-fixed.csv", ["Repaired?"])],
)
def test_repair_testdata_keeps_empty_row(
    extra_universe: Universe, tmp_path: Path, upstream: str, dropped: list[str]
) -> None:
    shutil.copy(REPAIR / upstream, tmp_path / "1398.HK.csv")
    frame = fetch_one(extra_universe, tmp_path, "1398.HK", *ALL_TIME)
    assert str(frame.index.tz) == "Asia/Hong_Kong"
    assert len(frame) == 648
    assert list(frame.columns) == RAW_COLUMNS
    empty = at(frame, "2024-07-05")
    assert len(empty) == 1
    assert empty[["Open", "High", "Low", "Close", "Adj Close", "Volume"]].isna().all(axis=None)
    assert (empty["Dividends"].item(), empty["Stock Splits"].item()) == (0.0, 0.0)
    assert (frame["Dividends"] > 0).sum() == 3
    meta = ReplaySource(extra_universe, tmp_path).fetch(["1398.HK"], *ALL_TIME).frame_info["1398.HK"]
    assert meta["layout"] == "yf_history"
    assert meta["auto_adjusted"] is False
    assert meta["dropped_columns"] == dropped


@needs_real
def test_real_root_is_read_recursively_and_duplicates_fail(universe: Universe) -> None:
    source = ReplaySource(universe, REAL)
    result = source.fetch(["0700.HK", "HSTECH.HK"], SEP17, SEP17)
    assert list(result.frames) == ["0700.HK"]
    assert result.missing == {"HSTECH.HK": f"no replay file in {REAL}"}
    assert result.calls == 1
    with pytest.raises(SourceError) as err:
        source.fetch(["^HSI"], SEP17, SEP17)
    assert str(DOWNLOAD / "^HSI.csv") in str(err.value)
    assert str(DOWNLOAD_FLIPPE2 / "^HSI.csv") in str(err.value)


# --- behaviour on small temp files -------------------------------------------------------------------

MULTI = (
    "Price,Adj Close,Close,High,Low,Open,Volume\n"
    "Ticker,QQQ,QQQ,QQQ,QQQ,QQQ,QQQ\n"
    "Date,,,,,,\n"
    "2025-09-16,591.18,591.18,592.86,590.49,592.61,36942100\n"
    "2025-09-17,590.0,590.0,591.75,584.37,591.1,69384800\n"
)
HISTORY_ROWS = (
    "Date,Open,High,Low,Close,Volume,Dividends,Stock Splits,Capital Gains\n"
    # 16:00 UTC on the 16th is midnight of the 17th in Hong Kong.
    "2025-09-16 16:00:00+00:00,639.0,655.8,637.5,653.8,22349048,0.0,0.0,0.0\n"
    "2025-09-18 00:00:00+08:00,650.0,651.0,640.0,645.0,1000,0.0,0.0,0.0\n"
)


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def test_lowercase_file_name_matches_symbol(universe: Universe, tmp_path: Path) -> None:
    path = write(tmp_path, "qqq.csv", MULTI)
    result = ReplaySource(universe, tmp_path).fetch(["QQQ"], date(2025, 9, 17), date(2025, 9, 17))
    assert result.frames["QQQ"]["Close"].tolist() == [590.0]
    assert result.frame_info["QQQ"]["source_file"] == str(path)


def test_aware_stamps_convert_to_exchange_tz_and_window_is_inclusive(
    universe: Universe, tmp_path: Path
) -> None:
    write(tmp_path, "0700.HK.csv", HISTORY_ROWS)
    result = ReplaySource(universe, tmp_path).fetch(["0700.HK"], date(2025, 9, 17), date(2025, 9, 18))
    frame = result.frames["0700.HK"]
    assert list(frame.index) == [
        pd.Timestamp("2025-09-17", tz="Asia/Hong_Kong"),
        pd.Timestamp("2025-09-18", tz="Asia/Hong_Kong"),
    ]
    assert "Capital Gains" not in frame.columns
    assert result.frame_info["0700.HK"]["dropped_columns"] == ["Capital Gains"]
    only_first = ReplaySource(universe, tmp_path).fetch(["0700.HK"], date(2025, 9, 17), date(2025, 9, 17))
    assert len(only_first.frames["0700.HK"]) == 1


def test_two_files_for_one_symbol_fail_naming_both(universe: Universe, tmp_path: Path) -> None:
    first = write(tmp_path / "a", "QQQ.csv", MULTI)
    second = write(tmp_path / "b" / "deeper", "qqq.csv", MULTI)
    with pytest.raises(SourceError) as err:
        ReplaySource(universe, tmp_path).fetch(["QQQ"], SEP17, SEP17)
    assert str(first) in str(err.value) and str(second) in str(err.value)


def test_symbol_without_file_is_missing(universe: Universe, tmp_path: Path) -> None:
    write(tmp_path, "QQQ.csv", MULTI)
    result = ReplaySource(universe, tmp_path).fetch(["QQQ", "BABA"], SEP17, SEP17)
    assert list(result.frames) == ["QQQ"]
    assert result.missing == {"BABA": f"no replay file in {tmp_path}"}
    assert result.calls == 1


def test_no_rows_in_window_is_missing_with_file_range(universe: Universe, tmp_path: Path) -> None:
    path = write(tmp_path, "QQQ.csv", MULTI)
    start, end = date(2026, 1, 1), date(2026, 1, 31)
    result = ReplaySource(universe, tmp_path).fetch(["QQQ"], start, end)
    assert result.frames == {} and result.frame_info == {}
    assert result.missing == {
        "QQQ": f"no rows between 2026-01-01 and 2026-01-31 in {path} (file covers 2025-09-16..2025-09-17)"
    }
    assert result.calls == 1


def test_header_only_file_is_missing(universe: Universe, tmp_path: Path) -> None:
    write(tmp_path, "BABA.csv", "Date,Open,High,Low,Close,Adj Close,Volume\n")
    result = ReplaySource(universe, tmp_path).fetch(["BABA"], SEP17, SEP17)
    assert "no rows between" in result.missing["BABA"] and "file has no data rows" in result.missing["BABA"]


@pytest.mark.parametrize(
    "text",
    [
        "date,open,high,low,close,symbol,name,source,fetch_time\n2020-08-17,1,2,0.5,1.5,HSTECH,x,y,z\n",
        "date,adj_close\n2024-08-22,25.02\n",
        ",Date,Open,High,Low,Close\n0,2025-09-17,1,2,0.5,1.5\n",
    ],
    ids=["akshare", "fmp", "index-column"],
)
def test_unknown_header_fails_naming_file_and_header(universe: Universe, tmp_path: Path, text: str) -> None:
    path = write(tmp_path, "JD.csv", text)
    with pytest.raises(SourceError) as err:
        ReplaySource(universe, tmp_path).fetch(["JD"], SEP17, SEP17)
    assert str(path) in str(err.value)
    assert text.splitlines()[0] in str(err.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Date,Open,High,Low,Close,Volume\n2025-09-17,1,2,x,1.5,10\n", "cannot parse rows"),
        ("Date,Open,High,Low,Close,Volume\n2025-09-17,1,2,0.5,1.5,10,99\n", "cells"),
        ("Date,Open,High,Low,Close,Volume\n2025-13-45,1,2,0.5,1.5,10\n", "unparseable date"),
        (
            "Date,Open,High,Low,Close,Volume\n2025-09-17 00:00:00-04:00,1,2,0.5,1.5,10\n"
            "2025-09-18,1,2,0.5,1.5,10\n",
            "mixes tz-aware and naive",
        ),
        ("Date,Open,High,Close,Volume\n2025-09-17,1,2,1.5,10\n", "lacks Low"),
        (MULTI.replace("Ticker" + ",QQQ" * 6, "Ticker" + ",SPY" * 6), "Ticker header row says SPY"),
        (MULTI.replace("Ticker,QQQ,QQQ", "Ticker,QQQ,SPY"), "one ticker per file"),
    ],
    ids=["bad-number", "extra-cell", "bad-date", "mixed-tz", "no-low", "other-ticker", "two-tickers"],
)
def test_unparseable_file_fails_naming_file(
    universe: Universe, tmp_path: Path, text: str, expected: str
) -> None:
    path = write(tmp_path, "QQQ.csv", text)
    with pytest.raises(SourceError) as err:
        ReplaySource(universe, tmp_path).fetch(["QQQ"], SEP17, SEP17)
    assert str(path) in str(err.value) and expected in str(err.value)


def test_files_for_other_symbols_are_not_read(universe: Universe, tmp_path: Path) -> None:
    write(tmp_path, "QQQ.csv", MULTI)
    write(tmp_path, "BABA.csv", "not,a,price,file\n")
    write(tmp_path, "notes.txt", "ignored")
    result = ReplaySource(universe, tmp_path).fetch(["QQQ"], SEP17, SEP17)
    assert list(result.frames) == ["QQQ"] and result.calls == 1


def test_symbol_outside_universe_is_missing(universe: Universe, tmp_path: Path) -> None:
    write(tmp_path, "AAPL.csv", MULTI.replace("QQQ", "AAPL"))
    result = ReplaySource(universe, tmp_path).fetch(["AAPL"], SEP17, SEP17)
    assert result.frames == {} and "not in the universe" in result.missing["AAPL"]


def test_naive_dates_localize_to_exchange_midnight(universe: Universe, tmp_path: Path) -> None:
    text = "Date,Open,High,Low,Close,Adj Close,Volume\n2025-09-17,7.8,7.8,7.7,7.79,7.79,0"
    write(tmp_path, "HKD=X.csv", text)
    frame = ReplaySource(universe, tmp_path).fetch(["HKD=X"], SEP17, SEP17).frames["HKD=X"]
    assert frame.index[0] == pd.Timestamp("2025-09-17 00:00", tz="Europe/London")


def test_missing_directory_or_file_path_fails(universe: Universe, tmp_path: Path) -> None:
    absent = tmp_path / "nowhere"
    with pytest.raises(SourceError, match="does not exist") as err:
        ReplaySource(universe, absent).fetch(["QQQ"], SEP17, SEP17)
    assert str(absent) in str(err.value)
    a_file = write(tmp_path, "QQQ.csv", MULTI)
    with pytest.raises(SourceError, match="is not a directory") as err:
        ReplaySource(universe, a_file).fetch(["QQQ"], SEP17, SEP17)
    assert str(a_file) in str(err.value)


def test_factory_builds_replay_source(universe: Universe, tmp_path: Path) -> None:
    source = make_source("replay", universe, replay_dir=str(tmp_path))
    assert isinstance(source, ReplaySource)
    assert source.name == "replay" and source.is_synthetic is False
    assert source.replay_dir == tmp_path
