"""A request budget for Yahoo shared by every process of a data directory: spacing between calls, and a cap per run.

Yahoo throttles per client IP, not per task: the XHKG and US DAG runs, Airflow retries and a manual run all
send from the same machine. So the spacing between two calls is kept in one state file under the data
directory, behind an exclusive file lock (a process that has to wait sleeps while holding the lock, so the
callers form a queue), and the number of calls a run may make is counted per run id in the same file.

Rules: at least ETL_YF_MIN_INTERVAL seconds (default 0.5) between the starts of any two Yahoo calls of this
data directory; at most ETL_YF_MAX_REQUESTS_PER_RUN calls (default 20 per symbol of the run, at least 200)
for one run id, retries included; past it the run fails with SourceError saying so (no silent truncation).
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

from etl.sources.base import SourceError

MAX_REQUESTS_ENV = "ETL_YF_MAX_REQUESTS_PER_RUN"
REQUESTS_PER_SYMBOL = 20
MIN_REQUESTS_PER_RUN = 200


def max_requests_for(symbols: int) -> int:
    """The per-run cap: ETL_YF_MAX_REQUESTS_PER_RUN, else 20 calls per symbol (at least 200)."""
    raw = os.environ.get(MAX_REQUESTS_ENV, "").strip()
    if raw:
        try:
            value = int(raw)
        except ValueError:
            raise SourceError(f"{MAX_REQUESTS_ENV} must be a whole number of calls, got {raw!r}") from None
        if value < 1:
            raise SourceError(f"{MAX_REQUESTS_ENV} must be >= 1, got {raw!r}")
        return value
    return max(MIN_REQUESTS_PER_RUN, REQUESTS_PER_SYMBOL * symbols)


class RequestBudget:
    """Cross-process throttle and per-run call cap, kept in `state_file` (JSON) behind `state_file`.lock."""

    def __init__(self, state_file: Path, run_id: str, min_interval: float, max_requests: int | None,
                 clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep) -> None:
        self.state_file = Path(state_file)
        self.lock_file = self.state_file.with_name(self.state_file.name + ".lock")
        self.run_id = run_id
        self.min_interval = float(min_interval)
        self.max_requests = max_requests
        self._clock = clock
        self._sleep = sleep
        self.last_granted: float | None = None  # when this process was last let through (clock time)

    def _read(self) -> dict:
        try:
            return json.loads(self.state_file.read_text())
        except (FileNotFoundError, ValueError):
            return {"last_call": None, "runs": {}}

    def acquire(self, what: str = "call") -> int:
        """Block until this process may send the next Yahoo call; return the run's call number (1-based)."""
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.lock_file, "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                state = self._read()
                used = int(state["runs"].get(self.run_id, 0))
                if self.max_requests is not None and used >= self.max_requests:
                    raise SourceError(
                        f"run {self.run_id} used its whole Yahoo request budget ({self.max_requests} calls, "
                        f"{MAX_REQUESTS_ENV}) before {what}; stopped instead of hammering Yahoo. Raise the "
                        "budget or split the window"
                    )
                last = state.get("last_call")
                if last is not None:
                    wait = float(last) + self.min_interval - self._clock()
                    if wait > 0:
                        self._sleep(min(wait, self.min_interval))
                state["last_call"] = self.last_granted = self._clock()
                runs = state["runs"]
                runs.pop(self.run_id, None)
                runs[self.run_id] = used + 1  # most recent last; the file keeps the last 50 runs' counts
                state["runs"] = dict(list(runs.items())[-50:])
                tmp = self.state_file.with_name(f".{self.state_file.name}.{os.getpid()}.tmp")
                tmp.write_text(json.dumps(state))
                tmp.replace(self.state_file)
                return used + 1
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def used(self) -> int:
        return int(self._read()["runs"].get(self.run_id, 0))
