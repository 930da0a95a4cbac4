"""Financing events end to end on the sample source: every origin, FX-normalised, event study, ADR parity."""

from __future__ import annotations

from datetime import date

import pytest

from etl.pipeline import run_all
from tests.conftest import query


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    root = tmp_path_factory.mktemp("events") / "data"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ETL_DATA_DIR", str(root))
        mp.setenv("ETL_WAREHOUSE", str(root / "warehouse.duckdb"))
        run_all("sample", date(2025, 9, 1), date(2025, 9, 30))
    return root / "warehouse.duckdb"


def test_every_event_origin_reaches_the_fact(warehouse):
    by_origin = dict(query(warehouse, "select origin, count(*) from fct_financing_event group by 1"))
    assert set(by_origin) == {"vendor_actions", "vendor_shares", "vendor_filings", "curated"}
    types = {t for (t,) in query(warehouse, "select distinct event_type_code from fct_financing_event")}
    assert {"cash_dividend", "stock_split", "share_count_increase", "share_count_decrease", "sec_current_report",
            "convertible_note_offering", "bond_offering", "secondary_listing"} <= types
    # every event type joins its dimension, every event its company
    assert query(warehouse, """select count(*) from fct_financing_event e
                               left join dim_event_type t using (event_type_key)
                               left join dim_company c using (company_key)
                               where t.event_type_key is null or c.company_key is null""") == [(0,)]


def test_curated_deals_are_converted_at_the_event_days_rate(warehouse):
    rows = dict(query(warehouse, "select curated_event_id, amount_usd from fct_financing_event "
                                 "where origin = 'curated'"))
    assert rows["alibaba-2025-09-convertible-2032"] == pytest.approx(3.2e9)
    (rate,) = query(warehouse, "select rate_to_usd from fct_fx_rate "
                               "where currency_code = 'CNY' and date_key = 20250916")[0]
    assert rows["tencent-2025-09-cny-bond"] == pytest.approx(9e9 * rate)
    assert 1.2e9 < rows["tencent-2025-09-cny-bond"] < 1.3e9
    # a 2019 deal is kept with its local amount; no 2019 rate is loaded, so no USD amount is invented
    assert rows["alibaba-2019-11-hk-secondary-listing"] is None


def test_dividends_agree_with_the_corporate_action_fact(warehouse):
    actions = set(query(warehouse, "select symbol, date_key, dividend_local from fct_corporate_action "
                                   "where action_type = 'cash_dividend'"))
    events = set(query(warehouse, "select symbol, date_key, amount_local from fct_financing_event "
                                  "where event_type_code in ('cash_dividend', 'special_dividend')"))
    assert actions == events and actions


def test_share_count_events_follow_the_shares_history(warehouse):
    rows = query(warehouse, "select symbol, date_key, event_type_code, round(share_change_pct, 4) "
                            "from fct_financing_event where symbol in ('0700.HK', '1810.HK') "
                            "and origin = 'vendor_shares' order by 1, 2")
    assert ("0700.HK", 20250910, "share_count_decrease", -0.006) in rows
    assert ("1810.HK", 20250917, "share_count_increase", 0.012) in rows


def test_cash_flows_are_quarterly_financing_flows(warehouse):
    flows = {f for (f,) in query(warehouse, "select distinct flow_type from fct_cash_flow_quarterly")}
    assert flows == {"debt_issuance", "debt_repayment", "equity_issuance", "equity_repurchase", "capital_expenditure"}
    assert query(warehouse, "select max(amount_local) <= 0 from fct_cash_flow_quarterly "
                            "where flow_type = 'capital_expenditure'") == [(True,)]
    assert query(warehouse, "select max(period_end_date) from fct_cash_flow_quarterly") == [(date(2025, 6, 30),)]


def test_valuation_snapshot_per_listing(warehouse):
    rows = query(warehouse, "select symbol, date_key, market_cap_usd > 0, trailing_pe > 0 from fct_valuation_daily "
                            "where symbol in ('0700.HK', 'BABA') order by 1")
    assert rows == [("0700.HK", 20250930, True, True), ("BABA", 20250930, True, True)]


def test_event_reaction_answers_how_alibaba_traded_around_its_convertible(warehouse):
    (row,) = query(warehouse, """
        select r.day0_date_key, r.benchmark_symbol, r.event_day_return, r.return_5d, r.excess_return_5d
        from mart_event_reaction r join fct_financing_event e using (event_key)
        where e.curated_event_id = 'alibaba-2025-09-convertible-2032'""")
    day0, benchmark, day_return, five_day, excess = row
    assert (day0, benchmark) == (20250911, "^NDX")
    closes = dict(query(warehouse, "select date_key, adj_close from fct_daily_price where symbol = 'BABA'"))
    ndx = dict(query(warehouse, "select date_key, adj_close from fct_daily_price where symbol = '^NDX'"))
    days = sorted(closes)
    i = days.index(20250911)
    assert day_return == pytest.approx(closes[days[i]] / closes[days[i - 1]] - 1)
    assert five_day == pytest.approx(closes[days[i + 5]] / closes[days[i - 6]] - 1)
    assert excess == pytest.approx(five_day - (ndx[days[i + 5]] / ndx[days[i - 6]] - 1))


def test_adr_parity_converts_with_ratio_and_that_days_rate(warehouse):
    (row,) = query(warehouse, "select adr_close_usd, adr_ratio, hk_close_local, hk_fx_rate_to_usd, premium_pct "
                              "from mart_adr_parity where adr_symbol = 'BABA' and date_key = 20250917")
    adr, ratio, hk, rate, premium = row
    assert ratio == 8.0
    assert premium == pytest.approx((adr / ratio) / (hk * rate) - 1)
    assert abs(premium) < 0.05  # the sample ADRs track their home line
    assert query(warehouse, "select count(distinct adr_symbol) from mart_adr_parity") == [(10,)]


def test_new_tables_are_validated_and_described(warehouse):
    validated = {t for (t,) in query(warehouse, "select distinct table_name from dq_run")}
    assert {"fct_financing_event", "fct_cash_flow_quarterly", "fct_valuation_daily", "dim_event_type",
            "mart_event_reaction", "mart_adr_parity"} <= validated
    comments = dict(query(warehouse, "select view_name, comment from duckdb_views() where not internal"))
    assert comments["fct_financing_event"].startswith("one row per financing event")
    assert comments["mart_event_reaction"]


def test_a_universe_without_listing_dates_runs_and_skips_only_that_check(data_dir, tmp_path, monkeypatch):
    """listed_since is optional: with none in the universe, the listing-date check has nothing to compare."""
    import re

    from tests.conftest import REPO

    text = re.sub(r",\s*listed_since: [0-9-]+", "", (REPO / "etl" / "universe.yaml").read_text())
    assert "listed_since:" not in text.split("listings:", 1)[-1]
    path = tmp_path / "universe.yaml"
    path.write_text(text)
    monkeypatch.setenv("ETL_UNIVERSE", str(path))
    run_all("sample", date(2025, 9, 1), date(2025, 9, 5))
    warehouse = data_dir / "warehouse.duckdb"
    assert query(warehouse, "select count(*) > 0 from fct_financing_event") == [(True,)]
    # the check ran, on no listing dates, and found nothing
    assert query(warehouse, "select success, unexpected_count from dq_result "
                            "where expectation_type = 'invariant:no_event_before_first_listing'") == [(True, 0)]
