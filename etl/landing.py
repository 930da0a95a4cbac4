"""Extract and land: raw frames from a source into immutable Parquet partitions source/market/bar_date."""

from __future__ import annotations

import json
import logging
import os
import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd

from etl.config import Settings, Universe
from etl.run import RunContext
from etl.sources import SourceError, make_source
from etl.sources.base import RAW_COLUMNS

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


def extract(ctx: RunContext, settings: Settings, universe: Universe, source=None) -> dict:
    """Call the source once for the run's symbols and window; keep its answer in the run's work dir."""
    source = source or make_source(ctx.source, universe, ctx.replay_dir)
    started = datetime.now(UTC)
    result = source.fetch(ctx.symbols, ctx.start, ctx.end)
    extracted_at = datetime.now(UTC)
    frames = {s: f for s, f in result.frames.items() if f is not None and not f.empty}
    for symbol in set(result.frames) - set(frames):
        result.missing.setdefault(symbol, "empty frame")
    if not frames:
        reasons = "; ".join(f"{s}: {r}" for s, r in sorted(result.missing.items())[:10])
        raise SourceError(f"{ctx.source} returned no rows for any of {len(ctx.symbols)} symbols "
                          f"between {ctx.start} and {ctx.end} ({reasons})")
    long = _frames_to_long(frames, result.frame_info, universe)
    long["extracted_at"] = extracted_at
    out = ctx.work_dir(settings) / "extract"
    out.mkdir(parents=True, exist_ok=True)
    long.to_parquet(out / "prices.parquet", index=False)
    meta = pd.DataFrame(
        [{"symbol": s, "market": universe.market_of(s), "info": json.dumps(m, default=str)}
         for s, m in result.metadata.items() if s in universe.by_symbol]
        , columns=["symbol", "market", "info"],
    )
    meta["extracted_at"] = extracted_at
    meta.to_parquet(out / "metadata.parquet", index=False)
    report = {
        "run_id": ctx.run_id,
        "source": ctx.source,
        "symbols_requested": len(ctx.symbols),
        "symbols_returned": len(frames),
        "rows_extracted": int(len(long)),
        "missing": dict(sorted(result.missing.items())),
        "source_calls": int(result.calls),
        "started_at": started.isoformat(),
        "extracted_at": extracted_at.isoformat(),
    }
    if os.environ.get("ETL_FUNDAMENTALS", "on") != "off" and hasattr(source, "fetch_fundamentals"):
        report["fundamentals"] = _extract_fundamentals(ctx, universe, source, out, extracted_at)
    (out / "report.json").write_text(json.dumps(report, indent=2))
    for symbol, reason in sorted(result.missing.items()):
        log.warning("%s: no data for %s: %s", ctx.source, symbol, reason)
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
    con.execute(
        f"copy frame to '{tmp}' (format parquet, partition_by (source, market, bar_date), "
        "write_partition_columns true, filename_pattern 'part_{i}')"
    )
    files = 0
    for part in sorted(tmp.rglob("*.parquet")):
        rel = part.parent.relative_to(tmp)
        target = dest / rel / f"run-{run_id}.parquet"
        target.parent.mkdir(parents=True, exist_ok=True)
        part.replace(target)  # same file system: atomic, and a retry of this run overwrites its own file
        files += 1
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
    """Landing files of one source for the given markets and bar dates; cost follows the window, not history."""
    root = settings.landing_dir / kind / f"source={source}"
    files: list[str] = []
    day = start
    while day <= end:
        for market in sorted(markets):
            folder = root / f"market={market}" / f"bar_date={day.isoformat()}"
            if folder.is_dir():
                files.extend(str(p) for p in sorted(folder.glob("*.parquet")))
        day += timedelta(days=1)
    return files
