"""Test hook for the process-fault tests (tests/reliability): stop a step at a named point so it can be killed.

Production never sets ETL_TEST_PAUSE_AT, and then pause_point() is one dictionary lookup. With
ETL_TEST_PAUSE_AT=publish:before_rename (comma-separated for several points), the process reaching that point
writes its pid to ETL_TEST_PAUSE_MARKER (default <tmp>/etl-pause-<point>) and waits until a file named
<marker>.resume appears or ETL_TEST_PAUSE_SECONDS (default 120) pass, then carries on. A test waits for the
marker, then SIGKILLs the process (or creates the resume file to let it go on).

Points: land:after_first_file, transform:after_core_models, validate:after_dq_result, audit:before_replace,
publish:after_data_files, publish:before_commit, publish:before_rename.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

PAUSE_ENV = "ETL_TEST_PAUSE_AT"
MARKER_ENV = "ETL_TEST_PAUSE_MARKER"
SECONDS_ENV = "ETL_TEST_PAUSE_SECONDS"


def pause_point(name: str) -> None:
    """Wait here if ETL_TEST_PAUSE_AT names this point (tests only)."""
    spec = os.environ.get(PAUSE_ENV)
    if not spec or name not in {p.strip() for p in spec.split(",")}:
        return
    marker = Path(os.environ.get(MARKER_ENV) or Path(tempfile.gettempdir()) / f"etl-pause-{name.replace(':', '-')}")
    resume = marker.with_name(marker.name + ".resume")
    marker.write_text(f"{os.getpid()} {name}\n")
    deadline = time.monotonic() + float(os.environ.get(SECONDS_ENV, "120"))
    while time.monotonic() < deadline and not resume.exists():
        time.sleep(0.02)
