"""A SQL user of the published warehouse, run as its own process while DAGs publish (tests/production).

    python tests/production/warehouse_reader.py WAREHOUSE OUT.jsonl STOP_FILE
    python tests/production/warehouse_reader.py ducklake OUT.jsonl STOP_FILE   (the lake of ETL_* variables)

Until STOP_FILE exists it opens the warehouse read-only (a new connection each round, held open for a few
queries; on DuckLake one transaction, i.e. one snapshot, per round), reads which publish it sees and the fact
rows per market, and appends one JSON line per round:
{"t": …, "seq": …, "markets": {…}, "fx": …} or {"t": …, "error": "…"}; "absent" before the first publish.
It never writes, and an exception is recorded, not raised, so the test can count errors.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import duckdb

MARKETS_SQL = ("select s.market_code, count(*) from fct_daily_price p join dim_security s using (security_key) "
               "group by 1 order by 1")


def _connect(warehouse: str):
    """(connection, or None before the first publish) on the file store or the lake."""
    if warehouse != "ducklake":
        return duckdb.connect(warehouse, read_only=True) if Path(warehouse).exists() else None
    from etl import ducklake_store
    from etl.config import Settings

    try:
        con = ducklake_store.reader(Settings.from_env())
    except ducklake_store.NoLakeYet:
        return None
    con.execute("begin transaction")
    if not ducklake_store._exists(con, "warehouse_info"):
        con.close()
        return None
    return con


def read_once(con) -> dict:
    try:
        seq = con.execute("select manifest_seq from warehouse_info").fetchone()[0]
        markets = dict(con.execute(MARKETS_SQL).fetchall())
        time.sleep(0.05)  # hold the snapshot while a publish may rename a new file over it
        fx = con.execute("select count(*) from fct_fx_rate").fetchone()[0]
        again = dict(con.execute(MARKETS_SQL).fetchall())
        if again != markets:
            raise AssertionError(f"one connection saw two states: {markets} then {again}")
        return {"seq": seq, "markets": markets, "fx": fx}
    finally:
        con.close()


def main(warehouse: str, out: Path, stop: Path) -> None:
    with out.open("a") as sink:
        while not stop.exists():
            row: dict = {"t": time.time()}
            try:
                con = _connect(warehouse)
                if con is not None:
                    row |= read_once(con)
                else:
                    row["absent"] = True
            except Exception as exc:  # recorded: the test asserts there are none
                row["error"] = f"{type(exc).__name__}: {exc}"
            sink.write(json.dumps(row) + "\n")
            sink.flush()
            time.sleep(0.1)


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]))
