"""Publish time of a daily run on each warehouse backend (README "Warehouse backends"): `make bench-backends`.

    python -m etl.bench_backends WORK_DIR [--days 8]

For each backend, in WORK_DIR/<backend>: a first run of 3 months (Jun-Aug 2025, every listing, sample source),
then one daily run per weekday of September 2025, its steps timed one by one (publish, and apart from it the
export step after it; the whole daily run is extract to export). The DuckLake catalog is a
throwaway PostgreSQL database (PGHOST/PGPORT/PGUSER, default 127.0.0.1:5432 postgres), dropped at the end.
Prints one JSON line per backend.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import date, timedelta


def measure(work: str, backend: str, days: int) -> dict:
    os.environ["ETL_DATA_DIR"] = f"{work}/{backend}"
    os.environ["ETL_WAREHOUSE"] = f"{work}/{backend}/warehouse.duckdb"
    os.environ["ETL_WAREHOUSE_BACKEND"] = backend
    from etl import pipeline

    t = time.monotonic()
    pipeline.run_all("sample", date(2025, 6, 2), date(2025, 8, 29))
    first = time.monotonic() - t
    publish, export, total = [], [], []
    day = date(2025, 9, 1)
    while len(publish) < days:
        if day.weekday() < 5:
            ctx = pipeline.start_run("sample", day, day)
            t0 = time.monotonic()
            for step in (pipeline.extract_step, pipeline.land_step, pipeline.transform_step, pipeline.validate_step):
                step(ctx.run_id)
            t1 = time.monotonic()
            pipeline.publish_step(ctx.run_id)
            t2 = time.monotonic()
            publish.append(t2 - t1)
            pipeline.export_step(ctx.run_id)  # its own step after publish (skipped on ducklake)
            export.append(time.monotonic() - t2)
            total.append(time.monotonic() - t0)
        day += timedelta(days=1)
    return {"backend": backend, "first_run_3_months_s": round(first, 2),
            "daily_publish_median_s": round(statistics.median(publish), 3),
            "daily_publish_s": [round(x, 2) for x in publish],
            "daily_export_median_s": round(statistics.median(export), 3),
            "daily_run_median_s": round(statistics.median(total), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work")
    parser.add_argument("--days", type=int, default=8)
    parser.add_argument("--only", choices=["file", "ducklake"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.only:
        print(json.dumps(measure(args.work, args.only, args.days)), flush=True)
        return
    # each backend in a process of its own, so neither inherits the other's warm imports and caches
    run = [sys.executable, "-m", "etl.bench_backends", args.work, "--days", str(args.days), "--only"]
    subprocess.run([*run, "file"], check=True)

    from etl.ducklake_store import local_postgres, scratch_database

    pg = local_postgres()
    with scratch_database("ducklake_bench_", pg) as name:
        env = {**os.environ, "ETL_DUCKLAKE_CATALOG": f"dbname={name} host={pg['host']} port={pg['port']} "
                                                     f"user={pg['user']}"}
        env.pop("ETL_DUCKLAKE_DATA", None)
        subprocess.run([*run, "ducklake"], check=True, env=env)

if __name__ == "__main__":
    main()
