"""The export's view marts (mart_adr_parity, mart_event_reaction), refreshed from the previous export instead of
recomputed over the whole history at every publish (issue 6: over 25M price rows that is ~20 s a day, and the
daily publish must cost what its new day costs).

A publish changes fact rows only inside its window (its listings x [start, end]), so, when the previous export is
of the previous manifest and the dimensions the marts read are unchanged:

* mart_adr_parity rows are per ADR and date: the window's dates are recomputed (from the window's month files),
  every other row is the previous export's.
* mart_event_reaction rows are per event, over the listing's prices from 6 trading days before day 0 to 5 after,
  and the benchmark's. Recomputed: events dated from 31 days before the window, events whose row changed (new,
  edited, removed), and every event of a listing with fewer than 7 prices in either of the two 31-day spans
  before the window (a sparse listing's price window can reach further). Prices are read from 62 days before the
  window (full history for those sparse listings and the benchmarks); every other event's price window lies
  wholly before the publish window, so its row is unchanged.

Anything else (a first export, a gap in manifests, changed dimensions, a window over a year) recomputes in full.
tests/integration/test_export_marts.py checks that both ways give the same rows.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import duckdb

RECENT_DAYS = 31
MIN_PRICES = 7
MAX_WINDOW_DAYS = 366

# the dimension columns each mart reads; when any differs from the previous manifest the mart is recomputed
DIMENSIONS = {
    "mart_adr_parity": {"dim_security": ["security_key", "symbol", "security_type", "underlying_symbol",
                                         "adr_ratio", "company_key", "is_current"]},
    "mart_event_reaction": {"dim_security": ["security_key", "symbol", "exchange_key"],
                            "dim_exchange": ["exchange_key", "benchmark_symbol"]},
}
EVENT_COLUMNS = ["event_key", "date_key", "symbol", "event_type_code", "company_code", "amount_usd"]


def _key(d: date) -> int:
    return d.year * 10000 + d.month * 100 + d.day


def _files(store_root: Path, manifest: dict, table: str, first: date | None = None) -> list[str]:
    """The table's files in the manifest; monthly ones from `first`'s month on when given."""
    parts = manifest["tables"].get(table, {})
    out = []
    for part, rel in sorted(parts.items()):
        if first is not None and part not in ("all", "empty") and part < f"{first.year:04d}-{first.month:02d}":
            continue
        out.append(f"'{store_root / rel}'")
    return out


def _read(files: list[str]) -> str:
    return f"read_parquet([{', '.join(files)}], hive_partitioning=false)"


def _same(con, store_root: Path, previous: dict, manifest: dict, table: str, columns: list[str]) -> bool:
    old, new = _files(store_root, previous, table), _files(store_root, manifest, table)
    if not old or not new:
        return False
    cols = ", ".join(columns)
    differ = con.execute(
        f"select count(*) from ((select {cols} from {_read(old)} except select {cols} from {_read(new)}) "
        f"union all (select {cols} from {_read(new)} except select {cols} from {_read(old)}))"
    ).fetchone()[0]
    return differ == 0


def materialise(con: duckdb.DuckDBPyConnection, view: str, view_sql: str, store_root: Path, manifest: dict,
                previous: dict | None, previous_file: Path | None, target: Path) -> str:
    """Write the view mart to `target`; "incremental" or "full". `con` has a view per manifest table."""
    window = manifest.get("window")
    incremental = (
        view in DIMENSIONS and previous is not None and previous_file is not None and previous_file.exists()
        and previous.get("seq") == manifest["seq"] - 1 and window is not None
    )
    if incremental:
        start, end = date.fromisoformat(window[0]), date.fromisoformat(window[1])
        incremental = (end - start).days <= MAX_WINDOW_DAYS and all(
            _same(con, store_root, previous, manifest, table, columns)
            for table, columns in DIMENSIONS[view].items())
    if not incremental:
        con.execute(f"copy ({view_sql}) to '{target}' (format parquet, compression zstd)")
        return "full"
    con.execute("create schema if not exists refresh")
    try:
        if view == "mart_adr_parity":
            query = _adr_parity(con, view_sql, store_root, manifest, previous_file, start, end)
        else:
            query = _event_reaction(con, view_sql, store_root, manifest, previous, previous_file, start)
        con.execute(f"copy ({query}) to '{target}' (format parquet, compression zstd)")
    finally:
        con.execute("set search_path = 'main'")
        con.execute("drop schema refresh cascade")
    return "incremental"


def _adr_parity(con, view_sql: str, store_root: Path, manifest: dict, previous_file: Path, start: date,
                end: date) -> str:
    lo, hi = _key(start), _key(end)
    window_prices = _files(store_root, manifest, "fct_daily_price", start)
    con.execute(f"create view refresh.fct_daily_price as select * from {_read(window_prices)} "
                f"where date_key between {lo} and {hi}")
    con.execute("set search_path = 'refresh,main'")
    con.execute(f"create table refresh.refreshed as {view_sql}")
    con.execute("set search_path = 'main'")
    return (f"select * from read_parquet('{previous_file}') where date_key not between {lo} and {hi} "
            "union all by name select * from refresh.refreshed")


def _event_reaction(con, view_sql: str, store_root: Path, manifest: dict, previous: dict, previous_file: Path,
                    start: date) -> str:
    recent, reach = start - timedelta(days=RECENT_DAYS), start - timedelta(days=2 * RECENT_DAYS)
    k_start, k_recent, k_reach = _key(start), _key(recent), _key(reach)
    cols = ", ".join(EVENT_COLUMNS)
    old_events = _read(_files(store_root, previous, "fct_financing_event"))
    near = _read(_files(store_root, manifest, "fct_daily_price", reach))
    # listings that must be recomputed over their whole history: sparse ones, benchmarks, and those with an
    # event that changed before the recent span
    con.execute(f"""
        create table refresh.whole_history as
        with counts as (
            select securities.symbol,
                count(*) filter (where prices.date_key >= {k_reach} and prices.date_key < {k_recent}) as early,
                count(*) filter (where prices.date_key >= {k_recent} and prices.date_key < {k_start}) as late
            from {near} as prices
            inner join dim_security as securities using (security_key)
            group by securities.symbol
        ),
        changed as (
            (select {cols} from fct_financing_event except select {cols} from {old_events})
            union all
            (select {cols} from {old_events} except select {cols} from fct_financing_event)
        )
        select symbol from fct_financing_event where symbol is not null
            and symbol not in (select symbol from counts where early >= {MIN_PRICES} and late >= {MIN_PRICES})
        union select symbol from changed where symbol is not null and date_key < {k_recent}
    """)
    # their benchmarks too (the as-of benchmark values of an old event need the benchmark's old prices)
    con.execute("""
        insert into refresh.whole_history
        select benchmark_symbol from dim_exchange
        where benchmark_symbol is not null and exists (select 1 from refresh.whole_history)
            and benchmark_symbol not in (select symbol from refresh.whole_history)
    """)
    con.execute(f"""
        create table refresh.changed_events as
        select event_key from ((select {cols} from fct_financing_event except select {cols} from {old_events})
            union all (select {cols} from {old_events} except select {cols} from fct_financing_event))
    """)
    con.execute(f"""
        create view refresh.fct_financing_event as
        select * from main.fct_financing_event
        where date_key >= {k_recent} or symbol in (select symbol from refresh.whole_history)
            or event_key in (select event_key from refresh.changed_events)
    """)
    con.execute(f"""
        create view refresh.fct_daily_price as
        select * from {near} where date_key >= {k_reach}
        union all by name
        select * from main.fct_daily_price
        where date_key < {k_reach} and security_key in (
            select security_key from dim_security where symbol in (select symbol from refresh.whole_history))
    """)
    con.execute("set search_path = 'refresh,main'")
    con.execute(f"create table refresh.refreshed as {view_sql}")
    con.execute("set search_path = 'main'")
    return (f"select * from read_parquet('{previous_file}') "
            "where event_key not in (select event_key from refresh.fct_financing_event) "
            "and event_key not in (select event_key from refresh.changed_events) "
            "union all by name select * from refresh.refreshed")


def previous_export(export_root: Path, manifest_dir: Path) -> tuple[dict | None, Path | None]:
    """(the manifest the current export shows, its export directory), when both are still there."""
    current = export_root / "current"
    if not current.exists():
        return None, None
    try:
        info = json.loads((current / "_export.json").read_text())
        seq = int(info["manifest_seq"])
        previous = json.loads((manifest_dir / f"manifest-{seq:06d}.json").read_text())
    except (OSError, ValueError, KeyError):
        return None, None
    return previous, current.resolve()
