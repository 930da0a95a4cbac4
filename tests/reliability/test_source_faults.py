"""Source faults through the yfinance client with fakes (issue 4): rate limits, the shared request budget,
incomplete batches, today's partial bar, a network error mid-batch, vendor restatements."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from datetime import UTC, date, datetime

import pandas as pd
import pytest
from yfinance.exceptions import YFPricesMissingError, YFRateLimitError

from etl.config import load_universe
from etl.pipeline import extract_step, land_step, publish_step, run_all, start_run, transform_step, validate_step
from etl.sources.base import SourceError
from etl.sources.budget import MAX_REQUESTS_ENV, RequestBudget
from etl.sources.sample import SampleSource
from etl.sources.yfinance_source import YFinanceSource
from tests.conftest import REPO, query
from tests.reliability.conftest import FakeYahoo

XHKG_WEEK = (date(2025, 9, 1), date(2025, 9, 5))


@pytest.fixture(autouse=True)
def _prices_only(monkeypatch):
    monkeypatch.setenv("ETL_FUNDAMENTALS", "off")  # these tests are about prices; fakes serve no fundamentals


class Clock:
    def __init__(self):
        self.now, self.sleeps = 1000.0, []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(round(seconds, 6))
        self.now += seconds


def yahoo(fake, **kwargs):
    return YFinanceSource(load_universe(), ticker_factory=fake, min_interval=0.0, jitter=0.0, **kwargs)


# --------------------------------------------------------------------------------------------- rate limits

def test_rate_limits_back_off_exponentially_with_jitter_then_fail_clearly():
    clock = Clock()
    draws = iter([0.0, 1.0, 0.5, 0.25])  # jitter factors 0.75, 1.25, 1.0, 0.875

    class Limited:
        calls = 0

        def history(self, **kwargs):
            Limited.calls += 1
            raise YFRateLimitError()

    src = YFinanceSource(None, ticker_factory=lambda s: Limited(), clock=clock, sleep=clock.sleep, min_interval=0,
                         base_delay=2.0, max_delay=10.0, jitter=0.25, rng=lambda: next(draws), max_attempts=5,
                         with_metadata=False)
    with pytest.raises(SourceError, match=r"rate-limited the history call for AAPL 5 times in a row \(HTTP 429"):
        src.fetch(["AAPL"], date(2025, 1, 6), date(2025, 1, 10))
    assert Limited.calls == 5  # bounded
    assert clock.sleeps == [1.5, 5.0, 8.0, 8.75]  # 2, 4, 8, then capped at 10; each scaled by its jitter


def test_a_bare_http_429_is_a_rate_limit_too():
    clock = Clock()

    class TooMany(Exception):
        response = type("R", (), {"status_code": 429})()

    answers = [TooMany("HTTP Error 429: Too Many Requests")]
    fake = FakeYahoo()

    def factory(symbol):
        ticker = fake(symbol)
        original = ticker.history

        def history(**kwargs):
            if answers:
                raise answers.pop()
            return original(**kwargs)

        ticker.history = history
        return ticker

    src = YFinanceSource(load_universe(), ticker_factory=factory, clock=clock, sleep=clock.sleep, min_interval=0,
                         jitter=0.0, with_metadata=False)
    result = src.fetch(["0700.HK"], *XHKG_WEEK)
    assert "0700.HK" in result.frames and clock.sleeps == [2.0]


# --------------------------------------------------------------------------------------------- shared budget

BUDGET_CLIENT = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    from etl.sources.budget import RequestBudget
    budget = RequestBudget(Path(sys.argv[1]), sys.argv[2], min_interval=0.15, max_requests=None)
    stamps = []
    for _ in range(5):
        budget.acquire()
        stamps.append(budget.last_granted)  # taken inside the lock: what the budget granted
    print(json.dumps(stamps))
""")


def test_the_request_budget_spaces_calls_across_processes(tmp_path):
    state = tmp_path / "budget.json"
    procs = [subprocess.Popen([sys.executable, "-c", BUDGET_CLIENT, str(state), "run-1"], cwd=REPO,
                              stdout=subprocess.PIPE, text=True) for _ in range(2)]
    stamps = sorted(s for p in procs for s in json.loads(p.communicate(timeout=60)[0]))
    gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    assert len(stamps) == 10 and min(gaps) >= 0.149, gaps  # two "tasks", one spacing
    assert RequestBudget(state, "run-1", 0.15, None).used() == 10  # one count for the run


def test_the_request_budget_caps_a_run_and_says_which_setting(tmp_path, monkeypatch):
    budget = RequestBudget(tmp_path / "b.json", "run-1", min_interval=0, max_requests=3)
    for _ in range(3):
        budget.acquire()
    expected = f"run run-1 used its whole Yahoo request budget \\(3 calls, {MAX_REQUESTS_ENV}"
    with pytest.raises(SourceError, match=expected):
        budget.acquire("the history call for 0700.HK")
    assert RequestBudget(tmp_path / "b.json", "run-2", 0, 3).acquire() == 1  # another run has its own budget


def test_a_run_out_of_budget_stops_and_keeps_what_it_got(tmp_path):
    budget = RequestBudget(tmp_path / "b.json", "run-1", min_interval=0, max_requests=4)
    src = yahoo(FakeYahoo(), budget=budget, with_metadata=False)
    with pytest.raises(SourceError, match="request budget") as failure:
        src.fetch(["0700.HK", "9988.HK", "9888.HK", "9618.HK", "3690.HK"], *XHKG_WEEK)
    assert sorted(failure.value.partial.frames) == ["0700.HK", "9618.HK", "9888.HK", "9988.HK"]


# --------------------------------------------------------------------------------------------- incomplete batches

def test_missing_tickers_below_the_completeness_threshold_fail_naming_them(data_dir):
    ctx = start_run("yfinance", *XHKG_WEEK, market="XHKG")
    fake = FakeYahoo(fail={"0241.HK": YFPricesMissingError("0241.HK", "(1d)")}, empty={"0020.HK"})
    with pytest.raises(SourceError) as failure:
        extract_step(ctx.run_id, source=yahoo(fake))
    message = str(failure.value)
    assert "delivered 24 of 26 expected symbols (92.3%, the yfinance policy needs 95%" in message
    assert "0020.HK (empty frame from Yahoo)" in message and "0241.HK (" in message and "possibly delisted" in message
    assert not (data_dir / "work" / ctx.run_id / "extract" / "prices.parquet").exists()  # nothing to land
    # the refusal is recorded: the failed step in run_log, each missing symbol in quarantine
    q = pd.read_parquet(data_dir / "store" / "audit" / "quarantine" / f"{ctx.run_id}__extract.parquet")
    assert sorted(zip(q.symbol, q.reason, strict=True)) == [("0020.HK", "missing_from_source"),
                                                            ("0241.HK", "missing_from_source")]
    log = pd.read_parquet(data_dir / "store" / "audit" / "run_log" / f"{ctx.run_id}__extract.parquet")
    assert log.status.tolist() == ["failed"] and "0020.HK" in log.details[0]
    # Yahoo is back: the rerun asks only for the two that were missing
    fixed = FakeYahoo()
    report = extract_step(ctx.run_id, source=yahoo(fixed))
    assert sorted(set(fixed.created)) == ["0020.HK", "0241.HK"]
    assert report["symbols_returned"] == 26 and report["completeness"] == 1.0


def test_a_market_shut_for_the_whole_window_is_not_missing_data(data_dir, monkeypatch):
    # 2025-10-01 is National Day in Hong Kong: no HK bar is due; the FX pairs (a weekday) are
    monkeypatch.setenv("ETL_RESTATEMENT_LOOKBACK_DAYS", "0")  # this is about the one closed day
    ctx = start_run("yfinance", date(2025, 10, 1), date(2025, 10, 1), market="XHKG")
    report = extract_step(ctx.run_id, source=yahoo(FakeYahoo()))
    assert report["completeness"] == 1.0 and report["quarantined_symbols"] == []
    assert report["symbols_returned"] == 2 and report["missing"]["0700.HK"] == "empty frame from Yahoo"


# --------------------------------------------------------------------------------------------- partial bars

def test_todays_partial_bar_is_excluded_and_future_bars_too(data_dir):
    ctx = start_run("yfinance", date(2025, 9, 9), date(2025, 9, 12), market="XHKG")
    during = datetime(2025, 9, 10, 6, 0, tzinfo=UTC)  # 14:00 in Hong Kong: the session is open
    report = extract_step(ctx.run_id, source=yahoo(FakeYahoo()), now=during)
    excluded = {(b["symbol"], b["bar_date"], b["reason"]) for b in report["excluded_bars"]}
    assert ("0700.HK", "2025-09-10", "session_not_closed") in excluded
    assert ("HKD=X", "2025-09-10", "session_not_closed") in excluded  # the London day is not over either
    assert ("0700.HK", "2025-09-11", "future_date") in excluded and ("0700.HK", "2025-09-12", "future_date") in excluded
    prices = pd.read_parquet(data_dir / "work" / ctx.run_id / "extract" / "prices.parquet")
    assert prices.bar_date.max() == date(2025, 9, 9)  # 09-09 closed: kept
    q = pd.read_parquet(data_dir / "store" / "audit" / "quarantine" / f"{ctx.run_id}__extract.parquet")
    assert set(q.reason) == {"session_not_closed", "future_date"} and len(q) == len(excluded)

    # 17:00 in Hong Kong, 50 minutes after the close (grace 30): HK bars of the day are final, FX is not
    later = start_run("yfinance", date(2025, 9, 9), date(2025, 9, 10), market="XHKG")
    after_close = extract_step(later.run_id, source=yahoo(FakeYahoo()), now=datetime(2025, 9, 10, 9, 0, tzinfo=UTC))
    assert {(b["symbol"], b["reason"]) for b in after_close["excluded_bars"]} == {
        ("HKD=X", "session_not_closed"), ("CNY=X", "session_not_closed")}


# --------------------------------------------------------------------------------------------- network error

def test_a_network_error_mid_batch_keeps_what_was_fetched_and_the_rerun_fetches_the_rest(data_dir):
    ctx = start_run("yfinance", *XHKG_WEEK, market="XHKG")
    symbols = ctx.symbols
    broken = FakeYahoo(fail={symbols[9]: ConnectionError("Connection reset by peer")})
    with pytest.raises(SourceError, match=r"unreachable .*9 of 26 symbols fetched before the failure are kept"):
        extract_step(ctx.run_id, source=yahoo(broken))
    assert broken.created == symbols[:10]
    back = FakeYahoo()
    report = extract_step(ctx.run_id, source=yahoo(back))
    assert back.created == symbols[9:]  # only what is missing
    assert report["symbols_returned"] == 26 and report["symbols_from_earlier_attempt"] == 9
    land_step(ctx.run_id)
    files = list((data_dir / "landing" / "prices").rglob(f"run-{ctx.run_id}.parquet"))
    symbols_landed = set(pd.concat([pd.read_parquet(f) for f in files]).symbol)
    assert symbols_landed == set(symbols)


# --------------------------------------------------------------------------------------------- restatement

class Restating(SampleSource):
    """Yahoo after a dividend: the Adj Close of the days before the ex-date is re-adjusted."""

    def __init__(self, universe, days, factor):
        super().__init__(universe)
        self.days, self.factor = days, factor

    def fetch(self, symbols, start, end):
        result = super().fetch(symbols, start, end)
        frame = result.frames["0700.HK"].copy()
        hit = pd.Index(frame.index.date).isin(self.days)
        frame.loc[hit, "Adj Close"] = frame.loc[hit, "Adj Close"] * self.factor
        result.frames["0700.HK"] = frame
        return result


def test_a_vendor_restatement_inside_the_lookback_updates_the_rows_and_is_recorded(data_dir, monkeypatch):
    wh = data_dir / "warehouse.duckdb"
    run_all("sample", date(2025, 9, 1), date(2025, 9, 10), market="XHKG")
    before = dict(query(wh, "select date_key, adj_close from fct_daily_price where symbol = '0700.HK'"))

    monkeypatch.setenv("ETL_RESTATEMENT_LOOKBACK_DAYS", "5")
    ctx = start_run("sample", date(2025, 9, 11), date(2025, 9, 12), market="XHKG")
    assert ctx.effective_start == date(2025, 9, 6)
    restated_days = [date(2025, 9, 8), date(2025, 9, 9), date(2025, 9, 10)]
    extract_step(ctx.run_id, source=Restating(load_universe(), restated_days, 0.98))
    land_step(ctx.run_id)
    transform_step(ctx.run_id)
    validated = validate_step(ctx.run_id)
    publish_step(ctx.run_id)

    after = dict(query(wh, "select date_key, adj_close from fct_daily_price where symbol = '0700.HK'"))
    assert len(after) == 10  # Sept 1-12 sessions: updated in place, never a second row
    for key in (20250908, 20250909, 20250910):
        assert after[key] == pytest.approx(before[key] * 0.98)
    assert all(after[k] == before[k] for k in before if k < 20250908)
    recorded = query(wh, "select symbol, bar_date, changed_columns, previous_run_id is not null from restatement "
                         "where run_id = ? order by bar_date", [ctx.run_id])
    assert recorded == [("0700.HK", d, "adj_close", True) for d in restated_days]
    old, new = query(wh, "select previous_record, new_record from restatement where bar_date = '2025-09-08'")[0]
    assert json.loads(new)["adj_close"] == pytest.approx(json.loads(old)["adj_close"] * 0.98)
    assert validated["restated"] == 3


def test_the_extract_step_gives_the_yfinance_source_the_shared_budget(data_dir, monkeypatch):
    import etl.landing

    made = {}

    def make_source(name, universe, replay_dir=None, budget=None):
        made["budget"] = budget
        return YFinanceSource(universe, ticker_factory=FakeYahoo(), min_interval=0.0, jitter=0.0, budget=budget)

    monkeypatch.setattr(etl.landing, "make_source", make_source)
    monkeypatch.setenv("ETL_YF_MIN_INTERVAL", "0")
    ctx = start_run("yfinance", *XHKG_WEEK, market="XHKG")
    report = extract_step(ctx.run_id)
    budget = made["budget"]
    assert budget.state_file == data_dir / "work" / ".yahoo-request-budget.json"
    assert budget.max_requests == 20 * 26  # 20 calls per symbol of the run
    assert budget.used() == report["source_calls"] == 2 * 26  # one history and one info call per symbol
