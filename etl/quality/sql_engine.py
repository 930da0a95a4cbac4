"""The GX suites of etl/quality/suites.py evaluated by DuckDB, in the candidate database, for tables too big to
copy into pandas (a 20-year backfill of 5,000 securities is 25M price rows: ~6 GB as a DataFrame, minutes in GX).

Each expectation is translated to one SQL aggregate over the table with GX's semantics (pandas engine, 1.x):

* column map expectations ignore null values (NaN counts as null, as in pandas) except not_be_null; the
  row_condition filters rows first; unexpected_percent is over the non-null rows of that domain;
* uniqueness counts every row of a duplicated value (pandas ``duplicated(keep=False)``); compound keys skip rows
  where all values are missing, column pairs skip rows where both are missing;
* ``mostly`` is honoured; examples are the offending rows with the table's example columns, like GX's
  ``unexpected_index_list``.

tests/unit/test_sql_engine.py checks on real candidates, clean and tampered, that both engines agree on success,
unexpected_count and unexpected_percent for every expectation of every suite. An expectation this module cannot
translate returns None from ``compile_expectation``, and the gate then runs GX for that table (in bounded chunks).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import duckdb

ENGINE = "duckdb"


@dataclass(frozen=True)
class Check:
    """One expectation as SQL: `domain` selects the rows it looks at, `unexpected` the offending ones among them."""

    expectation_type: str
    columns: list[str]
    domain: str = "true"
    unexpected: str | None = None  # row-wise predicate; None for table-level checks
    duplicates_of: list[str] | None = None  # uniqueness: the key columns
    row_count: tuple[float | None, float | None] | None = None  # expect_table_row_count_to_be_between
    mostly: float | None = None
    percent_of_all: bool = False  # not_be_null: unexpected_percent over every row of the domain


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


_OPERATORS = {"==": "=", "!=": "is distinct from", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


def _condition(cond) -> str | None:
    """A GX row_condition (comparisons, and/or of them) as SQL; None when it cannot be translated."""
    if cond is None:
        return "true"
    kind = getattr(cond, "type", None)
    kind = getattr(kind, "value", kind)
    if kind == "comparison":
        op = _OPERATORS.get(str(getattr(cond.operator, "value", cond.operator)))
        column = getattr(cond.column, "name", None)
        if op is None or not column:
            return None
        return f"({_ident(column)} {op} {_literal(cond.parameter)})"
    if kind in ("and", "or"):
        parts = [_condition(c) for c in getattr(cond, "conditions", None) or []]
        if not parts or any(p is None for p in parts):
            return None
        return "(" + f" {kind} ".join(parts) + ")"
    return None


def _not_null(column: str, types: dict[str, str]) -> str:
    c = _ident(column)
    if types.get(column, "").upper() in ("DOUBLE", "FLOAT", "REAL"):
        return f"({c} is not null and not isnan({c}))"
    return f"({c} is not null)"


def _is_null(column: str, types: dict[str, str]) -> str:
    return f"(not {_not_null(column, types)})"


def compile_expectation(expectation, types: dict[str, str]) -> Check | None:
    """The expectation as a Check over a table with these column types, or None if it cannot be translated."""
    config = expectation.configuration
    kind, kw = config.type, dict(config.kwargs)
    cond = _condition(getattr(expectation, "row_condition", None))
    if cond is None or kw.get("condition_parser") not in (None, "great_expectations"):
        return None
    mostly = kw.get("mostly")
    column = kw.get("column")
    if column is not None and column not in types:
        return None
    if kind == "expect_column_values_to_not_be_null":
        return Check(kind, [column], cond, _is_null(column, types), mostly=mostly, percent_of_all=True)
    if kind == "expect_column_values_to_be_unique":
        return Check(kind, [column], f"{cond} and {_not_null(column, types)}", duplicates_of=[column], mostly=mostly)
    if kind == "expect_compound_columns_to_be_unique":
        columns = kw["column_list"]
        if any(c not in types for c in columns) or expectation.ignore_row_if != "all_values_are_missing":
            return None
        any_present = " or ".join(_not_null(c, types) for c in columns)
        return Check(kind, list(columns), f"{cond} and ({any_present})", duplicates_of=list(columns), mostly=mostly)
    if kind == "expect_column_values_to_be_between":
        if kw.get("min_value") is None and kw.get("max_value") is None:
            return None
        c = _ident(column)
        ok = []
        if kw.get("min_value") is not None:
            ok.append(f"{c} {'>' if kw.get('strict_min') else '>='} {_literal(kw['min_value'])}")
        if kw.get("max_value") is not None:
            ok.append(f"{c} {'<' if kw.get('strict_max') else '<='} {_literal(kw['max_value'])}")
        return Check(kind, [column], f"{cond} and {_not_null(column, types)}", f"not ({' and '.join(ok)})",
                     mostly=mostly)
    if kind == "expect_column_values_to_be_in_set":
        values = ", ".join(_literal(v) for v in kw["value_set"]) or "null"
        return Check(kind, [column], f"{cond} and {_not_null(column, types)}",
                     f"{_ident(column)} not in ({values})", mostly=mostly)
    if kind == "expect_column_values_to_match_regex":
        return Check(kind, [column], f"{cond} and {_not_null(column, types)}",
                     f"not regexp_matches(cast({_ident(column)} as varchar), {_literal(kw['regex'])})",
                     mostly=mostly)
    if kind == "expect_column_pair_values_a_to_be_greater_than_b":
        a, b = kw["column_A"], kw["column_B"]
        if a not in types or b not in types or expectation.ignore_row_if != "both_values_are_missing":
            return None
        op = ">=" if kw.get("or_equal") else ">"
        domain = f"{cond} and ({_not_null(a, types)} or {_not_null(b, types)})"
        return Check(kind, [a, b], domain, f"not coalesce({_ident(a)} {op} {_ident(b)}, false)", mostly=mostly)
    if kind == "expect_table_row_count_to_be_between":
        if cond != "true":
            return None
        return Check(kind, [], row_count=(kw.get("min_value"), kw.get("max_value")))
    return None


def column_types(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, str]:
    return {name: ctype for name, ctype, *_ in con.execute(f"describe {table}").fetchall()}


def _examples(con, table: str, check: Check, where: str, example_columns: list[str]) -> list[dict]:
    columns = list(dict.fromkeys([*check.columns, *[c for c in example_columns if c not in check.columns]]))
    select = ", ".join(_ident(c) for c in columns)
    frame = con.execute(f"select {select} from {table} where {where} limit 5").df()
    return json.loads(frame.to_json(orient="records", date_format="iso"))


def _result(check: Check, all_rows: int, domain_rows: int, unexpected: int) -> dict:
    percent = (100.0 * unexpected / domain_rows) if domain_rows else None
    if check.mostly is None:
        ok = unexpected == 0
    else:
        ok = domain_rows == 0 or (domain_rows - unexpected) / domain_rows >= check.mostly
    return {"success": bool(ok), "observed_value": {"engine": ENGINE, "element_count": int(all_rows)},
            "unexpected_count": int(unexpected), "unexpected_percent": percent, "examples": [], "where": None}


def evaluate(con: duckdb.DuckDBPyConnection, table: str, checks: list[Check], example_columns: list[str]
             ) -> list[dict]:
    """GX-shaped results of a table's checks: every row-wise check in one scan, each uniqueness in one
    aggregate; examples (at most 5 offending rows) only for the checks that found any."""
    results: list[dict | None] = [None] * len(checks)
    rowwise = [i for i, c in enumerate(checks) if c.unexpected is not None]
    aggregates = ["count(*)"]
    for i in rowwise:
        c = checks[i]
        aggregates += [f"count(*) filter (where {c.domain})",
                       f"count(*) filter (where ({c.domain}) and ({c.unexpected}))"]
    counts = con.execute(f"select {', '.join(aggregates)} from {table}").fetchone()
    total = counts[0]
    for n, i in enumerate(rowwise):
        c = checks[i]
        results[i] = _result(c, total, counts[1 + 2 * n], counts[2 + 2 * n])
        if results[i]["unexpected_count"]:
            results[i]["where"] = f"({c.domain}) and ({c.unexpected})"
    for i, c in enumerate(checks):
        if c.row_count is not None:
            low, high = c.row_count
            ok = (low is None or total >= low) and (high is None or total <= high)
            results[i] = {"success": ok, "observed_value": total, "unexpected_count": None,
                          "unexpected_percent": None, "examples": [], "where": None}
        elif c.duplicates_of:
            keys = ", ".join(_ident(k) for k in c.duplicates_of)
            domain_rows, unexpected = con.execute(
                f"select coalesce(sum(n), 0), coalesce(sum(n) filter (where n > 1), 0) from "
                f"(select count(*) as n from {table} where {c.domain} group by {keys})"
            ).fetchone()
            results[i] = _result(c, total, domain_rows, unexpected)
            if unexpected:
                results[i]["where"] = (f"({c.domain}) and ({keys}) in (select {keys} from {table} "
                                       f"where {c.domain} group by {keys} having count(*) > 1)")
    for c, r in zip(checks, results, strict=True):
        where = r.pop("where")
        if where:
            r["examples"] = _examples(con, table, c, where, example_columns)
    return results


def table_results(con: duckdb.DuckDBPyConnection, table: str, suite_name: str, compiled: list,
                  example_columns: list[str], severity_of) -> list[dict]:
    """dq_result rows (the gate's format) for the pre-compiled (expectation, Check) pairs of one table."""
    started = time.perf_counter()
    results = evaluate(con, table, [check for _, check in compiled], example_columns)
    seconds = (time.perf_counter() - started) / max(1, len(compiled))
    rows = []
    for (expectation, _), result in zip(compiled, results, strict=True):
        config = expectation.configuration
        kwargs = {k: v for k, v in config.kwargs.items() if k != "batch_id"}
        rows.append({
            "table_name": table,
            "suite_name": suite_name,
            "expectation_type": config.type,
            "column_name": kwargs.get("column") or ",".join(
                kwargs.get("column_list") or [c for c in (kwargs.get("column_A"), kwargs.get("column_B")) if c]),
            "severity": severity_of(config),
            "success": result["success"],
            "observed_value": json.dumps(result["observed_value"], default=str),
            "unexpected_count": result["unexpected_count"],
            "unexpected_percent": result["unexpected_percent"],
            "examples": json.dumps(result["examples"], default=str),
            "kwargs": json.dumps(json.loads(json.dumps(kwargs, default=str))),
            "seconds": seconds,
        })
    return rows
