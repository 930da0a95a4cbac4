"""Typed settings (paths and modes from the environment) and the universe loaded from YAML."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property
from pathlib import Path

import yaml

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_UNIVERSE = Path(__file__).resolve().parent / "universe.yaml"
SECURITY_TYPES = {"equity", "adr", "index", "etf", "fx"}
# Names from config or data that reach file paths and SQL text are checked against these first (issue 4).
# Yahoo symbols: ^HSI, 0700.HK, HKD=X, EURUSD=X, BRK-B, HSTECH.HK. No '/', quotes, spaces or leading dots.
SYMBOL_PATTERN = re.compile(r"^\^?[A-Z0-9][A-Z0-9.\-]{0,19}(=[A-Z])?$")
CODE_PATTERNS = {
    "market": re.compile(r"^[A-Z][A-Z0-9_]{0,15}$"),
    "exchange": re.compile(r"^[A-Z0-9]{4}$"),
    "currency": re.compile(r"^[A-Z]{3}$"),
    "company": re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"),
}
# Characters a path must not contain: paths are written into DuckDB SQL text as '...' literals.
_UNSAFE_PATH_CHARS = ("'", "\n", "\r", "\x00")


def check_symbol(symbol: str, where: str = "symbol") -> str:
    """The symbol if it is a plausible Yahoo symbol; ConfigError otherwise (it would reach paths and SQL)."""
    if not isinstance(symbol, str) or not SYMBOL_PATTERN.match(symbol):
        raise ConfigError(f"{where}: {symbol!r} is not a valid symbol (expected e.g. 0700.HK, ^HSI, HKD=X, BRK-B; "
                          f"pattern {SYMBOL_PATTERN.pattern})")
    return symbol


def check_code(kind: str, code: str, where: str) -> str:
    if not isinstance(code, str) or not CODE_PATTERNS[kind].match(code):
        raise ConfigError(f"{where}: {kind} code {code!r} does not match {CODE_PATTERNS[kind].pattern}")
    return code


def check_path(path: Path, what: str) -> Path:
    if any(ch in str(path) for ch in _UNSAFE_PATH_CHARS):
        raise ConfigError(f"{what} {str(path)!r} contains a quote or control character; choose another path")
    return path


class ConfigError(ValueError):
    """The universe file or the settings are not usable; the message says what and where."""


BACKENDS = ("file", "ducklake")


@dataclass(frozen=True)
class Settings:
    """Where the pipeline reads and writes. Every path can be moved with an environment variable.

    backend (ETL_WAREHOUSE_BACKEND): where publish puts the validated tables and where every step reads the
    published state from. "file" (default): Parquet files + a views-only DuckDB file (etl/store.py), one
    machine, no server. "ducklake": a DuckLake whose catalog is the PostgreSQL database ETL_DUCKLAKE_CATALOG
    (libpq string) and whose Parquet files go under ETL_DUCKLAKE_DATA (default $ETL_DATA_DIR/lake), for
    several workers and DAGs writing at once (etl/ducklake_store.py)."""

    data_dir: Path
    warehouse: Path
    universe_file: Path
    backend: str = "file"
    ducklake_catalog: str | None = None
    # a directory, or an object-store URL (s3://bucket/lake/) that DuckDB reaches with its own credentials
    ducklake_data: str | None = None

    @property
    def is_ducklake(self) -> bool:
        return self.backend == "ducklake"

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
        backend = os.environ.get("ETL_WAREHOUSE_BACKEND", "").strip().lower() or "file"
        if backend not in BACKENDS:
            raise ConfigError(f"ETL_WAREHOUSE_BACKEND={backend!r}: choose one of {', '.join(BACKENDS)}")
        catalog = os.environ.get("ETL_DUCKLAKE_CATALOG", "").strip() or None
        if backend == "ducklake" and not catalog:
            raise ConfigError("ETL_WAREHOUSE_BACKEND=ducklake needs ETL_DUCKLAKE_CATALOG, the libpq string of the "
                              "catalog database, e.g. 'dbname=lake host=127.0.0.1 user=postgres'")
        if catalog and any(ch in catalog for ch in _UNSAFE_PATH_CHARS):
            raise ConfigError("ETL_DUCKLAKE_CATALOG contains a quote or control character (it is written into "
                              "DuckDB's ATTACH statement); use key=value pairs without quotes")
        lake_data = os.environ.get("ETL_DUCKLAKE_DATA", "").strip() or str(data_dir / "lake")
        if "://" not in lake_data:
            lake_data = str(check_path(Path(lake_data).resolve(), "ETL_DUCKLAKE_DATA"))
        elif "'" in lake_data:
            raise ConfigError("ETL_DUCKLAKE_DATA contains a quote; choose another URL")
        return cls(data_dir=check_path(data_dir, "ETL_DATA_DIR"),
                   warehouse=check_path(Path(wh).resolve(), "warehouse path"),
                   universe_file=Path(uni).resolve(), backend=backend, ducklake_catalog=catalog,
                   ducklake_data=lake_data)


@dataclass(frozen=True)
class ExtractPolicy:
    """How a run treats what a source did not deliver, and which recent days it re-reads (issue 4).

    min_completeness: share of the expected symbols (those whose market had a closed session in the window)
        that must come back; below it the extract fails naming the missing ones, at or above it they are
        quarantined (reason missing_from_source) and the run goes on.
    restatement_lookback_days: calendar days before the window that are extracted and published again, so a
        vendor restatement (Adj Close re-adjusted after a dividend) replaces the published rows.
    partial_bar_grace_minutes: a bar counts as final only this long after its session's close; earlier
        (a run during market hours) it is excluded as session_not_closed.
    """

    min_completeness: float
    restatement_lookback_days: int
    partial_bar_grace_minutes: int


DEFAULT_EXTRACT_POLICY = {
    # live Yahoo: at most 5% of the expected symbols may be missing; re-read the last 5 days every run
    "yfinance": ExtractPolicy(min_completeness=0.95, restatement_lookback_days=5, partial_bar_grace_minutes=30),
    # the generator always delivers everything it is asked for
    "sample": ExtractPolicy(min_completeness=1.0, restatement_lookback_days=0, partial_bar_grace_minutes=30),
    # a replay folder may hold a subset of the universe: missing files are named and quarantined, never fatal
    "replay": ExtractPolicy(min_completeness=0.0, restatement_lookback_days=0, partial_bar_grace_minutes=30),
}
POLICY_ENV = {
    "min_completeness": "ETL_MIN_COMPLETENESS",
    "restatement_lookback_days": "ETL_RESTATEMENT_LOOKBACK_DAYS",
    "partial_bar_grace_minutes": "ETL_PARTIAL_BAR_GRACE_MINUTES",
}


def extract_policy(source: str, universe: Universe | None = None) -> ExtractPolicy:
    """Defaults per source, then the universe file's `extract: {<source>: {...}}`, then ETL_* variables."""
    base = DEFAULT_EXTRACT_POLICY.get(source, DEFAULT_EXTRACT_POLICY["yfinance"])
    values = {
        "min_completeness": base.min_completeness,
        "restatement_lookback_days": base.restatement_lookback_days,
        "partial_bar_grace_minutes": base.partial_bar_grace_minutes,
    }
    overrides = dict(((universe.extract if universe else {}) or {}).get(source) or {})
    for key, env in POLICY_ENV.items():
        if os.environ.get(env, "").strip():
            overrides[key] = os.environ[env]
    for key, raw in overrides.items():
        if key not in values:
            raise ConfigError(f"extract policy for {source}: unknown setting {key!r} (known: {sorted(values)})")
        try:
            values[key] = float(raw) if key == "min_completeness" else int(raw)
        except (TypeError, ValueError):
            raise ConfigError(f"extract policy for {source}: {key} must be a number, got {raw!r}") from None
    if not 0.0 <= values["min_completeness"] <= 1.0:
        raise ConfigError(f"extract policy for {source}: min_completeness must be in [0, 1]")
    if values["restatement_lookback_days"] < 0 or values["partial_bar_grace_minutes"] < 0:
        raise ConfigError(f"extract policy for {source}: day and minute settings must be >= 0")
    return ExtractPolicy(**values)


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
    # FX pairs only: the plausible range of the quote (units per USD); quotes outside are quarantined
    quote_range: tuple[float, float] | None = None
    listed_since: date | None = None


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
    # per-source ExtractPolicy overrides (see extract_policy)
    extract: dict = field(default_factory=dict)

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


# libyaml's loader when PyYAML has it: a 5,000-listing universe parses in ~0.3 s instead of ~3 s (issue 6)
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_UNIVERSE_CACHE: dict[tuple, Universe] = {}


def load_universe(path: str | Path | None = None) -> Universe:
    """Read and check a universe file; raise ConfigError naming the offending entry.

    Every pipeline step loads the universe; within one process a file whose path, size and modification time
    are unchanged is parsed once (treat the returned Universe as read-only)."""
    path = Path(path or DEFAULT_UNIVERSE)
    try:
        stat = path.stat()
        key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    except OSError:
        key = None
    if key in _UNIVERSE_CACHE:
        return _UNIVERSE_CACHE[key]
    universe = _load_universe(path)
    if key is not None:
        _UNIVERSE_CACHE.clear()  # one universe per process is the normal case; never grow without bound
        _UNIVERSE_CACHE[key] = universe
    return universe


def _load_universe(path: Path) -> Universe:
    try:
        raw = yaml.load(path.read_text(), Loader=_YAML_LOADER)
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read universe {path}: {exc}") from exc
    where = str(path)
    markets = {
        check_code("market", code, where): Market(code=code, **{k: str(v) for k, v in spec.items()})
        for code, spec in _require(raw, "markets", where).items()
    }
    exchanges = _require(raw, "exchanges", where)
    currencies = _require(raw, "currencies", where)
    for ccy in currencies:
        check_code("currency", ccy, where)
    for mic, spec in exchanges.items():
        check_code("exchange", mic, where)
        m = _require(spec, "market", f"{where}: exchange {mic}")
        if m not in markets and m != "FX":
            raise ConfigError(f"{where}: exchange {mic} names unknown market {m}")

    listings: list[Listing] = []
    for company in _require(raw, "companies", where):
        cid = check_code("company", _require(company, "id", f"{where}: company"), f"{where}: company")
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
        extract=raw.get("extract") or {},
    )


def _listing(item: dict, company_id: str | None, exchanges: dict, currencies: dict, where: str) -> Listing:
    symbol = check_symbol(str(_require(item, "symbol", where)), where)
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
    quote_range = item.get("quote_range")
    if quote_range is not None:
        try:
            low, high = (float(v) for v in quote_range)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: quote_range must be [low, high], got {quote_range!r}") from None
        if stype != "fx" or not 0 < low < high:
            raise ConfigError(f"{where}: quote_range [low, high] with 0 < low < high is for fx pairs only")
        quote_range = (low, high)
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
        quote_range=quote_range,
        listed_since=_listed_since(item.get("listed_since"), where),
    )


def _listed_since(value, where: str) -> date | None:
    if value in (None, ""):
        return None
    try:
        return value if isinstance(value, date) else date.fromisoformat(str(value))
    except ValueError:
        raise ConfigError(f"{where}: listed_since {value!r} is not a date (YYYY-MM-DD)") from None


DUCKDB_MEMORY_ENV = "ETL_DUCKDB_MEMORY_LIMIT"
DEFAULT_DUCKDB_MEMORY_LIMIT = "4GB"


def duckdb_config() -> dict:
    """Settings for the pipeline's own DuckDB connections (transform, gate, publish, export): a memory limit
    (ETL_DUCKDB_MEMORY_LIMIT, default 4GB, beyond which DuckDB spills to disk) so a 25M-row backfill stays far
    below the machine's RAM instead of DuckDB's default of 80% of it."""
    return {"memory_limit": os.environ.get(DUCKDB_MEMORY_ENV, "").strip() or DEFAULT_DUCKDB_MEMORY_LIMIT}
