"""The pipeline steps. Airflow tasks and `python -m etl` call these same functions.

extract -> land -> transform -> validate -> publish -> export; each step reads only what belongs to its run's
window (plus the stated lookback) and can be re-run: landing files are named by run, the candidate is rebuilt from
landing, publish replaces exactly the run's (symbols x window) scope, and export brings the Parquet export up to
the published warehouse (a no-op when it is already).
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from etl import audit
from etl.config import Settings, Universe, extract_policy, load_universe
from etl.run import RunContext, new_run_id, safe_run_id

log = logging.getLogger(__name__)


class PublishError(RuntimeError):
    """Publishing could not complete (unwritable path, disk full); the published warehouse is unchanged."""


def _candidate_identity(path: Path) -> str | None:
    """Which candidate the gate passed: the random id every transform writes into its candidate."""
    import duckdb

    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute("select candidate_id from candidate_info").fetchone()[0]
    except duckdb.Error:
        return None
    finally:
        con.close()


def _check_writable(folder: Path, what: str, run_id: str, seq: int) -> None:
    """Fail before writing anything when `folder` cannot take a new file."""
    probe = folder / f".write-probe-{os.getpid()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        os.close(fd)
        probe.unlink()
    except OSError as exc:
        raise PublishError(f"cannot publish run {run_id}: the {what} {folder} is not writable "
                           f"({type(exc).__name__}: {exc}); nothing was published, the warehouse still shows "
                           f"manifest {seq}") from exc


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
    from etl.sources import SOURCE_NAMES

    if source not in SOURCE_NAMES:
        raise ValueError(f"unknown source {source!r}; choose one of {', '.join(SOURCE_NAMES)}")
    lookback = extract_policy(source, uni).restatement_lookback_days
    ctx = RunContext(
        run_id=safe_run_id(run_id) if run_id else new_run_id(source, market, start, end),
        source=source,
        market=market,
        start=start,
        end=end,
        symbols=uni.symbols_for_market(market),
        replay_dir=str(replay_dir) if replay_dir else None,
        restate_from=start - timedelta(days=lookback) if lookback else None,
    )
    ctx.save(settings)
    return ctx


def extract_step(run_id: str, warehouse=None, universe=None, source=None, now: datetime | None = None) -> dict:
    """`now` (tests) is the time the partial-bar rule compares session closes with; default the clock."""
    from etl.landing import extract

    settings, uni = _settings_universe(warehouse, universe)
    ctx = RunContext.load(settings, run_id)
    return _step(ctx, settings, "extract", lambda: extract(ctx, settings, uni, source, now=now),
                 lambda r: {"rows_out": r["rows_extracted"], "rows_rejected": r["quarantined"]})


def land_step(run_id: str, warehouse=None, universe=None) -> dict:
    from etl.landing import land

    settings, _ = _settings_universe(warehouse, universe)
    ctx = RunContext.load(settings, run_id)
    return _step(ctx, settings, "land", lambda: land(ctx, settings),
                 lambda r: {"rows_in": r["rows_extracted"], "rows_out": r["rows_landed"]})


def _base_seq_path(ctx: RunContext, settings: Settings) -> Path:
    """Which publish (manifest seq) the run's candidate was transformed against."""
    return ctx.work_dir(settings) / "base_seq.json"


def published_state(settings: Settings) -> dict:
    """{"seq": publishes so far, "snapshot": the DuckLake snapshot (None on the file store)} of the backend."""
    if settings.is_ducklake:
        from etl import ducklake_store

        state = ducklake_store.current(settings)
        return {"seq": state["seq"], "snapshot": state["snapshot"]}
    from etl.store import Store

    return {"seq": Store(settings).current()["seq"], "snapshot": None}


def transform_step(run_id: str, warehouse=None, universe=None) -> dict:
    from etl.transform import transform

    settings, uni = _settings_universe(warehouse, universe)
    ctx = RunContext.load(settings, run_id)
    # read before the transform reads any published file: a publish landing during the transform makes it stale
    # (on DuckLake the transform reads exactly this snapshot)
    base = published_state(settings)
    base_seq = base["seq"]

    def run() -> dict:
        result = transform(ctx, settings, uni, lake_snapshot=base["snapshot"])
        _base_seq_path(ctx, settings).write_text(json.dumps(base | {"backend": settings.backend}))
        return result | {"base_seq": base_seq}

    return _step(ctx, settings, "transform", run,
                 lambda r: {"rows_out": r["candidate_rows"]["fct_daily_price"],
                            "rows_rejected": r["candidate_rows"]["quarantine"]})


def validate_step(run_id: str, warehouse=None, universe=None) -> dict:
    from etl.quality.gate import run_gate
    from etl.transform import candidate_path, verdict_path

    settings, uni = _settings_universe(warehouse, universe)
    ctx = RunContext.load(settings, run_id)

    def gate() -> dict:
        import duckdb

        candidate = candidate_path(ctx, settings)
        if not candidate.exists():
            raise RuntimeError(f"run {run_id} has no candidate at {candidate}; run the transform step first")
        verdict_path(ctx, settings).unlink(missing_ok=True)
        con = duckdb.connect(str(candidate), read_only=True)
        identity = con.execute("select candidate_id from candidate_info").fetchone()[0]
        quarantine = con.execute("select * from quarantine").df()
        restated = con.execute("select * from restatement").df()
        con.close()
        # recorded before the verdict: a refused row is explained even when the gate then fails
        audit.append(settings.store_dir, "quarantine", quarantine, ctx.run_id)
        audit.append(settings.store_dir, "restatement", restated, ctx.run_id)
        report = run_gate(candidate, ctx.run_id, ctx.source, settings.store_dir, sorted(uni.currencies),
                          lake=settings if settings.is_ducklake else None)
        # publish accepts exactly this candidate file, so a candidate rebuilt after the gate is never published
        tmp = verdict_path(ctx, settings).with_suffix(".tmp")
        tmp.write_text(json.dumps({"run_id": ctx.run_id, "success": True, "candidate": identity,
                                   "validated_at": datetime.now(UTC).isoformat()}))
        tmp.replace(verdict_path(ctx, settings))
        return {"success": report.success, "warnings": len(report.warnings),
                "rows_validated": report.rows_validated, "quarantined": len(quarantine),
                "quarantine_by_reason": dict(Counter(quarantine["reason"])) if len(quarantine) else {},
                "restated": len(restated), "seconds": report.seconds}

    return _step(ctx, settings, "validate", gate, lambda r: {"rows_in": sum(r["rows_validated"].values()),
                                                             "rows_rejected": r["quarantined"]})


def publish_step(run_id: str, warehouse=None, universe=None, rebuilds: int = 3) -> dict:
    """Publish the validated candidate. When another run published after this one's transform (two markets at
    once), the candidate is stale: it is transformed and validated again on the new state, then published
    (at most `rebuilds` times), so concurrent runs end where the same runs one after the other would."""
    import duckdb

    from etl.store import StaleCandidate, Store
    from etl.transform import candidate_path, verdict_path

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
    verdict = verdict_path(ctx, settings)
    passed_id = json.loads(verdict.read_text()).get("candidate") if verdict.exists() else None
    if passed_id is None or not candidate.exists() or passed_id != _candidate_identity(candidate):
        raise RuntimeError(f"run {run_id}: the candidate was rebuilt (or its validation did not finish) after "
                           "the last passing gate; run validate again; refusing to publish")

    def publish() -> dict:
        store = Store(settings)
        base = _base_seq_path(ctx, settings)
        if settings.is_ducklake:  # (no extra round trip to the catalog: publish checks the seq in its transaction)
            if "://" not in settings.ducklake_data:
                seq = json.loads(base.read_text()).get("seq") if base.exists() else None
                _check_writable(Path(settings.ducklake_data), "lake data path", run_id, seq)
        else:
            seq = store.current()["seq"]
            _check_writable(settings.warehouse.parent, "warehouse directory", run_id, seq)
            _check_writable(settings.store_dir, "store directory", run_id, seq)
        rebuilt: list[int | None] = []
        while True:
            based_on = json.loads(base.read_text()) if base.exists() else {}
            expected = based_on.get("seq")
            if based_on and based_on.get("backend", "file") != settings.backend:
                expected = -1  # transformed against the other backend: stale here, rebuild
            try:
                if settings.is_ducklake:
                    result = _publish_lake(settings, candidate, ctx, expected)
                else:
                    result = store.publish(candidate, ctx.run_id, ctx.effective_start, ctx.end,
                                           expected_seq=expected)
                break
            except StaleCandidate as exc:
                if len(rebuilt) >= rebuilds:
                    raise
                log.warning("%s", exc)
                rebuilt.append(expected)
                transform_step(run_id, warehouse, universe)
                validate_step(run_id, warehouse, universe)  # raises when the gate refuses the rebuilt candidate
            except TimeoutError:
                raise
            except (OSError, duckdb.Error) as exc:
                raise PublishError(
                    f"publish of run {run_id} failed: {type(exc).__name__}: {exc}. Nothing was published: the "
                    f"warehouse still shows manifest {published_state(settings)['seq']} (files written before the "
                    "failure are unreferenced and removed by a later publish); free space or fix the path, then "
                    "rerun publish"
                ) from exc
        where = f"ducklake:{settings.ducklake_data}" if settings.is_ducklake else str(settings.warehouse)
        return result | {"warehouse": where, "backend": settings.backend, "rebuilt_from_seq": rebuilt}

    return _step(ctx, settings, "publish", publish)


def _publish_lake(settings: Settings, candidate: Path, ctx: RunContext, expected: int | None) -> dict:
    from etl import ducklake_store

    return ducklake_store.publish(candidate, ctx.run_id, ctx.effective_start, ctx.end,
                                  catalog=settings.ducklake_catalog, data_path=settings.ducklake_data,
                                  expected_seq=expected, extension_dir=settings.data_dir / ".duckdb_extensions")


def _run_manifest_seq(settings: Settings, run_id: str) -> int:
    """The latest manifest on disk published by `run_id` (else the store's current one), for messages."""
    from etl.store import Store

    store = Store(settings)
    try:
        for path in sorted(store.manifests.glob("manifest-*.json"), reverse=True):
            if json.loads(path.read_text()).get("run_id") == run_id:
                return int(path.stem.split("-")[1])
        return store.current()["seq"]
    except (OSError, ValueError, KeyError):
        return 0


def export_step(run_id: str, warehouse=None, universe=None) -> dict:
    """Bring the Parquet export (data/export/current, etl/export.py) up to date with the published warehouse.

    Every manifest published since the one the export shows is exported in order (so each refreshes its view
    marts from the export before it), under the export lock: never the publish lock, so the next publish does
    not wait for an export. When the current manifest is exported already this does nothing, so a retry is free.
    The first manifest's marts are copied from this run's candidate when this run published it. A failure leaves
    the published warehouse as it is and raises ExportError; this step (the DAG's `export` task) or
    `python -m etl export` retries it."""
    settings, _ = _settings_universe(warehouse, universe)
    ctx = RunContext.load(settings, run_id)

    def run() -> dict:
        if settings.is_ducklake:
            # the file store's Parquet export hard-links its immutable files; a lake's files are Parquet already,
            # named by its catalog and partly deleted by later snapshots, so there is nothing to link: readers
            # without DuckDB use the lake through DuckLake (README "Warehouse backends")
            log.info("run %s: Parquet export skipped: the ducklake backend has no export/ (its data files are "
                     "the lake's Parquet files; query them through the DuckLake catalog)", ctx.run_id)
            return {"export": None, "export_skipped": "ducklake backend"}
        from etl import export as parquet
        from etl.store import Store
        from etl.transform import candidate_path

        candidate = candidate_path(ctx, settings)
        shown, todo, done = None, [], []
        try:
            with Store(settings).export_lock():
                shown, todo = parquet.pending(settings)
                for manifest in todo:
                    # export()'s adopt path: the first manifest's marts, computed by the candidate it published
                    adopt = manifest["seq"] == 1 and manifest.get("run_id") == ctx.run_id and candidate.exists()
                    parquet.export(settings, manifest, candidate=candidate if adopt else None)
                    done.append(manifest["seq"])
        except Exception as exc:
            seq = _run_manifest_seq(settings, ctx.run_id)
            at = todo[len(done)]["seq"] if len(done) < len(todo) else None
            failed = f" (exporting manifest {at})" if at not in (None, seq) else ""
            raise parquet.ExportError(
                f"run {ctx.run_id} is published (manifest {seq}) but its Parquet export failed{failed}: "
                f"{type(exc).__name__}: {exc}; the published warehouse is unaffected; clearing the `export` task "
                "or `python -m etl export` retries it") from exc
        current = parquet.export_dir(settings) / parquet.CURRENT
        path = str(current.resolve()) if current.exists() else None
        if not todo:
            return {"export": path, "exported": [], "up_to_date": True}
        shown_seq = shown.get("manifest_seq") if shown else None
        return {"export": path, "exported": done, "up_to_date": False, "previous_seq": shown_seq}

    return _step(ctx, settings, "export", run)


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
    out["export"] = export_step(ctx.run_id, warehouse, universe)
    out["summary"] = run_summary(out)
    return out


def run_summary(out: dict) -> dict:
    """What the operator needs from one run: rows refused and why, symbols missing, restatements, warnings."""
    extract, validate = out.get("extract", {}), out.get("validate", {})
    by_reason = Counter(validate.get("quarantine_by_reason", {}))
    by_reason["missing_from_source"] += len(extract.get("quarantined_symbols", []))
    for bar in extract.get("excluded_bars", []):
        by_reason[bar["reason"]] += 1
    by_reason = {k: v for k, v in sorted(by_reason.items()) if v}
    return {"quarantined": sum(by_reason.values()), "quarantined_by_reason": by_reason,
            "missing_symbols": extract.get("quarantined_symbols", []), "restated": validate.get("restated", 0),
            "gate_warnings": validate.get("warnings", 0), "source_warnings": extract.get("warnings", [])}
