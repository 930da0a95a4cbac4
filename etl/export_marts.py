"""The export's view marts (mart_adr_parity, mart_event_reaction), refreshed from the previous export instead of
recomputed over the whole history at every publish (issue 6: over 25M price rows that is ~20 s a day, and the
daily publish must cost what its new day costs).

A publish changes fact rows only inside its window (its listings x [start, end]), so, when the previous export is
of the previous manifest and the dimensions the marts read are unchanged:

* mart_adr_parity rows are per ADR and date, exported like the facts as one file per month: the window's months
  are recomputed (from the window's month files of the facts), every other month is a hard link to the previous
  export's file, so a daily publish writes one month, not the whole history.
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
import shutil
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


MONTHLY = {"mart_adr_parity"}  # exported as <mart>/month=YYYY-MM/data.parquet, like the facts


def _month_key(date_key_sql: str) -> str:
    return f"strftime(strptime(cast({date_key_sql} as varchar), '%Y%m%d'), '%Y-%m')"


def write_monthly(con, query: str, target_dir: Path, months: list[str] | None = None) -> list[Path]:
    """Rows of `query` (with a date_key) as target_dir/month=YYYY-MM/data.parquet, for `months` or every month:
    a few months one COPY each, many (a first export: 240 months) in one partitioned COPY."""
    con.execute(f"create or replace temp table monthly_rows as select *, {_month_key('date_key')} as _month "
                f"from ({query})")
    if months is None:
        months = [m for (m,) in con.execute("select distinct _month from monthly_rows order by 1").fetchall()]
    written = []
    if len(months) > 4:
        staging = target_dir / ".partitions"
        con.execute(f"set partitioned_write_max_open_files = {len(months) + 100}")
        listed = ", ".join(f"'{m}'" for m in months)
        con.execute(f"copy (select * from monthly_rows where _month in ({listed}) order by date_key) to '{staging}' "
                    "(format parquet, compression zstd, partition_by (_month), write_partition_columns false)")
        for folder in sorted(staging.glob("_month=*")):
            parts = sorted(folder.glob("*.parquet"))
            path = target_dir / f"month={folder.name.removeprefix('_month=')}" / "data.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            if len(parts) == 1:
                parts[0].replace(path)
            else:  # DuckDB split a partition: one file per month all the same
                listed_parts = ", ".join(f"'{f}'" for f in parts)
                con.execute(f"copy (select * from read_parquet([{listed_parts}]) order by date_key) to '{path}' "
                            "(format parquet, compression zstd)")
            written.append(path)
        shutil.rmtree(staging)
    else:
        for month in months:
            path = target_dir / f"month={month}" / "data.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            n = con.execute(f"copy (select * exclude (_month) from monthly_rows where _month = '{month}' "
                            f"order by date_key) to '{path}' (format parquet, compression zstd)").fetchone()[0]
            if n:
                written.append(path)
            else:
                path.unlink()
                path.parent.rmdir()
    con.execute("drop table monthly_rows")
    return sorted(written)


def materialise(con: duckdb.DuckDBPyConnection, view: str, view_sql: str, store_root: Path, manifest: dict,
                previous: dict | None, previous_dir: Path | None, target_dir: Path, link=None,
                adopt: str | None = None) -> tuple[str, list[Path]]:
    """Write the view mart under target_dir (data.parquet, or month=YYYY-MM/data.parquet for MONTHLY marts);
    returns ("candidate" | "incremental" | "full", the files). `con` has a view per manifest table; `adopt` is
    a relation holding exactly the mart's rows (the first publish's candidate); `link(source, target)` places an
    unchanged file of the previous export."""
    source = adopt or f"({view_sql})"
    if adopt:
        mode = "candidate"
    else:
        window = manifest.get("window")
        previous_mart = previous_dir / view if previous_dir else None
        ok = (view in DIMENSIONS and previous is not None and previous_mart is not None and previous_mart.exists()
              and previous.get("seq") == manifest["seq"] - 1 and window is not None)
        if ok:
            start, end = date.fromisoformat(window[0]), date.fromisoformat(window[1])
            ok = (end - start).days <= MAX_WINDOW_DAYS and all(
                _same(con, store_root, previous, manifest, table, columns)
                for table, columns in DIMENSIONS[view].items())
        mode = "incremental" if ok else "full"
    if mode != "incremental":
        if view in MONTHLY:
            return mode, write_monthly(con, f"select * from {source}", target_dir) or _empty(con, source, target_dir)
        target = target_dir / "data.parquet"
        con.execute(f"copy (select * from {source}) to '{target}' (format parquet, compression zstd)")
        return mode, [target]
    con.execute("create schema if not exists refresh")
    try:
        if view == "mart_adr_parity":
            files = _adr_parity(con, view_sql, store_root, manifest, previous_mart, target_dir, start, end, link)
        else:
            query = _event_reaction(con, view_sql, store_root, manifest, previous, previous_mart / "data.parquet",
                                    start)
            target = target_dir / "data.parquet"
            con.execute(f"copy ({query}) to '{target}' (format parquet, compression zstd)")
            files = [target]
    finally:
        con.execute("set search_path = 'main'")
        con.execute("drop schema refresh cascade")
    return "incremental", files


def _adr_parity(con, view_sql: str, store_root: Path, manifest: dict, previous_mart: Path, target_dir: Path,
                start: date, end: date, link) -> list[Path]:
    lo, hi = _key(start), _key(end)
    window_prices = _files(store_root, manifest, "fct_daily_price", start)
    con.execute(f"create view refresh.fct_daily_price as select * from {_read(window_prices)} "
                f"where date_key between {lo} and {hi}")
    con.execute("set search_path = 'refresh,main'")
    con.execute(f"create table refresh.refreshed as {view_sql}")
    con.execute("set search_path = 'main'")
    touched = []
    month = date(start.year, start.month, 1)
    while month <= end:
        touched.append(f"{month.year:04d}-{month.month:02d}")
        month = date(month.year + month.month // 12, month.month % 12 + 1, 1)
    kept = []
    for old in sorted(previous_mart.glob("month=*/data.parquet")):
        if old.parent.name.removeprefix("month=") in touched:
            kept.append(f"'{old}'")
        else:  # a month the publish did not touch: the previous export's file, unchanged
            target = target_dir / old.parent.name / "data.parquet"
            link(old, target)
    query = "select * from refresh.refreshed"
    if kept:
        query = (f"select * from read_parquet([{', '.join(kept)}], hive_partitioning=false) "
                 f"where date_key not between {lo} and {hi} union all by name {query}")
    write_monthly(con, query, target_dir, touched)
    return sorted(target_dir.glob("month=*/data.parquet")) or _empty(con, "refresh.refreshed", target_dir)


def _empty(con, source: str, target_dir: Path) -> list[Path]:
    """A typed file without rows, so readers of an empty mart still see its columns."""
    target = target_dir / "data.parquet"
    con.execute(f"copy (select * from {source} where false) to '{target}' (format parquet)")
    return [target]


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
