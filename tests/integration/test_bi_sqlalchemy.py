"""BI tools' route: SQLAlchemy + duckdb-engine on the published warehouse, read-only, in a loop in another
process while the pipeline publishes. No lock errors on either side; each new connection sees a whole state."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from datetime import date

from etl.pipeline import run_all
from tests.conftest import query

BI_CLIENT = textwrap.dedent("""
    import json, sys, time
    import pandas as pd
    from sqlalchemy import create_engine, inspect, text
    from sqlalchemy.pool import NullPool

    path, seconds, mode = sys.argv[1], float(sys.argv[2]), sys.argv[3]
    url = f"duckdb:///{path}"
    if mode == "fresh":
        # what a BI tool should use: read-only, no pooling, so every query opens the newest publish
        engine = create_engine(url, connect_args={"read_only": True}, poolclass=NullPool)
    else:
        # SQLAlchemy's default QueuePool keeps its connection, hence its snapshot, until it is recycled
        engine = create_engine(url, connect_args={"read_only": True})
    out = {"seen": [], "errors": [], "views": [], "frame_rows": None}
    with engine.connect() as c:
        out["views"] = sorted(inspect(c).get_view_names())
    out["frame_rows"] = len(pd.read_sql("select symbol, close from fct_daily_price limit 5", engine))
    end = time.time() + seconds
    while time.time() < end:
        try:
            with engine.connect() as c:
                count = c.execute(text("select count(*) from fct_daily_price")).scalar()
                seq = c.execute(text("select manifest_seq from warehouse_info")).scalar()
            out["seen"].append([count, seq])
        except Exception as exc:
            out["errors"].append(str(exc)[:500])
        time.sleep(0.02)
    engine.dispose()
    print("JSON:" + json.dumps(out))
""")


def test_sqlalchemy_readers_in_a_loop_while_the_pipeline_publishes(data_dir, tmp_path):
    wh = data_dir / "warehouse.duckdb"
    run_all("sample", date(2025, 9, 1), date(2025, 9, 15))
    (old,) = query(wh, "select count(*) from fct_daily_price")[0]
    script = tmp_path / "bi_client.py"
    script.write_text(BI_CLIENT)
    # one process per engine: DuckDB shares one open database per path inside a process
    clients = {mode: subprocess.Popen([sys.executable, str(script), str(wh), "30", mode], stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True) for mode in ("fresh", "pooled")}
    time.sleep(3.0)  # connected and looping before the run starts
    try:
        started = time.time()
        out = run_all("sample", date(2025, 9, 16), date(2025, 9, 30))  # raises on any pipeline error
        assert time.time() - started < 30, "the run must finish while the BI clients are still querying"
    finally:
        results = {mode: p.communicate(timeout=120) for mode, p in clients.items()}
    reports = {}
    for mode, (stdout, stderr) in results.items():
        assert clients[mode].returncode == 0, stderr[-3000:]
        reports[mode] = json.loads(next(line for line in stdout.splitlines() if line.startswith("JSON:"))[5:])
    (new,) = query(wh, "select count(*) from fct_daily_price")[0]

    assert out["publish"]["seq"] == 2
    for mode, report in reports.items():
        assert report["errors"] == [], mode
        assert "fct_daily_price" in report["views"] and "dim_security" in report["views"]
        assert report["frame_rows"] == 5
        # whole states only: (rows, manifest) pairs are the old or the new publish, never a mix
        assert {tuple(x) for x in report["seen"]} <= {(old, 1), (new, 2)}, mode
    assert reports["fresh"]["seen"][0] == [old, 1] and reports["fresh"]["seen"][-1] == [new, 2]
    assert {tuple(x) for x in reports["pooled"]["seen"]} == {(old, 1)}, "a pooled connection keeps its snapshot"
