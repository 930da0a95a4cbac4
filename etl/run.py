"""A pipeline run: its identity, window and symbols, persisted so separate Airflow tasks share it."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

from etl.config import Settings


def safe_run_id(raw: str) -> str:
    """Airflow run ids carry ':' and '+'; keep file-system friendly characters only."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", raw).strip("_")[:120]


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

    @property
    def is_synthetic(self) -> bool:
        return self.source == "sample"

    def work_dir(self, settings: Settings) -> Path:
        return settings.work_dir / self.run_id

    def save(self, settings: Settings) -> Path:
        path = self.work_dir(settings) / "run.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        data = asdict(self) | {"start": str(self.start), "end": str(self.end)}
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
        return cls(**data)
