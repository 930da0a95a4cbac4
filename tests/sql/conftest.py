"""Model tests: the real sql/ files on tiny hand-made tables in an in-memory DuckDB.

The `warehouse` fixture builds a connection the way etl.transform.transform() builds a run's candidate
database (the same DuckDB variables and the same surrogate_key macro) but without landing, universe or store:
each test creates, as plain tables, exactly the relations the model under test reads, then materialises the
model with `create or replace table <name> as <sql file text>` just as the transform does.

Given/when/then in a test reads as:

    warehouse.table("ref_session", [{"market_code": "XHKG", "session_date": date(2024, 1, 8)}])  # given
    warehouse.run("int_prices_checked")                                                            # when
    assert warehouse.rows("select ... order by ...") == [...]                                      # then

Tables are typed from SCHEMAS below (the columns the upstream model or etl.transform really produces); a row
is a dict, columns it leaves out are null, and a key that is not a column is an error (no silent typos).
test_fixture_contract.py checks that SCHEMAS, the macro and the variables still match etl/transform.py and the
models, so these inputs cannot drift away from what the pipeline really builds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any

import duckdb
import pytest

from etl.transform import EVENT_MODELS, MODELS, model_sql

# Verbatim from etl.transform.transform(); test_fixture_contract.py fails if the two differ.
SURROGATE_KEY_MACRO = (
    "create macro surrogate_key(x) as cast(('0x' || substr(md5(cast(x as varchar)), 1, 15)) as bigint)"
)

# Same names and types as the `variables` dict in etl.transform.transform().
DEFAULT_VARIABLES: dict[str, Any] = {
    "run_id": "test-run",
    "source": "sample",
    "is_synthetic": True,
    "window_start": date(2024, 1, 8),
    "window_end": date(2024, 1, 12),
    "calendar_start": date(2024, 1, 1),
    "calendar_end": date(2024, 1, 31),
    # whether a file of another run landed in the window (restatement compares only then); true: always compare
    "window_has_other_runs": True,
}

LISTING_COLUMNS = {
    "symbol": "varchar",
    "company_id": "varchar",
    "company_name": "varchar",
    "sector": "varchar",
    "listing_name": "varchar",
    "exchange_code": "varchar",
    "market_code": "varchar",
    "currency": "varchar",
    "security_type": "varchar",
    "adr_ratio": "double",
    "underlying_symbol": "varchar",
    "listed_since": "date",
    "quote_min": "double",
    "quote_max": "double",
}

STAGED_PRICE_COLUMNS = {
    "symbol": "varchar",
    "bar_date": "date",
    "vendor_timestamp": "varchar",
    "open": "double",
    "high": "double",
    "low": "double",
    "close": "double",
    "adj_close_vendor": "double",
    "volume": "double",
    "dividends": "double",
    "stock_splits": "double",
    "is_vendor_adjusted": "boolean",
    "source": "varchar",
    "source_file": "varchar",
    "run_id": "varchar",
    "extracted_at": "timestamp with time zone",
    "is_conflicting_duplicate": "boolean",
    "adj_close": "double",
    "is_high_low_inverted": "boolean",
    "is_zero_volume": "boolean",
}

SCHEMAS: dict[str, dict[str, str]] = {
    # --- set up by etl.transform (landing views, reference tables, the published dimension) ---
    # Landed Parquet: etl.landing LONG_COLUMNS + extracted_at, plus source/run_id added when landing.
    "landing_prices": {
        "source": "varchar",
        "symbol": "varchar",
        "market": "varchar",
        "bar_date": "date",
        "Date": "varchar",
        "Open": "double",
        "High": "double",
        "Low": "double",
        "Close": "double",
        "Adj Close": "double",
        "Volume": "double",
        "Dividends": "double",
        "Stock Splits": "double",
        "auto_adjusted": "boolean",
        "source_file": "varchar",
        "extracted_at": "timestamp with time zone",
        "run_id": "varchar",
    },
    "landing_metadata": {
        "symbol": "varchar",
        "info": "varchar",
        "source": "varchar",
        "bar_date": "date",
        "extracted_at": "timestamp with time zone",
    },
    "ref_listing": LISTING_COLUMNS,
    "ref_company": {"company_id": "varchar", "company_name": "varchar", "sector": "varchar"},
    "ref_exchange": {
        "exchange_code": "varchar",
        "exchange_name": "varchar",
        "market_code": "varchar",
        "timezone": "varchar",
        "country_code": "varchar",
        "benchmark_symbol": "varchar",
    },
    "ref_currency": {"currency_code": "varchar", "currency_name": "varchar", "fx_symbol": "varchar"},
    "ref_session": {"market_code": "varchar", "session_date": "date"},
    "run_symbols": {"symbol": "varchar"},
    # The empty-store branch of etl.transform (the published view adds company_id = company_code).
    "published_dim_security": {
        "symbol": "varchar",
        "company_id": "varchar",
        "security_key": "bigint",
        "company_key": "bigint",
        "exchange_code": "varchar",
        "currency_code": "varchar",
        "security_type": "varchar",
        "adr_ratio": "double",
        "underlying_symbol": "varchar",
        "market_code": "varchar",
        "security_name": "varchar",
        "vendor_name": "varchar",
        "vendor_sector": "varchar",
        "attribute_hash": "varchar",
        "valid_from": "date",
        "valid_to": "date",
        "is_current": "boolean",
    },
    # --- outputs of upstream models, for testing one model at a time ---
    "stg_landing__prices": STAGED_PRICE_COLUMNS,
    "stg_universe__securities": {
        **LISTING_COLUMNS,
        "vendor_name": "varchar",
        "vendor_sector": "varchar",
        "vendor_quote_type": "varchar",
        "vendor_currency": "varchar",
    },
    "int_prices_checked": {
        **STAGED_PRICE_COLUMNS,
        "security_type": "varchar",
        "market_code": "varchar",
        "rejection_reason": "varchar",
    },
    "int_known_fx_rate": {"currency_code": "varchar", "date_key": "integer", "rate_to_usd": "double"},
    "int_fx_rate_filled": {
        "calendar_date": "date",
        "currency_code": "varchar",
        "observed_date": "date",
        "units_per_usd": "double",
        "rate_to_usd": "double",
        "is_carried_forward": "boolean",
    },
    "int_security_versions": {
        "symbol": "varchar",
        "company_id": "varchar",
        "exchange_code": "varchar",
        "currency_code": "varchar",
        "security_type": "varchar",
        "adr_ratio": "double",
        "underlying_symbol": "varchar",
        "market_code": "varchar",
        "security_name": "varchar",
        "vendor_name": "varchar",
        "vendor_sector": "varchar",
        "attribute_hash": "varchar",
        "valid_from": "date",
        "valid_to": "date",
    },
    "int_corporate_action_checked": {
        "symbol": "varchar",
        "bar_date": "date",
        "action_type": "varchar",
        "dividend_local": "double",
        "split_ratio": "double",
        "source": "varchar",
        "source_file": "varchar",
        "rejection_reason": "varchar",
    },
    "dim_security": {
        "security_key": "bigint",
        "symbol": "varchar",
        "company_key": "bigint",
        "exchange_key": "bigint",
        "currency_key": "bigint",
        "company_code": "varchar",
        "security_name": "varchar",
        "security_type": "varchar",
        "exchange_code": "varchar",
        "market_code": "varchar",
        "currency_code": "varchar",
        "adr_ratio": "double",
        "underlying_symbol": "varchar",
        "vendor_name": "varchar",
        "vendor_sector": "varchar",
        "valid_from": "date",
        "valid_to": "date",
        "is_current": "boolean",
        "attribute_hash": "varchar",
        "run_id": "varchar",
    },
    "fct_fx_rate": {
        "date_key": "integer",
        "currency_key": "bigint",
        "currency_code": "varchar",
        "rate_to_usd": "double",
        "units_per_usd": "double",
        "observed_date": "date",
        "is_carried_forward": "boolean",
        "source": "varchar",
        "run_id": "varchar",
    },
}

MODEL_PATHS = {model.split("/")[1]: model for model in MODELS}
# any model can be run on its own, the financing-event ones included (run_all is the core chain only)
ANY_MODEL_PATHS = {model.split("/")[1]: model for model in MODELS + EVENT_MODELS}


def quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class Warehouse:
    """An in-memory DuckDB prepared like a transform run; tables in, models run, rows out.

    The module constants are reachable from the fixture (warehouse.SCHEMAS, ...) so tests never need
    `from conftest import`, which is ambiguous next to tests/conftest.py.
    """

    SCHEMAS = SCHEMAS
    DEFAULT_VARIABLES = DEFAULT_VARIABLES
    SURROGATE_KEY_MACRO = SURROGATE_KEY_MACRO
    MODEL_PATHS = MODEL_PATHS

    def __init__(self, variables: Mapping[str, Any] | None = None) -> None:
        self.con = duckdb.connect(":memory:")
        self.set_variables(**DEFAULT_VARIABLES, **(variables or {}))
        self.con.execute(SURROGATE_KEY_MACRO)

    def set_variables(self, **variables: Any) -> None:
        for key, value in variables.items():
            self.con.execute(f"set variable {key} = ?", [value])

    def table(self, name: str, rows: Iterable[Mapping[str, Any]] = ()) -> None:
        """Create `name` with the columns of SCHEMAS[name] and insert `rows` (missing columns are null)."""
        columns = SCHEMAS[name]
        self.con.execute(f"create or replace table {name} ("
                         + ", ".join(f"{quoted(c)} {t}" for c, t in columns.items()) + ")")
        rows = list(rows)
        for row in rows:
            unknown = set(row) - set(columns)
            if unknown:
                raise KeyError(f"{name} has no column(s) {sorted(unknown)}")
        if rows:
            placeholders = ", ".join("?" for _ in columns)
            self.con.executemany(f"insert into {name} values ({placeholders})",
                                 [[row.get(c) for c in columns] for row in rows])

    def run(self, *models: str) -> None:
        """Materialise each model (short name, e.g. 'int_prices_checked') as etl.transform does."""
        for name in models:
            self.con.execute(f"create or replace table {name} as {model_sql(ANY_MODEL_PATHS[name])}")

    def run_all(self) -> None:
        """Materialise every model in etl.transform.MODELS order."""
        self.run(*MODEL_PATHS)

    def rows(self, sql: str, params: list | None = None) -> list[tuple]:
        return self.con.execute(sql, params or []).fetchall()

    def dicts(self, sql: str, params: list | None = None) -> list[dict]:
        cursor = self.con.execute(sql, params or [])
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def columns(self, table: str) -> list[str]:
        return [r[0] for r in self.con.execute(f"describe {table}").fetchall()]

    def column_types(self, table: str) -> dict[str, str]:
        return {r[0]: r[1] for r in self.con.execute(f"describe {table}").fetchall()}


@pytest.fixture
def warehouse():
    wh = Warehouse()
    yield wh
    wh.con.close()
