"""The universe file is data: it loads, links ADRs to home lines, and rejects broken entries clearly."""

from __future__ import annotations

import pytest
import yaml

from etl.config import DEFAULT_UNIVERSE, ConfigError, load_universe


def test_default_universe_links_adrs_to_their_hong_kong_lines():
    universe = load_universe()
    baba, bidu, jd = (universe.by_symbol[s] for s in ("BABA", "BIDU", "JD"))
    assert (baba.underlying, baba.adr_ratio, baba.company_id) == ("9988.HK", 8.0, "alibaba")
    assert (bidu.underlying, bidu.adr_ratio) == ("9888.HK", 8.0)
    assert (jd.underlying, jd.adr_ratio) == ("9618.HK", 2.0)
    assert {"^HSI", "HSTECH.HK", "^NDX", "QQQ", "HKD=X", "CNY=X"} <= set(universe.by_symbol)
    assert universe.by_symbol["HKD=X"].security_type == "fx"


def test_each_market_run_gets_its_listings_plus_the_fx_pairs():
    universe = load_universe()
    hk = universe.symbols_for_market("XHKG")
    assert "0700.HK" in hk and "HKD=X" in hk and "BABA" not in hk
    us = universe.symbols_for_market("US")
    assert "BABA" in us and "CNY=X" in us and "0700.HK" not in us


def _write(tmp_path, mutate) -> str:
    raw = yaml.safe_load(DEFAULT_UNIVERSE.read_text())
    mutate(raw)
    path = tmp_path / "universe.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r["companies"][0]["listings"][1].update(adr_ratio=None), "needs adr_ratio"),
        (lambda r: r["companies"][0]["listings"][1].update(underlying="0000.HK"), "unknown listing 0000.HK"),
        (lambda r: r["companies"][0]["listings"][0].update(exchange="XXXX"), "unknown exchange XXXX"),
        (lambda r: r["companies"][0]["listings"][0].update(currency="EUR"), "unknown currency EUR"),
        (lambda r: r["companies"][0]["listings"][0].update(security_type="bond"), "security_type bond"),
        (lambda r: r["companies"][1]["listings"][0].update(symbol="9988.HK"), "listed twice"),
        (lambda r: r.update(fx=[]), "needs an fx pair"),
        (lambda r: r["benchmarks"].update(XHKG="NOPE"), "benchmark NOPE"),
    ],
)
def test_broken_universe_entries_are_rejected_with_the_reason(tmp_path, mutate, message):
    with pytest.raises(ConfigError, match=message):
        load_universe(_write(tmp_path, mutate))


def test_another_universe_is_one_file_away(tmp_path):
    def us_only(raw):
        raw["companies"] = [c for c in raw["companies"] if c["id"] in ("nasdaq", "invesco")]
        raw["benchmarks"] = {"US": "^NDX"}

    universe = load_universe(_write(tmp_path, us_only))
    assert sorted(s.symbol for s in universe.listings) == ["CNY=X", "HKD=X", "QQQ", "^NDX"]


def test_the_warehouse_backend_defaults_to_the_file_store_and_needs_no_postgres(monkeypatch, tmp_path):
    from etl.config import Settings

    for name in ("ETL_WAREHOUSE_BACKEND", "ETL_DUCKLAKE_CATALOG", "ETL_DUCKLAKE_DATA"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ETL_DATA_DIR", str(tmp_path))
    settings = Settings.from_env()
    assert (settings.backend, settings.is_ducklake, settings.ducklake_catalog) == ("file", False, None)

    monkeypatch.setenv("ETL_WAREHOUSE_BACKEND", "DuckLake")
    with pytest.raises(ConfigError, match="needs ETL_DUCKLAKE_CATALOG"):
        Settings.from_env()
    monkeypatch.setenv("ETL_DUCKLAKE_CATALOG", "dbname=lake host=127.0.0.1 user=postgres")
    lake = Settings.from_env()
    assert lake.is_ducklake and lake.ducklake_data == str(tmp_path / "lake")
    monkeypatch.setenv("ETL_DUCKLAKE_DATA", "s3://bucket/lake/")
    assert Settings.from_env().ducklake_data == "s3://bucket/lake/"  # an object store URL is kept as written

    monkeypatch.setenv("ETL_DUCKLAKE_CATALOG", "dbname=lake password='x'")
    with pytest.raises(ConfigError, match="quote"):
        Settings.from_env()
    monkeypatch.setenv("ETL_WAREHOUSE_BACKEND", "sqlite")
    with pytest.raises(ConfigError, match="file, ducklake"):
        Settings.from_env()
