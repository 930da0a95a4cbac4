"""Transform: landing -> staging -> intermediate -> marts, as candidate tables in the run's scratch DuckDB.

Nothing here is visible to readers: the candidate database lives under work/<run_id>/ until the gate passes
and publish merges it into the store.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import timedelta
from pathlib import Path

import duckdb
import pandas as pd

from etl.calendars import sessions_frame
from etl.config import PROJECT_ROOT, Settings, Universe, duckdb_config
from etl.faults import pause_point
from etl.landing import landed_files
from etl.run import RunContext
from etl.store import Store

log = logging.getLogger(__name__)

SQL_DIR = PROJECT_ROOT / "sql"
# Enough history before the window for the first day's return, the FX carry-over and the split-repeat rule.
LOOKBACK_DAYS = 35

MODELS = [
    "staging/stg_landing__prices",
    "staging/stg_universe__securities",
    "intermediate/int_prices_checked",
    "intermediate/int_fx_rate_filled",
    "intermediate/int_security_versions",
    "intermediate/int_corporate_action_checked",
    "marts/dim_date",
    "marts/dim_exchange",
    "marts/dim_currency",
    "marts/dim_company",
    "marts/dim_security",
    "marts/fct_fx_rate",
    "marts/fct_daily_price",
    "marts/fct_corporate_action",
    "audit/quarantine",
    "audit/restatement",
]
# Financing events read what the core built plus what is already published (rates, listings, dividends).
EVENT_MODELS = [
    "staging/stg_landing__shares",
    "staging/stg_landing__cash_flow",
    "staging/stg_landing__filings",
    "staging/stg_curated__financing_events",
    "intermediate/int_known_fx_rate",
    "intermediate/int_usd_rate_by_day",
    "intermediate/int_known_security",
    "intermediate/int_financing_events_unioned",
    "marts/dim_event_type",
    "marts/fct_financing_event",
    "marts/fct_cash_flow_quarterly",
    "marts/fct_valuation_daily",
    "marts/mart_event_reaction",
    "marts/mart_adr_parity",
]
# Marts published as views over the facts (computed at read time, so late prices fill them in); the
# candidate still materialises them so the gate validates their output on the run's data.
VIEW_MARTS = ["mart_event_reaction", "mart_adr_parity"]
MART_TABLES = [m.split("/")[1] for m in MODELS + EVENT_MODELS
               if m.startswith("marts/") and m.split("/")[1] not in VIEW_MARTS]


class TransformError(RuntimeError):
    """The window cannot be transformed (nothing landed, a model failed); names the model and the cause."""


def candidate_path(ctx: RunContext, settings: Settings) -> Path:
    return ctx.work_dir(settings) / "candidate.duckdb"


def verdict_path(ctx: RunContext, settings: Settings) -> Path:
    """The gate's pass verdict for exactly one candidate file (see etl.pipeline); removed by every transform."""
    return ctx.work_dir(settings) / "verdict.json"


# reference columns whose type pandas cannot infer when every value is null (no listing has listed_since)
REFERENCE_TYPES = {"ref_listing": {"listed_since": "date"}}
# reference tables the gate and publish read from the candidate; the others are temporary (see TEMP_MODELS)
REFERENCE_KEPT = {"ref_listing", "ref_currency"}


def _reference_frames(universe: Universe) -> dict[str, pd.DataFrame]:
    companies = {c["id"]: c for c in universe.companies}
    listing = pd.DataFrame(
        [
            {
                "symbol": s.symbol,
                "company_id": s.company_id,
                "company_name": companies.get(s.company_id, {}).get("name"),
                "sector": companies.get(s.company_id, {}).get("sector"),
                "listing_name": s.name,
                "exchange_code": s.exchange,
                "market_code": s.market,
                "currency": s.currency,
                "security_type": s.security_type,
                "adr_ratio": s.adr_ratio,
                "underlying_symbol": s.underlying,
                "listed_since": s.listed_since,
                "quote_min": s.quote_range[0] if s.quote_range else None,
                "quote_max": s.quote_range[1] if s.quote_range else None,
            }
            for s in universe.listings
        ]
    ).astype({"adr_ratio": "float64", "quote_min": "float64", "quote_max": "float64",
              "listing_name": "string", "underlying_symbol": "string",
              "company_id": "string", "company_name": "string", "sector": "string"})
    company = pd.DataFrame(
        [{"company_id": c["id"], "company_name": c["name"], "sector": c.get("sector")}
         for c in universe.companies]
    )
    exchange = pd.DataFrame(
        [{"exchange_code": mic, "exchange_name": e["name"], "market_code": e["market"],
          "timezone": e["timezone"], "country_code": e.get("country")} for mic, e in universe.exchanges.items()]
    )
    exchange["benchmark_symbol"] = exchange["market_code"].map(universe.benchmarks).astype("string")
    currency = pd.DataFrame(
        [{"currency_code": code, "currency_name": c["name"], "fx_symbol": c.get("fx_symbol")}
         for code, c in universe.currencies.items()]
    )
    from etl.events import load_curated_events, load_event_types
    from etl.sources.base import CASH_FLOW_ITEMS

    event_types = load_event_types()
    return {
        "ref_listing": listing, "ref_company": company, "ref_exchange": exchange, "ref_currency": currency,
        "ref_event_type": event_types,
        "ref_curated_event": load_curated_events(universe, event_types=event_types),
        "ref_cash_flow_item": pd.DataFrame({"line_item": list(CASH_FLOW_ITEMS),
                                            "flow_type": list(CASH_FLOW_ITEMS.values())}),
    }


def _parquet_view(con: duckdb.DuckDBPyConnection, name: str, files: list[str], empty_sql: str) -> None:
    if files:
        listed = ", ".join(f"'{f}'" for f in files)
        con.execute(f"create or replace view {name} as select * from read_parquet([{listed}], union_by_name=true)")
    else:
        con.execute(f"create or replace view {name} as {empty_sql}")


def model_sql(model: str) -> str:
    return (SQL_DIR / f"{model}.sql").read_text()


FUNDAMENTALS_EMPTY = {
    "shares": "cast(null as varchar) as symbol, cast(null as varchar) as \"Date\", cast(null as double) as shares",
    "cashflow": "cast(null as varchar) as symbol, cast(null as varchar) as line_item, "
                "cast(null as date) as period_end, cast(null as double) as value, "
                "cast(null as varchar) as statement_currency",
    "filings": "cast(null as varchar) as symbol, cast(null as date) as filing_date, "
               "cast(null as varchar) as form_type, cast(null as varchar) as title, cast(null as varchar) as url",
}


# Price staging is needed only while the marts are built (issue 6): a temporary table (in memory, spilling to
# disk past ETL_DUCKDB_MEMORY_LIMIT) is written 3x faster than a stored one, and int_prices_checked (staging plus
# two small joins) is a view over it, instead of writing every price row of a backfill (25M) twice more.
# The same for every staging and intermediate model the gate does not read: the candidate file then holds the
# marts and what validation and publish need, and its checkpoint (fsync'd) writes less (half a daily run's file).
KEPT_IN_CANDIDATE = {"int_known_security"}
TEMP_MODELS = {m.split("/")[1] for m in MODELS + EVENT_MODELS
               if m.startswith(("staging/", "intermediate/")) and m.split("/")[1] not in KEPT_IN_CANDIDATE}
VIEW_MODELS = {"int_prices_checked"}
# Facts stored in date order: publish cuts them into one file per month, and each month's query then reads
# only that month's row groups (zone maps) instead of the whole table (240 months in a 20-year backfill).
DATE_ORDERED = {"fct_daily_price", "fct_fx_rate", "fct_corporate_action", "fct_valuation_daily"}


def _published_relations(con: duckdb.DuckDBPyConnection, settings: Settings, lake_snapshot: int | None
                         ) -> dict[str, str | None]:
    """SQL relations for the published tables the transform reads, from the backend in use (None: not
    published yet)."""
    tables = ("dim_security", "fct_fx_rate", "fct_corporate_action")
    if settings.is_ducklake:
        from etl import ducklake_store

        ducklake_store.attach_settings(con, settings)
        return {t: ducklake_store.published_relation(con, t, lake_snapshot) for t in tables}
    store = Store(settings)
    published = store.current()["tables"]  # one read of the manifest for the three tables
    out = {}
    for table in tables:
        listed = ", ".join(f"'{store.root / rel}'" for _, rel in sorted(published.get(table, {}).items()))
        out[table] = f"read_parquet([{listed}], union_by_name=true)" if listed else None
    return out


def _run_models(con: duckdb.DuckDBPyConnection, models: list[str]) -> None:
    for model in models:
        name = model.split("/")[1]
        try:
            if name in VIEW_MODELS:
                con.execute(f"create or replace temp view {name} as {model_sql(model)}")
            elif name in TEMP_MODELS:
                con.execute(f"create or replace temp table {name} as {model_sql(model)}")
            elif name in DATE_ORDERED:
                ordered = f"select * from (\n{model_sql(model)}\n) order by date_key"
                con.execute(f"create or replace table {name} as {ordered}")
            else:
                con.execute(f"create or replace table {name} as {model_sql(model)}")
        except duckdb.Error as exc:
            raise TransformError(f"model {model}.sql failed: {exc}") from exc


def transform(ctx: RunContext, settings: Settings, universe: Universe, lake_snapshot: int | None = None) -> dict:
    """Build every mart for the run's window from landing; returns candidate row counts per table.

    The published state it reads (security versions, FX rates, corporate actions) comes from the backend in
    use: the file store's current manifest, or the DuckLake at `lake_snapshot` (default its latest)."""
    started = time.perf_counter()
    path = candidate_path(ctx, settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The candidate is built under another name and renamed into place when complete, so a transform killed
    # half-way leaves no candidate that validate could mistake for a whole one; the old verdict goes first.
    building = path.with_name("candidate.building.duckdb")
    for stale in (verdict_path(ctx, settings), path, path.with_suffix(".duckdb.wal"), building,
                  building.with_suffix(".duckdb.wal")):
        stale.unlink(missing_ok=True)  # a retried transform starts from landing again
    markets = {universe.market_of(s) for s in ctx.symbols}
    start = ctx.effective_start  # the window plus the restatement lookback, if any
    lookback_start = start - timedelta(days=LOOKBACK_DAYS)
    price_files = landed_files(settings, "prices", ctx.source, markets, lookback_start, ctx.end)
    window_files = landed_files(settings, "prices", ctx.source, markets, start, ctx.end)
    if not window_files:
        raise TransformError(
            f"nothing landed for source={ctx.source} markets={sorted(markets)} between {start} and {ctx.end}"
        )
    meta_files = landed_files(settings, "metadata", ctx.source, markets, start, ctx.end)

    con = duckdb.connect(str(building), config=duckdb_config())
    try:
        variables = {
            "run_id": ctx.run_id,
            "source": ctx.source,
            "is_synthetic": ctx.is_synthetic,
            "window_start": start,
            "window_end": ctx.end,
            "calendar_start": universe.calendar_start,
            "calendar_end": universe.calendar_end,
            # landing files are named run-<run_id>.parquet: only another run's file can hold a restatement
            "window_has_other_runs": any(Path(f).name != f"run-{ctx.run_id}.parquet" for f in window_files),
        }
        for key, value in variables.items():
            con.execute(f"set variable {key} = ?", [value])
        con.execute("create macro surrogate_key(x) as cast(('0x' || substr(md5(cast(x as varchar)), 1, 15)) as bigint)")
        for name, frame in _reference_frames(universe).items():
            con.register(f"{name}_frame", frame)
            # a column that is null in every row has no type in pandas: give the typed ones theirs
            casts = ", ".join(f"cast(cast({col} as varchar) as {kind}) as {col}"
                              for col, kind in REFERENCE_TYPES.get(name, {}).items())
            temp = "" if name in REFERENCE_KEPT else "temp "
            con.execute(f"create {temp}table {name} as select * {f'replace ({casts}) ' if casts else ''}"
                        f"from {name}_frame")
            con.unregister(f"{name}_frame")
        sessions = sessions_frame(universe, settings.store_dir / "reference")
        con.register("sessions_frame", sessions)
        con.execute("create temp table ref_session as select market_code, cast(session_date as date) as session_date "
                    "from sessions_frame")
        con.unregister("sessions_frame")
        con.execute("create table run_symbols as select unnest(?::varchar[]) as symbol", [ctx.symbols])
        _parquet_view(con, "landing_prices", price_files, "select * from (values (1)) where false")
        _parquet_view(
            con, "landing_metadata", meta_files,
            "select cast(null as varchar) as symbol, cast(null as varchar) as info, cast(null as varchar) as source, "
            "cast(null as date) as bar_date, cast(null as timestamptz) as extracted_at where false",
        )
        for kind, empty in FUNDAMENTALS_EMPTY.items():
            files = landed_files(settings, kind, ctx.source, markets, start, ctx.end)
            _parquet_view(con, f"landing_{kind}", files, f"select {empty}, cast(null as varchar) as source, "
                          "cast(null as varchar) as run_id, cast(null as timestamptz) as extracted_at where false")
        published = _published_relations(con, settings, lake_snapshot)
        if published.get("dim_security"):
            # temp: a view over the lake only resolves while the lake is attached (this connection)
            kind = "temp view" if settings.is_ducklake else "view"
            con.execute(f"create {kind} published_dim_security as select *, company_code as company_id "
                        f"from {published['dim_security']}")
        else:
            con.execute(
                "create table published_dim_security (symbol varchar, company_id varchar, security_key bigint, "
                "company_key bigint, "
                "exchange_code varchar, currency_code varchar, security_type varchar, adr_ratio double, "
                "underlying_symbol varchar, market_code varchar, security_name varchar, vendor_name varchar, "
                "vendor_sector varchar, attribute_hash varchar, valid_from date, valid_to date, "
                "is_current boolean)"
            )
        _run_models(con, MODELS)
        pause_point("transform:after_core_models")
        for table in ("fct_fx_rate", "fct_corporate_action"):
            relation = published.get(table) or f"(select * from {table} where false)"
            kind = "temp view" if settings.is_ducklake else "view"
            con.execute(f"create or replace {kind} published_{table} as select * from {relation}")
        _run_models(con, EVENT_MODELS)
        counted = [*MART_TABLES, *VIEW_MARTS, "quarantine", "restatement"]
        counts = dict(zip(counted, con.execute(  # one query: 16 round trips were ~10% of a daily transform's SQL
            "select " + ", ".join(f"(select count(*) from {t})" for t in counted)).fetchone(), strict=True))
        # the gate's verdict names this id; publish refuses a candidate whose id the verdict does not name
        con.execute("create table candidate_info as select ? as candidate_id, ? as run_id, now() as built_at",
                    [uuid.uuid4().hex, ctx.run_id])
        if settings.is_ducklake:
            con.execute("detach lake")
        con.execute("checkpoint")
    finally:
        con.close()
    building.replace(path)
    log.info("transform %s: %s in %.2fs", ctx.run_id, counts, time.perf_counter() - started)
    return {"run_id": ctx.run_id, "candidate_rows": counts, "landed_files": len(price_files),
            "seconds": round(time.perf_counter() - started, 3)}
