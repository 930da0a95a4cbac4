"""Typed settings (paths and modes from the environment) and the universe loaded from YAML."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property
from pathlib import Path

import yaml

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_UNIVERSE = Path(__file__).resolve().parent / "universe.yaml"
SECURITY_TYPES = {"equity", "adr", "index", "etf", "fx"}


class ConfigError(ValueError):
    """The universe file or the settings are not usable; the message says what and where."""


@dataclass(frozen=True)
class Settings:
    """Where the pipeline reads and writes. Every path can be moved with an environment variable."""

    data_dir: Path
    warehouse: Path
    universe_file: Path

    @property
    def landing_dir(self) -> Path:
        return self.data_dir / "landing"

    @property
    def store_dir(self) -> Path:
        """Immutable Parquet files behind the published warehouse (marts and audit)."""
        return self.data_dir / "store"

    @property
    def work_dir(self) -> Path:
        """Per-run scratch: candidate tables that are not visible to readers."""
        return self.data_dir / "work"

    @classmethod
    def from_env(cls, warehouse: str | Path | None = None, universe: str | Path | None = None) -> Settings:
        data_dir = Path(os.environ.get("ETL_DATA_DIR", PROJECT_ROOT / "data")).resolve()
        wh = warehouse or os.environ.get("ETL_WAREHOUSE") or data_dir / "warehouse.duckdb"
        uni = universe or os.environ.get("ETL_UNIVERSE") or DEFAULT_UNIVERSE
        return cls(data_dir=data_dir, warehouse=Path(wh).resolve(), universe_file=Path(uni).resolve())


@dataclass(frozen=True)
class Market:
    code: str
    name: str
    calendar: str
    timezone: str
    close_local: str
    schedule: str


@dataclass(frozen=True)
class Listing:
    symbol: str
    company_id: str | None
    exchange: str
    currency: str
    security_type: str
    market: str
    name: str | None = None
    adr_ratio: float | None = None
    underlying: str | None = None


@dataclass(frozen=True)
class Universe:
    calendar_start: date
    calendar_end: date
    markets: dict[str, Market]
    exchanges: dict[str, dict]
    currencies: dict[str, dict]
    companies: list[dict]
    listings: list[Listing]
    benchmarks: dict[str, str]
    source_file: Path = field(default=DEFAULT_UNIVERSE)

    @cached_property
    def by_symbol(self) -> dict[str, Listing]:
        return {listing.symbol: listing for listing in self.listings}

    def symbols_for_market(self, market: str | None) -> list[str]:
        """Listings traded on `market` plus the FX pairs every market needs; all listings for None."""
        return [
            s.symbol
            for s in self.listings
            if market is None or s.market == market or s.security_type == "fx"
        ]

    @cached_property
    def primary_symbol(self) -> dict[str, str]:
        """company id -> its primary listing (the first equity or ADR listed): where company-level data comes from."""
        out: dict[str, str] = {}
        for listing in self.listings:
            if listing.company_id and listing.security_type in ("equity", "adr"):
                out.setdefault(listing.company_id, listing.symbol)
        return out

    def fundamentals_symbols(self, symbols: list[str]) -> tuple[list[str], list[str]]:
        """(primary listings among symbols: shares and cash flow; ADRs among symbols: SEC filings)."""
        primaries = set(self.primary_symbol.values())
        shares = [s for s in symbols if s in primaries]
        filings = [s for s in symbols if self.by_symbol[s].security_type == "adr"]
        return shares, filings

    def market_of(self, symbol: str) -> str:
        return self.by_symbol[symbol].market


def _require(mapping: dict, key: str, where: str):
    if key not in mapping or mapping[key] in (None, ""):
        raise ConfigError(f"{where}: missing '{key}'")
    return mapping[key]


def load_universe(path: str | Path | None = None) -> Universe:
    """Read and check a universe file; raise ConfigError naming the offending entry."""
    path = Path(path or DEFAULT_UNIVERSE)
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read universe {path}: {exc}") from exc
    where = str(path)
    markets = {
        code: Market(code=code, **{k: str(v) for k, v in spec.items()})
        for code, spec in _require(raw, "markets", where).items()
    }
    exchanges = _require(raw, "exchanges", where)
    currencies = _require(raw, "currencies", where)
    for mic, spec in exchanges.items():
        m = _require(spec, "market", f"{where}: exchange {mic}")
        if m not in markets and m != "FX":
            raise ConfigError(f"{where}: exchange {mic} names unknown market {m}")

    listings: list[Listing] = []
    for company in _require(raw, "companies", where):
        cid = _require(company, "id", f"{where}: company")
        for item in _require(company, "listings", f"{where}: company {cid}"):
            listings.append(_listing(item, cid, exchanges, currencies, f"{where}: {cid}"))
    for item in raw.get("fx", []):
        item = {"exchange": "XOFF", "security_type": "fx", **item}
        listings.append(_listing(item, None, exchanges, currencies, f"{where}: fx"))

    seen: set[str] = set()
    for listing in listings:
        if listing.symbol in seen:
            raise ConfigError(f"{where}: symbol {listing.symbol} listed twice")
        seen.add(listing.symbol)
    for listing in listings:
        if listing.security_type == "adr" and listing.underlying not in seen:
            raise ConfigError(f"{where}: ADR {listing.symbol} links to unknown listing {listing.underlying}")
    for ccy, spec in currencies.items():
        fx = spec.get("fx_symbol")
        if ccy != "USD" and fx not in seen:
            raise ConfigError(f"{where}: currency {ccy} needs an fx pair listed under fx:, got {fx!r}")
    benchmarks = raw.get("benchmarks", {})
    for market, symbol in benchmarks.items():
        if symbol not in seen:
            raise ConfigError(f"{where}: benchmark {symbol} for {market} is not a listing")

    cal = raw.get("calendar", {})
    return Universe(
        calendar_start=date.fromisoformat(str(cal.get("start", "2000-01-01"))),
        calendar_end=date.fromisoformat(str(cal.get("end", "2027-11-30"))),
        markets=markets,
        exchanges=exchanges,
        currencies=currencies,
        companies=[{k: v for k, v in c.items() if k != "listings"} for c in raw["companies"]],
        listings=listings,
        benchmarks=benchmarks,
        source_file=path.resolve(),
    )


def _listing(item: dict, company_id: str | None, exchanges: dict, currencies: dict, where: str) -> Listing:
    symbol = str(_require(item, "symbol", where))
    where = f"{where} {symbol}"
    exchange = _require(item, "exchange", where)
    if exchange not in exchanges:
        raise ConfigError(f"{where}: unknown exchange {exchange}")
    currency = _require(item, "currency", where)
    if currency not in currencies:
        raise ConfigError(f"{where}: unknown currency {currency}")
    stype = _require(item, "security_type", where)
    if stype not in SECURITY_TYPES:
        raise ConfigError(f"{where}: security_type {stype} not in {sorted(SECURITY_TYPES)}")
    ratio = item.get("adr_ratio")
    if stype == "adr" and (ratio is None or float(ratio) <= 0 or not item.get("underlying")):
        raise ConfigError(f"{where}: an ADR needs adr_ratio > 0 and underlying")
    return Listing(
        symbol=symbol,
        company_id=company_id,
        exchange=exchange,
        currency=currency,
        security_type=stype,
        market=exchanges[exchange]["market"],
        name=item.get("name"),
        adr_ratio=float(ratio) if ratio is not None else None,
        underlying=item.get("underlying"),
    )
