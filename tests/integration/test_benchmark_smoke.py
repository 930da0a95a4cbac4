"""`make bench` at a tiny size, in this process: every phase runs and bench/results.json has its keys."""

from __future__ import annotations

import json

from etl import benchmark


def test_the_benchmark_runs_end_to_end_at_a_tiny_size(tmp_path, capsys):
    out = tmp_path / "results.json"
    benchmark.main(["--securities", "20", "--days", "30", "--no-airflow", "--in-process", "--repeats", "1",
                    "--work", str(tmp_path / "work"), "--out", str(out)])
    results = json.loads(out.read_text())
    for key in ("securities", "price_rows", "backfill_s", "floor_s", "increment_long_s", "increment_short_s",
                "increment_ratio", "peak_rss_mb", "source_calls_per_security", "stages", "targets", "machine"):
        assert results[key] is not None, key
    # the default universe (36 listings) is always in, filled up to the size asked for
    assert results["securities"] == 36 and results["price_rows"] > 36 * 15
    assert results["stages"]["backfill"]["transform"]["rows"] == results["price_rows"]
    for phase in ("backfill", "increment_long", "increment_short"):
        assert {"transform", "validate", "publish"} <= set(results["stages"][phase]), phase
    assert results["increment_ratio"] == round(results["increment_long_s"] / results["increment_short_s"], 2)
    # the export, its own task after publish: timed apart, not in the increment; each increment exports its own
    # publish, its view marts refreshed from the export before it
    for key in ("export_long_s", "export_short_s", "backfill_export_s"):
        assert results[key] > 0, key
    assert "export" not in results["stages"]["increment_long"]
    assert results["stages"]["backfill"]["export"]["exported"] == [1]
    for which in ("long", "short"):
        export = results["stages"][f"increment_export_{which}"]
        assert len(export["exported"]) == 1 and export["exported"][0] > 1, export
        assert set(export["refresh"].values()) == {"incremental"}, export
    assert results["increment_rows"] == 38  # one new day for every listing, FX pairs included
    assert results["source_calls_per_security"] == 1.0  # one history call per symbol: prices, dividends, splits
    assert results["targets"]["source_calls_per_security"]["met"] is True
    assert "backfill / floor" in capsys.readouterr().out  # the table is printed
