"""The pipeline steps. Airflow tasks and `python -m etl` call these same functions.

extract -> land -> transform -> validate -> publish; each step reads only what belongs to its run's window
(plus the stated lookback) and can be re-run: landing files are named by run, the candidate is rebuilt from
landing, and publish replaces exactly the run's (symbols x window) scope.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime

from etl import audit
from etl.config import Settings, Universe, load_universe
from etl.run import RunContext, new_run_id, safe_run_id

log = logging.getLogger(__name__)


def _settings_universe(warehouse=None, universe=None) -> tuple[Settings, Universe]:
    settings = Settings.from_env(warehouse=warehouse, universe=universe)
    return settings, load_universe(settings.universe_file)


def _step(ctx: RunContext, settings: Settings, step: str, func, counts=lambda r: {}):
    """Run one step and record it in run_log, failed or not."""
    started = datetime.now(UTC)
    try:
        result = func()
    except Exception as exc:
        audit.log_step(settings.store_dir, ctx, step, "failed", started, details={"error": str(exc)[:2000]})
        raise
    audit.log_step(settings.store_dir, ctx, step, "success", started, details=result, **counts(result))
    return result


def start_run(source: str, start: date, end: date, market: str | None = None, run_id: str | None = None,
              replay_dir: str | None = None, warehouse=None, universe=None) -> RunContext:
    """Create (or, for the same run id, re-create identically) the run's context."""
    settings, uni = _settings_universe(warehouse, universe)
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    if market is not None and market not in uni.markets:
        raise ValueError(f"unknown market {market}; the universe has {', '.join(uni.markets)}")
    ctx = RunContext(
        run_id=safe_run_id(run_id) if run_id else new_run_id(source, market, start, end),
        source=source,
        market=market,
        start=start,
        end=end,
        symbols=uni.symbols_for_market(market),
        replay_dir=str(replay_dir) if replay_dir else None,
    )
    ctx.save(settings)
    return ctx


def extract_step(run_id: str, warehouse=None, universe=None, source=None) -> dict:
    from etl.landing import extract

    settings, uni = _settings_universe(warehouse, universe)
    ctx = RunContext.load(settings, run_id)
    return _step(ctx, settings, "extract", lambda: extract(ctx, settings, uni, source),
                 lambda r: {"rows_out": r["rows_extracted"], "rows_rejected": len(r["missing"])})


def land_step(run_id: str, warehouse=None, universe=None) -> dict:
    from etl.landing import land

    settings, _ = _settings_universe(warehouse, universe)
    ctx = RunContext.load(settings, run_id)
    return _step(ctx, settings, "land", lambda: land(ctx, settings),
                 lambda r: {"rows_in": r["rows_extracted"], "rows_out": r["rows_landed"]})


def transform_step(run_id: str, warehouse=None, universe=None) -> dict:
    from etl.transform import transform

    settings, uni = _settings_universe(warehouse, universe)
    ctx = RunContext.load(settings, run_id)
    return _step(ctx, settings, "transform", lambda: transform(ctx, settings, uni),
                 lambda r: {"rows_out": r["candidate_rows"]["fct_daily_price"],
                            "rows_rejected": r["candidate_rows"]["quarantine"]})


def validate_step(run_id: str, warehouse=None, universe=None) -> dict:
    from etl.quality.gate import run_gate
    from etl.transform import candidate_path

    settings, uni = _settings_universe(warehouse, universe)
    ctx = RunContext.load(settings, run_id)

    def gate() -> dict:
        import duckdb

        con = duckdb.connect(str(candidate_path(ctx, settings)), read_only=True)
        quarantine = con.execute("select * from quarantine").df()
        con.close()
        # recorded before the verdict: a refused row is explained even when the gate then fails
        audit.append(settings.store_dir, "quarantine", quarantine, ctx.run_id)
        report = run_gate(candidate_path(ctx, settings), ctx.run_id, ctx.source, settings.store_dir,
                          sorted(uni.currencies))
        return {"success": report.success, "warnings": len(report.warnings),
                "rows_validated": report.rows_validated, "quarantined": len(quarantine),
                "seconds": report.seconds}

    return _step(ctx, settings, "validate", gate, lambda r: {"rows_in": sum(r["rows_validated"].values()),
                                                             "rows_rejected": r["quarantined"]})


def publish_step(run_id: str, warehouse=None, universe=None) -> dict:
    import duckdb

    from etl.store import Store
    from etl.transform import candidate_path

    settings, _ = _settings_universe(warehouse, universe)
    ctx = RunContext.load(settings, run_id)
    candidate = candidate_path(ctx, settings)
    passed = (settings.store_dir / "audit" / "dq_run" / f"{ctx.run_id}.parquet")
    if not passed.exists():
        raise RuntimeError(f"run {run_id} has not been validated; refusing to publish")
    con = duckdb.connect()
    ok = con.execute(f"select bool_and(success) from read_parquet('{passed}')").fetchone()[0]
    con.close()
    if not ok:
        raise RuntimeError(f"run {run_id} failed validation (dq_run); refusing to publish")

    def publish() -> dict:
        result = Store(settings).publish(candidate, ctx.run_id, ctx.start, ctx.end)
        return result | {"warehouse": str(settings.warehouse)}

    return _step(ctx, settings, "publish", publish)


def run_all(source: str, start: date, end: date, market: str | None = None, replay_dir: str | None = None,
            warehouse=None, universe=None, run_id: str | None = None) -> dict:
    """All steps in order for one window, outside Airflow."""
    ctx = start_run(source, start, end, market=market, run_id=run_id, replay_dir=replay_dir,
                    warehouse=warehouse, universe=universe)
    out = {"run_id": ctx.run_id}
    out["extract"] = extract_step(ctx.run_id, warehouse, universe)
    out["land"] = land_step(ctx.run_id, warehouse, universe)
    out["transform"] = transform_step(ctx.run_id, warehouse, universe)
    out["validate"] = validate_step(ctx.run_id, warehouse, universe)
    out["publish"] = publish_step(ctx.run_id, warehouse, universe)
    return out
