"""The curated events file: the shipped deals load; broken rows are rejected with their reason."""

from __future__ import annotations

from datetime import date

import pytest
import yaml

from etl.config import ConfigError, load_universe
from etl.events import CURATED_FILE, load_curated_events, load_event_types


def test_shipped_file_has_the_alibaba_convertible_and_the_tencent_bond():
    events = load_curated_events(load_universe()).set_index("event_id")
    baba = events.loc["alibaba-2025-09-convertible-2032"]
    assert (baba.company_id, baba.symbol, baba.event_type) == ("alibaba", "BABA", "convertible_note_offering")
    assert (baba.principal, baba.currency, baba.coupon_pct) == (3.2e9, "USD", 0.0)
    assert baba.announce_date == date(2025, 9, 11) and baba.maturity_date == date(2032, 9, 15)
    tencent = events.loc["tencent-2025-09-cny-bond"]
    assert (tencent.company_id, tencent.principal, tencent.currency) == ("tencent", 9e9, "CNY")
    assert events.source_reference.str.len().min() > 20


def _write(tmp_path, change) -> object:
    raw = yaml.safe_load(CURATED_FILE.read_text())
    change(raw["events"][0])
    path = tmp_path / "events.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda e: e.update(company="evergrande"), "unknown company 'evergrande'"),
        (lambda e: e.update(security="0700.HK"), "is not a listing of alibaba"),
        (lambda e: e.update(event_type="moon_bond"), "unknown event_type"),
        (lambda e: e.pop("source"), "missing source"),
        (lambda e: e.update(source="  "), "missing source"),
        (lambda e: e.update(announce_date="2025-02-30"), "is not a date"),
        (lambda e: e.update(announce_date="1970-01-01"), "impossible"),
        (lambda e: e.update(maturity_date="2020-01-01"), "before announce_date"),
        (lambda e: e.update(principal=-5), "positive number"),
        (lambda e: e.update(principal="3.2bn"), "positive number"),
        (lambda e: e.update(principal=5e15), "implausibly large"),
        (lambda e: e.update(currency="EUR"), "no FX pair"),
        (lambda e: e.update(coupon_pct=45), "coupon_pct"),
        (lambda e: e.pop("instrument"), "missing instrument"),
    ],
)
def test_broken_curated_rows_are_rejected_with_the_rule(tmp_path, change, reason):
    with pytest.raises(ConfigError, match=reason):
        load_curated_events(load_universe(), _write(tmp_path, change))


def test_duplicate_ids_are_rejected(tmp_path):
    raw = yaml.safe_load(CURATED_FILE.read_text())
    raw["events"].append(dict(raw["events"][0]))
    path = tmp_path / "events.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="unique id"):
        load_curated_events(load_universe(), path)


def test_event_types_carry_a_known_category():
    types = load_event_types()
    assert {"cash_dividend", "share_count_decrease", "sec_offering_filing", "convertible_note_offering",
            "bond_offering"} <= set(types.event_type_code)
    assert set(types.category) == {"capital_raised", "capital_returned", "corporate_action", "disclosure"}
