"""Daily market-data DAGs, one per market in etl/universe.yaml. Wiring only: every task calls into `etl`."""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Asset, CronTriggerTimetable, Param, dag, task

from etl.config import Settings, load_universe

PUBLISHED_TABLES = ["dim_date", "dim_exchange", "dim_currency", "dim_company", "dim_security",
                    "fct_daily_price", "fct_fx_rate", "fct_corporate_action"]
ASSETS = [Asset(name=f"warehouse.{t}", uri=f"file://warehouse/{t}") for t in PUBLISHED_TABLES]
WAREHOUSE_POOL = "warehouse_writer"

DOC = """
### Daily {name} prices ({market})

Extracts daily bars, dividends and splits for the {market} listings of `etl/universe.yaml` (plus the FX pairs
needed to convert them) from the source in the `source` param, lands the raw answer, builds the star schema with
the SQL in `sql/`, validates it with Great Expectations and publishes it atomically to the warehouse: the
DuckDB file store, or one DuckLake snapshot with `ETL_WAREHOUSE_BACKEND=ducklake`.

* **Schedule:** `{schedule}` in {timezone}, after the {close} close. The run covers the latest closed
  {calendar} session; non-session days are skipped (see `etl/schedule.py`). Params `start`/`end` turn a run into
  a backfill of every session in that window.
* **Tasks:** plan -> extract -> land -> transform -> validate -> publish -> export, report (*export* and *report*
  both after *publish*, side by side). Each is idempotent for its run. *export* brings the Parquet export
  (`data/export/current/<table>/`; file store only, skipped on DuckLake) up to the published warehouse: every
  publish since the last export, in order; nothing to do when it is current already. *report* only reads the
  published warehouse. On DuckLake a publish that lost a commit race to the other market's DAG
  transforms and validates again on the new snapshot (its log says so), then publishes.
* **Backfill:** *Trigger -> Backfill* (or `airflow backfill create`) with reprocess *Missing and Errored Runs*
  or *All Runs* (*Missing Runs* is refused: *publish* depends on the previous run's). Any *Max Active Runs*:
  runs extract and transform side by side, *publish* goes one at a time (pool `warehouse_writer`) in date
  order, so the tables equal one run over the range. `catchup` is off: no runs appear by themselves.
* **When it fails:** a failed run holds the next run's *publish* (it waits for the day before it): fix and
  clear the failed run, or mark its *publish* success to publish later days without it.
  *extract*: Yahoo unreachable or rate-limited (it retries; no fallback to other data).
  *validate*: the log names the table, expectation and offending rows; nothing was published, the warehouse keeps
  its previous validated state; see `select * from dq_result where not success` and `quarantine`.
  Fix the data or the rule, then clear the failed task. *export*: the data is already published (readers of the
  warehouse have it) and `data/export/current` still shows an earlier publish; the log says what failed (e.g.
  disk full), clearing the task exports what is missing (`python -m etl export` re-exports the current publish).
  *report*: the data is already published; the log says what failed, clearing the task re-renders the page
  (`python -m etl report` does the same).
* **Daily report:** [{report}](file://{report}) (charts and this run's data-quality summary; a dated copy sits
  next to it). Open it on the Airflow machine, or copy it: it is one self-contained HTML file.
* **Outputs:** Assets `warehouse.<table>` for every published table; the warehouse at `$ETL_WAREHOUSE`
  (default `data/warehouse.duckdb`), or the DuckLake of `$ETL_DUCKLAKE_CATALOG` (`python -m etl lake-sql`).
"""


def build_dag(market: str):
    universe = load_universe(Settings.from_env().universe_file)
    spec = universe.markets[market]

    @dag(
        dag_id=f"market_daily_{market.lower()}",
        schedule=CronTriggerTimetable(spec.schedule, timezone=spec.timezone),
        start_date=pendulum.datetime(2025, 1, 1, tz=spec.timezone),
        catchup=False,
        max_active_runs=1,
        tags=["market-data", market.lower(), "duckdb", "great-expectations"],
        doc_md=DOC.format(name=spec.name, market=market, schedule=spec.schedule, timezone=spec.timezone,
                          close=spec.close_local, calendar=spec.calendar,
                          report=Settings.from_env().data_dir / "report" / "latest.html"),
        default_args={"owner": "market-data", "retries": 2, "retry_delay": timedelta(minutes=5)},
        params={
            "source": Param("yfinance", enum=["yfinance", "sample", "replay"],
                            description="yfinance (live), sample (synthetic) or replay (CSV files)"),
            "replay_dir": Param(None, type=["null", "string"], description="CSV folder for the replay source"),
            "start": Param(None, type=["null", "string"], description="backfill: first date YYYY-MM-DD"),
            "end": Param(None, type=["null", "string"], description="backfill: last date YYYY-MM-DD"),
        },
    )
    def market_daily():
        @task
        def plan(params=None, logical_date=None, run_id=None) -> str:
            from airflow.sdk.exceptions import AirflowSkipException

            from etl.pipeline import start_run
            from etl.schedule import market_window

            window = market_window(universe, Settings.from_env(), market, logical_date,
                                   params.get("start"), params.get("end"))
            if window.start is None:
                raise AirflowSkipException(window.reason)
            ctx = start_run(params["source"], window.start, window.end, market=market,
                            run_id=f"{market}__{run_id}", replay_dir=params.get("replay_dir"))
            print(f"{window.reason}: run {ctx.run_id} covers {ctx.start}..{ctx.end}, {len(ctx.symbols)} symbols")
            return ctx.run_id

        @task(retries=3, retry_exponential_backoff=True)
        def extract(run: str) -> dict:
            from etl.pipeline import extract_step

            return extract_step(run)

        @task
        def land(run: str) -> dict:
            from etl.pipeline import land_step

            return land_step(run)

        @task
        def transform(run: str) -> dict:
            from etl.pipeline import transform_step

            return transform_step(run)

        @task(retries=0)  # a failed gate is deterministic: retrying cannot pass it
        def validate(run: str) -> dict:
            from etl.pipeline import validate_step

            return validate_step(run)

        # One writer, in date order: the pool lets one publish run at a time, depends_on_past makes a run's
        # publish wait for the previous run's (a day's return and FX carry-over read the day before it; a
        # backfill runs several days at once). A candidate built before the previous publish is rebuilt.
        @task(pool=WAREHOUSE_POOL, outlets=ASSETS, depends_on_past=True)
        def publish(run: str) -> dict:
            from etl.pipeline import publish_step

            return publish_step(run)

        # Not in the writer pool and no depends_on_past: it has a lock of its own (a publish never waits for it)
        # and catches up in order by itself (a later run's export also exports an earlier publish it missed).
        @task
        def export(run: str) -> dict:
            from etl.pipeline import export_step

            return export_step(run)

        @task
        def report(run: str) -> dict:
            from etl.report import build_report

            return build_report(run_id=run)

        run = plan()
        chain = [extract(run), land(run), transform(run), validate(run), publish(run)]
        run >> chain[0]
        for upstream, downstream in zip(chain, chain[1:], strict=False):
            upstream >> downstream
        chain[-1] >> [export(run), report(run)]  # both only read what publish wrote

    return market_daily()


for _market in load_universe(Settings.from_env().universe_file).markets:
    globals()[f"market_daily_{_market.lower()}"] = build_dag(_market)
