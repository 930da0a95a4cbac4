"""Extract and land: raw frames from a source into immutable Parquet partitions source/market/bar_date."""

from __future__ import annotations

import json
import logging
import os
import shutil
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import pandas as pd

from etl import audit
from etl.config import Settings, Universe, extract_policy
from etl.faults import pause_point
from etl.run import RunContext
from etl.sources import SourceError, make_source
from etl.sources.base import RAW_COLUMNS, FetchResult

log = logging.getLogger(__name__)

LONG_COLUMNS = ["symbol", "market", "bar_date", "Date", *RAW_COLUMNS, "auto_adjusted", "source_file"]


def _frames_to_long(frames: dict[str, pd.DataFrame], frame_info: dict, universe: Universe) -> pd.DataFrame:
    """One row per vendor row; the vendor's columns and values are kept, absent columns stay null."""
    parts = []
    for symbol, frame in frames.items():
        if frame is None or frame.empty:
            continue
        index = pd.DatetimeIndex(frame.index)
        part = pd.DataFrame(
            {
                "symbol": symbol,
                "market": universe.market_of(symbol),
                "bar_date": index.date,
                # the vendor's own timestamp, offset included, as text: lossless and readable
                "Date": [ts.isoformat(sep=" ") for ts in index],
            }
        )
        for column in RAW_COLUMNS:
            part[column] = pd.to_numeric(frame[column], errors="coerce").to_numpy() if column in frame else None
        info = frame_info.get(symbol, {})
        part["auto_adjusted"] = bool(info.get("auto_adjusted", False))
        part["source_file"] = info.get("source_file")
        parts.append(part)
    if not parts:
        return pd.DataFrame(columns=LONG_COLUMNS)
    long = pd.concat(parts, ignore_index=True)
    for column in RAW_COLUMNS:
        long[column] = long[column].astype("float64")
    return long[LONG_COLUMNS]


def bar_final_at(universe: Universe, symbol: str, bar_date: date, grace: timedelta) -> datetime:
    """When a daily bar stops changing: its market's close on that day plus the grace (an exchange listing),
    or the end of the day in the exchange's timezone plus the grace (FX, which Yahoo stamps in London time)."""
    listing = universe.by_symbol[symbol]
    market = universe.markets.get(listing.market)
    if market is not None:
        close = datetime.combine(bar_date, time.fromisoformat(market.close_local), ZoneInfo(market.timezone))
    else:
        tz = universe.exchanges[listing.exchange]["timezone"]
        close = datetime.combine(bar_date + timedelta(days=1), time(0, 0), ZoneInfo(tz))
    return close + grace


def _unfinished(long: pd.DataFrame, universe: Universe, now: datetime, grace: timedelta) -> pd.Series:
    """Per row: None for a final bar, else 'future_date' or 'session_not_closed' (the bar may still change)."""
    reasons = pd.Series([None] * len(long), index=long.index, dtype=object)
    # only the last few days can still be open: bar_final_at is at most a day and the grace after bar_date
    recent = long[pd.to_datetime(long["bar_date"]) >= pd.Timestamp(now.date() - timedelta(days=2 + grace.days))]
    for (symbol, bar_date), rows in recent.groupby(["symbol", "bar_date"]).groups.items():
        final_at = bar_final_at(universe, symbol, bar_date, grace)
        if now < final_at:
            local_today = now.astimezone(final_at.tzinfo).date()
            reasons.loc[rows] = "future_date" if bar_date > local_today else "session_not_closed"
    return reasons


def _expected_symbols(ctx: RunContext, settings: Settings, universe: Universe, now: datetime,
                      grace: timedelta) -> set[str]:
    """Symbols that must have data: their market had at least one session (FX: a weekday) in the window that
    has closed by now. A listing whose market was shut for the whole window is not missing anything."""
    from etl.calendars import market_sessions

    closed: dict[str, bool] = {}
    expected = set()
    for symbol in ctx.symbols:
        listing = universe.by_symbol[symbol]
        if listing.market not in closed:
            if listing.market in universe.markets:
                days = market_sessions(universe, listing.market, ctx.effective_start, ctx.end,
                                       settings.store_dir / "reference")
            else:
                days = [d.date() for d in pd.date_range(ctx.effective_start, ctx.end) if d.weekday() < 5]
            closed[listing.market] = any(bar_final_at(universe, symbol, d, grace) <= now for d in days)
        if closed[listing.market]:
            expected.add(symbol)
    return expected


def _checkpoint_dir(ctx: RunContext, settings: Settings) -> Path:
    return ctx.work_dir(settings) / "extract" / "fetched"


def _save_checkpoint(folder: Path, result: FetchResult, universe: Universe, extracted_at: datetime,
                     now: datetime, grace: timedelta) -> None:
    """Keep what one fetch attempt got (attempt-<n>.parquet, committed by its .json): a rerun of a failed
    extract asks the source only for the other symbols. Unfinished bars are cut here, at their fetch time."""
    folder.mkdir(parents=True, exist_ok=True)
    frames = {s: f for s, f in result.frames.items() if f is not None and not f.empty}
    if not frames:
        return
    long = _frames_to_long(frames, result.frame_info, universe)
    long["extracted_at"] = extracted_at
    reasons = _unfinished(long, universe, now, grace)
    excluded = [
        {"symbol": row["symbol"], "bar_date": row["bar_date"], "reason": reasons[index],
         "source_file": row["source_file"],
         "raw_record": json.dumps({c: row[c] for c in ["Date", *RAW_COLUMNS]}, default=str)}
        for index, row in long[reasons.notna()].iterrows()
    ]
    attempt = len(list(folder.glob("attempt-*.json"))) + 1
    long[reasons.isna()].to_parquet(folder / f"attempt-{attempt}.parquet", index=False)
    info = {"symbols": sorted(frames), "metadata": {s: m for s, m in result.metadata.items() if s in frames},
            "excluded": excluded}
    tmp = folder / f".attempt-{attempt}.json.tmp"
    tmp.write_text(json.dumps(info, default=str))
    tmp.replace(folder / f"attempt-{attempt}.json")  # the attempt counts once its .json exists


def _load_checkpoints(folder: Path) -> list[tuple[dict, Path]]:
    if not folder.is_dir():
        return []
    return [(json.loads(p.read_text()), p.with_suffix(".parquet")) for p in sorted(folder.glob("attempt-*.json"))]


def extract(ctx: RunContext, settings: Settings, universe: Universe, source=None,
            now: datetime | None = None) -> dict:
    """Call the source for the run's symbols and window (plus the restatement lookback); keep its answer in
    the run's work dir.

    Faults (README "Faults and bad input"): each symbol's answer is kept as it arrives, so a rerun after a
    failure part-way (network error, rate limit) fetches only the symbols still missing; bars whose session
    has not closed yet are excluded; expected symbols the source did not deliver are quarantined
    (missing_from_source), or fail the extract when fewer than the policy's min_completeness came back.
    """
    policy = extract_policy(ctx.source, universe)
    grace = timedelta(minutes=policy.partial_bar_grace_minutes)
    now = now or datetime.now(UTC)
    if source is None:
        budget = None
        if ctx.source == "yfinance":
            from etl.sources.budget import RequestBudget, max_requests_for
            from etl.sources.yfinance_source import _min_interval_from_env

            budget = RequestBudget(settings.work_dir / ".yahoo-request-budget.json", ctx.run_id,
                                   _min_interval_from_env(), max_requests_for(len(ctx.symbols)))
        source = make_source(ctx.source, universe, ctx.replay_dir, budget=budget)
    out = ctx.work_dir(settings) / "extract"
    folder = _checkpoint_dir(ctx, settings)
    if (folder / ".complete").exists():
        shutil.rmtree(folder)  # a completed extract that is run again starts over
    kept = sorted({s for info, _ in _load_checkpoints(folder) for s in info["symbols"]})
    todo = [s for s in ctx.symbols if s not in set(kept)]
    started = datetime.now(UTC)
    try:
        result = source.fetch(todo, ctx.effective_start, ctx.end) if todo else FetchResult()
    except SourceError as exc:
        partial = getattr(exc, "partial", None)
        if partial is not None:
            _save_checkpoint(folder, partial, universe, datetime.now(UTC), now, grace)
        have = len({s for info, _ in _load_checkpoints(folder) for s in info["symbols"]})
        if have:
            raise SourceError(
                f"{exc} [{have} of {len(ctx.symbols)} symbols fetched before the failure are kept in {folder}; "
                f"rerunning this run's extract asks only for the other {len(ctx.symbols) - have}]"
            ) from exc
        raise
    extracted_at = datetime.now(UTC)
    frames = {s: f for s, f in result.frames.items() if f is not None and not f.empty}
    for symbol in set(result.frames) - set(frames):
        result.missing.setdefault(symbol, "empty frame")
    result.frames = frames
    _save_checkpoint(folder, result, universe, extracted_at, now, grace)

    longs, meta_rows, excluded = [], [], []
    for info, path in _load_checkpoints(folder):
        part = pd.read_parquet(path)
        excluded += info["excluded"]
        if len(part):
            longs.append(part)
        fetched_at = part["extracted_at"].iloc[0] if len(part) else extracted_at
        meta_rows += [{"symbol": s, "market": universe.market_of(s), "info": json.dumps(m, default=str),
                       "extracted_at": fetched_at} for s, m in sorted(info["metadata"].items())
                      if m is not None and s in universe.by_symbol]
    long = pd.concat(longs, ignore_index=True) if longs else pd.DataFrame(columns=[*LONG_COLUMNS, "extracted_at"])
    returned = set(long["symbol"]) if len(long) else set()
    for symbol in sorted(set(ctx.symbols) - returned - set(result.missing)):
        result.missing[symbol] = "only bars whose session had not closed yet" if any(
            e["symbol"] == symbol for e in excluded) else "no rows from the source"
    expected = _expected_symbols(ctx, settings, universe, now, grace)
    missing_expected = {s: result.missing.get(s, "no rows from the source") for s in sorted(expected - returned)}
    completeness = 1.0 - len(missing_expected) / len(expected) if expected else 1.0
    quarantine = [
        {"table_name": "fct_daily_price", "symbol": s, "bar_date": None, "reason": "missing_from_source",
         "source": ctx.source, "source_file": None, "run_id": ctx.run_id,
         "raw_record": json.dumps({"source_reason": r, "window": [str(ctx.effective_start), str(ctx.end)]})}
        for s, r in missing_expected.items()
    ] + [e | {"table_name": "fct_daily_price", "source": ctx.source, "run_id": ctx.run_id} for e in excluded]
    audit.append(settings.store_dir, "quarantine", quarantine, f"{ctx.run_id}__extract")
    for symbol, reason in sorted(result.missing.items()):
        log.warning("%s: no data for %s: %s", ctx.source, symbol, reason)
    if not returned:
        reasons = "; ".join(f"{s}: {r}" for s, r in sorted(result.missing.items())[:10])
        raise SourceError(f"{ctx.source} returned no rows for any of {len(ctx.symbols)} symbols "
                          f"between {ctx.effective_start} and {ctx.end} ({reasons})")
    if completeness < policy.min_completeness:
        listed = "; ".join(f"{s} ({r})" for s, r in missing_expected.items())
        raise SourceError(
            f"{ctx.source} delivered {len(expected) - len(missing_expected)} of {len(expected)} expected symbols "
            f"({completeness:.1%}, the {ctx.source} policy needs {policy.min_completeness:.0%}; "
            f"ETL_MIN_COMPLETENESS): missing {listed}. Nothing was landed; a rerun fetches only these"
        )
    out.mkdir(parents=True, exist_ok=True)
    long.to_parquet(out / "prices.parquet", index=False)
    meta = pd.DataFrame(meta_rows, columns=["symbol", "market", "info", "extracted_at"])
    meta.to_parquet(out / "metadata.parquet", index=False)
    report = {
        "run_id": ctx.run_id,
        "source": ctx.source,
        "window": [str(ctx.effective_start), str(ctx.end)],
        "symbols_requested": len(ctx.symbols),
        "symbols_returned": len(returned),
        "symbols_from_earlier_attempt": len(kept),
        "rows_extracted": int(len(long)),
        "missing": dict(sorted(result.missing.items())),
        "completeness": round(completeness, 4),
        "min_completeness": policy.min_completeness,
        "quarantined": len(quarantine),
        "quarantined_symbols": sorted(missing_expected),
        "excluded_bars": [{k: str(e[k]) for k in ("symbol", "bar_date", "reason")} for e in excluded],
        "warnings": list(result.warnings),
        "source_calls": int(result.calls),
        "started_at": started.isoformat(),
        "extracted_at": extracted_at.isoformat(),
    }
    if os.environ.get("ETL_FUNDAMENTALS", "on") != "off" and hasattr(source, "fetch_fundamentals"):
        report["fundamentals"] = _extract_fundamentals(ctx, universe, source, out, extracted_at)
    (out / "report.json").write_text(json.dumps(report, indent=2, default=str))
    (folder / ".complete").touch()
    for warning in result.warnings:
        log.warning("%s: %s", ctx.source, warning)
    return report


FUNDAMENTALS = ("shares", "cashflow", "filings")


def _extract_fundamentals(ctx: RunContext, universe: Universe, source, out: Path, extracted_at: datetime) -> dict:
    """Shares, quarterly cash flow and SEC filings, kept long-format but with the vendor's own labels."""
    share_symbols, filing_symbols = universe.fundamentals_symbols(ctx.symbols)
    result = source.fetch_fundamentals(share_symbols, filing_symbols, ctx.start, ctx.end)
    shares = [
        pd.DataFrame({"symbol": symbol, "Date": [ts.isoformat(sep=" ") for ts in pd.DatetimeIndex(series.index)],
                      "shares": pd.to_numeric(series, errors="coerce").to_numpy(dtype="float64")})
        for symbol, series in result.shares.items() if series is not None and len(series)
    ]
    cashflow = []
    for symbol, frame in result.cashflow.items():
        if frame is None or frame.empty:
            continue
        long = frame.rename_axis("line_item").reset_index().melt(id_vars="line_item", var_name="period_end",
                                                                  value_name="value")
        long["period_end"] = pd.to_datetime(long["period_end"]).dt.date
        long.insert(0, "symbol", symbol)
        long["statement_currency"] = result.statement_currency.get(symbol)
        cashflow.append(long)
    filings = [
        {"symbol": symbol, "filing_date": pd.Timestamp(f.get("date")).date() if f.get("date") else None,
         "form_type": f.get("type"), "title": f.get("title"), "url": f.get("edgarUrl"),
         "exhibits": json.dumps(f.get("exhibits") or {}, default=str)}
        for symbol, items in result.filings.items() for f in items or []
    ]
    frames = {
        "shares": pd.concat(shares, ignore_index=True) if shares else
        pd.DataFrame(columns=["symbol", "Date", "shares"]),
        "cashflow": pd.concat(cashflow, ignore_index=True) if cashflow else
        pd.DataFrame(columns=["symbol", "line_item", "period_end", "value", "statement_currency"]),
        "filings": pd.DataFrame(filings, columns=["symbol", "filing_date", "form_type", "title", "url", "exhibits"]),
    }
    counts = {}
    for kind, frame in frames.items():
        frame["market"] = [universe.market_of(s) for s in frame["symbol"]]
        frame["extracted_at"] = extracted_at
        frame.to_parquet(out / f"{kind}.parquet", index=False)
        counts[kind] = int(len(frame))
    for key, reason in sorted(result.missing.items()):
        log.info("%s: no %s", key, reason)
    return {"rows": counts, "missing": dict(sorted(result.missing.items())), "source_calls": int(result.calls)}


def _copy_partitioned(con: duckdb.DuckDBPyConnection, frame: pd.DataFrame, dest: Path, run_id: str,
                      tmp: Path) -> int:
    """Write frame as one file per (source, market, bar_date) partition; each file lands atomically."""
    if tmp.exists():
        shutil.rmtree(tmp)
    con.register("frame", frame)
    # Beyond partitioned_write_max_open_files (default 100) DuckDB closes partition files and opens new ones,
    # so a window of more than ~33 days x 3 markets got several part files in one folder, and renaming each
    # of them to run-<id>.parquet kept only the last (rows lost, issue 6). Keep every partition open; should
    # DuckDB still split one, its parts are merged below.
    partitions = len(frame[["source", "market", "bar_date"]].drop_duplicates()) if len(frame) else 0
    con.execute(f"set partitioned_write_max_open_files = {max(100, partitions + 1)}")
    con.execute(
        f"copy frame to '{tmp}' (format parquet, partition_by (source, market, bar_date), "
        "write_partition_columns true, filename_pattern 'part_{i}')"
    )
    folders: dict[Path, list[Path]] = {}
    for part in sorted(tmp.rglob("*.parquet")):
        folders.setdefault(part.parent, []).append(part)
    files = 0
    for folder, parts in sorted(folders.items()):
        if len(parts) > 1:
            merged = folder / "merged.parquet.tmp"
            listed = ", ".join(f"'{p}'" for p in parts)
            con.execute(f"copy (select * from read_parquet([{listed}], hive_partitioning=false)) to '{merged}' "
                        "(format parquet)")
            part = merged
        else:
            part = parts[0]
        target = dest / folder.relative_to(tmp) / f"run-{run_id}.parquet"
        target.parent.mkdir(parents=True, exist_ok=True)
        part.replace(target)  # same file system: atomic, and a retry of this run overwrites its own file
        files += 1
        if files == 1:
            pause_point("land:after_first_file")
    shutil.rmtree(tmp, ignore_errors=True)
    con.unregister("frame")
    return files


def land(ctx: RunContext, settings: Settings) -> dict:
    """Move the extract into landing/{prices,metadata}/source=/market=/bar_date=/run-<run_id>.parquet."""
    out = ctx.work_dir(settings) / "extract"
    report = json.loads((out / "report.json").read_text())
    prices = pd.read_parquet(out / "prices.parquet")
    prices.insert(0, "source", ctx.source)
    prices["run_id"] = ctx.run_id
    metadata = pd.read_parquet(out / "metadata.parquet")
    metadata.insert(0, "source", ctx.source)
    metadata["bar_date"] = ctx.end
    metadata["run_id"] = ctx.run_id
    con = duckdb.connect()
    price_files = _copy_partitioned(con, prices, settings.landing_dir / "prices", ctx.run_id,
                                    ctx.work_dir(settings) / "tmp_prices")
    meta_files = 0
    if len(metadata):
        meta_files = _copy_partitioned(con, metadata, settings.landing_dir / "metadata", ctx.run_id,
                                       ctx.work_dir(settings) / "tmp_metadata")
    for kind in FUNDAMENTALS:
        path = out / f"{kind}.parquet"
        if not path.exists():
            continue
        frame = pd.read_parquet(path)
        if len(frame):
            frame.insert(0, "source", ctx.source)
            frame["bar_date"] = ctx.end  # a snapshot as of the run's last market date
            frame["run_id"] = ctx.run_id
            meta_files += _copy_partitioned(con, frame, settings.landing_dir / kind, ctx.run_id,
                                            ctx.work_dir(settings) / f"tmp_{kind}")
    con.close()
    return report | {"rows_landed": int(len(prices)), "files_landed": price_files + meta_files}


def landed_files(settings: Settings, kind: str, source: str, markets: set[str], start: date, end: date
                 ) -> list[str]:
    """Landing files of one source for the given markets and bar dates, in date order; cost follows the window,
    not history: a short window looks up each of its days, a long one (a 20-year backfill: 7,300 days x 3 markets)
    lists each market's partitions once instead."""
    root = settings.landing_dir / kind / f"source={source}"
    if not root.is_dir():
        return []
    by_day: list[tuple[str, str, Path]] = []
    if (end - start).days <= 366:
        day = start
        while day <= end:
            for market in sorted(markets):
                folder = root / f"market={market}" / f"bar_date={day.isoformat()}"
                if folder.is_dir():
                    by_day.append((day.isoformat(), market, folder))
            day += timedelta(days=1)
    else:
        first, last = start.isoformat(), end.isoformat()
        for market in sorted(markets):
            market_dir = root / f"market={market}"
            if not market_dir.is_dir():
                continue
            with os.scandir(market_dir) as entries:
                for entry in entries:
                    day = entry.name.removeprefix("bar_date=")
                    if entry.name.startswith("bar_date=") and first <= day <= last and entry.is_dir():
                        by_day.append((day, market, Path(entry.path)))
        by_day.sort()
    files: list[str] = []
    for _, _, folder in by_day:
        files.extend(str(p) for p in sorted(folder.glob("*.parquet")))
    return files
