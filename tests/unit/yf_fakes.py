"""Fakes at the network edge shared by the YFinanceSource tests: a clock that moves only when the code under test
sleeps, a ticker_factory handing out per-symbol fake tickers, and the source wired to both."""

from __future__ import annotations

from pathlib import Path

from etl.sources.yfinance_source import YFinanceSource

SHARED = Path(__file__).parents[2].parent / "shared"
FIXTURES = SHARED / "data" / "real" / "yahoo_http_fixtures" / "gadicc_node-yahoo-finance2" / "fixtures_2025"


class FakeTime:
    """A clock that only moves when the code under test sleeps (or a fake call takes time)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def serve(items: list):
    """Serve the next item (the last one repeats); raise it if it is an exception."""
    item = items.pop(0) if len(items) > 1 else items[0]
    if isinstance(item, BaseException):
        raise item
    return item


class FakeYahoo:
    """ticker_factory: hands out the fake ticker set up per symbol and records what was asked for."""

    def __init__(self, tickers: dict) -> None:
        self.tickers = tickers
        self.created: list[str] = []

    def __call__(self, symbol: str):
        self.created.append(symbol)
        return self.tickers[symbol]


def source(tickers: dict, fake_time: FakeTime | None = None, **kwargs) -> YFinanceSource:
    """The live source behind FakeYahoo, on a fake clock, with no spacing and no jitter unless asked."""
    fake_time = fake_time or FakeTime()
    kwargs.setdefault("min_interval", 0.0)
    kwargs.setdefault("jitter", 0.0)  # exact backoff delays here; the jitter has its own test (tests/reliability)
    return YFinanceSource(
        None, ticker_factory=FakeYahoo(tickers), clock=fake_time.clock, sleep=fake_time.sleep, **kwargs
    )
