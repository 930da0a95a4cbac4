"""The live yfinance path through the whole pipeline, with fakes at the network edge only."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import pytest

from etl.config import load_universe
from etl.pipeline import extract_step, land_step, publish_step, start_run, transform_step, validate_step
from etl.sources import SourceError
from etl.sources import sample_fundamentals as fundamentals
from etl.sources.sample import SampleSource
from etl.sources.yfinance_source import YFinanceSource
from tests.conftest import query


class FakeYahooTicker:
    """A yfinance.Ticker look-alike answering from the sample generator, counting every call."""

    calls: list[tuple[str, str]] = []

    def __init__(self, symbol: str, universe, sample: SampleSource):
        self.symbol, self.universe, self.sample = symbol, universe, sample

    def history(self, start=None, end=None, **kwargs):
        FakeYahooTicker.calls.append((self.symbol, "history"))
        assert kwargs.get("auto_adjust") is False and kwargs.get("actions") is True
        last = pd.Timestamp(end).date() - timedelta(days=1)  # yfinance's end is exclusive
        return self.sample.fetch([self.symbol], pd.Timestamp(start).date(), last).frames.get(self.symbol,
                                                                                            pd.DataFrame())

    @property
    def info(self):
        FakeYahooTicker.calls.append((self.symbol, "info"))
        return self.sample.fetch([self.symbol], date(2025, 9, 22), date(2025, 9, 30)).metadata.get(self.symbol, {})

    def get_shares_full(self, start=None, end=None):
        FakeYahooTicker.calls.append((self.symbol, "shares"))
        return fundamentals.shares_series(self.universe, self.symbol, pd.Timestamp(start).date(),
                                          pd.Timestamp(end).date())

    @property
    def quarterly_cashflow(self):
        FakeYahooTicker.calls.append((self.symbol, "cashflow"))
        return fundamentals.cash_flow_frame(self.symbol, date(2025, 9, 30))

    @property
    def sec_filings(self):
        FakeYahooTicker.calls.append((self.symbol, "filings"))
        return fundamentals.filings(self.symbol, date(2025, 9, 1), date(2025, 9, 30))


def _live_source(universe, factory) -> YFinanceSource:
    return YFinanceSource(universe, ticker_factory=factory, min_interval=0, sleep=lambda s: None)


def test_live_path_lands_and_publishes_with_one_price_call_per_security(data_dir):
    universe = load_universe()
    sample = SampleSource(universe)
    FakeYahooTicker.calls = []
    ctx = start_run("yfinance", date(2025, 9, 1), date(2025, 9, 30), market="XHKG")
    report = extract_step(ctx.run_id, source=_live_source(universe, lambda s: FakeYahooTicker(s, universe, sample)))
    for step in (land_step, transform_step, validate_step, publish_step):
        step(ctx.run_id)

    history_calls = [s for s, kind in FakeYahooTicker.calls if kind == "history"]
    assert sorted(history_calls) == sorted(ctx.symbols)  # prices, dividends and splits: one call per security
    assert report["missing"] == {}
    wh = data_dir / "warehouse.duckdb"
    assert query(wh, "select distinct source, is_synthetic from fct_daily_price") == [("yfinance", False)]
    assert query(wh, "select count(distinct symbol) from fct_daily_price") == [(len(ctx.symbols),)]
    assert query(wh, "select count(*) > 0 from fct_financing_event where origin = 'vendor_shares'") == [(True,)]


class DownTicker:
    def __init__(self, symbol):
        self.symbol = symbol

    def history(self, **kwargs):
        from curl_cffi.requests.exceptions import DNSError

        raise DNSError("Could not resolve host: query2.finance.yahoo.com")


def test_unreachable_yahoo_fails_the_extract_and_nothing_is_landed_or_published(data_dir):
    ctx = start_run("yfinance", date(2025, 9, 1), date(2025, 9, 5), market="XHKG")
    with pytest.raises(SourceError, match="unreachable.*no fallback"):
        extract_step(ctx.run_id, source=_live_source(load_universe(), DownTicker))
    assert not (data_dir / "landing").exists()
    assert not (data_dir / "warehouse.duckdb").exists()
    with pytest.raises(FileNotFoundError):
        land_step(ctx.run_id)
