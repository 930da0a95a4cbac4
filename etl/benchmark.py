"""Benchmark at scale (issue 6): `make bench` / `python -m etl.benchmark --securities N --years M`.

What it measures, on a synthetic universe generated at run time (nothing generated is committed):

1. **generate** - a universe YAML with N securities (HK equities, US equities and ETFs, US ADRs of HK lines,
   the HKD and CNY pairs) and their landing files for M years, in the exact landing format
   (``landing/prices/source=sample/market=<m>/bar_date=<d>/run-<id>.parquet``, vendor columns), written by DuckDB
   straight from SQL: deterministic (hash of symbol and day), with dividends, splits/consolidations and FX.
2. **backfill** - the real pipeline steps on the whole history: transform (landing -> staging -> marts),
   validate (the GX gate), publish; wall time, rows/s and peak RSS per stage.
3. **floor** - DuckDB alone reading the same landing files into one table with the same derived columns (daily
   return on adj close, FX rate as of the day with the 5-day carry-over, close in USD): the physical reference.
4. **increment** - one more trading day for every security, landed and published on top of the M-year warehouse
   and on top of a 1-year warehouse; both times and their ratio (the source call itself is excluded).
   The Parquet export after each publish (backfill and increments) is timed as a stage of its own, reported
   apart (``export_long_s``, ``export_short_s``, ``backfill_export_s``): like the DAG's `export` task, it is
   not part of the time until the warehouse is published.
5. **airflow** - the demo window through ``airflow dags test`` versus ``python -m etl run`` (optional).
6. **source** - Yahoo calls per security for one daily run of the real YFinanceSource, counted by the client
   (a fake ``ticker_factory`` stands in for the network).

Each measured phase runs in its own Python process, so its peak RSS and its timings are its own. Results go to
``bench/results.json`` (or ``--out``) and a table is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from pathlib import Path

from etl.config import PROJECT_ROOT

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

SOURCE = "sample"  # synthetic rows: is_synthetic = true, and High < Low blocks (a generator bug, not a quirk)
INCREMENT_DAY = date(2025, 9, 30)  # a session in Hong Kong and New York; the warehouses end the day before
BACKFILL_EXTRACTED_AT = "2025-09-29 22:00:00+00"
INCREMENT_EXTRACTED_AT = "2025-09-30 22:00:00+00"
DEFAULT_OUT = PROJECT_ROOT / "bench" / "results.json"
DEFAULT_WORK = PROJECT_ROOT / "bench" / "work"

TARGETS = {
    "backfill_vs_floor": 3.0,
    "peak_rss_mb": 6 * 1024,
    "increment_long_s": 2.0,
    "increment_ratio": 1.5,
    "source_calls_per_security": 1.0,
}


# ------------------------------------------------------------------------------------------ measuring


class RssSampler:
    """Peak resident memory of this process, sampled in a thread, per named stage and overall."""

    def __init__(self, interval: float = 0.02) -> None:
        import psutil

        self._proc = psutil.Process()
        self._interval = interval
        self._peak = 0
        self._stage_peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            rss = self._proc.memory_info().rss
            self._peak = max(self._peak, rss)
            self._stage_peak = max(self._stage_peak, rss)
            self._stop.wait(self._interval)

    def reset_stage(self) -> None:
        self._stage_peak = self._proc.memory_info().rss

    def stage_peak_mb(self) -> float:
        self._stage_peak = max(self._stage_peak, self._proc.memory_info().rss)
        return round(self._stage_peak / 2**20, 1)

    def peak_mb(self) -> float:
        # ru_maxrss (KiB on Linux) also catches spikes between two samples
        return round(max(self._peak, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024) / 2**20, 1)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


@contextmanager
def stage(stages: dict, name: str, sampler: RssSampler, rows: int | None = None):
    """Time one stage and record its wall time, rows/s and peak RSS into stages[name]."""
    sampler.reset_stage()
    started = time.perf_counter()
    info: dict = {}
    yield info
    seconds = time.perf_counter() - started
    record = {"s": round(seconds, 3), "peak_rss_mb": sampler.stage_peak_mb()}
    rows = info.get("rows", rows)
    if rows is not None:
        record["rows"] = int(rows)
        record["rows_per_s"] = round(rows / seconds) if seconds > 0 else None
    record.update({k: v for k, v in info.items() if k != "rows"})
    stages[name] = record


# ------------------------------------------------------------------------------------------ the universe


@dataclass
class BenchConfig:
    securities: int
    days: int  # length of the long history in calendar days
    short_days: int  # length of the short history
    work: str
    airflow: bool = True
    repeats: int = 3  # increments: the same run repeated, median reported
    in_process: bool = False  # run the phases in this process (smoke tests): no child per phase

    @property
    def end(self) -> date:
        return INCREMENT_DAY - timedelta(days=1)

    @property
    def start_long(self) -> date:
        return self.end - timedelta(days=self.days - 1)

    @property
    def start_short(self) -> date:
        return self.end - timedelta(days=self.short_days - 1)

    @property
    def universe_file(self) -> Path:
        return Path(self.work) / "universe.yaml"

    def data_dir(self, which: str) -> Path:
        return Path(self.work) / which / "data"

    def env(self, which: str) -> dict:
        data = self.data_dir(which)
        return {**os.environ, "ETL_DATA_DIR": str(data), "ETL_WAREHOUSE": str(data / "warehouse.duckdb"),
                "ETL_UNIVERSE": str(self.universe_file), "GX_ANALYTICS_ENABLED": "false",
                "PYTHONPATH": str(PROJECT_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def universe_yaml(securities: int, calendar_start: date) -> str:
    """The default universe (its companies, curated events and FX pairs stay valid) filled up with synthetic
    listings to `securities`: ~45% HK equities, ~5% US ADRs of them, the rest US equities and ETFs."""
    import yaml

    from etl.config import DEFAULT_UNIVERSE

    doc = yaml.safe_load(DEFAULT_UNIVERSE.read_text())
    have = sum(len(c["listings"]) for c in doc["companies"])
    fill = max(0, securities - have)
    n_hk = round(fill * 0.45)
    n_adr = min(n_hk, round(fill * 0.05))
    n_us = fill - n_hk - n_adr
    companies = []
    for i in range(n_hk):
        listings = [{"symbol": f"{i + 1:05d}.HK", "exchange": "XHKG", "currency": "HKD", "security_type": "equity"}]
        if i < n_adr:
            listings.append({"symbol": f"HKADR{i + 1:04d}", "exchange": "XNYS" if i % 2 else "XNAS",
                             "currency": "USD", "security_type": "adr", "adr_ratio": float(1 + i % 10),
                             "underlying": f"{i + 1:05d}.HK"})
        companies.append({"id": f"bench-hk{i + 1:05d}", "name": f"Bench HK Company {i + 1}",
                          "sector": ["Technology", "Financials", "Consumer Cyclical", "Industrials"][i % 4],
                          "listings": listings})
    for i in range(n_us):
        companies.append({"id": f"bench-us{i + 1:05d}", "name": f"Bench US Company {i + 1}",
                          "sector": ["Technology", "Health Care", "Energy", "Utilities"][i % 4],
                          "listings": [{"symbol": f"US{i + 1:05d}", "exchange": "XNAS" if i % 3 else "XNYS",
                                        "currency": "USD", "security_type": "etf" if i % 50 == 1 else "equity"}]})
    doc["companies"] = doc["companies"] + companies
    doc.setdefault("calendar", {})["start"] = str(min(date.fromisoformat(str(doc["calendar"].get(
        "start", "2000-01-01"))), calendar_start))
    return "# Generated by etl.benchmark from etl/universe.yaml; do not edit.\n" + yaml.safe_dump(doc, sort_keys=False)


# ------------------------------------------------------------------------------------------ generating

# One row per security per trading day of its market, as the vendor would send it. Every random number is
# hash(security id, day, stream) split into two 32-bit uniforms, so a bar is the same whatever window is asked.
_UNIT = "(cast(hash({id}, d.day_number, {k}) >> 32 as double) + 0.5) / 4294967296.0"
_UNIT2 = "(cast(hash({id}, d.day_number, {k}) & 4294967295 as double) + 0.5) / 4294967296.0"


def _normal(k: int, of: str = "s.sym_id") -> str:
    return f"(sqrt(-2 * ln({_UNIT.format(id=of, k=k)})) * cos(2 * pi() * {_UNIT2.format(id=of, k=k)}))"


# An equity's (or index's) close on a day, from its parameters (prefix p) and its day noise z
def _equity_close(p: str, z: str) -> str:
    return (f"round(exp(ln({p}base) + {p}drift * day_number + {p}amp * sin(day_number / {p}period + {p}phase) "
            f"+ 0.012 * {z}), 4)")


def _fx_close(p: str, z: str) -> str:
    return (f"least({p}fx_hi, greatest({p}fx_lo, {p}fx_level + {p}fx_amp * sin(day_number / 97.0 + {p}phase) "
            f"+ 0.003 * {z}))")


BARS_SQL = f"""
with raw as (
    select
        s.*, d.bar_date, d.day_number,
        {_normal(1)} as z1, {_normal(2)} as z2, {_normal(3)} as z3, {_normal(4)} as z4, {_normal(5)} as z5,
        -- an ADR follows its home line at the day's FX rate (per ADS = ratio shares), with a small premium
        case when s.stype = 'adr' then {_normal(1, "s.u_sym_id")} end as u_z1,
        case when s.stype = 'adr' then {_normal(1, "s.hkd_sym_id")} end as hkd_z1
    from bench_security as s
    join bench_day as d on d.market = s.market and d.bar_date between $lo and $hi
),

levels as (
    select *,
        case when stype = 'fx' then {_fx_close("", "z1")}
             when stype = 'adr' then round({_equity_close("u_", "u_z1")} * adr_ratio / {_fx_close("hkd_", "hkd_z1")}
                                           * exp(0.002 * z1), 4)
             else {_equity_close("", "z1")}
        end as close
    from raw
),

bars as (
    select *,
        case when stype = 'fx' then least(fx_hi, greatest(fx_lo, round(close * exp(0.0002 * z2), 4)))
             else round(close * exp(0.006 * z2), 4) end as open
    from levels
),

final as (
    select
        '{SOURCE}' as source,
        symbol,
        market,
        bar_date,
        strftime(bar_date, '%Y-%m-%d') || ' 00:00:00' || tz_offset as "Date",
        open as "Open",
        case when stype = 'fx' then greatest(open, close)
             else round(greatest(open, close) * exp(0.004 * abs(z3)), 4) end as "High",
        case when stype = 'fx' then least(open, close)
             else round(least(open, close) * exp(-0.004 * abs(z4)), 4) end as "Low",
        close as "Close",
        case when has_dividend then round(close * power(1 - div_yield, greatest(0,
                 $horizon_year - year(bar_date)
                 + (month(bar_date) * 100 + day(bar_date) < div_month * 100 + div_day)::int
                 - ($horizon_md < div_month * 100 + div_day)::int)), 6)
             else close end as "Adj Close",
        case when stype = 'fx' then 0.0 else round(volume_base * exp(0.3 * z5)) end as "Volume",
        case when has_dividend and month(bar_date) = div_month and day(bar_date) between div_day and div_day + 6
                  and isodow(bar_date) = div_dow then round(div_yield * close, 4)
             else 0.0 end as "Dividends",
        case when has_split and year(bar_date) = split_year and month(bar_date) = split_month
                  and day(bar_date) <= 7 and isodow(bar_date) = 3 then split_ratio
             else 0.0 end as "Stock Splits",
        false as auto_adjusted,
        cast(null as varchar) as source_file,
        cast($extracted_at as timestamptz) as extracted_at,
        $run_id as run_id
    from bars
)

select * from final
"""


def _unit_sql(k: int) -> str:
    return f"(cast(hash(sym_id, {k}) >> 11 as double) / 9007199254740992.0)"


def _prepare_generator(con, universe, cache_dir: Path, first: date, last: date) -> None:
    """bench_security (per-listing parameters) and bench_day (trading days per market) in `con`."""
    import pandas as pd

    from etl.calendars import sessions_frame

    offsets = {"XHKG": "+08:00", "US": "-04:00", "FX": "+01:00"}
    listings = pd.DataFrame(
        [{"sym_id": i, "symbol": s.symbol, "market": s.market, "stype": s.security_type,
          "currency": s.currency, "tz_offset": offsets.get(s.market, "+00:00"), "underlying": s.underlying,
          "adr_ratio": float(s.adr_ratio or 1.0)}
         for i, s in enumerate(universe.listings)]
    ).astype({"underlying": "string"})
    con.register("listing_frame", listings)
    u = _unit_sql
    con.execute(f"""
        create or replace temp table bench_security as
        select *,
            2.0 + 300.0 * pow({u(1)}, 2) as base,
            0.00002 + 0.0001 * {u(2)} as drift,
            0.3 * {u(3)} as amp,
            150 + 500 * {u(4)} as period,
            6.283 * {u(5)} as phase,
            stype in ('equity', 'etf', 'adr') and {u(6)} < 0.7 as has_dividend,
            1 + cast(floor(12 * {u(7)}) as int) as div_month,
            1 + cast(floor(21 * {u(8)}) as int) as div_day,
            1 + cast(floor(5 * {u(9)}) as int) as div_dow,
            0.005 + 0.03 * {u(10)} as div_yield,
            stype = 'equity' and {u(11)} < 0.2 as has_split,
            {first.year} + cast(floor({last.year - first.year + 1} * {u(12)}) as int) as split_year,
            1 + cast(floor(12 * {u(13)}) as int) as split_month,
            case when {u(14)} < 0.85 then 2.0 else 0.5 end as split_ratio,
            1e5 * pow(10, 2 * {u(15)}) as volume_base,
            case when symbol = 'HKD=X' then 7.80 else 6.9 end as fx_level,
            case when symbol = 'HKD=X' then 0.045 else 0.35 end as fx_amp,
            case when symbol = 'HKD=X' then 7.7501 else 0.1 end as fx_lo,
            case when symbol = 'HKD=X' then 7.8499 else 100.0 end as fx_hi
        from listing_frame
    """)
    con.unregister("listing_frame")
    params = ["sym_id", "base", "drift", "amp", "period", "phase", "fx_level", "fx_amp", "fx_lo", "fx_hi"]
    con.execute(f"""
        create or replace temp table bench_security as
        select s.*, {", ".join(f"u.{c} as u_{c}" for c in params)}, {", ".join(f"h.{c} as hkd_{c}" for c in params)}
        from bench_security as s
        left join bench_security as u on u.symbol = s.underlying
        left join (select * from bench_security where symbol = 'HKD=X') as h on s.stype = 'adr'
    """)
    sessions = sessions_frame(universe, cache_dir)
    con.register("sessions_frame", sessions)
    con.execute("""
        create or replace temp table bench_day as
        select market_code as market, cast(session_date as date) as bar_date from sessions_frame
        union all
        select 'FX', cast(d as date) from range(?::date, ?::date + 1, interval 1 day) t(d) where isodow(d) <= 5
    """, [first, last])
    con.unregister("sessions_frame")
    con.execute("create or replace temp table bench_day as select *, bar_date - date '2000-01-01' as day_number "
                "from bench_day where bar_date between ? and ?", [first, last])


def _bars_params(lo: date, hi: date, run_id: str, extracted_at: str) -> dict:
    return {"lo": lo, "hi": hi, "run_id": run_id, "extracted_at": extracted_at,
            "horizon_year": INCREMENT_DAY.year, "horizon_md": INCREMENT_DAY.month * 100 + INCREMENT_DAY.day}


def _metadata_sql(run_id: str, extracted_at: str, bar_date: date | None) -> str:
    partition = f", cast('{bar_date}' as date) as bar_date, '{run_id}' as run_id" if bar_date else ""
    head = f"'{SOURCE}' as source, " if bar_date else ""
    return f"""
        select {head}symbol, market,
            to_json(struct_pack(longName := 'Bench ' || symbol, shortName := symbol, quoteType := upper(stype),
                                currency := currency,
                                marketCap := round(1e8 * pow(10, 3 * {_unit_sql(21)})),
                                sharesOutstanding := round(1e7 * pow(10, 3 * {_unit_sql(22)})),
                                trailingPE := round(5 + 40 * {_unit_sql(23)}, 2))) :: varchar as info,
            cast('{extracted_at}' as timestamptz) as extracted_at{partition}
        from bench_security
    """


def generate_landing(settings, universe, first: date, last: date, run_id: str) -> dict:
    """Landing files for every listing and trading day in [first, last], one file per market and day."""
    import duckdb

    started = time.perf_counter()
    con = duckdb.connect()
    con.execute("set partitioned_write_max_open_files = 100000")
    _prepare_generator(con, universe, settings.store_dir / "reference", first, last)
    prices = settings.landing_dir / "prices"
    tmp = settings.work_dir / "bench_tmp"
    tmp.parent.mkdir(parents=True, exist_ok=True)
    rows = files = 0
    year = first.year
    while year <= last.year:  # one year per COPY: ~760 partitions open at a time, bounded memory
        lo, hi = max(first, date(year, 1, 1)), min(last, date(year, 12, 31))
        shutil.rmtree(tmp, ignore_errors=True)
        rows += con.execute(
            f"copy ({BARS_SQL}) to '{tmp}' (format parquet, partition_by (source, market, bar_date), "
            "write_partition_columns true, filename_pattern 'part_{i}')",
            _bars_params(lo, hi, run_id, BACKFILL_EXTRACTED_AT),
        ).fetchone()[0]
        parts = sorted(tmp.rglob("*.parquet"))
        if len({p.parent for p in parts}) != len(parts):
            raise RuntimeError("DuckDB split a landing partition into several files")
        for part in parts:
            target = prices / part.parent.relative_to(tmp) / f"run-{run_id}.parquet"
            target.parent.mkdir(parents=True, exist_ok=True)
            part.replace(target)
            files += 1
        year += 1
    shutil.rmtree(tmp, ignore_errors=True)
    meta = settings.landing_dir / "metadata"
    con.execute(
        f"copy ({_metadata_sql(run_id, BACKFILL_EXTRACTED_AT, last)}) to '{tmp}' "
        "(format parquet, partition_by (source, market, bar_date), write_partition_columns true, "
        "filename_pattern 'part_{i}')"
    )
    for part in tmp.rglob("*.parquet"):
        target = meta / part.parent.relative_to(tmp) / f"run-{run_id}.parquet"
        target.parent.mkdir(parents=True, exist_ok=True)
        part.replace(target)
    shutil.rmtree(tmp, ignore_errors=True)
    con.close()
    return {"rows": rows, "files": files, "seconds": round(time.perf_counter() - started, 3)}


def write_increment_extract(settings, universe, ctx) -> int:
    """The day's vendor answer as the extract step leaves it (work/<run>/extract), for the real land step."""
    import duckdb

    out = ctx.work_dir(settings) / "extract"
    out.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    _prepare_generator(con, universe, settings.store_dir / "reference", ctx.start, ctx.end)
    con.execute(
        f"copy (select * exclude (source, run_id) from ({BARS_SQL})) to '{out / 'prices.parquet'}' "
        "(format parquet)", _bars_params(ctx.start, ctx.end, ctx.run_id, INCREMENT_EXTRACTED_AT))
    rows = con.execute(f"select count(*) from '{out / 'prices.parquet'}'").fetchone()[0]
    con.execute(f"copy ({_metadata_sql(ctx.run_id, INCREMENT_EXTRACTED_AT, None)}) to "
                f"'{out / 'metadata.parquet'}' (format parquet)")
    con.close()
    report = {"run_id": ctx.run_id, "source": ctx.source, "symbols_requested": len(ctx.symbols),
              "symbols_returned": len(ctx.symbols), "rows_extracted": int(rows), "missing": {},
              "source_calls": len(ctx.symbols), "started_at": INCREMENT_EXTRACTED_AT,
              "extracted_at": INCREMENT_EXTRACTED_AT}
    (out / "report.json").write_text(json.dumps(report, indent=2))
    return int(rows)


# ------------------------------------------------------------------------------------------ phases
# Each runs in a child process: python -m etl.benchmark --phase NAME --config work/config.json --which W


def _settings_universe():
    from etl.config import Settings, load_universe

    settings = Settings.from_env()
    return settings, load_universe(settings.universe_file)


def phase_generate(cfg: BenchConfig, which: str, sampler: RssSampler) -> dict:
    settings, universe = _settings_universe()
    first = cfg.start_long if which == "long" else cfg.start_short
    stages: dict = {}
    with stage(stages, "generate", sampler) as info:
        out = generate_landing(settings, universe, first, cfg.end, f"bench_backfill_{which}")
        info.update(rows=out["rows"], files=out["files"])
    return {"stages": stages, "rows": out["rows"], "files": out["files"], "start": str(first), "end": str(cfg.end)}


def _gate_split(store_dir: Path, run_id: str) -> dict:
    import duckdb

    path = store_dir / "audit" / "dq_run" / f"{run_id}.parquet"
    con = duckdb.connect()
    rows = con.execute(f"select table_name, rows_validated, round(duration_s, 3) from '{path}' order by 1").fetchall()
    con.close()
    return {t: {"rows": r, "s": s} for t, r, s in rows}


def _import_pipeline(stages: dict, sampler: RssSampler) -> None:
    with stage(stages, "imports", sampler):
        import great_expectations  # noqa: F401  (what a fresh validate task pays once)

        import etl.pipeline  # noqa: F401
        import etl.quality.gate  # noqa: F401
        import etl.quality.suites  # noqa: F401
        import etl.store  # noqa: F401
        import etl.transform  # noqa: F401


def phase_backfill(cfg: BenchConfig, which: str, sampler: RssSampler) -> dict:
    from etl import pipeline

    stages: dict = {}
    _import_pipeline(stages, sampler)
    settings, _ = _settings_universe()
    first = cfg.start_long if which == "long" else cfg.start_short
    ctx = pipeline.start_run(SOURCE, first, cfg.end, run_id=f"bench_backfill_{which}")
    with stage(stages, "transform", sampler) as info:
        out = pipeline.transform_step(ctx.run_id)
        rows = out["candidate_rows"]["fct_daily_price"]
        info.update(rows=rows, landed_files=out["landed_files"])
    with stage(stages, "validate", sampler, rows=rows) as info:
        out = pipeline.validate_step(ctx.run_id)
        info["tables"] = _gate_split(settings.store_dir, ctx.run_id)
    with stage(stages, "publish", sampler, rows=rows) as info:
        info.update(pipeline.publish_step(ctx.run_id))
        info.pop("warehouse", None)
    with stage(stages, "export", sampler) as info:  # its own task after publish: not in the backfill's total
        info.update(_export(pipeline, ctx.run_id))
    total = sum(stages[s]["s"] for s in ("transform", "validate", "publish"))
    return {"stages": stages, "rows": rows, "s": round(total, 3)}


def _export(pipeline, run_id: str) -> dict:
    """pipeline.export_step for the run just published; what it exported and how the view marts were refreshed.
    Fails when it had nothing to do: each measured export must export the publish before it."""
    out = pipeline.export_step(run_id)
    if not out.get("exported"):
        raise RuntimeError(f"the export after publishing {run_id} exported nothing: {out}")
    info = json.loads((Path(out["export"]) / "_export.json").read_text())
    return {"exported": out["exported"],
            "refresh": {t: v["refresh"] for t, v in sorted(info["tables"].items()) if "refresh" in v}}


def phase_increments(cfg: BenchConfig, which: str, sampler: RssSampler) -> dict:
    """One new trading day for every listing (land, transform, validate, publish) on top of the long and of the
    short warehouse, run alternately (long, short, long, short, ...) so both see the same machine; each is the
    same run `repeats` times (a rerun of a run id replaces its own files: every repeat does the same work), the
    median is reported. Then the same with every GX suite evaluated in DuckDB (ETL_GX_ENGINE=duckdb)."""
    from etl import pipeline
    from etl.quality.gate import GX_ENGINE_ENV

    stages: dict = {}
    _import_pipeline(stages, sampler)
    warehouses = ("long", "short")
    envs = {w: {k: v for k, v in cfg.env(w).items() if k.startswith("ETL_")} for w in warehouses}
    run_ids, rows = {}, {}
    for w in warehouses:
        os.environ.update(envs[w])
        settings, universe = _settings_universe()
        ctx = pipeline.start_run(SOURCE, INCREMENT_DAY, INCREMENT_DAY, run_id=f"bench_increment_{w}")
        with stage(stages, f"extract_{w}", sampler) as info:  # stands in for the source call: not pipeline time
            info["rows"] = write_increment_extract(settings, universe, ctx)
        run_ids[w], rows[w] = ctx.run_id, stages[f"extract_{w}"]["rows"]
    steps = ("land", "transform", "validate", "publish")
    runs: dict = {(w, e): [] for w in warehouses for e in ("default", "duckdb")}
    previous = os.environ.get(GX_ENGINE_ENV)
    try:
        for engine in ("default", "duckdb"):
            if engine == "duckdb":
                os.environ[GX_ENGINE_ENV] = "duckdb"
            for _ in range(max(1, cfg.repeats)):
                for w in warehouses:
                    os.environ.update(envs[w])
                    settings, _ = _settings_universe()
                    run: dict = {}
                    for step in steps:
                        with stage(run, step, sampler, rows=rows[w]) as info:
                            getattr(pipeline, f"{step}_step")(run_ids[w])
                            if step == "validate":
                                info["tables"] = _gate_split(settings.store_dir, run_ids[w])
                    run["s"] = round(sum(run[k]["s"] for k in steps), 3)
                    # the export is a task of its own after publish: timed, not part of the increment's time
                    # (each repeat publishes a new manifest, so each export has that manifest to export)
                    with stage(run, "export", sampler) as info:
                        info.update(_export(pipeline, run_ids[w]))
                    runs[(w, engine)].append(run)
    finally:
        if previous is None:
            os.environ.pop(GX_ENGINE_ENV, None)
        else:
            os.environ[GX_ENGINE_ENV] = previous

    def median(w: str, engine: str) -> dict:
        return sorted(runs[(w, engine)], key=lambda r: r["s"])[len(runs[(w, engine)]) // 2]

    out: dict = {"stages": stages}
    for w in warehouses:
        default, duck = median(w, "default"), median(w, "duckdb")
        out[w] = {"stages": {k: default[k] for k in steps}, "rows": rows[w], "s": default["s"],
                  "runs_s": [r["s"] for r in runs[(w, "default")]],
                  "export": default["export"], "export_runs_s": [r["export"]["s"] for r in runs[(w, "default")]],
                  "duckdb_gate": {"s": duck["s"], "runs_s": [r["s"] for r in runs[(w, "duckdb")]],
                                  "stages": {k: duck[k] for k in steps}}}
    return out


FLOOR_SQL = """
create table floor_price as
with listing as (
    select * from (values {listings}) as t(symbol, currency, security_type)
),

-- the FX quotes (their own landing partitions), carried over at most 5 calendar days onto every day
quotes as (
    select listing.currency, landed.bar_date as observed_date, 1.0 / landed."Close" as rate_to_usd
    from read_parquet({fx_files}, union_by_name = true) as landed
    join listing using (symbol)
),

days as (
    select cast(d as date) as calendar_date, c.currency
    from range(date '{first}', date '{last}' + 1, interval 1 day) as t(d)
    cross join (select distinct currency from quotes) as c
),

daily_fx as (
    select days.calendar_date, days.currency, quotes.rate_to_usd
    from days asof join quotes on days.currency = quotes.currency and days.calendar_date >= quotes.observed_date
    where days.calendar_date - quotes.observed_date <= 5
),

priced as (
    select landed.*, listing.currency,
        landed."Adj Close" / lag(landed."Adj Close") over (partition by landed.symbol order by landed.bar_date) - 1
            as daily_return
    from read_parquet({files}, union_by_name = true) as landed
    join listing using (symbol)
)

select priced.*,
    case when priced.currency = 'USD' then 1.0 else daily_fx.rate_to_usd end as fx_rate_to_usd,
    priced."Close" * case when priced.currency = 'USD' then 1.0 else daily_fx.rate_to_usd end as close_usd
from priced
left join daily_fx on daily_fx.currency = priced.currency and daily_fx.calendar_date = priced.bar_date
"""


def phase_floor(cfg: BenchConfig, which: str, sampler: RssSampler) -> dict:
    """DuckDB alone, with the pipeline's memory limit: the same landing files into one stored table with the
    daily return on adj close, the day's FX rate (5-day carry-over) and the close in USD."""
    import duckdb

    from etl.config import duckdb_config
    from etl.landing import landed_files

    settings, universe = _settings_universe()
    stages: dict = {}
    path = Path(cfg.work) / which / "floor.duckdb"
    path.unlink(missing_ok=True)
    first = cfg.start_long if which == "long" else cfg.start_short
    with stage(stages, "floor", sampler) as info:
        files = landed_files(settings, "prices", SOURCE, set(universe.markets) | {"FX"}, first, cfg.end)
        fx_files = landed_files(settings, "prices", SOURCE, {"FX"}, first, cfg.end)
        listings = ", ".join(f"('{s.symbol}', '{s.currency}', '{s.security_type}')" for s in universe.listings)
        con = duckdb.connect(str(path), config=duckdb_config())
        con.execute("set enable_progress_bar = false")
        con.execute(FLOOR_SQL.format(files="[" + ", ".join(f"'{f}'" for f in files) + "]",
                                     fx_files="[" + ", ".join(f"'{f}'" for f in fx_files) + "]",
                                     listings=listings, first=first, last=cfg.end))
        con.execute("checkpoint")
        info["rows"] = con.execute("select count(*) from floor_price").fetchone()[0]
        info["nulls_usd"] = con.execute("select count(*) from floor_price where close_usd is null").fetchone()[0]
        con.close()
    for leftover in (path, path.with_suffix(".duckdb.wal")):
        leftover.unlink(missing_ok=True)
    return {"stages": stages, "rows": stages["floor"]["rows"], "s": stages["floor"]["s"]}


def phase_source(cfg: BenchConfig, which: str, sampler: RssSampler) -> dict:
    """Calls the real YFinanceSource makes for one daily run of every security (fake Yahoo behind it)."""
    import pandas as pd

    from etl.sources.yfinance_source import YFinanceSource

    _, universe = _settings_universe()
    symbols = universe.symbols_for_market(None)
    day = INCREMENT_DAY

    class FakeTicker:
        def __init__(self, symbol: str) -> None:
            self.symbol = symbol

        def history(self, **kwargs):
            index = pd.DatetimeIndex([pd.Timestamp(day)], name="Date").tz_localize("UTC")
            return pd.DataFrame({"Open": [10.0], "High": [11.0], "Low": [9.0], "Close": [10.5],
                                 "Adj Close": [10.4], "Volume": [1000], "Dividends": [0.0],
                                 "Stock Splits": [0.0]}, index=index)

        @property
        def info(self):
            return {"longName": self.symbol, "quoteType": "EQUITY"}

    source = YFinanceSource(universe, min_interval=0.0, ticker_factory=FakeTicker)
    stages: dict = {}
    with stage(stages, "source_fetch", sampler, rows=len(symbols)):
        result = source.fetch(symbols, day, day)
    kinds = dict(source.calls_by_kind)
    n = len(symbols)
    return {"stages": stages, "symbols": n, "fx_pairs": sum(1 for s in universe.listings if s.security_type == "fx"),
            "calls_by_kind": kinds,
            "price_calls_per_security": round(kinds.get("history", 0) / n, 3),
            "metadata_calls_per_security": round(kinds.get("info", 0) / n, 3),
            "calls_per_security": round(source.total_calls / n, 3), "frames": len(result.frames)}


def phase_airflow(cfg: BenchConfig, which: str, sampler: RssSampler) -> dict:
    """The demo window (Sept 2025, sample source, default universe) via `airflow dags test` and `python -m etl`."""
    root = Path(cfg.work) / "airflow"
    shutil.rmtree(root, ignore_errors=True)
    bin_dir = Path(sys.executable).parent
    start, end = "2025-09-01", "2025-09-30"
    base = {k: v for k, v in os.environ.items() if not k.startswith("ETL_")}
    base.update({"GX_ANALYTICS_ENABLED": "false", "PYTHONPATH": str(PROJECT_ROOT),
                 "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"})

    def env_for(name: str) -> dict:
        data = root / name / "data"
        return {**base, "ETL_DATA_DIR": str(data), "ETL_WAREHOUSE": str(data / "warehouse.duckdb")}

    home = root / "airflow_home"
    home.mkdir(parents=True)
    af_env = {**env_for("airflow"), "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
              "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
              "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db"}
    stages: dict = {}

    def run(cmd, env, timeout=900):
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{(proc.stdout + proc.stderr)[-3000:]}")
        return proc

    with stage(stages, "airflow_setup", sampler):
        run([str(bin_dir / "airflow"), "db", "migrate"], af_env)
        run([str(bin_dir / "airflow"), "pools", "set", "warehouse_writer", "1", "bench"], af_env)
    conf = json.dumps({"source": "sample", "start": start, "end": end})
    with stage(stages, "airflow_dags_test", sampler):
        for dag_id in ("market_daily_xhkg", "market_daily_us"):
            out = run([str(bin_dir / "airflow"), "dags", "test", dag_id, end, "-c", conf], af_env)
            if "state=success" not in out.stdout + out.stderr:
                raise RuntimeError(f"airflow dags test {dag_id} did not succeed")
    with stage(stages, "python_m_etl_run", sampler):
        for market in ("XHKG", "US"):
            run([sys.executable, "-m", "etl", "run", "--source", "sample", "--start", start, "--end", end,
                 "--market", market], env_for("cli"))
    af, cli = stages["airflow_dags_test"]["s"], stages["python_m_etl_run"]["s"]
    return {"stages": stages, "airflow_s": af, "cli_s": cli, "ratio": round(af / cli, 2) if cli else None}


PHASES = {"generate": phase_generate, "backfill": phase_backfill, "floor": phase_floor,
          "increments": phase_increments, "source": phase_source, "airflow": phase_airflow}


def run_phase(name: str, config: Path, which: str, out: Path) -> None:
    cfg = BenchConfig(**json.loads(config.read_text()))
    sampler = RssSampler()
    started = time.perf_counter()
    load_start = round(os.getloadavg()[0], 2)  # 1-minute load average: other work on the machine shows here
    try:
        result = PHASES[name](cfg, which, sampler)
    finally:
        sampler.close()
    result.update(phase=name, which=which, wall_s=round(time.perf_counter() - started, 3),
                  peak_rss_mb=sampler.peak_mb(), loadavg=[load_start, round(os.getloadavg()[0], 2)])
    out.write_text(json.dumps(result, indent=2, default=str))


def _child(cfg: BenchConfig, name: str, which: str) -> dict:
    out = Path(cfg.work) / f"phase-{name}-{which}.json"
    out.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "etl.benchmark", "--phase", name, "--which", which,
           "--config", str(Path(cfg.work) / "config.json"), "--phase-out", str(out)]
    print(f"  .. {name} ({which})", flush=True)
    env = cfg.env(which)
    env.setdefault("ETL_LOG_LEVEL", "WARNING")
    if cfg.in_process:
        saved = dict(os.environ)
        os.environ.update({k: v for k, v in env.items() if k.startswith(("ETL_", "GX_"))})
        try:
            run_phase(name, Path(cfg.work) / "config.json", which, out)
        finally:
            os.environ.clear()
            os.environ.update(saved)
    else:
        proc = subprocess.run(cmd, env=env, text=True, capture_output=True)
        if proc.returncode != 0 or not out.exists():
            raise RuntimeError(f"benchmark phase {name} ({which}) failed:\n{(proc.stdout + proc.stderr)[-6000:]}")
    result = json.loads(out.read_text())
    print(f"     {result['wall_s']:.1f} s wall, peak {result['peak_rss_mb']:.0f} MB", flush=True)
    return result


# ------------------------------------------------------------------------------------------ report


def machine() -> dict:
    import psutil

    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import duckdb

    return {"nproc": os.cpu_count(), "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "cpu": cpu, "python": platform.python_version(), "duckdb": duckdb.__version__,
            "platform": platform.platform()}


def _ratio(a, b):
    return round(a / b, 2) if a is not None and b else None


def summarize(cfg: BenchConfig, phases: dict) -> dict:
    gen, back, floor = phases["generate_long"], phases["backfill_long"], phases["floor_long"]
    inc_long, inc_short = phases["increment_long"], phases["increment_short"]
    source = phases["source"]
    pipeline_peaks = [back["peak_rss_mb"], inc_long["peak_rss_mb"], inc_short["peak_rss_mb"]]
    results = {
        "securities": source["symbols"] - source["fx_pairs"],  # the default universe's 36 are always in
        "securities_requested": cfg.securities,
        "listings_with_fx": source["symbols"],
        "years": round(cfg.days / 365.25, 2),
        "days": cfg.days,
        "short_days": cfg.short_days,
        "window": [gen["start"], gen["end"]],
        "increment_day": str(INCREMENT_DAY),
        "landing_files": gen["files"],
        "landing_rows": gen["rows"],
        "price_rows": back["rows"],
        "generate_s": gen["stages"]["generate"]["s"],
        "backfill_s": back["s"],
        "backfill_rows_per_s": round(back["rows"] / back["s"]) if back["s"] else None,
        "floor_s": floor["s"],
        "floor_runs_s": floor.get("all_s", [floor["s"]]),
        "backfill_vs_floor": _ratio(back["s"], floor["s"]),
        "increment_long_s": inc_long["s"],
        "increment_short_s": inc_short["s"],
        "increment_ratio": _ratio(inc_long["s"], inc_short["s"]),
        "increment_runs_s": {"long": inc_long["runs_s"], "short": inc_short["runs_s"]},
        # the Parquet export, a task of its own after publish (not in the times above): the median increment's
        # export on each warehouse, and the backfill's
        "export_long_s": inc_long["export"]["s"],
        "export_short_s": inc_short["export"]["s"],
        "export_runs_s": {"long": inc_long["export_runs_s"], "short": inc_short["export_runs_s"]},
        "backfill_export_s": back["stages"]["export"]["s"],
        # the same increments with every GX suite evaluated in DuckDB (ETL_GX_ENGINE=duckdb)
        "increment_long_duckdb_gate_s": inc_long["duckdb_gate"]["s"],
        "increment_short_duckdb_gate_s": inc_short["duckdb_gate"]["s"],
        "increment_ratio_duckdb_gate": _ratio(inc_long["duckdb_gate"]["s"], inc_short["duckdb_gate"]["s"]),
        "increment_rows": inc_long["rows"],
        "peak_rss_mb": max(pipeline_peaks),
        "peak_rss_mb_floor": floor["peak_rss_mb"],
        "source_calls_per_security": source["price_calls_per_security"],
        "source_calls_per_security_with_metadata": source["calls_per_security"],
        "source_calls_by_kind": source["calls_by_kind"],
        "stages": {
            "backfill": back["stages"],
            "floor": floor["stages"],
            "increment_long": inc_long["stages"],
            "increment_short": inc_short["stages"],
            "increment_export_long": inc_long["export"],
            "increment_export_short": inc_short["export"],
            "increment_long_duckdb_gate": inc_long["duckdb_gate"]["stages"],
            "increment_short_duckdb_gate": inc_short["duckdb_gate"]["stages"],
            "backfill_short": phases["backfill_short"]["stages"],
        },
        "peak_rss_mb_by_phase": {k: v["peak_rss_mb"] for k, v in phases.items()},
        "load_average_by_phase": {k: v.get("loadavg") for k, v in phases.items()},
        "machine": machine(),
    }
    if "airflow" in phases:
        af = phases["airflow"]
        results["airflow"] = {"dags_test_s": af["airflow_s"], "python_m_etl_run_s": af["cli_s"],
                              "ratio": af["ratio"], "setup_s": af["stages"]["airflow_setup"]["s"]}
    measured = {k: results.get(k) for k in TARGETS}
    results["targets"] = {
        k: {"target": t, "measured": measured[k], "met": measured[k] is not None and measured[k] <= t}
        for k, t in TARGETS.items()
    }
    return results


def table(results: dict) -> str:
    st = results["stages"]
    rows = [
        ("securities x years", f"{results['securities']} x {results['years']} ({results['price_rows']:,} price rows)"),
        ("generate landing (not timed)", f"{results['generate_s']:.1f} s, {results['landing_files']:,} files"),
    ]
    for name in ("transform", "validate", "publish"):
        s = st["backfill"][name]
        rows.append((f"backfill: {name}", f"{s['s']:.2f} s  {s.get('rows_per_s') or 0:>12,} rows/s  "
                                           f"peak {s['peak_rss_mb']:.0f} MB"))
    rows += [
        ("backfill total", f"{results['backfill_s']:.2f} s  {results['backfill_rows_per_s'] or 0:>12,} rows/s"),
        ("backfill export (own task)", f"{results['backfill_export_s']:.2f} s (not in the total)"),
        ("floor (DuckDB alone)", f"{results['floor_s']:.2f} s  -> backfill / floor = {results['backfill_vs_floor']}x"),
        ("peak RSS (pipeline)", f"{results['peak_rss_mb']:.0f} MB (floor {results['peak_rss_mb_floor']:.0f} MB)"),
    ]
    for which in ("long", "short"):
        s = st[f"increment_{which}"]
        split = ", ".join(f"{k} {s[k]['s']:.2f}" for k in ("land", "transform", "validate", "publish"))
        rows.append((f"increment on {which} warehouse", f"{results[f'increment_{which}_s']:.2f} s ({split})"))
    rows.append(("increment long / short", f"{results['increment_ratio']}x"))
    rows.append(("increment export (own task)", f"long {results['export_long_s']:.2f} s, short "
                                               f"{results['export_short_s']:.2f} s (not in the increments)"))
    rows.append(("increments, DuckDB gate", f"long {results['increment_long_duckdb_gate_s']:.2f} s, short "
                                           f"{results['increment_short_duckdb_gate_s']:.2f} s, "
                                           f"{results['increment_ratio_duckdb_gate']}x (ETL_GX_ENGINE=duckdb)"))
    rows.append(("source calls per security", f"{results['source_calls_per_security']} prices+actions, "
                                              f"{results['source_calls_per_security_with_metadata']} with metadata"))
    if "airflow" in results:
        af = results["airflow"]
        rows.append(("demo: airflow dags test", f"{af['dags_test_s']:.1f} s vs python -m etl run "
                                                f"{af['python_m_etl_run_s']:.1f} s ({af['ratio']}x)"))
    rows.append(("targets", ", ".join(f"{k} {'met' if v['met'] else 'MISSED'} ({v['measured']} vs {v['target']})"
                                      for k, v in results["targets"].items())))
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"{a:<{width}}  {b}" for a, b in rows)


def run_benchmark(cfg: BenchConfig, out: Path) -> dict:
    work = Path(cfg.work)
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    (work / "config.json").write_text(json.dumps(asdict(cfg)))
    cfg.universe_file.write_text(universe_yaml(cfg.securities, cfg.start_long - timedelta(days=60)))
    print(f"benchmark: {cfg.securities} securities, {cfg.days} days of history "
          f"({cfg.start_long}..{cfg.end}), short warehouse {cfg.short_days} days; work dir {work}", flush=True)
    phases = {}
    phases["generate_long"] = _child(cfg, "generate", "long")
    # the floor before and after the backfill; the faster of the two is the machine's reference
    floors = [_child(cfg, "floor", "long")]
    phases["backfill_long"] = _child(cfg, "backfill", "long")
    floors.append(_child(cfg, "floor", "long"))
    phases["floor_long"] = min(floors, key=lambda f: f["s"]) | {"all_s": [f["s"] for f in floors]}
    phases["generate_short"] = _child(cfg, "generate", "short")
    phases["backfill_short"] = _child(cfg, "backfill", "short")
    increments = _child(cfg, "increments", "both")
    for w in ("long", "short"):
        phases[f"increment_{w}"] = increments[w] | {"peak_rss_mb": increments["peak_rss_mb"],
                                                    "loadavg": increments["loadavg"]}
    phases["source"] = _child(cfg, "source", "long")
    if cfg.airflow:
        phases["airflow"] = _child(cfg, "airflow", "long")
    results = summarize(cfg, phases)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str))
    print()
    print(table(results))
    print(f"\nwritten to {out}")
    return results


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m etl.benchmark", description=__doc__.split("\n\n")[0])
    p.add_argument("--securities", type=int, default=5000, help="listings besides the FX pairs (default 5000)")
    p.add_argument("--years", type=float, default=20.0, help="years of daily history (default 20)")
    p.add_argument("--days", type=int, help="history in calendar days instead of --years (smoke runs)")
    p.add_argument("--short-years", type=float, default=1.0,
                   help="history of the second warehouse for the increment ratio (default 1 year)")
    p.add_argument("--work", default=str(DEFAULT_WORK), help="scratch dir, wiped first (default bench/work)")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="results file (default bench/results.json)")
    p.add_argument("--no-airflow", action="store_true", help="skip the `airflow dags test` comparison")
    p.add_argument("--repeats", type=int, default=3, help="increment runs per warehouse, median reported (3)")
    p.add_argument("--in-process", action="store_true",
                   help="run every phase in this process (smoke tests; peak memory is then the whole process's)")
    p.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)
    p.add_argument("--which", default="long", help=argparse.SUPPRESS)
    p.add_argument("--config", help=argparse.SUPPRESS)
    p.add_argument("--phase-out", help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.phase:
        run_phase(args.phase, Path(args.config), args.which, Path(args.phase_out))
        return 0
    days = args.days or max(2, round(args.years * 365.25))
    short = max(1, round(args.short_years * 365.25))
    if short >= days:  # a history shorter than the "short" one: compare with a quarter of it instead
        short = max(1, days // 4)
    cfg = BenchConfig(securities=args.securities, days=days, short_days=short,
                      work=str(Path(args.work).resolve()), airflow=not args.no_airflow,
                      repeats=args.repeats, in_process=args.in_process)
    run_benchmark(cfg, Path(args.out).resolve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
