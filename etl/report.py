"""The daily HTML report: charts of the published warehouse plus the data-quality summary of a run.

One self-contained page (inline CSS and SVG, no scripts, no external files) so it opens offline and can be
mailed or served as a static file. Written atomically to ETL_DATA_DIR/report/latest.html and to a dated copy
report/<as-of date>_<market>.html. The DAG's `report` task calls build_report after `publish`; so does
`python -m etl report`.

Charts (each an <svg> with an id and a <title>): index and key stocks rebased to 100, top movers of the latest
session, ADR premium/discount against the Hong Kong line, and the financing-event timeline. The numbers come
from the documented queries in sql/analysis/ (top movers, ADR premium, financing events), so the page and a
SQL user's answer agree.
"""

from __future__ import annotations

import html
import json
import math
import os
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd

from etl.config import PROJECT_ROOT, Settings, load_universe

ANALYSIS_DIR = PROJECT_ROOT / "sql" / "analysis"
REPORT_DAYS = 92  # calendar days of history in the charts
KEY_STOCKS = ["0700.HK", "9988.HK", "3690.HK", "1810.HK", "BABA"]
TOP_N = 5
PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf", "#393b79", "#ad494a"]
CHART_IDS = ["chart-performance", "chart-top-movers", "chart-adr-premium", "chart-financing-events"]


def _esc(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


# -- SVG charts -----------------------------------------------------------------------------------------------

def _nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi] (the usual 1-2-5 steps)."""
    if not math.isfinite(lo) or not math.isfinite(hi):
        return [0.0]
    if hi - lo < 1e-12:
        lo, hi = lo - (abs(lo) * 0.01 or 1), hi + (abs(hi) * 0.01 or 1)
    raw = (hi - lo) / max(count - 1, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.floor(lo / step) * step
    ticks, value = [first], first
    while value < hi - step * 1e-9:
        value += step
        ticks.append(round(value, 10))
    return ticks


def _fmt(value: float, decimals: int) -> str:
    return f"{value:,.{decimals}f}"


def _svg_open(chart_id: str, title: str, width: int, height: int, desc: str) -> list[str]:
    return [
        f'<svg id="{_esc(chart_id)}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-labelledby="{_esc(chart_id)}-title '
        f'{_esc(chart_id)}-desc" font-family="Helvetica, Arial, sans-serif" font-size="11">',
        f'<title id="{_esc(chart_id)}-title">{_esc(title)}</title>',
        f'<desc id="{_esc(chart_id)}-desc">{_esc(desc)}</desc>',
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
        f'<text x="10" y="18" font-size="14" font-weight="bold" fill="#222">{_esc(title)}</text>',
    ]


def _empty(chart_id: str, title: str, message: str, width: int = 900, height: int = 80) -> str:
    parts = _svg_open(chart_id, title, width, height, message)
    parts.append(f'<text x="10" y="50" fill="#666">{_esc(message)}</text></svg>')
    return "\n".join(parts)


def line_chart(chart_id: str, title: str, series: dict[str, list[tuple[date, float | None]]], y_label: str,
               decimals: int = 0, zero_line: bool = False, width: int = 900, height: int = 340) -> str:
    """Lines over calendar dates, one per series, with a legend on the right."""
    points = [(d, v) for values in series.values() for d, v in values if v is not None and math.isfinite(v)]
    if not points:
        return _empty(chart_id, title, "no data in the period")
    left, right, top, bottom = 64, 170, 34, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    d0, d1 = min(d for d, _ in points), max(d for d, _ in points)
    span = max((d1 - d0).days, 1)
    ticks = _nice_ticks(min(v for _, v in points), max(v for _, v in points))
    y_lo, y_hi = ticks[0], ticks[-1]

    def x(d: date) -> float:
        return left + plot_w * (d - d0).days / span

    def y(v: float) -> float:
        return top + plot_h * (1 - (v - y_lo) / ((y_hi - y_lo) or 1))

    parts = _svg_open(chart_id, title, width, height, f"{y_label} from {d0} to {d1}")
    for t in ticks:
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y(t):.1f}" y2="{y(t):.1f}" stroke="#e5e5e5"/>')
        parts.append(f'<text x="{left - 6}" y="{y(t) + 4:.1f}" text-anchor="end" fill="#555">'
                     f'{_fmt(t, decimals)}</text>')
    if zero_line and y_lo < 0 < y_hi:
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y(0):.1f}" y2="{y(0):.1f}" stroke="#888"/>')
    n_dates = min(7, span + 1)
    for i in range(n_dates):
        d = d0 + timedelta(days=round(span * i / max(n_dates - 1, 1)))
        parts.append(f'<line x1="{x(d):.1f}" x2="{x(d):.1f}" y1="{top + plot_h}" y2="{top + plot_h + 4}" '
                     f'stroke="#555"/>')
        parts.append(f'<text x="{x(d):.1f}" y="{top + plot_h + 16}" text-anchor="middle" fill="#555">'
                     f'{d.strftime("%d %b %Y" if i == 0 else "%d %b")}</text>')
    parts.append(f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999"/>')
    parts.append(f'<text x="14" y="{top + plot_h / 2:.0f}" transform="rotate(-90 14 {top + plot_h / 2:.0f})" '
                 f'text-anchor="middle" fill="#555">{_esc(y_label)}</text>')
    for i, (name, values) in enumerate(series.items()):
        color = PALETTE[i % len(PALETTE)]
        segments, current = [], []
        for d, v in sorted(values):
            if v is None or not math.isfinite(v):
                if current:
                    segments.append(current)
                current = []
            else:
                current.append(f"{x(d):.1f},{y(v):.1f}")
        if current:
            segments.append(current)
        last = next((v for _, v in sorted(values, reverse=True) if v is not None), None)
        parts.append(f'<g class="series" data-series="{_esc(name)}"><title>{_esc(name)}: last '
                     f'{_fmt(last, max(decimals, 2)) if last is not None else "n/a"}</title>')
        for segment in segments:
            parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.8" points="{" ".join(segment)}"/>')
        parts.append("</g>")
        ly = top + 6 + i * 16
        parts.append(f'<line x1="{left + plot_w + 12}" x2="{left + plot_w + 30}" y1="{ly}" y2="{ly}" '
                     f'stroke="{color}" stroke-width="3"/>')
        parts.append(f'<text x="{left + plot_w + 36}" y="{ly + 4}" fill="#222">{_esc(name)}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def bar_chart(chart_id: str, title: str, items: list[tuple[str, float]], unit: str = "%",
              width: int = 900) -> str:
    """Horizontal bars around zero: green up, red down."""
    if not items:
        return _empty(chart_id, title, "no moves on the latest session")
    left, right, top, row = 150, 70, 34, 22
    height = top + row * len(items) + 30
    plot_w = width - left - right
    bound = 1.3 * max(abs(v) for _, v in items) or 1  # room for the value labels
    ticks = _nice_ticks(-bound, bound)
    lo, hi = ticks[0], ticks[-1]

    def x(v: float) -> float:
        return left + plot_w * (v - lo) / ((hi - lo) or 1)

    parts = _svg_open(chart_id, title, width, height, f"{len(items)} largest daily moves")
    bottom = top + row * len(items)
    for t in ticks:
        parts.append(f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{top}" y2="{bottom}" stroke="#e5e5e5"/>')
        parts.append(f'<text x="{x(t):.1f}" y="{bottom + 14}" text-anchor="middle" fill="#555">'
                     f'{t:g}{_esc(unit)}</text>')
    parts.append(f'<line x1="{x(0):.1f}" x2="{x(0):.1f}" y1="{top}" y2="{bottom}" stroke="#666"/>')
    for i, (label, value) in enumerate(items):
        y0 = top + i * row + 3
        x0, x1 = sorted((x(0), x(value)))
        color = "#2ca02c" if value >= 0 else "#d62728"
        parts.append(f'<g class="bar"><title>{_esc(label)}: {value:+.2f}{_esc(unit)}</title>'
                     f'<rect x="{x0:.1f}" y="{y0}" width="{max(x1 - x0, 1):.1f}" height="{row - 6}" '
                     f'fill="{color}"/></g>')
        parts.append(f'<text x="{left - 8}" y="{y0 + row / 2 + 1:.0f}" text-anchor="end" fill="#222">'
                     f'{_esc(label)}</text>')
        tx, anchor = (x1 + 4, "start") if value >= 0 else (x0 - 4, "end")
        parts.append(f'<text x="{tx:.1f}" y="{y0 + row / 2 + 1:.0f}" text-anchor="{anchor}" fill="#222">'
                     f'{value:+.2f}{_esc(unit)}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def timeline(chart_id: str, title: str, events: list[dict], start: date, end: date, width: int = 900) -> str:
    """Events on a date axis, one lane each; marker by kind: capital returned (circle), corporate action
    (diamond), capital raised (square)."""
    if not events:
        return _empty(chart_id, title, f"no financing events between {start} and {end}")
    lanes = sorted({e["lane"] for e in events})
    left, right, top, row = 110, 90, 34, 34
    height = top + row * len(lanes) + 34
    plot_w = width - left - right
    span = max((end - start).days, 1)

    def x(d: date) -> float:
        return left + plot_w * (d - start).days / span

    parts = _svg_open(chart_id, title, width, height, f"{len(events)} events between {start} and {end}")
    bottom = top + row * len(lanes)
    n_dates = min(7, span + 1)
    for i in range(n_dates):
        d = start + timedelta(days=round(span * i / max(n_dates - 1, 1)))
        parts.append(f'<line x1="{x(d):.1f}" x2="{x(d):.1f}" y1="{top}" y2="{bottom}" stroke="#eee"/>')
        parts.append(f'<text x="{x(d):.1f}" y="{bottom + 14}" text-anchor="middle" fill="#555">'
                     f'{d.strftime("%d %b %Y" if i == 0 else "%d %b")}</text>')
    for i, lane in enumerate(lanes):
        ly = top + i * row + row / 2
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{ly:.0f}" y2="{ly:.0f}" stroke="#ccc"/>')
        parts.append(f'<text x="{left - 8}" y="{ly + 4:.0f}" text-anchor="end" fill="#222">{_esc(lane)}</text>')
    merged: dict[tuple, dict] = {}  # one marker per lane, date and kind; labels joined
    for e in sorted(events, key=lambda e: (e["date"], e["lane"], e["label"])):
        key = (e["lane"], e["date"], e["kind"])
        if key in merged:
            merged[key] = {**merged[key], "label": merged[key]["label"] + "; " + e["label"],
                           "short": merged[key]["short"] + "; " + e["short"]}
        else:
            merged[key] = dict(e)
    label_end: dict[tuple[str, bool], float] = {}  # per lane and side (above/below), where the last label ends
    for e in sorted(merged.values(), key=lambda e: (e["date"], e["lane"])):
        cx, cy = x(e["date"]), top + lanes.index(e["lane"]) * row + row / 2
        kind = e["kind"]
        color = EVENT_COLORS.get(kind, "#9467bd")
        if kind == "capital_returned":
            shape = f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="6" fill="{color}"/>'
        elif kind == "corporate_action":
            shape = (f'<polygon points="{cx:.1f},{cy - 7:.1f} {cx + 7:.1f},{cy:.1f} {cx:.1f},{cy + 7:.1f} '
                     f'{cx - 7:.1f},{cy:.1f}" fill="{color}"/>')
        else:
            shape = f'<rect x="{cx - 6:.1f}" y="{cy - 6:.1f}" width="12" height="12" fill="{color}"/>'
        parts.append(f'<g class="event" data-kind="{_esc(kind)}"><title>{_esc(e["date"])} {_esc(e["lane"])}: '
                     f'{_esc(e["label"])}</title>{shape}</g>')
        side = next((side for side in (True, False) if cx + 9 >= label_end.get((e["lane"], side), -1.0)), None)
        if side is not None:  # no free side: the marker's tooltip still has the text
            label_end[(e["lane"], side)] = cx + 9 + 5.5 * len(e["short"])
            parts.append(f'<text x="{cx + 9:.1f}" y="{cy - 7 if side else cy + 15:.1f}" fill="#333" '
                         f'font-size="10">{_esc(e["short"])}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


# -- data -----------------------------------------------------------------------------------------------------

def analysis_sql(name: str) -> str:
    """The text of a documented query in sql/analysis/ (by file name, with or without .sql)."""
    path = ANALYSIS_DIR / (name if name.endswith(".sql") else f"{name}.sql")
    return path.read_text()


def run_analysis(con: duckdb.DuckDBPyConnection, name: str, **variables) -> pd.DataFrame:
    """Run an analysis file with its parameters set (the file keeps a variable that is already set)."""
    for key, value in variables.items():
        literal = f"date '{value.isoformat()}'" if isinstance(value, date) else repr(value)
        con.execute(f"set variable {key} = {literal}")
    try:
        return con.execute(analysis_sql(name)).df()
    finally:
        for key in variables:
            con.execute(f"reset variable {key}")


@dataclass
class ReportData:
    info: dict
    run_id: str | None
    as_of: date
    start: date
    synthetic: bool
    performance: dict[str, list[tuple[date, float | None]]]
    performance_table: pd.DataFrame
    movers: pd.DataFrame
    movers_date: date | None
    adr_premium: pd.DataFrame
    events: pd.DataFrame
    dq_run: pd.DataFrame
    dq_failures: pd.DataFrame
    run_log: pd.DataFrame
    row_counts: list[tuple[str, int]]
    market: str = "all"


def _views(con) -> set[str]:
    return {r[0] for r in con.execute("select view_name from duckdb_views() where not internal").fetchall()}


def collect(con: duckdb.DuckDBPyConnection, run_id: str | None = None, days: int = REPORT_DAYS,
            key_symbols: list[str] | None = None) -> ReportData:
    info_row = con.execute("select * from warehouse_info").df().to_dict("records")
    info = info_row[0] if info_row else {}
    (last_key,) = con.execute("select max(date_key) from fct_daily_price").fetchone()
    if last_key is None:
        raise RuntimeError("the published warehouse has no prices yet; nothing to report")
    as_of = datetime.strptime(str(last_key), "%Y%m%d").date()
    start = as_of - timedelta(days=days - 1)
    if run_id is None:
        latest = con.execute("select run_id from dq_run order by validated_at desc limit 1").fetchone()
        run_id = latest[0] if latest else None

    universe = load_universe()
    wanted = key_symbols or list(dict.fromkeys(
        [s.symbol for s in universe.listings if s.security_type == "index"]
        + list(universe.benchmarks.values()) + KEY_STOCKS))
    perf = con.execute("""
        select p.symbol, d.calendar_date, p.adj_close
        from fct_daily_price p join dim_date d using (date_key)
        where d.calendar_date between ? and ? and p.symbol in (select unnest(?::varchar[]))
        order by p.symbol, d.calendar_date""", [start, as_of, wanted]).df()
    performance: dict[str, list[tuple[date, float | None]]] = {}
    for symbol in wanted:
        rows = perf[perf.symbol == symbol]
        if rows.empty:
            continue
        base = float(rows.adj_close.iloc[0])
        performance[symbol] = [(pd.Timestamp(d).date(), 100.0 * float(v) / base)
                               for d, v in zip(rows.calendar_date, rows.adj_close, strict=True)]
    performance_table = run_analysis(con, "01_index_and_stock_performance", start_date=start, end_date=as_of)
    performance_table = performance_table[performance_table.symbol.isin(wanted)]

    (movers_key,) = con.execute("""
        select max(p.date_key) from fct_daily_price p join dim_security s using (security_key)
        where s.security_type in ('equity', 'adr') and p.daily_return is not null""").fetchone()
    movers_date = datetime.strptime(str(movers_key), "%Y%m%d").date() if movers_key else None
    movers = (run_analysis(con, "05_top_movers_on_a_day", on_date=movers_date, top_n=TOP_N)
              if movers_date else pd.DataFrame())
    adr = run_analysis(con, "06_adr_premium", start_date=start, end_date=as_of)
    events = run_analysis(con, "07_financing_events", start_date=start, end_date=as_of,
                          categories=["capital_raised", "capital_returned", "corporate_action"])

    def frame(sql: str, params=None) -> pd.DataFrame:
        return con.execute(sql, params or []).df()

    dq_run = frame("""select table_name, suite_name, rows_validated, expectations, failed_blocking, failed_warning,
                             success, round(duration_s, 2) as duration_s
                      from dq_run where run_id = ? order by table_name""", [run_id])
    dq_failures = frame("""select table_name, expectation_type, column_name, severity, unexpected_count,
                                  observed_value, left(examples, 300) as examples
                           from dq_result where run_id = ? and not success
                           order by severity = 'error' desc, table_name, expectation_type""", [run_id])
    run_log = frame("""select step, status, market, rows_in, rows_out, rows_rejected, started_at, finished_at
                       from run_log where run_id = ? order by started_at""", [run_id])
    published = [t for t in ("dim_date", "dim_exchange", "dim_currency", "dim_company", "dim_security",
                             "fct_daily_price", "fct_fx_rate", "fct_corporate_action", "fct_financing_event")
                 if t in _views(con)]
    row_counts = [(t, con.execute(f"select count(*) from {t}").fetchone()[0]) for t in published]
    (synthetic,) = con.execute("select coalesce(bool_or(is_synthetic), false) from fct_daily_price "
                               "where date_key >= ?", [int(start.strftime("%Y%m%d"))]).fetchone()
    market = run_log["market"].iloc[0] if not run_log.empty and run_log["market"].iloc[0] else "all"
    return ReportData(info=info, run_id=run_id, as_of=as_of, start=start, synthetic=bool(synthetic), market=market,
                      performance=performance, performance_table=performance_table, movers=movers,
                      movers_date=movers_date, adr_premium=adr, events=events, dq_run=dq_run,
                      dq_failures=dq_failures, run_log=run_log, row_counts=row_counts)


# -- HTML -----------------------------------------------------------------------------------------------------

CSS = """
body { font-family: Helvetica, Arial, sans-serif; margin: 24px auto; max-width: 960px; color: #222; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 17px; margin-top: 32px; border-bottom: 1px solid #ddd; }
.meta { color: #555; font-size: 13px; } .banner { background: #fff3cd; border: 1px solid #e0c36c; padding: 8px 12px; }
table { border-collapse: collapse; font-size: 12px; margin: 8px 0; }
th, td { padding: 3px 8px; border-bottom: 1px solid #eee; }
th { text-align: left; background: #f6f6f6; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.ok { color: #2a7d2a; font-weight: bold; } .fail { color: #b22222; font-weight: bold; } .warn { color: #b8860b; }
figure { margin: 12px 0; } figcaption { font-size: 12px; color: #555; }
"""


def _table(df: pd.DataFrame, table_id: str, columns: list[str] | None = None, max_rows: int = 60) -> str:
    if df is None or df.empty:
        return f'<p id="{_esc(table_id)}" class="meta">(none)</p>'
    df = df[columns] if columns else df
    head = "".join(f"<th>{_esc(c)}</th>" for c in df.columns)
    rows = []
    for record in df.head(max_rows).itertuples(index=False):
        cells = []
        for value in record:
            if isinstance(value, bool):
                cells.append(f'<td class="{"ok" if value else "fail"}">{"yes" if value else "no"}</td>')
            elif isinstance(value, int | float) and not isinstance(value, bool):
                text = "" if pd.isna(value) else (f"{value:,.4g}" if isinstance(value, float) and abs(value) < 1
                                                   else f"{value:,.2f}" if isinstance(value, float) else f"{value:,}")
                cells.append(f'<td class="num">{_esc(text)}</td>')
            else:
                cells.append(f"<td>{_esc('' if pd.isna(value) else value)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    more = (f'<p class="meta">{len(df) - max_rows} more rows not shown.</p>' if len(df) > max_rows else "")
    return (f'<table id="{_esc(table_id)}"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
            + more)


EVENT_COLORS = {"capital_raised": "#2ca02c", "capital_returned": "#1f77b4", "corporate_action": "#ff7f0e"}


def render(data: ReportData) -> str:
    perf_svg = line_chart("chart-performance", "Index and key stocks, rebased to 100", data.performance,
                          "rebased adj. close (first session = 100)", decimals=0)
    movers = data.movers
    movers_items = []
    if not movers.empty:
        for frame in (movers[movers.direction == "gainer"], movers[movers.direction == "loser"].iloc[::-1]):
            movers_items += [(f"{r.symbol} ({r.market_code})", float(r.return_pct)) for r in frame.itertuples()]
        movers_items.sort(key=lambda item: -item[1])
    movers_svg = bar_chart("chart-top-movers", f"Top movers on {data.movers_date} (daily return)", movers_items)
    adr = data.adr_premium
    premium_series = {
        f"{sym} vs {grp.underlying_symbol.iloc[0]}": [(pd.Timestamp(d).date(), float(v))
                                                     for d, v in zip(grp.trade_date, grp.premium_pct, strict=True)]
        for sym, grp in adr.groupby("adr_symbol")
    } if not adr.empty else {}
    adr_svg = line_chart("chart-adr-premium", "ADR premium (+) / discount (-) to the Hong Kong line",
                         premium_series, "premium, %", decimals=1, zero_line=True)
    events = [
        {"date": pd.Timestamp(r.event_date).date(), "lane": r.company_code or r.symbol, "kind": r.category,
         "label": f"{r.symbol} {r.event_type_code}: {r.description}"
                  + (f" (USD {r.amount_usd:,.4f})" if pd.notna(r.amount_usd) else ""),
         "short": r.description.replace(" per share", "/sh")}
        for r in data.events.itertuples()
    ]
    first_session = min((d for values in data.performance.values() for d, _ in values), default=data.start)
    events_svg = timeline("chart-financing-events", "Financing events by date and company", events,
                          max(data.start, first_session), data.as_of)
    latest_premium = (adr.sort_values("trade_date").groupby("adr_symbol").tail(1)
                      if not adr.empty else adr)

    dq = data.dq_run
    verdict = ("no validation recorded" if dq.empty else
               "passed" if bool(dq.success.all()) else "FAILED")
    verdict_class = "ok" if verdict == "passed" else "fail"
    info = data.info
    banner = ('<p class="banner"><b>Synthetic data.</b> These rows come from the offline <code>sample</code> '
              'source (<code>is_synthetic = true</code>): they are made up for demos and tests, never market '
              'data.</p>' if data.synthetic else "")
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Market-data report {data.as_of}</title>
<style>{CSS}</style></head>
<body>
<h1>China-tech market data: daily report for {data.as_of}</h1>
<p class="meta">Warehouse manifest {_esc(info.get("manifest_seq"))}, published {_esc(info.get("published_at"))}
by run <code>{_esc(info.get("run_id"))}</code>. Charts cover {data.start} to {data.as_of}. Generated {generated}.</p>
{banner}
<p>Data quality of run <code>{_esc(data.run_id)}</code>: <span id="dq-verdict" class="{verdict_class}">{verdict}</span>
({len(data.dq_failures)} expectation(s) not met; blocking ones stop a publish, warnings are shown below).</p>

<h2 id="performance">Index and key stocks</h2>
<figure>{perf_svg}<figcaption>adj_close (dividends and splits included) rebased to 100 on each series' first
session in the period; local currency.</figcaption></figure>
{_table(data.performance_table, "table-performance", ["symbol", "security_type", "currency_code", "first_date",
        "last_date", "first_close", "last_close", "return_pct", "return_usd_pct", "benchmark",
        "excess_vs_benchmark_pct"])}

<h2 id="top-movers">Top movers</h2>
<figure>{movers_svg}<figcaption>The {TOP_N} largest gains and losses among HK equities and US ADRs on the latest
session with moves ({data.movers_date}); from sql/analysis/05_top_movers_on_a_day.sql.</figcaption></figure>
{_table(movers, "table-top-movers", ["direction", "rank", "symbol", "security_name", "market_code", "return_pct",
        "close", "currency_code", "volume"] if not movers.empty else None)}

<h2 id="adr-premium">ADR premium / discount</h2>
<figure>{adr_svg}<figcaption>ADR close in USD / adr_ratio against the HK close x that day's HKD rate, minus 1;
from sql/analysis/06_adr_premium.sql.</figcaption></figure>
{_table(latest_premium, "table-adr-premium", ["trade_date", "adr_symbol", "underlying_symbol", "adr_ratio",
        "adr_close_usd", "hk_close", "hk_rate_to_usd", "premium_pct"] if not adr.empty else None)}

<h2 id="financing-events">Financing events</h2>
<figure>{events_svg}<figcaption>Capital raised (green squares), capital returned: dividends, buybacks
(blue circles), corporate actions: splits, consolidations (orange diamonds); SEC disclosures are left out.
From sql/analysis/07_financing_events.sql (fct_financing_event).</figcaption></figure>
{_table(data.events, "table-financing-events", ["event_date", "company_code", "symbol", "event_type_code",
        "category", "description", "amount_usd", "company_raised_usd"] if not data.events.empty else None)}

<h2 id="data-quality">Data quality of run {_esc(data.run_id)}</h2>
<p class="meta">One row per validated table (dq_run); blocking failures stop the publish, warnings are recorded.</p>
{_table(dq, "table-dq-run")}
<h3>Expectations not met</h3>
{_table(data.dq_failures, "table-dq-failures")}
<h3>Steps</h3>
{_table(data.run_log, "table-run-log")}

<h2 id="tables">Published tables</h2>
{_table(pd.DataFrame(data.row_counts, columns=["table", "rows"]), "table-row-counts")}
<p class="meta">Open the warehouse read-only with <code>make sql</code>; the queries behind this page are in
<code>sql/analysis/</code>.</p>
</body></html>
"""


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def build_report(run_id: str | None = None, settings: Settings | None = None, out_dir: Path | None = None,
                 days: int = REPORT_DAYS) -> dict:
    """Render the report from the published warehouse; write latest.html and a dated copy."""
    from etl.warehouse import connect_reader

    settings = settings or Settings.from_env()
    con = connect_reader(settings)
    try:
        con.execute("begin transaction")  # one snapshot for every query of the page (DuckLake)
        data = collect(con, run_id=run_id, days=days)
    finally:
        con.close()
    page = render(data)
    out = Path(out_dir) if out_dir else settings.data_dir / "report"
    dated = out / f"{data.as_of}_{data.market}.html"
    latest = out / "latest.html"
    _write_atomic(dated, page)
    _write_atomic(latest, page)
    summary = {"latest": str(latest), "dated": str(dated), "as_of": str(data.as_of), "run_id": data.run_id,
               "charts": CHART_IDS, "dq_tables": len(data.dq_run), "bytes": len(page.encode())}
    (out / "latest.json").write_text(json.dumps(summary, indent=1))
    return summary
