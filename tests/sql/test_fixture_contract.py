"""The fixture in conftest.py is only worth its tests if it sets DuckDB up like etl.transform does.

These checks fail when etl/transform.py or a model changes what it builds, so the hand-made inputs of the
model tests are re-checked against the pipeline instead of silently going stale.
"""

from __future__ import annotations

import hashlib
import inspect
import re

from etl import transform

TRANSFORM_SOURCE = inspect.getsource(transform.transform)

# Relations etl.transform creates before the first model runs.
TRANSFORM_INPUTS = ["landing_prices", "landing_metadata", "ref_listing", "ref_company", "ref_exchange",
                    "ref_currency", "ref_session", "run_symbols", "published_dim_security"]


def test_surrogate_key_macro_is_the_one_transform_creates(warehouse):
    assert f'con.execute("{warehouse.SURROGATE_KEY_MACRO}")' in TRANSFORM_SOURCE


def test_variables_are_the_ones_transform_sets(warehouse):
    block = re.search(r"variables = \{(.*?)\n        \}", TRANSFORM_SOURCE, re.S).group(1)
    assert re.findall(r'"(\w+)":', block) == list(warehouse.DEFAULT_VARIABLES)


def test_published_dim_security_schema_matches_the_empty_store_branch(warehouse):
    # given the create-table statement transform uses when nothing is published yet
    ddl = re.search(r'"create table published_dim_security \((.*?)\)"\n', TRANSFORM_SOURCE, re.S).group(1)
    ddl = re.sub(r'"\s+"', "", ddl)  # join the implicitly concatenated string literals
    columns = [tuple(part.strip().split()) for part in ddl.split(",")]
    assert columns == list(warehouse.SCHEMAS["published_dim_security"].items())


def test_surrogate_key_is_the_first_15_hex_digits_of_md5(warehouse):
    expected = int(hashlib.md5(b"HKD").hexdigest()[:15], 16)
    assert warehouse.rows("select surrogate_key('HKD'), surrogate_key(null)") == [(expected, None)]


def test_every_model_runs_in_transform_order_and_upstream_schemas_match_the_fixture(warehouse):
    # given every relation transform provides, empty
    for name in TRANSFORM_INPUTS:
        warehouse.table(name)
    # when every model is materialised in MODELS order
    warehouse.run_all()
    # then each model output the fixture lets tests fake has exactly the fixture's columns and types
    for name, schema in warehouse.SCHEMAS.items():
        if name in warehouse.MODEL_PATHS:
            actual = {c: t.lower() for c, t in warehouse.column_types(name).items()}
            assert actual == schema, name
