"""One Great Expectations suite per mart table, kept as code.

Severity lives in each expectation's meta: "error" (default) blocks publication, "warning" is recorded in
dq_result and shown, but does not block. `blocking_sources` makes a warning block for the sources named
(our own synthetic generator has no vendor quirks, so High < Low there is a bug, not Yahoo being Yahoo).
"""

from __future__ import annotations

import great_expectations as gx
import great_expectations.expectations as gxe
from great_expectations.expectations.row_conditions import Column

SOURCES = ["sample", "replay", "yfinance"]
SECURITY_TYPES = ["equity", "adr", "index", "etf", "fx"]
WARNING = {"severity": "warning"}
EVENT_CATEGORIES = ["capital_raised", "capital_returned", "corporate_action", "disclosure"]
EVENT_ORIGINS = ["vendor_actions", "vendor_shares", "vendor_filings", "curated"]
CASH_FLOW_TYPES = ["debt_issuance", "debt_repayment", "equity_issuance", "equity_repurchase", "capital_expenditure"]


def _key(*columns: str) -> list:
    if len(columns) == 1:
        return [gxe.ExpectColumnValuesToBeUnique(column=columns[0]),
                gxe.ExpectColumnValuesToNotBeNull(column=columns[0])]
    return [gxe.ExpectCompoundColumnsToBeUnique(column_list=list(columns)),
            *[gxe.ExpectColumnValuesToNotBeNull(column=c) for c in columns]]


def _positive(column: str, **kwargs) -> gxe.Expectation:
    return gxe.ExpectColumnValuesToBeBetween(column=column, min_value=0, strict_min=True, **kwargs)


def suite_definitions(currencies: list[str]) -> dict[str, list]:
    """Expectations per mart table; `currencies` are the universe's ISO codes."""
    return {
        "dim_date": [
            *_key("date_key"),
            gxe.ExpectColumnValuesToBeUnique(column="calendar_date"),
            gxe.ExpectColumnValuesToBeBetween(column="weekday_number", min_value=1, max_value=7),
            gxe.ExpectTableRowCountToBeBetween(min_value=365),
        ],
        "dim_exchange": [
            *_key("exchange_key"),
            gxe.ExpectColumnValuesToMatchRegex(column="exchange_code", regex=r"^[A-Z]{4}$"),
            gxe.ExpectColumnValuesToNotBeNull(column="timezone"),
        ],
        "dim_currency": [
            *_key("currency_key"),
            gxe.ExpectColumnValuesToMatchRegex(column="currency_code", regex=r"^[A-Z]{3}$"),
        ],
        "dim_company": [
            *_key("company_key"),
            gxe.ExpectColumnValuesToNotBeNull(column="company_name"),
        ],
        "dim_security": [
            *_key("security_key"),
            gxe.ExpectCompoundColumnsToBeUnique(column_list=["symbol", "valid_from"]),
            gxe.ExpectColumnValuesToBeInSet(column="security_type", value_set=SECURITY_TYPES),
            gxe.ExpectColumnValuesToBeInSet(column="currency_code", value_set=currencies),
            _positive("adr_ratio", row_condition=Column("security_type") == "adr"),
            gxe.ExpectColumnValuesToNotBeNull(
                column="underlying_symbol", row_condition=Column("security_type") == "adr"
            ),
            gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="valid_to", column_B="valid_from", or_equal=True),
        ],
        "fct_daily_price": [
            *_key("security_key", "date_key"),
            gxe.ExpectColumnValuesToNotBeNull(column="close"),
            *[_positive(c) for c in ("open", "high", "low", "close", "adj_close")],
            gxe.ExpectColumnValuesToBeBetween(column="volume", min_value=0),
            gxe.ExpectColumnValuesToBeInSet(column="source", value_set=SOURCES),
            gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A="high", column_B="low", or_equal=True,
                meta={**WARNING, "blocking_sources": ["sample"],
                      "why": "Yahoo has High < Low rows (0700.HK 2009-12-31)"},
            ),
            gxe.ExpectColumnValuesToBeBetween(
                column="daily_return", min_value=-0.75, max_value=3.0,
                meta={**WARNING, "why": "moves beyond -75%/+300% are usually unadjusted splits"},
            ),
            gxe.ExpectColumnValuesToNotBeNull(
                column="close_usd", meta={**WARNING, "why": "an FX gap leaves close_usd null by design"}
            ),
        ],
        "fct_fx_rate": [
            *_key("currency_key", "date_key"),
            _positive("rate_to_usd"),
            gxe.ExpectColumnValuesToBeInSet(column="currency_code", value_set=currencies),
            gxe.ExpectColumnValuesToBeBetween(column="rate_to_usd", min_value=0.0001, max_value=10, meta=WARNING),
        ],
        "dim_event_type": [
            *_key("event_type_key"),
            gxe.ExpectColumnValuesToBeUnique(column="event_type_code"),
            gxe.ExpectColumnValuesToBeInSet(column="category", value_set=EVENT_CATEGORIES),
        ],
        "fct_financing_event": [
            *_key("event_key"),
            gxe.ExpectColumnValuesToNotBeNull(column="company_key"),
            gxe.ExpectColumnValuesToNotBeNull(column="date_key"),
            gxe.ExpectColumnValuesToBeInSet(column="origin", value_set=EVENT_ORIGINS),
            gxe.ExpectColumnValuesToBeInSet(column="currency_code", value_set=currencies),
            _positive("amount_local", row_condition=Column("origin") == "curated"),
            gxe.ExpectColumnValuesToNotBeNull(column="source_reference"),
            gxe.ExpectColumnValuesToNotBeNull(
                column="amount_usd", row_condition=Column("origin") == "curated",
                meta={**WARNING, "why": "a deal dated before the loaded FX history has no USD amount yet"},
            ),
        ],
        "fct_cash_flow_quarterly": [
            *_key("company_key", "period_end_date_key", "flow_type"),
            gxe.ExpectColumnValuesToBeInSet(column="flow_type", value_set=CASH_FLOW_TYPES),
            gxe.ExpectColumnValuesToBeInSet(column="currency_code", value_set=currencies),
            gxe.ExpectColumnValuesToNotBeNull(column="amount_local"),
            gxe.ExpectColumnValuesToBeBetween(
                column="amount_local", max_value=0, row_condition=Column("flow_type") == "capital_expenditure",
                meta={**WARNING, "why": "capex is reported as an outflow (negative)"},
            ),
            gxe.ExpectColumnValuesToNotBeNull(column="amount_usd", meta=WARNING),
        ],
        "fct_valuation_daily": [
            *_key("security_key", "date_key"),
            _positive("market_cap_local", meta=WARNING),
            _positive("shares_outstanding", meta=WARNING),
            gxe.ExpectColumnValuesToBeBetween(column="trailing_pe", min_value=-1000, max_value=10000, meta=WARNING),
            gxe.ExpectColumnValuesToBeBetween(column="forward_pe", min_value=-1000, max_value=10000, meta=WARNING),
        ],
        "mart_event_reaction": [
            *_key("event_key"),
            gxe.ExpectColumnValuesToBeBetween(column="event_day_return", min_value=-0.9, max_value=5, meta=WARNING),
            gxe.ExpectColumnValuesToBeBetween(column="return_5d", min_value=-0.95, max_value=10, meta=WARNING),
        ],
        "mart_adr_parity": [
            *_key("adr_symbol", "date_key"),
            _positive("adr_ratio"),
            gxe.ExpectColumnValuesToBeBetween(
                column="premium_pct", min_value=-0.25, max_value=0.25,
                meta={**WARNING, "why": "a premium beyond 25% usually means a wrong ADR ratio or FX rate"},
            ),
        ],
        "fct_corporate_action": [
            *_key("security_key", "date_key", "action_type"),
            gxe.ExpectColumnValuesToBeInSet(
                column="action_type", value_set=["cash_dividend", "stock_split", "consolidation"]
            ),
            _positive("dividend_local", row_condition=Column("action_type") == "cash_dividend"),
            _positive("split_ratio", row_condition=Column("action_type") != "cash_dividend"),
        ],
    }


def build_suite(table: str, expectations: list) -> gx.ExpectationSuite:
    return gx.ExpectationSuite(name=f"{table}_suite", expectations=expectations)
