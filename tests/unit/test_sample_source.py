"""Tests for the synthetic yfinance-shaped sample source."""

from __future__ import annotations

import time
from datetime import date, timedelta

import exchange_calendars as xcals
import numpy as np
import pandas as pd
import pytest

from etl.config import Universe, load_universe
from etl.sources import make_source
from etl.sources.base import RAW_COLUMNS
from etl.sources.sample import BASE_LEVELS, SampleSource

SEPT = (date(2025, 9, 1), date(2025, 9, 30))


@pytest.fixture(scope="module")
def universe() -> Universe:
    return load_universe()


@pytest.fixture(scope="module")
def symbols(universe: Universe) -> list[str]:
    return [listing.symbol for listing in universe.listings]


@pytest.fixture(scope="module")
def source(universe: Universe) -> SampleSource:
    return SampleSource(universe)


@pytest.fixture(scope="module")
def september(source: SampleSource, symbols: list[str]):
    return source.fetch(symbols, *SEPT)


@pytest.fixture(scope="module")
def long_history(source: SampleSource, symbols: list[str]):
    return source.fetch(symbols, date(2005, 1, 1), date(2027, 11, 30))


def _dates(frame: pd.DataFrame) -> set[date]:
    return {ts.date() for ts in frame.index}


def _at(series: pd.Series, day: str) -> float:
    """The value on one market date."""
    match = series[series.index.date == date.fromisoformat(day)]
    assert len(match) == 1, day
    return float(match.iloc[0])


def test_factory_builds_sample_source(universe: Universe) -> None:
    src = make_source("sample", universe)
    assert src.name == "sample" and src.is_synthetic is True


def test_frames_have_the_yfinance_shape(september, symbols: list[str]) -> None:
    assert set(september.frames) == set(symbols)
    for symbol, frame in september.frames.items():
        assert list(frame.columns) == RAW_COLUMNS, symbol
        assert frame.index.name == "Date"
        assert isinstance(frame.index, pd.DatetimeIndex) and frame.index.tz is not None
        assert (frame.index == frame.index.normalize()).all(), f"{symbol} bars not at local midnight"
        assert frame.index.is_monotonic_increasing and frame.index.is_unique
        assert frame["Volume"].dtype == np.int64
        for col in RAW_COLUMNS:
            if col != "Volume":
                assert frame[col].dtype == np.float64, (symbol, col)
        assert not frame.isna().any().any(), symbol
        assert september.frame_info[symbol] == {"auto_adjusted": False}


def test_timezones_are_the_exchange_local_ones(source: SampleSource) -> None:
    result = source.fetch(["0700.HK", "BABA", "HKD=X"], date(2025, 9, 1), date(2025, 12, 5))
    hk, us, fx = (result.frames[s] for s in ("0700.HK", "BABA", "HKD=X"))
    assert str(hk.index.tz) == "Asia/Hong_Kong"
    assert {ts.utcoffset() for ts in hk.index} == {timedelta(hours=8)}
    assert str(us.index.tz) == "America/New_York"
    assert us.index[0].utcoffset() == timedelta(hours=-4)  # EDT in September
    assert us.index[-1].utcoffset() == timedelta(hours=-5)  # EST in December
    assert str(fx.index.tz) == "Europe/London"
    assert fx.index[0].utcoffset() == timedelta(hours=1) and fx.index[-1].utcoffset() == timedelta(0)


def test_bars_do_not_depend_on_the_window(universe: Universe, september, symbols: list[str]) -> None:
    fresh = SampleSource(universe)
    narrow = fresh.fetch(symbols, date(2025, 9, 10), date(2025, 9, 12))
    wide = SampleSource(universe).fetch(symbols, date(2006, 1, 1), date(2027, 11, 30))
    for symbol in symbols:
        small = narrow.frames[symbol]
        assert len(small) > 0, symbol
        pd.testing.assert_frame_equal(small, september.frames[symbol].loc[small.index])
        pd.testing.assert_frame_equal(small, wide.frames[symbol].loc[small.index])


def test_window_bounds_are_inclusive(source: SampleSource) -> None:
    frame = source.fetch(["0700.HK"], date(2025, 9, 10), date(2025, 9, 12)).frames["0700.HK"]
    assert _dates(frame) == {date(2025, 9, 10), date(2025, 9, 11), date(2025, 9, 12)}


def test_hong_kong_listings_follow_xhkg_sessions(source: SampleSource) -> None:
    start, end = date(2025, 9, 1), date(2025, 10, 31)
    frame = source.fetch(["0700.HK"], start, end).frames["0700.HK"]
    days = _dates(frame)
    assert date(2025, 9, 1) in days  # Labor Day is a US holiday only
    assert date(2025, 10, 1) not in days  # National Day
    assert date(2025, 10, 7) not in days  # day after Mid-Autumn Festival
    sessions = xcals.get_calendar("XHKG").sessions_in_range(start, end)
    assert days == {ts.date() for ts in sessions}


def test_us_listings_follow_xnys_sessions(source: SampleSource) -> None:
    start, end = date(2025, 8, 25), date(2025, 12, 31)
    result = source.fetch(["BABA", "QQQ", "^NDX"], start, end)
    sessions = {ts.date() for ts in xcals.get_calendar("XNYS").sessions_in_range(start, end)}
    for symbol, frame in result.frames.items():
        days = _dates(frame)
        assert date(2025, 9, 1) not in days  # Labor Day
        assert date(2025, 11, 27) not in days  # Thanksgiving
        assert date(2025, 10, 1) in days
        assert days == sessions, symbol


def test_ohlc_is_consistent_over_many_years(long_history, universe: Universe) -> None:
    for symbol, frame in long_history.frames.items():
        stype = universe.by_symbol[symbol].security_type
        assert len(frame) > 5000, symbol
        o, h, lo, c, adj = (frame[col] for col in ("Open", "High", "Low", "Close", "Adj Close"))
        assert (lo > 0).all() and (adj > 0).all(), symbol
        assert (lo <= np.minimum(o, c)).all(), symbol
        assert (np.maximum(o, c) <= h).all(), symbol
        assert (adj <= c + 1e-9).all(), symbol
        if stype == "fx":
            assert (frame["Volume"] == 0).all(), symbol
        else:
            assert (frame["Volume"] > 0).all(), symbol
        assert (frame["Dividends"] >= 0).all() and (frame["Stock Splits"] >= 0).all()
        if stype in ("index", "fx"):
            assert (frame["Dividends"] == 0).all() and (adj == c).all(), symbol


def test_september_2025_levels_are_anchored(september) -> None:
    for symbol in ("0700.HK", "9988.HK", "^HSI", "HSTECH.HK"):
        assert september.frames[symbol]["Close"].iloc[0] == pytest.approx(BASE_LEVELS[symbol], rel=1e-6)
    # US markets were shut on 2025-09-01, so the anchor is the next session.
    assert _at(september.frames["^NDX"]["Close"], "2025-09-02") == pytest.approx(24000, rel=1e-6)
    assert september.frames["QQQ"]["Close"].iloc[0] == pytest.approx(590, rel=1e-6)
    assert 150 < september.frames["BABA"]["Close"].iloc[0] < 160
    assert 30 < september.frames["JD"]["Close"].iloc[0] < 37


def test_tencent_dividend_in_september_2025(september) -> None:
    frame = september.frames["0700.HK"]
    paid = frame[frame["Dividends"] > 0]
    assert list(paid.index.date) == [date(2025, 9, 12)]
    assert paid["Dividends"].iloc[0] == 2.0
    ratio = frame["Adj Close"] / frame["Close"]
    before, on = ratio.loc[:"2025-09-11"], ratio.loc["2025-09-12":]
    assert (before < 1).all() and (frame["Adj Close"] < frame["Close"]).loc[:"2025-09-11"].all()
    # The Yahoo factor: everything before the ex-date is scaled by 1 - D / previous close.
    prev_close = _at(frame["Close"], "2025-09-11")
    assert before.iloc[-1] / on.iloc[0] == pytest.approx(1 - 2.0 / prev_close, rel=1e-9)
    assert np.allclose(before / before.iloc[-1], 1.0) and np.allclose(on / on.iloc[0], 1.0)


def test_xiaomi_split_in_september_2025(september) -> None:
    frame = september.frames["1810.HK"]
    splits = frame[frame["Stock Splits"] != 0]
    assert list(splits.index.date) == [date(2025, 9, 15)]
    assert splits["Stock Splits"].iloc[0] == 2.0
    # yfinance convention: Close is already split-adjusted, so it does not halve on the ex-date.
    jump = _at(frame["Close"], "2025-09-15") / _at(frame["Close"], "2025-09-12")
    assert 0.85 < jump < 1.15


def test_adr_dividends_follow_the_home_listing(long_history) -> None:
    home, adr = long_history.frames["9988.HK"], long_history.frames["BABA"]
    home_days = home.index[home["Dividends"] > 0].date
    adr_days = adr.index[adr["Dividends"] > 0].date
    assert len(home_days) > 10 and len(adr_days) == len(home_days)
    assert all(0 <= (a - h).days <= 7 for a, h in zip(adr_days, home_days, strict=True))


def test_equities_pay_regular_dividends(long_history, universe: Universe) -> None:
    for listing in universe.listings:
        if listing.security_type == "equity":
            frame = long_history.frames[listing.symbol]
            per_year = (frame["Dividends"] > 0).groupby(frame.index.year).sum()
            assert per_year.loc[2006:2026].between(1, 2).all(), listing.symbol


def test_adr_tracks_home_listing_in_usd(september) -> None:
    fx = september.frames["HKD=X"]["Close"]
    fx.index = fx.index.date
    for adr, home, ratio in (("BABA", "9988.HK", 8), ("JD", "9618.HK", 2), ("TCEHY", "0700.HK", 1)):
        us = september.frames[adr]["Close"]
        hk = september.frames[home]["Close"]
        hk.index = hk.index.date
        common = sorted(set(us.index.date) & set(hk.index))
        assert len(common) > 15
        implied = np.array([hk[d] * ratio / fx[d] for d in common])
        premium = us.loc[[str(d) for d in common]].to_numpy() / implied - 1
        assert np.abs(premium).max() < 0.03, adr


def test_fx_barely_moves_and_has_no_weekend_bars(long_history) -> None:
    hkd, cny = long_history.frames["HKD=X"], long_history.frames["CNY=X"]
    for frame in (hkd, cny):
        assert (frame.index.dayofweek < 5).all()
        assert np.log(frame["Close"]).diff().std() < 0.002
    for col in ("Open", "High", "Low", "Close"):
        assert hkd[col].between(7.75, 7.85).all(), col
    sep_cny = cny["Close"].loc["2025-09-01":"2025-09-30"]
    assert sep_cny.between(7.0, 7.25).all()
    assert len(sep_cny) == 22  # every weekday of September 2025


def test_metadata_comes_from_the_universe(september) -> None:
    tencent = september.metadata["0700.HK"]
    assert {k: tencent[k] for k in ("longName", "shortName", "exchange", "currency", "quoteType", "sector")} == {
        "longName": "Tencent Holdings Ltd",
        "shortName": "Tencent Holdings Ltd",
        "exchange": "XHKG",
        "currency": "HKD",
        "quoteType": "EQUITY",
        "sector": "Communication Services",
    }
    # the valuation snapshot: market cap is the window's last close times shares outstanding
    close = september.frames["0700.HK"]["Close"].iloc[-1]
    assert tencent["marketCap"] == round(close * tencent["sharesOutstanding"])
    assert 0 < tencent["forwardPE"] < tencent["trailingPE"]
    assert "marketCap" not in september.metadata["^HSI"]
    assert september.metadata["^HSI"]["quoteType"] == "INDEX"
    assert september.metadata["^HSI"]["longName"] == "Hang Seng Index"
    assert "sector" not in september.metadata["^HSI"]
    assert september.metadata["QQQ"]["quoteType"] == "ETF"
    assert september.metadata["HKD=X"]["quoteType"] == "CURRENCY"
    assert september.metadata["BABA"]["exchange"] == "XNYS"
    assert september.metadata["BABA"]["currency"] == "USD"


def test_unknown_symbols_are_missing(source: SampleSource) -> None:
    result = source.fetch(["0700.HK", "NOT.A.SYMBOL"], *SEPT)
    assert result.missing == {"NOT.A.SYMBOL": "not in the universe"}
    assert set(result.frames) == {"0700.HK"} and set(result.metadata) == {"0700.HK"}
    assert result.calls == 1


def test_calls_counts_symbols_fetched(september, symbols: list[str]) -> None:
    assert september.calls == len(symbols) == 38
    assert september.missing == {}


def test_window_without_trading_days_is_missing(source: SampleSource) -> None:
    result = source.fetch(["0700.HK", "HKD=X", "BABA"], date(2025, 10, 4), date(2025, 10, 5))  # a weekend
    assert result.frames == {}
    assert set(result.missing) == {"0700.HK", "HKD=X", "BABA"}
    assert "no trading days" in result.missing["0700.HK"] and result.calls == 3
    # National Day: Hong Kong shut, New York and FX open.
    holiday = source.fetch(["0700.HK", "HKD=X", "BABA"], date(2025, 10, 1), date(2025, 10, 1))
    assert set(holiday.missing) == {"0700.HK"} and set(holiday.frames) == {"HKD=X", "BABA"}


def test_fetch_is_fast(universe: Universe, symbols: list[str]) -> None:
    started = time.perf_counter()
    result = SampleSource(universe).fetch(symbols, date(2025, 9, 1), date(2025, 9, 26))
    elapsed = time.perf_counter() - started
    assert len(result.frames) == len(symbols)
    assert elapsed < 5.0, f"{elapsed:.2f}s"  # loose sanity bound; typically ~0.2 s with calendars cached
