"""Bad input (issue 4): a catalogue of malformed inputs through the replay source (curated yfinance-style CSV
files), the yfinance client (fakes) and the configuration, each with its stated handling:

  rejected     the step fails with SourceError / ConfigError naming the file or entry and the problem;
               nothing is landed; run_log has the failed step with the message
  quarantined  the record is not published; audit table `quarantine` has it with the rule that caught it
  repaired     a stated rule makes it right (and says so where it matters); published
  warned       published as delivered, flagged, and a warning in dq_result / the extract report
  ignored      never read; the extract report's warnings name it

README "Faults and bad input" lists the same cases by id (test_readme_lists_every_case checks it).
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime

import pandas as pd
import pytest

from etl.config import ConfigError, Settings, load_universe
from etl.pipeline import extract_step, run_all, start_run
from etl.run import safe_run_id
from etl.sources.base import SourceError
from etl.sources.yfinance_source import YFinanceSource
from tests.conftest import REPO
from tests.reliability.conftest import HEADER, FakeYahoo, sample_rows, write_csv

WINDOW = (date(2025, 9, 1), date(2025, 9, 12))  # XHKG sessions Sep 1-5 and 8-12
SAT = "2025-09-06"

# ============================================================================ row-level cases (one replay run)
# (id, input, handling, check); check(run) asserts the outcome on the published warehouse


def _hk(day: str) -> str:
    return f"{day} 00:00:00+08:00"


def _set(rows, day, column, value):
    for row in rows:
        if row[0].startswith(day):
            row[HEADER.index(column)] = value
    return rows


def _scale(rows, day, factor, columns=("Open", "High", "Low", "Close", "Adj Close")):
    for row in rows:
        if row[0].startswith(day):
            for c in columns:
                row[HEADER.index(c)] = repr(float(row[HEADER.index(c)]) * factor)
    return rows


def build_replay_folder(folder):
    """One file per XHKG listing with the defects of ROW_CASES; returns nothing, writes files."""
    universe = load_universe()
    symbols = universe.symbols_for_market("XHKG")
    rows = sample_rows(symbols, *WINDOW)
    r = rows
    _set(r["0700.HK"], "2025-09-02", "Close", "")                         # R01
    _set(r["0700.HK"], "2025-09-03", "Low", "-1.0")                       # R02
    _set(r["0700.HK"], "2025-09-04", "Open", "0.0")                       # R03
    _set(r["0700.HK"], "2025-09-05", "Close", "N/A")                      # R33
    _set(r["9988.HK"], "2025-09-02", "High", "inf")                       # R04
    _set(r["9988.HK"], "2025-09-04", "Adj Close", "")                     # R05
    low = float(next(x for x in r["9888.HK"] if x[0].startswith("2025-09-02"))[3])
    _set(r["9888.HK"], "2025-09-02", "High", repr(low - 1.0))             # R06
    _set(r["9888.HK"], "2025-09-03", "Volume", "0")                       # R07
    _set(r["9888.HK"], "2025-09-04", "Volume", "-100")                    # R08
    dup = next(x for x in r["9618.HK"] if x[0].startswith("2025-09-02"))
    r["9618.HK"].append(list(dup))                                        # R09
    conflict = list(next(x for x in r["9618.HK"] if x[0].startswith("2025-09-03")))
    conflict[HEADER.index("Close")] = repr(float(conflict[HEADER.index("Close")]) * 1.1)
    r["9618.HK"].append(conflict)                                         # R10
    _set(r["1810.HK"], "2025-09-02", "Stock Splits", "2.0")               # R11: a split ...
    _set(r["1810.HK"], "2025-09-04", "Stock Splits", "2.0")               # ... repeated two days later
    _set(r["3690.HK"], "2025-09-02", "Stock Splits", "0.0")               # R12
    _set(r["3690.HK"], "2025-09-03", "Stock Splits", "-2.0")              # R13
    _set(r["3690.HK"], "2025-09-04", "Dividends", "-1.0")                 # R14
    close = float(next(x for x in r["0981.HK"] if x[0].startswith("2025-09-02"))[4])
    _set(r["0981.HK"], "2025-09-02", "Dividends", repr(close * 2))        # R15
    for row in r["9999.HK"]:                                              # R16: stamps in UTC, offset given
        row[0] = pd.Timestamp(row[0]).tz_convert("UTC").isoformat(sep=" ")
    for row in r["1024.HK"]:                                              # R17: stamps in UTC, offset lost
        row[0] = pd.Timestamp(row[0]).tz_convert("UTC").tz_localize(None).isoformat(sep=" ")
    r["9961.HK"].append([_hk(SAT), *r["9961.HK"][-1][1:]])                # R18
    r["HKD=X"].append([f"{SAT} 00:00:00+01:00", *r["HKD=X"][-1][1:]])    # R19
    _scale(r["HKD=X"], "2025-09-03", 100.0)                               # R20
    for row in r["CNY=X"]:                                                # R21
        if row[0].startswith("2025-09-04"):
            for c in ("Open", "High", "Low", "Close", "Adj Close"):
                row[HEADER.index(c)] = repr(1.0 / float(row[HEADER.index(c)]))
            row[HEADER.index("High")], row[HEADER.index("Low")] = row[HEADER.index("Low")], row[HEADER.index("High")]
    _scale(r["2382.HK"], "2025-09-03", 100.0)                             # R22
    r["0285.HK"].reverse()                                                # R23
    last = r["9866.HK"][-1]
    r["9866.HK"][-1] = last[:2]                                           # R24: file cut after the Open cell
    for name, rows_ in r.items():
        if name in ("2015.HK", "9868.HK", "9626.HK", "0992.HK", "0268.HK"):
            continue
        write_csv(folder / f"{name}.csv", rows_)
    write_csv(folder / "9626.HK.csv", [row + ["False"] for row in r["9626.HK"]], header=[*HEADER, "Repaired?"])  # R25
    order = ["Date", "Close", "High", "Low", "Open", "Adj Close", "Volume", "Dividends", "Stock Splits"]     # R26
    write_csv(folder / "0992.HK.csv", [[row[HEADER.index(c)] for c in order] for row in r["0992.HK"]], header=order)
    write_csv(folder / "0268.HK.csv", r["0268.HK"], encoding="utf-8-sig")  # R27: byte-order mark
    write_csv(folder / "9868.HK.csv", [])                                  # R28: header only
    # R29: no file for 2015.HK at all
    write_csv(folder / "ZZZZ.HK.csv", r["0700.HK"])                        # R30
    write_csv(folder / "a'; drop table fct_daily_price; --.csv", r["0700.HK"])  # R31
    return rows


@pytest.fixture(scope="module")
def replay_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("badinput")
    folder = root / "replay"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ETL_DATA_DIR", str(root / "data"))
        mp.setenv("ETL_WAREHOUSE", str(root / "data" / "warehouse.duckdb"))
        mp.setenv("ETL_FUNDAMENTALS", "off")
        mp.delenv("ETL_UNIVERSE", raising=False)
        rows = build_replay_folder(folder)
        out = run_all("replay", *WINDOW, market="XHKG", replay_dir=str(folder))
    return Run(root / "data" / "warehouse.duckdb", out, rows)


class Run:
    def __init__(self, warehouse, out, rows=None):
        import duckdb

        self.out, self.rows = out, rows
        self.con = duckdb.connect(str(warehouse), read_only=True)

    def q(self, sql, params=None):
        return self.con.execute(sql, params or []).fetchall()

    def reasons(self, symbol, day=None, table="fct_daily_price"):
        if day is None:
            return sorted({r[0] for r in self.q("select reason from quarantine where run_id = ? and symbol = ? "
                                                "and table_name = ?", [self.out["run_id"], symbol, table])})
        return [r[0] for r in self.q("select reason from quarantine where run_id = ? and symbol = ? and "
                                     "bar_date = ? and table_name = ?", [self.out["run_id"], symbol, day, table])]

    def published(self, symbol, day):
        key = int(day.replace("-", ""))
        return self.q("select close, is_high_low_inverted, is_zero_volume from fct_daily_price where symbol = ? "
                      "and date_key = ?", [symbol, key])

    def warning(self, expectation, column=None):
        rows = self.q("select success, severity, unexpected_count from dq_result where run_id = ? and "
                      "table_name = 'fct_daily_price' and expectation_type = ? and coalesce(column_name, '') = ?",
                      [self.out["run_id"], expectation, column or ""])
        return rows


def quarantined(symbol, day, reason, table="fct_daily_price"):
    def check(run):
        assert run.reasons(symbol, day, table) == [reason]
        if table == "fct_daily_price":
            assert run.published(symbol, day) == []
    return check


def _check_r06(run):
    assert run.published("9888.HK", "2025-09-02")[0][1] is True
    assert run.warning("expect_column_pair_values_a_to_be_greater_than_b", "high,low") == [(False, "warning", 1)]


def _check_r07(run):
    assert run.published("9888.HK", "2025-09-03")[0][2] is True
    assert run.warning("invariant:zero_volume_bar") == [(False, "warning", 1)]


def _check_r09(run):
    assert len(run.published("9618.HK", "2025-09-02")) == 1 and run.reasons("9618.HK", "2025-09-02") == []


def _check_r11(run):
    assert run.q("select action_type, split_ratio from fct_corporate_action where symbol = '1810.HK' "
                 "and action_type <> 'cash_dividend'") == [
        ("stock_split", 2.0)]
    assert run.reasons("1810.HK", "2025-09-04", "fct_corporate_action") == ["duplicate_split_repeat"]


def _check_r12(run):
    assert run.q("select count(*) from fct_corporate_action where symbol = '3690.HK' and date_key = 20250902") == [
        (0,)]
    assert len(run.published("3690.HK", "2025-09-02")) == 1


def _check_r13(run):
    assert run.reasons("3690.HK", "2025-09-03", "fct_corporate_action") == ["invalid_split_ratio"]
    assert len(run.published("3690.HK", "2025-09-03")) == 1  # the bar itself is fine


def _check_r16(run):
    got = run.q("select date_key, close from fct_daily_price where symbol = '9999.HK' order by 1")
    expected = [(int(row[0][:10].replace("-", "")), float(row[4]))
                for row in sample_rows(["9999.HK"], *WINDOW)["9999.HK"]]
    assert got == expected  # every bar on its own Hong Kong session


def _check_r17(run):
    assert run.q("select count(*) from fct_daily_price where symbol = '1024.HK'") == [(0,)]
    assert set(run.reasons("1024.HK")) <= {"timestamp_not_local_midnight", "not_a_trading_day"}
    assert "timestamp_not_local_midnight" in run.reasons("1024.HK")


def _check_r20(run):
    quarantined("HKD=X", "2025-09-03", "implausible_fx_rate")(run)
    assert run.q("select is_carried_forward, observed_date from fct_fx_rate where currency_code = 'HKD' "
                 "and date_key = 20250903") == [(True, date(2025, 9, 2))]


def _check_r22(run):
    assert len(run.published("2382.HK", "2025-09-03")) == 1
    success, severity, count = run.warning("expect_column_values_to_be_between", "daily_return")[0]
    assert (success, severity) == (False, "warning") and count >= 2  # the jump up and the jump back


def _check_r23(run):
    assert run.q("select count(*) from fct_daily_price where symbol = '0285.HK'") == [(10,)]


def _check_r25(run):
    assert run.q("select count(*) from fct_daily_price where symbol = '9626.HK'") == [(10,)]
    assert any("9626.HK" in w and "Repaired?" in w for w in run.out["extract"]["warnings"])


def _check_r26(run):
    got = dict(run.q("select date_key, close from fct_daily_price where symbol = '0992.HK'"))
    assert got[20250902] == float(next(r for r in sample_rows(["0992.HK"], *WINDOW)["0992.HK"]
                                       if r[0].startswith("2025-09-02"))[4])


def _check_r27(run):
    assert run.q("select count(*) from fct_daily_price where symbol = '0268.HK'") == [(10,)]


def _missing(symbol, why):
    def check(run):
        assert run.reasons(symbol) == ["missing_from_source"]
        assert symbol in run.out["summary"]["missing_symbols"]
        assert why in run.out["extract"]["missing"][symbol]
    return check


def _ignored(fragment):
    def check(run):
        assert any(fragment in w and w.startswith("ignored") for w in run.out["extract"]["warnings"])
        assert run.q("select count(*) > 0 from fct_daily_price") == [(True,)]
    return check


ROW_CASES = [
    ("R01", "empty Close cell", "quarantined", quarantined("0700.HK", "2025-09-02", "missing_close")),
    ("R02", "negative price (Low -1)", "quarantined", quarantined("0700.HK", "2025-09-03", "non_positive_price")),
    ("R03", "zero price (Open 0)", "quarantined", quarantined("0700.HK", "2025-09-04", "non_positive_price")),
    ("R33", "'N/A' in the Close cell", "quarantined", quarantined("0700.HK", "2025-09-05", "missing_close")),
    ("R04", "infinite price ('inf')", "quarantined", quarantined("9988.HK", "2025-09-02", "non_finite_price")),
    ("R05", "empty Adj Close in a file that has the column", "quarantined",
     quarantined("9988.HK", "2025-09-04", "missing_adj_close")),
    ("R06", "High < Low", "warned", _check_r06),
    ("R07", "zero volume (half day)", "warned", _check_r07),
    ("R08", "negative volume", "quarantined", quarantined("9888.HK", "2025-09-04", "negative_volume")),
    ("R09", "duplicate date, identical rows", "repaired", _check_r09),
    ("R10", "duplicate date, different values", "quarantined",
     quarantined("9618.HK", "2025-09-03", "conflicting_duplicate_bar")),
    ("R11", "duplicated split rows (same ratio 2 days apart)", "quarantined", _check_r11),
    ("R12", "split ratio 0", "repaired", _check_r12),
    ("R13", "negative split ratio", "quarantined", _check_r13),
    ("R14", "negative dividend", "quarantined",
     quarantined("3690.HK", "2025-09-04", "invalid_dividend", "fct_corporate_action")),
    ("R15", "dividend larger than the price", "quarantined",
     quarantined("0981.HK", "2025-09-02", "dividend_exceeds_price", "fct_corporate_action")),
    ("R16", "timezone-shifted dates with their offset (UTC stamps)", "repaired", _check_r16),
    ("R17", "timezone-shifted dates without offset (naive UTC stamps)", "quarantined", _check_r17),
    ("R18", "Saturday bar for an equity", "quarantined", quarantined("9961.HK", SAT, "not_a_trading_day")),
    ("R19", "Saturday FX bar", "quarantined", quarantined("HKD=X", SAT, "weekend_fx_bar")),
    ("R20", "absurd FX rate (x100)", "quarantined", _check_r20),
    ("R21", "inverted FX quote (CNY per USD as USD per CNY)", "quarantined",
     quarantined("CNY=X", "2025-09-04", "implausible_fx_rate")),
    ("R22", "one-day price spike x100", "warned", _check_r22),
    ("R23", "rows in reverse date order", "repaired", _check_r23),
    ("R24", "truncated file (last row cut after Open)", "quarantined",
     quarantined("9866.HK", "2025-09-12", "missing_close")),
    ("R25", "extra unknown column", "warned", _check_r25),
    ("R26", "columns in another order", "repaired", _check_r26),
    ("R27", "UTF-8 byte-order mark", "repaired", _check_r27),
    ("R28", "header-only file (no rows)", "quarantined", _missing("9868.HK", "file has no data rows")),
    ("R29", "no file for a universe symbol", "quarantined", _missing("2015.HK", "no replay file")),
    ("R30", "file for a symbol not in the universe", "ignored", _ignored("ZZZZ.HK")),
    ("R31", "file name with SQL metacharacters (a'; drop table ...)", "ignored", _ignored("drop table")),
]


@pytest.mark.parametrize(("case", "what", "handling", "check"), ROW_CASES, ids=[c[0] for c in ROW_CASES])
def test_row_level_bad_input(replay_run, case, what, handling, check):
    check(replay_run)


def test_the_run_summary_counts_every_quarantined_row(replay_run):
    (total,) = replay_run.q("select count(*) from quarantine where run_id = ?", [replay_run.out["run_id"]])[0]
    (extract_rows,) = replay_run.q("select count(*) from quarantine where run_id = ? and reason = "
                                   "'missing_from_source'", [replay_run.out["run_id"]])[0]
    summary = replay_run.out["summary"]
    assert summary["quarantined"] == total and extract_rows == 2
    by_reason = dict(replay_run.q("select reason, count(*) from quarantine where run_id = ? group by 1",
                                  [replay_run.out["run_id"]]))
    assert summary["quarantined_by_reason"] == by_reason


# ============================================================================ the yfinance client (fakes)

@pytest.fixture(scope="module")
def yahoo_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("badyahoo")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ETL_DATA_DIR", str(root))
        mp.setenv("ETL_WAREHOUSE", str(root / "warehouse.duckdb"))
        mp.setenv("ETL_FUNDAMENTALS", "off")
        mp.delenv("ETL_UNIVERSE", raising=False)
        from etl import pipeline

        ctx = start_run("yfinance", date(2025, 9, 1), date(2025, 9, 5), market="XHKG")
        fake = FakeYahoo(empty={"0020.HK"}, info={"0700.HK": {"currency": "USD"}})
        out = {"run_id": ctx.run_id,
               "extract": extract_step(ctx.run_id, source=YFinanceSource(load_universe(), ticker_factory=fake,
                                                                         min_interval=0, jitter=0))}
        for step in ("land", "transform", "validate", "publish"):
            out[step] = getattr(pipeline, f"{step}_step")(ctx.run_id)
        out["summary"] = pipeline.run_summary(out)
    return Run(root / "warehouse.duckdb", out)


def _check_y01(run):
    assert run.reasons("0700.HK") == ["currency_mismatch"]
    assert run.q("select count(*) from fct_daily_price where symbol = '0700.HK'") == [(0,)]


def _check_y02(run):
    assert run.reasons("0020.HK") == ["missing_from_source"]
    assert run.out["extract"]["completeness"] == pytest.approx(25 / 26, abs=1e-4)  # above the 95% threshold
    assert run.out["summary"]["missing_symbols"] == ["0020.HK"]


YAHOO_CASES = [
    ("Y01", "currency mismatch (Yahoo quotes 0700.HK in USD, the universe says HKD)", "quarantined", _check_y01),
    ("Y02", "one ticker missing from Yahoo's answer (within the completeness threshold)", "quarantined",
     _check_y02),
]


@pytest.mark.parametrize(("case", "what", "handling", "check"), YAHOO_CASES, ids=[c[0] for c in YAHOO_CASES])
def test_bad_input_from_yahoo(yahoo_run, case, what, handling, check):
    check(yahoo_run)


# ============================================================================ file-level cases (rejected)

def _rows():
    return sample_rows(["0700.HK"], *WINDOW)["0700.HK"]


def _text(header, rows):
    return "\n".join(",".join(r) for r in [header, *rows]) + "\n"


def _bytes(text):
    return text.encode()


FILE_CASES = [
    ("F01", "empty file (0 bytes)", lambda: b"", r"unknown header ''"),
    ("F02", "unknown column layout", lambda: b"Timestamp,Price,Qty\n2025-09-01,1,2\n", r"unknown header"),
    ("F03", "required column missing (no Close)",
     lambda: _bytes(_text(["Date", "Open", "High", "Low", "Volume"], [r[:4] + [r[6]] for r in _rows()])),
     r"lacks Close"),
    ("F04", "repeated column", lambda: _bytes(_text([*HEADER[:5], "Close", *HEADER[6:]], _rows())),
     r"repeats a column"),
    ("F05", "rows with more cells than the header", lambda: _bytes(_text(HEADER, [r + ["1"] for r in _rows()])),
     r"rows have 10 cells but header"),
    ("F06", "non-UTF-8 bytes in the rows",
     lambda: _bytes(_text(HEADER, _rows()[:2])) + b"2025-09-03 \xe9,1,1,1,1,1,1,0,0\n",
     r"codec can't decode byte 0xe9"),
    ("F07", "non-UTF-8 bytes in the header", lambda: b"Date,Op\xe9n,High,Low,Close,Volume\n",
     r"cannot read replay file"),
    ("F08", "text in a numeric cell ('abc')",
     lambda: _bytes(_text(HEADER, [r[:4] + ["abc"] + r[5:] for r in _rows()])), r"cannot parse rows"),
    ("F09", "a row without a date", lambda: _bytes(_text(HEADER, [[""] + _rows()[0][1:]])), r"a row has no date"),
    ("F10", "unparseable date (31/09/2025)", lambda: _bytes(_text(HEADER, [["31/09/2025"] + _rows()[0][1:]])),
     r"unparseable date"),
    ("F11", "file truncated inside a date", lambda: _bytes(_text(HEADER, _rows()[:3]) + "2025-09-0"),
     r"mixes tz-aware and naive dates \(e.g. '2025-09-0'\)"),
    ("F12", "tz-aware and naive dates mixed",
     lambda: _bytes(_text(HEADER, [_rows()[0], ["2025-09-02", *_rows()[1][1:]]])), r"mixes tz-aware and naive"),
    ("F13", "two files for one symbol (0700.HK.csv and sub/0700.hk.csv)", "two-files", r"2 replay files for 0700.HK"),
    ("F14", "3-row yf.download header naming another ticker",
     lambda: b"Price,Close,High,Low,Open,Volume\nTicker,9988.HK,9988.HK,9988.HK,9988.HK,9988.HK\nDate,,,,,\n"
             b"2025-09-01,1,1,1,1,1\n", r"file name says 0700.HK but its Ticker header row says 9988.HK"),
    ("F15", "replay directory missing", "no-dir", r"replay directory .* does not exist"),
]


@pytest.mark.parametrize(("case", "what", "content", "error"), FILE_CASES, ids=[c[0] for c in FILE_CASES])
def test_malformed_files_are_rejected_with_the_reason(data_dir, tmp_path, case, what, content, error):
    folder = tmp_path / "replay"
    folder.mkdir()
    if content == "two-files":
        write_csv(folder / "0700.HK.csv", _rows())
        write_csv(folder / "sub" / "0700.hk.csv", _rows())
    elif content == "no-dir":
        folder.rmdir()
    else:
        (folder / "0700.HK.csv").write_bytes(content())
    if content != "no-dir":
        write_csv(folder / "9988.HK.csv", sample_rows(["9988.HK"], *WINDOW)["9988.HK"])  # a good neighbour
    ctx = start_run("replay", *WINDOW, market="XHKG", replay_dir=str(folder))
    with pytest.raises(SourceError, match=error):
        extract_step(ctx.run_id)
    log = pd.read_parquet(data_dir / "store" / "audit" / "run_log" / f"{ctx.run_id}__extract.parquet")
    assert log.status.tolist() == ["failed"] and re.search(error, json.loads(log.details[0])["error"])
    assert not list((data_dir / "landing").rglob("*.parquet")) if (data_dir / "landing").exists() else True


# ============================================================================ configuration and names

def _universe_with(tmp_path, symbol=None, market=None):
    text = (REPO / "etl" / "universe.yaml").read_text()
    if symbol is not None:
        text = text.replace("{symbol: QQQ,", "{symbol: " + json.dumps(symbol) + ",")
    if market is not None:
        text = text.replace("  US:\n    name: United States", f"  {json.dumps(market)}:\n    name: United States")
    path = tmp_path / "universe.yaml"
    path.write_text(text)
    return path


def _config_rejects(**kwargs):
    def check(tmp_path, monkeypatch):
        with pytest.raises(ConfigError, match="is not a valid symbol|does not match"):
            load_universe(_universe_with(tmp_path, **kwargs))
    return check


def _c04(tmp_path, monkeypatch):
    monkeypatch.setenv("ETL_DATA_DIR", str(tmp_path / "it's here"))
    with pytest.raises(ConfigError, match="contains a quote"):
        Settings.from_env()


def _c05(tmp_path, monkeypatch):
    monkeypatch.setenv("ETL_DATA_DIR", str(tmp_path / "data"))
    assert safe_run_id("../../etc/passwd") == "etc_passwd"
    assert safe_run_id("x'; drop table run_log; --") == "x_drop_table_run_log_--"
    with pytest.raises(ValueError, match="no usable characters"):
        safe_run_id("..")
    ctx = start_run("sample", *WINDOW, market="XHKG", run_id="../../outside")
    assert ctx.work_dir(Settings.from_env()).parent == tmp_path / "data" / "work"


def _c06(tmp_path, monkeypatch):
    monkeypatch.setenv("ETL_DATA_DIR", str(tmp_path / "data"))
    with pytest.raises(ValueError, match="unknown source 'ftp'"):
        start_run("ftp", *WINDOW)


CONFIG_CASES = [
    ("C01", "symbol with a path (../x) in the universe", _config_rejects(symbol="../x")),
    ("C02", "symbol with SQL metacharacters (a'; drop table x; --)", _config_rejects(symbol="a'; drop table x; --")),
    ("C03", "market code with a quote", _config_rejects(market="U'S")),
    ("C04", "data directory path with a quote", _c04),
    ("C05", "run id with a path or SQL metacharacters", _c05),
    ("C06", "unknown source name", _c06),
]


@pytest.mark.parametrize(("case", "what", "check"), CONFIG_CASES, ids=[c[0] for c in CONFIG_CASES])
def test_names_from_config_never_reach_a_path_or_sql_unvalidated(tmp_path, monkeypatch, case, what, check):
    check(tmp_path, monkeypatch)


def test_valid_yahoo_symbols_pass_the_check():
    from etl.config import check_symbol

    for symbol in ["^HSI", "0700.HK", "HKD=X", "EURUSD=X", "BRK-B", "HSTECH.HK", "^NDX", "QQQ"]:
        assert check_symbol(symbol) == symbol


# ============================================================================ the README lists every case

def test_readme_lists_every_case():
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Faults and bad input"):]
    ids = [c[0] for c in ROW_CASES + YAHOO_CASES + FILE_CASES + CONFIG_CASES] + ["R32"]
    missing = [i for i in ids if f"| {i} |" not in section]
    assert not missing, f"README 'Faults and bad input' lacks {missing}"
    assert len(ids) >= 25


def test_r32_dates_in_the_future_are_excluded_at_extract(data_dir, tmp_path):
    """R32: bars dated after the extraction's local day are never landed: quarantined as future_date."""
    folder = tmp_path / "replay"
    write_csv(folder / "0700.HK.csv", _rows())
    ctx = start_run("replay", *WINDOW, market="XHKG", replay_dir=str(folder))
    report = extract_step(ctx.run_id, now=datetime.fromisoformat("2025-09-10T12:00:00+00:00"))  # 20:00 HKT
    reasons = {(b["bar_date"], b["reason"]) for b in report["excluded_bars"] if b["symbol"] == "0700.HK"}
    assert reasons == {("2025-09-11", "future_date"), ("2025-09-12", "future_date")}
