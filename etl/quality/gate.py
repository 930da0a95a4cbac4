"""Run the gate on a run's candidate tables: GX suites and SQL invariants, on the run's new rows only, plus the
invariants between those rows and the published state that can be checked on the published rows the run
touches (its listings' versions, its months). GX suites run in GX's pandas engine on bounded frames, or as the
same expectations in DuckDB above ETL_GX_MAX_ROWS (see GX_ENGINE_ENV).

Results go to the audit tables whatever the outcome; a failed blocking check raises ValidationError naming
the table, the expectation and example offending rows, and the candidate is never published.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from etl import audit
from etl.config import duckdb_config
from etl.faults import pause_point

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
log = logging.getLogger(__name__)

# Which engine runs a table's GX suite (issue 6): GX's own pandas engine on the rows copied into a DataFrame, or
# the same expectations translated to DuckDB SQL in the candidate (etl/quality/sql_engine.py, checked against GX
# by tests/unit/test_sql_engine.py). "auto" uses GX up to ETL_GX_MAX_ROWS rows and DuckDB above (a backfill's
# 25M price rows would be ~6 GB of pandas and minutes of GX); "gx" and "duckdb" force one engine. An expectation
# DuckDB cannot translate always runs in GX.
GX_ENGINE_ENV = "ETL_GX_ENGINE"
GX_MAX_ROWS_ENV = "ETL_GX_MAX_ROWS"
DEFAULT_GX_MAX_ROWS = 100_000
# GX suites run in this many processes (1 or 2; default 2 with 2+ cores): see _gx_results
GX_PROCESSES_ENV = "ETL_GX_PROCESSES"
MIN_EXPECTATIONS_TO_SPLIT = 20
PARENT_HEAD_START = 4  # expectations' worth of other work the parent does while its child validates

EXAMPLE_COLUMNS = {
    "dim_date": ["date_key"],
    "dim_exchange": ["exchange_code"],
    "dim_currency": ["currency_code"],
    "dim_company": ["company_code"],
    "dim_security": ["symbol", "valid_from"],
    "fct_daily_price": ["symbol", "date_key"],
    "fct_fx_rate": ["currency_code", "date_key"],
    "fct_corporate_action": ["symbol", "date_key", "action_type"],
    "dim_event_type": ["event_type_code"],
    "fct_financing_event": ["company_code", "symbol", "date_key", "event_type_code"],
    "fct_cash_flow_quarterly": ["company_code", "period_end_date_key", "flow_type"],
    "fct_valuation_daily": ["symbol", "date_key"],
    "mart_event_reaction": ["symbol", "date_key", "event_type_code"],
    "mart_adr_parity": ["adr_symbol", "date_key"],
}

# (table, name, severity, query returning offending rows)
INVARIANTS = [
    ("fct_daily_price", "ri_security", "error",
     "select symbol, date_key from fct_daily_price where security_key not in (select security_key from dim_security)"),
    ("fct_daily_price", "ri_date", "error",
     "select symbol, date_key from fct_daily_price where date_key not in (select date_key from dim_date)"),
    ("fct_daily_price", "ri_currency", "error",
     "select symbol, date_key from fct_daily_price where currency_key not in (select currency_key from dim_currency)"),
    ("fct_daily_price", "ri_exchange", "error",
     "select symbol, date_key from fct_daily_price where exchange_key not in (select exchange_key from dim_exchange)"),
    ("fct_daily_price", "has_rows", "error",
     "select 'no publishable price rows in the window' as problem where (select count(*) from fct_daily_price) = 0"),
    ("fct_daily_price", "fx_gap", "warning",
     "select symbol, date_key from fct_daily_price where close_usd is null"),
    ("fct_fx_rate", "ri_currency", "error",
     "select currency_code, date_key from fct_fx_rate "
     "where currency_key not in (select currency_key from dim_currency)"),
    ("fct_fx_rate", "ri_date", "error",
     "select currency_code, date_key from fct_fx_rate where date_key not in (select date_key from dim_date)"),
    ("fct_corporate_action", "ri_security", "error",
     "select symbol, date_key from fct_corporate_action "
     "where security_key not in (select security_key from dim_security)"),
    ("fct_corporate_action", "ri_date", "error",
     "select symbol, date_key from fct_corporate_action where date_key not in (select date_key from dim_date)"),
    ("dim_security", "ri_company", "error",
     "select symbol from dim_security where company_key is not null "
     "and company_key not in (select company_key from dim_company)"),
    ("dim_security", "one_current_version", "error",
     "select symbol from dim_security group by symbol having count(*) filter (where is_current) <> 1"),
    ("dim_security", "no_overlapping_versions", "error",
     "select a.symbol from dim_security a join dim_security b on a.symbol = b.symbol "
     "and a.security_key < b.security_key and a.valid_from <= b.valid_to and b.valid_from <= a.valid_to"),
    ("fct_financing_event", "ri_company", "error",
     "select company_code, symbol, date_key from fct_financing_event "
     "where company_key not in (select company_key from dim_company)"),
    ("fct_financing_event", "ri_event_type", "error",
     "select event_type_code, date_key from fct_financing_event "
     "where event_type_key not in (select event_type_key from dim_event_type)"),
    ("fct_financing_event", "ri_security", "error",
     "select symbol, date_key from fct_financing_event where security_key is not null "
     "and security_key not in (select security_key from int_known_security)"),
    ("fct_financing_event", "usd_is_local_times_rate", "error",
     "select symbol, date_key, amount_local, fx_rate_to_usd, amount_usd from fct_financing_event "
     "where amount_usd is not null and abs(amount_usd - amount_local * fx_rate_to_usd) > 1e-6 * abs(amount_local)"),
    ("fct_financing_event", "curated_deal_on_its_listing", "error",
     "select e.curated_event_id, e.symbol from fct_financing_event e join ref_listing l using (symbol) "
     "where e.origin = 'curated' and l.company_id <> e.company_code"),
    # real events only: the sample source makes up bars (and events) before a listing existed
    ("fct_financing_event", "no_event_before_first_listing", "error",
     "select e.company_code, e.symbol, e.date_key, e.event_type_code, f.first_listed "
     "from fct_financing_event e join (select company_id, min(listed_since) as first_listed from ref_listing "
     "where listed_since is not null group by 1) f on f.company_id = e.company_code "
     "where not e.is_synthetic and e.event_type_code not in ('ipo', 'secondary_listing') "
     "and e.date_key < cast(strftime(f.first_listed, '%Y%m%d') as integer)"),
    ("fct_cash_flow_quarterly", "ri_company", "error",
     "select company_code, period_end_date_key from fct_cash_flow_quarterly "
     "where company_key not in (select company_key from dim_company)"),
    ("fct_cash_flow_quarterly", "usd_is_local_times_rate", "error",
     "select company_code, period_end_date_key, flow_type from fct_cash_flow_quarterly "
     "where amount_usd is not null and abs(amount_usd - amount_local * fx_rate_to_usd) > 1e-6 * abs(amount_local)"),
    ("fct_valuation_daily", "ri_security", "error",
     "select symbol, date_key from fct_valuation_daily "
     "where security_key not in (select security_key from dim_security)"),
    ("quarantine", "no_quarantined_rows", "warning", "select table_name, symbol, bar_date, reason from quarantine"),
    # zero volume on an exchange listing (HKEX half days): published and flagged, shown as a warning
    ("fct_daily_price", "zero_volume_bar", "warning",
     "select p.symbol, p.date_key from fct_daily_price p join dim_security s using (security_key) "
     "where p.is_zero_volume and s.security_type <> 'fx'"),
]


class ValidationError(RuntimeError):
    """A blocking expectation failed; the message names table, expectation and offending examples."""


@dataclass
class GateReport:
    run_id: str
    success: bool
    failures: list[dict] = field(default_factory=list)
    warnings: list[dict] = field(default_factory=list)
    rows_validated: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def _jsonable(value):
    return json.loads(json.dumps(value, default=str))


def _severity(config, source: str) -> str:
    meta = config.meta or {}
    return "error" if source in meta.get("blocking_sources", []) else meta.get("severity", "error")


def _duckdb_plan(con: duckdb.DuckDBPyConnection, table: str, expectations: list) -> list | None:
    """[(expectation, Check)] when this table's suite runs in DuckDB (see GX_ENGINE_ENV), else None."""
    from etl.quality import sql_engine

    engine = os.environ.get(GX_ENGINE_ENV, "auto").strip().lower() or "auto"
    if engine not in ("auto", "gx", "duckdb"):
        raise ValueError(f"{GX_ENGINE_ENV} must be auto, gx or duckdb, got {engine!r}")
    if engine == "gx":
        return None
    if engine == "auto":
        limit = int(os.environ.get(GX_MAX_ROWS_ENV) or DEFAULT_GX_MAX_ROWS)
        if con.execute(f"select count(*) from {table}").fetchone()[0] <= limit:
            return None
    types = sql_engine.column_types(con, table)
    compiled = [(e, sql_engine.compile_expectation(e, types)) for e in expectations]
    if any(check is None for _, check in compiled):
        log.warning("gate: %s has an expectation DuckDB cannot evaluate; running its suite in GX", table)
        return None
    return compiled


def _gx_results(con: duckdb.DuckDBPyConnection, source: str, currencies: list[str], meanwhile=None) -> list[dict]:
    """The GX suites' result rows; `meanwhile()` (DuckDB work of the caller) runs in this process while the
    forked child evaluates its half of the suites."""
    meanwhile = meanwhile or (lambda: None)
    from etl.quality import sql_engine
    from etl.quality.suites import suite_definitions

    rows = []
    in_gx: list[tuple[str, object, list]] = []  # (table, its new rows as a DataFrame, its expectations)
    for table, expectations in suite_definitions(currencies).items():
        plan = _duckdb_plan(con, table, expectations)
        if plan is not None:
            for row in sql_engine.table_results(con, table, f"{table}_suite", plan, EXAMPLE_COLUMNS[table],
                                                lambda config: _severity(config, source)):
                rows.append(row | {"rows": None})
        else:
            in_gx.append((table, con.execute(f"select * from {table}").df(), expectations))
    if not in_gx:
        meanwhile()
        return rows
    groups = _split_for_processes(in_gx)
    if len(groups) == 1:
        out = rows + _gx_suites(groups[0], source)
        meanwhile()
        return out
    # GX spends its time in Python (~10 ms of fixed cost per expectation, 88 of them), one core: the second
    # half of the suites runs in a forked child meanwhile (the frames are already in memory; the child never
    # touches DuckDB). Same suites, same results, in the same order.
    child = _fork(_gx_suites, groups[1], source)
    mine = _gx_suites(groups[0], source)
    meanwhile()
    theirs = _join(child)
    if theirs is None:  # the child failed or hung: its half runs here, the verdicts do not depend on it
        theirs = _gx_suites(groups[1], source)
    by_table: dict[str, list] = {}
    for r in mine + theirs:
        by_table.setdefault(r["table_name"], []).append(r)
    return rows + [r for table, _, _ in in_gx for r in by_table.get(table, [])]


CHILD_TIMEOUT_S = 300


def _fork(fn, *args) -> tuple[int, int] | None:
    """Run fn(*args) in a forked child; (pid, read end of the pipe its pickled result comes through). A plain
    os.fork, not multiprocessing: Celery's prefork workers are daemonic processes, which multiprocessing
    forbids to have children. None when fork is not available (the caller then runs everything itself)."""
    import pickle

    if not hasattr(os, "fork"):
        return None
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: compute, send, exit without running the parent's cleanup (DuckDB, Airflow)
        status = 0
        try:
            os.close(read)
            logging.disable(logging.CRITICAL)
            payload = pickle.dumps(fn(*args))
            with os.fdopen(write, "wb") as out:
                out.write(payload)
        except BaseException:  # noqa: BLE001 - any failure: the parent redoes the work
            status = 1
        finally:
            os._exit(status)
    os.close(write)
    return pid, read


def _join(child: tuple[int, int] | None):
    """The child's result, or None (no child, it failed, or it took longer than CHILD_TIMEOUT_S: killed)."""
    import pickle
    import select
    import signal

    if child is None:
        return None
    pid, read = child
    chunks, deadline = [], time.monotonic() + CHILD_TIMEOUT_S
    try:
        while True:
            ready, _, _ = select.select([read], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                os.kill(pid, signal.SIGKILL)
                log.warning("gate: the GX child process took over %ss; ran its suites here", CHILD_TIMEOUT_S)
                chunks = None
                break
            chunk = os.read(read, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(read)
        _, status = os.waitpid(pid, 0)
    if chunks is None or status != 0 or not chunks:
        if chunks is not None:
            log.warning("gate: the GX child process failed (status %s); ran its suites here", status)
        return None
    return pickle.loads(b"".join(chunks))


def _split_for_processes(in_gx: list) -> list[list]:
    """One group of (table, frame, expectations), or two of about equal expectation counts when ETL_GX_PROCESSES
    (default: 2 on a machine with 2+ cores) allows and there is enough to split."""
    raw = os.environ.get(GX_PROCESSES_ENV, "").strip()
    processes = int(raw) if raw else min(2, os.cpu_count() or 1)
    if processes not in (1, 2):
        raise ValueError(f"{GX_PROCESSES_ENV} must be 1 or 2, got {raw!r}")
    if processes == 1 or len(in_gx) < 2 or sum(len(e) for _, _, e in in_gx) < MIN_EXPECTATIONS_TO_SPLIT:
        return [in_gx]
    groups: list[list] = [[], []]
    # group 0 runs in the parent, which also runs the SQL invariants meanwhile (~40 ms, about 4 expectations)
    load = [PARENT_HEAD_START, 0]
    for item in sorted(in_gx, key=lambda item: -len(item[2])):  # largest first, to the lighter group
        k = 0 if load[0] <= load[1] else 1
        groups[k].append(item)
        load[k] += len(item[2])
    return groups


def _config_key(config) -> str:
    """One expectation of a suite, the same in both passes of _gx_suites (its type, arguments and meta)."""
    kwargs = {k: v for k, v in config.kwargs.items() if k != "batch_id"}
    return json.dumps([config.type, kwargs, config.meta], sort_keys=True, default=str)


def _gx_suites(tables: list, source: str) -> list[dict]:
    """Each (table, frame, expectations) as a GX suite on its frame, in GX's pandas engine; one result row per
    expectation."""
    import great_expectations as gx

    from etl.quality.suites import build_suite

    context = gx.get_context(mode="ephemeral")
    try:
        context.variables.progress_bars = {"globally": False}
    except Exception:  # noqa: BLE001 - cosmetic only; older configs lack the setting
        pass
    # one asset and batch definition for every table, the frame given per batch: each data source, asset and
    # batch definition added makes the context re-serialise its config (~10 ms each, 29 times)
    batches = (context.data_sources.add_pandas("candidate").add_dataframe_asset("candidate_table")
               .add_batch_definition_whole_dataframe("new_rows"))
    rows = []
    for table, frame, expectations in tables:
        started = time.perf_counter()
        batch = batches.get_batch(batch_parameters={"dataframe": frame})
        suite = context.suites.add(build_suite(table, expectations))
        # BASIC (counts, observed values) for the whole suite; the offending rows' keys (COMPLETE, a third more
        # metrics per expectation) only for the expectations that failed, in a second pass on the same batch
        items = list(batch.validate(suite, result_format={"result_format": "BASIC", "partial_unexpected_count": 5}
                                    ).results)
        failed = {_config_key(item.expectation_config) for item in items if not item.success}
        if failed:
            again_suite = [copy.copy(e) for e in suite.expectations if _config_key(e.configuration) in failed]
            failed_suite = context.suites.add(build_suite(f"{table}_failed", again_suite))
            again = {_config_key(item.expectation_config): item for item in batch.validate(failed_suite, result_format={
                "result_format": "COMPLETE", "partial_unexpected_count": 5,
                "unexpected_index_column_names": EXAMPLE_COLUMNS[table]}).results}
            items = [again.get(_config_key(item.expectation_config), item) for item in items]
        each = (time.perf_counter() - started) / max(1, len(items))  # the suite's time, shared by its rows
        for item in items:
            config = item.expectation_config
            severity = _severity(config, source)
            detail = item.result or {}
            examples = (detail.get("unexpected_index_list") or detail.get("partial_unexpected_list") or [])[:5]
            if item.exception_info and item.exception_info.get("raised_exception"):
                examples = [item.exception_info.get("exception_message")]
            rows.append({
                "table_name": table,
                "suite_name": suite.name,
                "expectation_type": config.type,
                "column_name": config.kwargs.get("column") or ",".join(
                    config.kwargs.get("column_list") or
                    [c for c in (config.kwargs.get("column_A"), config.kwargs.get("column_B")) if c]),
                "severity": severity,
                "success": bool(item.success),
                "observed_value": json.dumps(_jsonable(detail.get("observed_value"))),
                "unexpected_count": detail.get("unexpected_count"),
                "unexpected_percent": detail.get("unexpected_percent"),
                "examples": json.dumps(_jsonable(examples)),
                "kwargs": json.dumps(_jsonable({k: v for k, v in config.kwargs.items() if k != "batch_id"})),
                "rows": len(frame),
                "seconds": each,
            })
    return rows


def _published_invariants(con: duckdb.DuckDBPyConnection, store_dir: Path, lake=None
                          ) -> list[tuple[str, str, str, str]]:
    """Invariants of the warehouse after this publish, checked incrementally: they read only the published rows
    the run touches (its listings' published versions, the published month files of the run's dates), so their
    cost follows the new data, not the history (issue 6). lake: the Settings of a DuckLake backend, whose
    latest snapshot is the published state then (the file store's current manifest otherwise)."""
    if lake is not None:
        return _lake_invariants(con, lake)
    pointer = store_dir / "manifests" / "current.json"
    if not pointer.exists():
        return []
    manifest = json.loads((store_dir / "manifests" / json.loads(pointer.read_text())["manifest"]).read_text())
    tables = manifest.get("tables", {})
    out = []
    versions = [f"'{store_dir / rel}'" for rel in tables.get("dim_security", {}).values()]
    if versions:
        # facts outside the window keep pointing at the published versions of the run's listings
        out.append(("dim_security", "published_versions_kept", "error",
                    f"select p.symbol, p.security_key, p.valid_from from read_parquet([{', '.join(versions)}]) p "
                    "where p.symbol in (select symbol from run_symbols) "
                    "and p.security_key not in (select security_key from dim_security)"))
    lo, hi, months = con.execute(
        "select min(date_key), max(date_key), list(distinct cast(date_key // 100 as varchar)) from fct_daily_price"
    ).fetchone()
    wanted = {f"{m[:4]}-{m[4:]}" for m in months or []}
    touched = [f"'{store_dir / rel}'" for part, rel in tables.get("fct_daily_price", {}).items() if part in wanted]
    if touched:
        # the published rows publish keeps in those months (outside the run's listings x dates) never share
        # a key with the new rows
        out.append(("fct_daily_price", "unique_after_publish", "error",
                    f"select c.symbol, c.date_key from fct_daily_price c join (select security_key, date_key "
                    f"from read_parquet([{', '.join(touched)}]) where not (symbol in (select symbol from run_symbols) "
                    f"and date_key between {lo} and {hi})) p using (security_key, date_key)"))
    return out


def _lake_invariants(con: duckdb.DuckDBPyConnection, settings) -> list[tuple[str, str, str, str]]:
    """_published_invariants on a DuckLake: the same queries over the lake's tables, attached read-only to the
    candidate's connection; DuckLake's per-file min/max statistics prune the date filter to the run's months."""
    from etl import ducklake_store

    ducklake_store.attach_settings(con, settings, alias="published")
    out = []
    versions = ducklake_store.published_relation(con, "dim_security", alias="published")
    if versions:
        out.append(("dim_security", "published_versions_kept", "error",
                    f"select p.symbol, p.security_key, p.valid_from from {versions} p "
                    "where p.symbol in (select symbol from run_symbols) "
                    "and p.security_key not in (select security_key from dim_security)"))
    prices = ducklake_store.published_relation(con, "fct_daily_price", alias="published")
    lo, hi = con.execute("select min(date_key), max(date_key) from fct_daily_price").fetchone()
    if prices and lo is not None:
        first, last = lo // 100 * 100 + 1, hi // 100 * 100 + 31  # the months the run's dates fall in
        out.append(("fct_daily_price", "unique_after_publish", "error",
                    f"select c.symbol, c.date_key from fct_daily_price c join (select security_key, date_key "
                    f"from {prices} where date_key between {first} and {last} "
                    f"and not (symbol in (select symbol from run_symbols) and date_key between {lo} and {hi})) p "
                    "using (security_key, date_key)"))
    return out


def _invariant_results(con: duckdb.DuckDBPyConnection, extra: list[tuple[str, str, str, str]] = ()
                       ) -> list[dict]:
    rows = []
    for table, name, severity, query in [*INVARIANTS, *extra]:
        started = time.perf_counter()
        # the count of offending rows and 5 examples, never all of them (a backfill can have millions)
        examples = con.execute(f"select *, count(*) over () as _offending from ({query}) limit 5").df()
        count = int(examples.pop("_offending").iloc[0]) if len(examples) else 0
        rows.append({
            "table_name": table,
            "suite_name": "invariants",
            "expectation_type": f"invariant:{name}",
            "column_name": None,
            "severity": severity,
            "success": count == 0,
            "observed_value": json.dumps({"offending_rows": count}),
            "unexpected_count": count,
            "unexpected_percent": None,
            "examples": examples.to_json(orient="records", date_format="iso"),
            "kwargs": json.dumps({"query": query}),
            "rows": None,
            "seconds": time.perf_counter() - started,
        })
    return rows


def run_gate(candidate: Path, run_id: str, source: str, store_dir: Path, currencies: list[str],
             lake=None) -> GateReport:
    """Validate the candidate, record every result, raise ValidationError on a blocking failure.

    lake: the Settings of a DuckLake backend (the published state is read from the lake then)."""
    started = time.perf_counter()
    validated_at = datetime.now(UTC)
    con = duckdb.connect(str(candidate), read_only=True, config=duckdb_config())
    try:
        invariants: list[dict] = []
        results = _gx_results(con, source, currencies, meanwhile=lambda: invariants.extend(
            _invariant_results(con, _published_invariants(con, store_dir, lake))))
        results += invariants
        row_counts = {t: con.execute(f"select count(*) from {t}").fetchone()[0] for t in EXAMPLE_COLUMNS}
    finally:
        con.close()
    for row in results:
        row["run_id"] = run_id
        row["validated_at"] = validated_at
    audit.append(store_dir, "dq_result",
                 [{k: v for k, v in r.items() if k not in ("rows", "seconds")} for r in results], run_id)
    summary = []
    for table in sorted({r["table_name"] for r in results}):
        mine = [r for r in results if r["table_name"] == table]
        summary.append({
            "run_id": run_id,
            "table_name": table,
            "suite_name": f"{table}_suite",
            "rows_validated": row_counts.get(table),
            "expectations": len(mine),
            "failed_blocking": sum(1 for r in mine if not r["success"] and r["severity"] == "error"),
            "failed_warning": sum(1 for r in mine if not r["success"] and r["severity"] == "warning"),
            "success": all(r["success"] or r["severity"] != "error" for r in mine),
            "validated_at": validated_at,
            "duration_s": sum(r["seconds"] for r in mine),
        })
    pause_point("validate:after_dq_result")  # tests/reliability kill the process here
    audit.append(store_dir, "dq_run", summary, run_id)
    failures = [r for r in results if not r["success"] and r["severity"] == "error"]
    warnings = [r for r in results if not r["success"] and r["severity"] == "warning"]
    report = GateReport(run_id=run_id, success=not failures, failures=failures, warnings=warnings,
                        rows_validated=row_counts, seconds=round(time.perf_counter() - started, 3))
    for w in warnings:
        log.warning("gate warning %s.%s (%s): %s offending, e.g. %s", w["table_name"], w["expectation_type"],
                    w["column_name"], w["unexpected_count"], w["examples"])
    if failures:
        lines = [f"  - {f['table_name']}: {f['expectation_type']}"
                 f"{' on ' + f['column_name'] if f['column_name'] else ''}: "
                 f"{f['unexpected_count']} offending rows, e.g. {f['examples']}" for f in failures]
        raise ValidationError(
            f"run {run_id}: {len(failures)} blocking expectation(s) failed; nothing was published "
            "(see dq_result):\n" + "\n".join(lines)
        )
    return report
