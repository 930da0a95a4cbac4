"""The daily HTML report: self-contained page with its four charts and the run's data-quality summary."""

from __future__ import annotations

import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from etl.report import CHART_IDS, build_report
from tests.conftest import query
from tests.sample_warehouse import sample_warehouse

REPO = Path(__file__).resolve().parents[2]
SVG_NS = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    with sample_warehouse(tmp_path_factory.mktemp("report")) as wh:
        yield wh


@pytest.fixture(scope="module")
def report(published):
    summary = build_report(settings=published.settings())
    return summary, Path(summary["latest"]).read_text()


def _svg(page: str, chart_id: str) -> ET.Element:
    match = re.search(rf'<svg id="{chart_id}".*?</svg>', page, flags=re.S)
    assert match, f"chart {chart_id} missing"
    return ET.fromstring(match.group(0))  # well-formed SVG


def test_report_is_written_to_the_stable_path_and_a_dated_copy(published, report):
    summary, page = report
    assert Path(summary["latest"]) == published.data_dir / "report" / "latest.html"
    assert Path(summary["dated"]) == published.data_dir / "report" / "2025-09-30_all.html"
    assert Path(summary["dated"]).read_text() == page
    assert summary["run_id"] == published.run_id
    assert page.startswith("<!DOCTYPE html>") and "daily report for 2025-09-30" in page
    # self-contained: nothing to fetch, no scripts
    assert "<script" not in page and "<link" not in page and "<img" not in page
    assert not re.search(r'(src|href)="https?:', page)
    assert "Synthetic data." in page  # sample rows say so


def test_each_chart_is_an_inline_svg_with_a_title_and_data(report):
    _, page = report
    assert CHART_IDS == ["chart-performance", "chart-top-movers", "chart-adr-premium", "chart-financing-events"]
    performance = _svg(page, "chart-performance")
    assert "Index and key stocks" in performance.find(f"{SVG_NS}title").text
    series = {g.get("data-series") for g in performance.iter(f"{SVG_NS}g") if g.get("class") == "series"}
    assert {"HSTECH.HK", "^HSI", "^NDX", "0700.HK", "9988.HK", "BABA"} <= series
    movers = _svg(page, "chart-top-movers")
    bars = [g for g in movers.iter(f"{SVG_NS}g") if g.get("class") == "bar"]
    assert 2 <= len(bars) <= 10 and "2025-09-30" in movers.find(f"{SVG_NS}title").text
    premium = _svg(page, "chart-adr-premium")
    lines = {g.get("data-series") for g in premium.iter(f"{SVG_NS}g") if g.get("class") == "series"}
    assert "BABA vs 9988.HK" in lines and len(lines) == 10
    events = _svg(page, "chart-financing-events")
    kinds = {g.get("data-kind") for g in events.iter(f"{SVG_NS}g") if g.get("class") == "event"}
    assert {"capital_raised", "capital_returned", "corporate_action"} <= kinds
    titles = " ".join(t.text for t in events.iter(f"{SVG_NS}title"))
    assert "0700.HK cash_dividend" in titles and "1810.HK stock_split" in titles


def test_dq_summary_lists_every_validated_table_of_the_run(published, report):
    _, page = report
    tables = [t for (t,) in query(published.warehouse, "select table_name from dq_run where run_id = ?",
                                  [published.run_id])]
    assert len(tables) >= 9
    dq = re.search(r'<table id="table-dq-run">.*?</table>', page, flags=re.S).group(0)
    for table in tables:
        assert f"<td>{table}</td>" in dq, table
    assert dq.count("<tr>") == len(tables) + 1  # header + one row per table
    assert re.search(r'<span id="dq-verdict" class="ok">passed</span>', page)
    steps = re.search(r'<table id="table-run-log">.*?</table>', page, flags=re.S).group(0)
    for step in ("extract", "land", "transform", "validate", "publish"):
        assert f"<td>{step}</td>" in steps


def test_python_m_etl_report_writes_the_page(published, tmp_path):
    out = subprocess.run([sys.executable, "-m", "etl", "report", "--warehouse", str(published.warehouse),
                          "--out", str(tmp_path)], capture_output=True, text=True, timeout=120, cwd=REPO,
                         env={**__import__("os").environ, "ETL_DATA_DIR": str(published.data_dir)})
    assert out.returncode == 0, out.stderr[-2000:]
    page = (tmp_path / "latest.html").read_text()
    for chart_id in CHART_IDS:
        assert f'<svg id="{chart_id}"' in page
