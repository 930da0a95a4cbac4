"""`python -m etl`: every pipeline step without Airflow, plus read-only helpers for the published warehouse."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from datetime import date

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--warehouse", help="published DuckDB file (default data/warehouse.duckdb or $ETL_WAREHOUSE)")
    p.add_argument("--universe", help="universe YAML (default etl/universe.yaml or $ETL_UNIVERSE)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m etl",
        description="China-tech market-data warehouse: extract -> land -> transform -> validate -> publish "
                    "-> export.",
    )
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    run = verbs.add_parser("run", help="run every step for a window (what the daily DAG does)")
    run.add_argument("--source", required=True, choices=["sample", "replay", "yfinance"],
                     help="sample = synthetic offline data; replay = CSV files; yfinance = live Yahoo")
    run.add_argument("--start", required=True, type=_date, help="first market date, YYYY-MM-DD")
    run.add_argument("--end", required=True, type=_date, help="last market date (inclusive), YYYY-MM-DD")
    run.add_argument("--market", help="only this market's listings (plus FX), e.g. XHKG or US; default all")
    run.add_argument("--replay-dir", help="folder of yfinance-style CSV files, one per symbol (replay source)")
    run.add_argument("--run-id", help="reuse a run id (re-running it replaces that run's own files)")
    _common(run)

    start = verbs.add_parser("start", help="create a run context and print its run id (steps then take --run-id)")
    for a in run._actions[1:]:
        if a.dest not in ("warehouse", "universe"):
            start._add_action(a)
    _common(start)

    for verb, text in [
        ("extract", "call the source for the run's symbols and window"),
        ("land", "write the extract to immutable landing partitions"),
        ("transform", "build candidate marts from landing (SQL in sql/)"),
        ("validate", "run the Great Expectations gate on the candidate"),
        ("publish", "publish a validated candidate atomically"),
    ]:
        step = verbs.add_parser(verb, help=text)
        step.add_argument("--run-id", required=True)
        _common(step)

    query = verbs.add_parser("query", help="run SQL read-only against the published warehouse")
    query.add_argument("sql", help="SQL text, or @file.sql")
    _common(query)

    status = verbs.add_parser("status", help="published tables with row counts and the latest runs")
    _common(status)

    views = verbs.add_parser("rebuild-views", help="rewrite the views file from the current manifest")
    _common(views)

    verbs.add_parser("docs", help="print the data dictionary (Markdown) from etl/catalog.yaml")

    verbs.add_parser("init-lake", help="ducklake backend: create the catalog database and DuckLake's tables in it")
    verbs.add_parser("lake-sql", help="ducklake backend: print the statements that open the lake read-only in the "
                                      "DuckDB CLI (duckdb -init FILE; `make sql` does it)")

    report = verbs.add_parser("report", help="write the HTML report (data/report/latest.html) from the warehouse")
    report.add_argument("--run-id", help="run whose data-quality results to show (default: the latest validated)")
    report.add_argument("--out", help="output folder (default $ETL_DATA_DIR/report)")
    _common(report)

    export = verbs.add_parser("export", help="re-export the current manifest as Parquet under data/export/current")
    _common(export)
    return parser


def _print_query(settings, sql: str) -> None:
    from etl.warehouse import connect_reader

    con = connect_reader(settings)
    try:
        print(con.sql(sql))
    finally:
        con.close()


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=os.environ.get("ETL_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    from etl import pipeline
    from etl.config import Settings

    settings = Settings.from_env(warehouse=getattr(args, "warehouse", None), universe=getattr(args, "universe", None))
    kw = {"warehouse": getattr(args, "warehouse", None), "universe": getattr(args, "universe", None)}
    try:
        if args.verb == "run":
            out = pipeline.run_all(args.source, args.start, args.end, market=args.market,
                                   replay_dir=args.replay_dir, run_id=args.run_id, **kw)
            print(json.dumps({"run_id": out["run_id"], "published": out["publish"], "export": out["export"],
                              "rows": out["transform"]["candidate_rows"],
                              "missing": out["extract"]["missing"],
                              "summary": out["summary"]}, indent=2, default=str))
        elif args.verb == "start":
            ctx = pipeline.start_run(args.source, args.start, args.end, market=args.market, run_id=args.run_id,
                                     replay_dir=args.replay_dir, **kw)
            print(ctx.run_id)
        elif args.verb in ("extract", "land", "transform", "validate", "publish"):
            out = getattr(pipeline, f"{args.verb}_step")(args.run_id, **kw)
            print(json.dumps(out, indent=2, default=str))
        elif args.verb == "query":
            sql = open(args.sql[1:]).read() if args.sql.startswith("@") else args.sql
            _print_query(settings, sql)
        elif args.verb == "status":
            _print_query(settings, "select * from warehouse_info")
            tables = ["dim_date", "dim_exchange", "dim_currency", "dim_company", "dim_security",
                      "fct_daily_price", "fct_fx_rate", "fct_corporate_action", "quarantine", "restatement",
                      "dq_result"]
            _print_query(settings, " union all ".join(
                f"select '{t}' as table_name, count(*) as row_count from {t}" for t in tables))
            _print_query(settings, "select run_id, step, status, rows_out, rows_rejected, finished_at "
                         "from run_log order by finished_at desc limit 10")
        elif args.verb == "rebuild-views":
            from etl.store import Store

            if settings.is_ducklake:
                raise RuntimeError("rebuild-views is for the file store; the ducklake backend has no views file "
                                   "(its catalog in PostgreSQL is the published state)")

            print(Store(settings).build_views())
        elif args.verb == "report":
            from etl.report import build_report

            print(json.dumps(build_report(run_id=args.run_id, settings=settings, out_dir=args.out), indent=2))
        elif args.verb == "export":
            from etl.export import export
            from etl.store import Store

            if settings.is_ducklake:
                raise RuntimeError("the Parquet export is made from the file store; on the ducklake backend the "
                                   "lake's own Parquet files and catalog are the export (README "
                                   "\"Warehouse backends\")")

            # one writer of export/ at a time (the export step takes the same lock; a publish does not wait)
            with Store(settings).export_lock():
                print(json.dumps(export(settings), indent=2))
        elif args.verb == "init-lake":
            from etl import ducklake_store

            if not settings.is_ducklake:
                raise RuntimeError("init-lake needs ETL_WAREHOUSE_BACKEND=ducklake and ETL_DUCKLAKE_CATALOG")
            print(json.dumps(ducklake_store.init_catalog(settings), indent=2))
        elif args.verb == "lake-sql":
            from etl import ducklake_store

            if not settings.is_ducklake:
                raise RuntimeError("lake-sql needs ETL_WAREHOUSE_BACKEND=ducklake and ETL_DUCKLAKE_CATALOG")
            print(ducklake_store.cli_init_sql(settings), end="")
        elif args.verb == "docs":
            from etl.catalog import markdown

            print(markdown())
    except Exception as exc:  # noqa: BLE001 - the CLI reports every failure as one clear line
        from etl.quality.gate import ValidationError
        from etl.sources import SourceError

        kind = "validation failed" if isinstance(exc, ValidationError) else (
            "source failed" if isinstance(exc, SourceError) else type(exc).__name__)
        print(f"error ({kind}): {exc}", file=sys.stderr)
        return 2 if isinstance(exc, (ValidationError, SourceError)) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
