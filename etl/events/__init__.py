"""Financing-event configuration: the event types and the curated events file, loaded and checked."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import yaml

from etl.config import ConfigError, Universe

EVENTS_DIR = Path(__file__).resolve().parent
EVENT_TYPES_FILE = EVENTS_DIR / "event_types.yaml"
CURATED_FILE = EVENTS_DIR / "curated_financing_events.yaml"
CATEGORIES = {"capital_raised", "capital_returned", "corporate_action", "disclosure"}
CURATED_COLUMNS = ["event_id", "company_id", "symbol", "event_type", "announce_date", "pricing_date",
                   "settlement_date", "instrument", "principal", "currency", "coupon_pct", "maturity_date",
                   "conversion_price", "conversion_currency", "conversion_premium_pct", "source_reference",
                   "is_verified", "notes"]
# Before this no listing of the universe traded; a date earlier than that is a typo, not an event.
EARLIEST = date(1990, 1, 1)


def load_event_types(path: Path = EVENT_TYPES_FILE) -> pd.DataFrame:
    raw = yaml.safe_load(path.read_text())["event_types"]
    rows = []
    for code, spec in raw.items():
        if spec.get("category") not in CATEGORIES:
            raise ConfigError(f"{path}: event type {code} has category {spec.get('category')!r}, "
                              f"not one of {sorted(CATEGORIES)}")
        rows.append({"event_type_code": code, "category": spec["category"], "description": spec["description"]})
    return pd.DataFrame(rows)


def _date(value, field: str, where: str, required: bool = False) -> date | None:
    if value in (None, ""):
        if required:
            raise ConfigError(f"{where}: missing {field}")
        return None
    try:
        parsed = value if isinstance(value, date) else date.fromisoformat(str(value))
    except ValueError:
        raise ConfigError(f"{where}: {field} {value!r} is not a date (YYYY-MM-DD)") from None
    if not EARLIEST <= parsed <= date(2100, 1, 1):
        raise ConfigError(f"{where}: {field} {parsed} is impossible (outside {EARLIEST}..2100-01-01)")
    return parsed


def load_curated_events(universe: Universe, path: Path = CURATED_FILE,
                        event_types: pd.DataFrame | None = None) -> pd.DataFrame:
    """Read the curated file; raise ConfigError naming the row and the rule it breaks."""
    types = set((event_types if event_types is not None else load_event_types()).event_type_code)
    companies = {c["id"] for c in universe.companies}
    raw = yaml.safe_load(path.read_text()) or {}
    rows, seen = [], set()
    for i, item in enumerate(raw.get("events") or []):
        where = f"{path.name} event #{i + 1} ({item.get('id', 'no id')})"
        event_id = item.get("id")
        if not event_id or event_id in seen:
            raise ConfigError(f"{where}: every event needs a unique id")
        seen.add(event_id)
        if item.get("company") not in companies:
            raise ConfigError(f"{where}: unknown company {item.get('company')!r} (not in the universe)")
        symbol = item.get("security")
        if symbol is not None and (symbol not in universe.by_symbol
                                   or universe.by_symbol[symbol].company_id != item["company"]):
            raise ConfigError(f"{where}: security {symbol!r} is not a listing of {item['company']}")
        if item.get("event_type") not in types:
            raise ConfigError(f"{where}: unknown event_type {item.get('event_type')!r}")
        if not str(item.get("source") or "").strip():
            raise ConfigError(f"{where}: missing source (press release or filing reference)")
        if not str(item.get("instrument") or "").strip():
            raise ConfigError(f"{where}: missing instrument")
        announce = _date(item.get("announce_date"), "announce_date", where, required=True)
        pricing = _date(item.get("pricing_date"), "pricing_date", where)
        settlement = _date(item.get("settlement_date"), "settlement_date", where)
        maturity = _date(item.get("maturity_date"), "maturity_date", where)
        for name, later in (("pricing_date", pricing), ("settlement_date", settlement), ("maturity_date", maturity)):
            if later is not None and later < announce:
                raise ConfigError(f"{where}: {name} {later} is before announce_date {announce}")
        principal = item.get("principal")
        if not isinstance(principal, (int, float)) or isinstance(principal, bool) or principal <= 0:
            raise ConfigError(f"{where}: principal must be a positive number, got {principal!r}")
        if principal > 1e12:
            raise ConfigError(f"{where}: principal {principal} is implausibly large (> 1e12)")
        currency = item.get("currency")
        if currency not in universe.currencies:
            raise ConfigError(f"{where}: currency {currency!r} has no FX pair in the universe")
        coupon = item.get("coupon_pct")
        if coupon is not None and not 0 <= float(coupon) <= 30:
            raise ConfigError(f"{where}: coupon_pct {coupon} outside 0..30")
        rows.append({
            "event_id": event_id, "company_id": item["company"], "symbol": symbol,
            "event_type": item["event_type"], "announce_date": announce, "pricing_date": pricing,
            "settlement_date": settlement, "instrument": item["instrument"], "principal": float(principal),
            "currency": currency, "coupon_pct": None if coupon is None else float(coupon),
            "maturity_date": maturity,
            "conversion_price": item.get("conversion_price"), "conversion_currency": item.get("conversion_currency"),
            "conversion_premium_pct": item.get("conversion_premium_pct"),
            "source_reference": item["source"].strip(), "is_verified": bool(item.get("verified", False)),
            "notes": item.get("notes"),
        })
    frame = pd.DataFrame(rows, columns=CURATED_COLUMNS)
    for column in ("announce_date", "pricing_date", "settlement_date", "maturity_date"):
        frame[column] = pd.to_datetime(frame[column]).dt.date
    return frame.astype({"principal": "float64", "coupon_pct": "float64", "conversion_price": "float64",
                         "conversion_premium_pct": "float64", "symbol": "string", "notes": "string",
                         "conversion_currency": "string"})
