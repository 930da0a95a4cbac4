"""A pipeline run: its identity, window and symbols, persisted so separate Airflow tasks share it."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

from etl.config import Settings


def safe_run_id(raw: str) -> str:
    """Airflow run ids carry ':' and '+'; keep file-system friendly characters only.

    The result names a folder and files and is written into SQL text: no '/', quotes or spaces, and no
    leading dot (so never '.' or '..').
    """
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(raw)).lstrip("._-").rstrip("_")[:120]
    if not safe:
        raise ValueError(f"run id {raw!r} has no usable characters (letters, digits, _ . -)")
    return safe


def new_run_id(source: str, market: str | None, start: date, end: date) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    return safe_run_id(f"manual__{source}__{market or 'all'}__{start}__{end}__{stamp}")


@dataclass
class RunContext:
    """Everything the steps of one run agree on; written to work/<run_id>/run.json."""

    run_id: str
    source: str
    market: str | None
    start: date
    end: date
    symbols: list[str]
    replay_dir: str | None = None
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    # restatement lookback: the first day re-extracted and re-published (None: the window's start)
    restate_from: date | None = None

    @property
    def effective_start(self) -> date:
        """First day this run extracts, transforms and publishes: start, or earlier with a lookback."""
        return self.restate_from or self.start

    @property
    def is_synthetic(self) -> bool:
        return self.source == "sample"

    def work_dir(self, settings: Settings) -> Path:
        return settings.work_dir / self.run_id

    def save(self, settings: Settings) -> Path:
        path = self.work_dir(settings) / "run.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        data = asdict(self) | {"start": str(self.start), "end": str(self.end),
                               "restate_from": str(self.restate_from) if self.restate_from else None}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2))
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, settings: Settings, run_id: str) -> RunContext:
        path = settings.work_dir / safe_run_id(run_id) / "run.json"
        if not path.exists():
            raise FileNotFoundError(f"run {run_id} has no context at {path}; run the extract step first")
        data = json.loads(path.read_text())
        data["start"] = date.fromisoformat(data["start"])
        data["end"] = date.fromisoformat(data["end"])
        if data.get("restate_from"):
            data["restate_from"] = date.fromisoformat(data["restate_from"])
        return cls(**data)
