"""Process faults (issue 4): a step SIGKILLed in a real subprocess, two publishers at once, a full disk, an
unwritable warehouse path. Each leaves the published warehouse exactly as it was and readable, and the next
attempt completes normally."""

from __future__ import annotations

import errno
import json
import shutil
import threading
from datetime import date
from pathlib import Path

import duckdb
import pytest

from etl import pipeline
from etl.pipeline import PublishError
from etl.store import Store
from tests.reliability.conftest import kill, open_everything, start_paused_step, wait_for_marker, warehouse_hashes

A = (date(2025, 9, 1), date(2025, 9, 5))    # published before every fault
B = (date(2025, 9, 8), date(2025, 9, 12))   # the run that gets killed
C = (date(2025, 9, 15), date(2025, 9, 16))  # a second run for the two-publishers case
STEPS = ["extract", "land", "transform", "validate", "publish"]


def _env(mp: pytest.MonkeyPatch, root: Path) -> None:
    mp.setenv("ETL_DATA_DIR", str(root))
    mp.setenv("ETL_WAREHOUSE", str(root / "warehouse.duckdb"))
    mp.delenv("ETL_UNIVERSE", raising=False)


@pytest.fixture(scope="module")
def stages(tmp_path_factory):
    """Data directories with run A published and run B (and C) stopped after each step, plus the expected
    warehouse after B is published cleanly. Tests copy the stage they need."""
    root = tmp_path_factory.mktemp("stages")
    out = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ETL_FUNDAMENTALS", "off")
        work = root / "work"
        _env(mp, work)
        pipeline.run_all("sample", *A, market="XHKG", run_id="run-a")
        for run_id, window in (("run-b", B), ("run-c", C)):
            pipeline.start_run("sample", *window, market="XHKG", run_id=run_id)
        for step in STEPS[:-1]:
            for run_id in ("run-b", "run-c"):
                getattr(pipeline, f"{step}_step")(run_id)
            shutil.copytree(work, root / f"after-{step}", symlinks=True)
        pipeline.publish_step("run-b")
        out["expected_after_b"] = warehouse_hashes(work / "warehouse.duckdb")
        shutil.rmtree(work)
    out["before"] = {"seq": 1}
    out["root"] = root
    return out


@pytest.fixture
def stage(stages, tmp_path, monkeypatch):
    def copy(name: str) -> Path:
        target = tmp_path / "data"
        shutil.copytree(stages["root"] / name, target, symlinks=True)
        _env(monkeypatch, target)
        monkeypatch.setenv("ETL_FUNDAMENTALS", "off")
        # the views file names its Parquet files by absolute path: point the copy's at the copy's store
        Store(pipeline.Settings.from_env()).build_views()
        return target
    return copy


KILL_POINTS = [
    # (step, pause point, stage it starts from)
    ("land", "land:after_first_file", "after-extract"),              # some landing files written, others not
    ("transform", "transform:after_core_models", "after-land"),      # candidate half built
    ("validate", "audit:before_replace", "after-transform"),         # an audit file written, not renamed
    ("validate", "validate:after_dq_result", "after-transform"),     # dq_result written, dq_run not
    ("publish", "publish:after_data_files", "after-validate"),       # new Parquet files, no manifest
    ("publish", "publish:before_commit", "after-validate"),          # views file built, not committed
    ("publish", "publish:before_rename", "after-validate"),          # manifest committed, views not swapped
]


@pytest.mark.parametrize(("step", "point", "start_stage"), KILL_POINTS, ids=[p[1] for p in KILL_POINTS])
def test_sigkill_leaves_the_published_warehouse_unchanged_and_the_rerun_completes(
        stage, stages, tmp_path, step, point, start_stage):
    data = stage(start_stage)
    wh = data / "warehouse.duckdb"
    before = open_everything(wh)
    hashes_before = warehouse_hashes(wh)

    marker = tmp_path / "paused"
    proc = start_paused_step(step, "run-b", data, point, marker)
    wait_for_marker(proc, marker)
    assert kill(proc) == -9

    # the published warehouse opens, every view (marts and audit) reads, and it shows exactly run A
    after_kill = open_everything(wh)
    assert after_kill["seq"] == before["seq"] == 1
    assert warehouse_hashes(wh) == hashes_before
    assert {v: n for v, n in after_kill["counts"].items() if v not in ("run_log", "dq_result", "dq_run",
                                                                       "quarantine", "restatement")} == \
        {v: n for v, n in before["counts"].items() if v not in ("run_log", "dq_result", "dq_run", "quarantine",
                                                                "restatement")}

    # the killed step and the ones after it, run again, complete normally and publish what a clean run does
    for name in STEPS[STEPS.index(step):]:
        getattr(pipeline, f"{name}_step")("run-b")
    final = open_everything(wh)
    assert final["seq"] == (3 if point == "publish:before_rename" else 2)
    assert warehouse_hashes(wh) == stages["expected_after_b"]
    assert not list(wh.parent.glob(f".{wh.name}.tmp-*")), "a killed publish's temporary views file is cleaned up"
    # the export step after it (its own step) catches up on every manifest since run A's export, in order
    assert pipeline.export_step("run-b")["exported"] == list(range(2, final["seq"] + 1))
    assert json.loads((data / "export" / "current" / "_export.json").read_text())["manifest_seq"] == final["seq"]


def test_a_publish_waits_for_the_one_in_progress_or_fails_cleanly(stage, tmp_path, monkeypatch):
    data = stage("after-validate")
    wh = data / "warehouse.duckdb"
    marker = tmp_path / "paused"
    first = start_paused_step("publish", "run-b", data, "publish:after_data_files", marker)
    wait_for_marker(first, marker)  # run B holds the publish lock, half-way through

    # a second publisher that will not wait: a clean failure naming the lock, nothing written
    monkeypatch.setenv("ETL_PUBLISH_LOCK_TIMEOUT", "1")
    with pytest.raises(TimeoutError, match=r"another publish holds .*\.publish\.lock .*nothing was published"):
        pipeline.publish_step("run-c")
    assert open_everything(wh)["seq"] == 1

    # one that waits (the default): it publishes after B, on top of B
    monkeypatch.setenv("ETL_PUBLISH_LOCK_TIMEOUT", "60")
    done: dict = {}
    waiter = threading.Thread(target=lambda: done.update(pipeline.publish_step("run-c")))
    waiter.start()
    (marker.parent / (marker.name + ".resume")).touch()  # let B finish
    first.communicate(timeout=60)
    waiter.join(timeout=60)
    assert first.returncode == 0 and done["seq"] == 3
    state = open_everything(wh)
    assert state["seq"] == 3
    con = duckdb.connect(str(wh), read_only=True)
    try:
        runs = con.execute("select distinct landed_run_id from fct_daily_price order by 1").fetchall()
        dupes = con.execute("select count(*) from (select security_key, date_key from fct_daily_price "
                            "group by all having count(*) > 1)").fetchone()[0]
    finally:
        con.close()
    assert runs == [("run-a",), ("run-b",), ("run-c",)] and dupes == 0


def _store_files(data: Path) -> set[str]:
    return {str(p.relative_to(data)) for p in (data / "store").rglob("*.parquet") if "audit" not in p.parts}


@pytest.mark.parametrize("where", ["data file", "views file"])
def test_a_full_disk_during_publish_fails_clearly_and_publishes_nothing(stage, monkeypatch, where):
    data = stage("after-validate")
    wh = data / "warehouse.duckdb"
    before, files_before = warehouse_hashes(wh), _store_files(data)
    calls = {"n": 0}
    if where == "data file":
        original = Store._write

        def full_disk(self, con, query, rel, **kwargs):
            calls["n"] += 1
            if calls["n"] == 3:
                raise duckdb.IOException(f'Could not write file "{rel}": No space left on device')
            return original(self, con, query, rel, **kwargs)

        monkeypatch.setattr(Store, "_write", full_disk)
    else:
        def full_disk(self, manifest=None):
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(Store, "write_views", full_disk)
    with pytest.raises(PublishError, match=r"No space left on device.*Nothing was published: the warehouse still "
                                           r"shows manifest 1"):
        pipeline.publish_step("run-b")
    assert open_everything(wh)["seq"] == 1 and warehouse_hashes(wh) == before
    assert Store(pipeline.Settings.from_env()).current()["seq"] == 1  # nothing committed
    monkeypatch.undo()
    monkeypatch.setenv("ETL_DATA_DIR", str(data))
    monkeypatch.setenv("ETL_WAREHOUSE", str(wh))
    monkeypatch.setenv("ETL_FUNDAMENTALS", "off")
    assert pipeline.publish_step("run-b")["seq"] == 2  # space is back: the retry publishes
    assert not [f for f in _store_files(data) - files_before if "/.tmp-" in f], "no temporary files left"


def test_an_unwritable_warehouse_path_fails_before_writing_anything(stage, monkeypatch, tmp_path):
    data = stage("after-validate")
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the warehouse directory should be")
    monkeypatch.setenv("ETL_WAREHOUSE", str(blocker / "warehouse.duckdb"))
    files_before = _store_files(data)
    with pytest.raises(PublishError, match=r"the warehouse directory .*not-a-directory is not writable .*nothing "
                                           r"was published, the warehouse still shows manifest 1"):
        pipeline.publish_step("run-b")
    assert _store_files(data) == files_before  # not one data file written
    assert Store(pipeline.Settings.from_env()).current()["seq"] == 1
