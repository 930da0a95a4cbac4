"""Table and column descriptions from catalog.yaml, as COMMENT ON statements and as Markdown docs."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import duckdb
import yaml

CATALOG_FILE = Path(__file__).resolve().parent / "catalog.yaml"


@cache
def catalog() -> dict:
    return yaml.safe_load(CATALOG_FILE.read_text())["tables"]


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def comment_statements(con: duckdb.DuckDBPyConnection) -> list[str]:
    """COMMENT ON every described view and column that exists in the connected database."""
    existing = {
        (t, c) for t, c in con.execute("select table_name, column_name from duckdb_columns()").fetchall()
    }
    views = {t for t, _ in existing}
    statements = []
    for table, spec in catalog().items():
        if table not in views:
            continue
        statements.append(f"comment on view {table} is {_quote(spec['grain'])}")
        for column, text in (spec.get("columns") or {}).items():
            if (table, column) in existing:
                statements.append(f"comment on column {table}.{column} is {_quote(text)}")
    return statements


def markdown() -> str:
    """The data dictionary as Markdown, from the same source as the comments."""
    lines = ["# Data dictionary", ""]
    for table, spec in catalog().items():
        lines += [f"## `{table}`", "", f"Grain: {spec['grain']}.", ""]
        if spec.get("columns"):
            lines += ["| column | description |", "|---|---|"]
            lines += [f"| `{c}` | {t} |" for c, t in spec["columns"].items()]
            lines.append("")
    return "\n".join(lines)
