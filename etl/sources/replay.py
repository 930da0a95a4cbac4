"""Replay source: daily bars from a folder of CSV files as yfinance users save them, one file per symbol.

The symbol is the file name (``0700.HK.csv``, ``^HSI.csv``, ``HKD=X.csv``; matched case-insensitively, so
``qqq.csv`` is QQQ). The layout is recognised from the header, never from the folder:

* ``yf_history``: ``Ticker.history().to_csv()``, one header row ``Date|Datetime,...`` with ``Dividends``
  and/or ``Stock Splits`` (yfinance's price-repair test files add ``Adj Close`` and ``Repaired?``).
* ``yf_download_multiindex``: ``yf.download().to_csv()`` since yfinance 0.2.48, three header rows
  ``Price,<fields>`` / ``Ticker,<ticker>...`` / ``Date,,,`` (first two swapped with group_by="ticker").
* ``ohlcv_single_header``: one header row ``Date,<OHLC[+Adj Close]+Volume>`` without actions: older
  ``yf.download()``, a flattened ``yf.download()`` header, or Yahoo's own "Download CSV" file.

Rows are returned as the file has them (no sorting, de-duplication or cleaning: staging does that).
"""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from etl.config import Universe
from etl.sources.base import RAW_COLUMNS, FetchResult, FundamentalsResult, SourceError

DATE_HEADERS = ("Date", "Datetime")
REQUIRED_PRICE_COLUMNS = ("Open", "High", "Low", "Close")
ACTION_COLUMNS = ("Dividends", "Stock Splits")
# Only a trailing UTC offset marks a tz-aware stamp; naive dates such as 2025-09-17 never end like this.
_OFFSET_PATTERN = r"(?:Z|[+-]\d\d:\d\d)$"


class ReplaySource:
    """Reads yfinance-style CSV files from a directory instead of calling Yahoo."""

    name = "replay"
    is_synthetic = False

    def __init__(self, universe: Universe, replay_dir: Path) -> None:
        self.universe = universe
        self.replay_dir = Path(replay_dir)

    def fetch_fundamentals(self, share_symbols: list[str], filing_symbols: list[str], start: date, end: date
                           ) -> FundamentalsResult:
        """Replay files are price histories only: every fundamentals request is reported as missing."""
        result = FundamentalsResult()
        for symbol in share_symbols:
            result.missing[f"{symbol}:fundamentals"] = "replay files carry no shares, cash flow or filings"
        for symbol in filing_symbols:
            result.missing[f"{symbol}:filings"] = "replay files carry no SEC filings"
        return result

    def fetch(self, symbols: list[str], start: date, end: date) -> FetchResult:
        """Bars with start <= local market date <= end for each requested symbol that has a replay file."""
        result = FetchResult()
        files = self._files_for(list(dict.fromkeys(symbols)), result)
        for symbol, path in files.items():
            listing = self.universe.by_symbol[symbol]
            tz = self._timezone(listing.exchange, listing.market)
            frame, layout, file_columns, dropped = _read_file(path, symbol, tz)
            result.calls += 1
            local_dates = _local_dates(frame.index)
            in_window = (local_dates >= pd.Timestamp(start)) & (local_dates <= pd.Timestamp(end))
            if not in_window.any():
                covers = (
                    f"file covers {local_dates.min().date()}..{local_dates.max().date()}"
                    if len(frame)
                    else "file has no data rows"
                )
                result.missing[symbol] = f"no rows between {start} and {end} in {path} ({covers})"
                continue
            result.frames[symbol] = frame[in_window]
            result.frame_info[symbol] = {
                "source_file": str(path),
                "layout": layout,
                # yfinance rule: no Adj Close column means auto_adjust=True, so OHLC are already adjusted.
                "auto_adjusted": "Adj Close" not in file_columns,
                "dropped_columns": dropped,
            }
            if dropped:
                result.warnings.append(f"{symbol}: columns {dropped} of {path.name} are not vendor price fields; "
                                       "not landed")
        return result

    def _files_for(self, symbols: list[str], result: FetchResult) -> dict[str, Path]:
        """Map each requested symbol to its one file; record symbols without a file or listing as missing."""
        if not self.replay_dir.is_dir():
            what = "is not a directory" if self.replay_dir.exists() else "does not exist"
            raise SourceError(f"replay directory {self.replay_dir} {what}")
        wanted = {s.casefold(): s for s in symbols}
        known = {s.casefold() for s in self.universe.by_symbol}
        found: dict[str, list[Path]] = {}
        for path in sorted(self.replay_dir.rglob("*")):
            symbol = wanted.get(path.stem.casefold())
            if symbol is not None and path.suffix.lower() == ".csv" and path.is_file():
                found.setdefault(symbol, []).append(path)
            elif path.suffix.lower() == ".csv" and path.stem.casefold() not in known:
                # never read: the symbol comes from the universe, a file name never reaches a path or SQL
                result.warnings.append(f"ignored {path.name!r}: no listing in the universe is named {path.stem!r}")
        files: dict[str, Path] = {}
        for symbol in symbols:
            paths = found.get(symbol, [])
            if len(paths) > 1:
                listed = ", ".join(str(p) for p in paths)
                raise SourceError(f"{len(paths)} replay files for {symbol}, keep only one: {listed}")
            if symbol not in self.universe.by_symbol:
                result.missing[symbol] = f"not in the universe ({self.universe.source_file})"
            elif not paths:
                result.missing[symbol] = f"no replay file in {self.replay_dir}"
            else:
                files[symbol] = paths[0]
        return files

    def _timezone(self, exchange: str, market: str) -> str:
        """The listing exchange's timezone, falling back to its market's."""
        tz = self.universe.exchanges.get(exchange, {}).get("timezone")
        if not tz and market in self.universe.markets:
            tz = self.universe.markets[market].timezone
        if not tz:
            raise SourceError(f"exchange {exchange} has no timezone in {self.universe.source_file}")
        return str(tz)


def _read_header(path: Path) -> list[list[str]]:
    """The first three rows of a CSV file, as cells."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            return [row for _, row in zip(range(3), reader, strict=False)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise SourceError(f"cannot read replay file {path}: {exc}") from exc


def _detect_layout(path: Path, symbol: str, rows: list[list[str]]) -> tuple[str, list[str], int]:
    """Layout name, value column names (after the date column) and the number of header rows."""
    first = rows[0] if rows else []
    head = first[0].strip() if first else ""
    header_text = ",".join(first)
    if head in ("Price", "Ticker") and len(rows) == 3:
        second, third = rows[1], rows[2]
        other = {"Price": "Ticker", "Ticker": "Price"}[head]
        if not second or second[0].strip() != other or not third or third[0].strip() not in DATE_HEADERS:
            raise SourceError(f"{path}: unknown 3-row header starting {header_text!r} / {','.join(second)!r}")
        if any(cell.strip() for cell in third[1:]):
            raise SourceError(f"{path}: unknown 3-row header, third row {','.join(third)!r}")
        fields, tickers = (first[1:], second[1:]) if head == "Price" else (second[1:], first[1:])
        distinct = sorted({t.strip() for t in tickers if t.strip()})
        if len(distinct) != 1:
            raise SourceError(f"{path}: one ticker per file expected, header names {distinct or 'none'}")
        # A file named for one symbol but holding another's prices must not land under the wrong name.
        if distinct[0].casefold() != symbol.casefold():
            raise SourceError(f"{path}: file name says {symbol} but its Ticker header row says {distinct[0]}")
        layout, header_rows = "yf_download_multiindex", 3
    elif head in DATE_HEADERS:
        fields = first[1:]
        is_history = any(c.strip() in ACTION_COLUMNS for c in fields)
        layout, header_rows = ("yf_history" if is_history else "ohlcv_single_header"), 1
    else:
        raise SourceError(f"{path}: unknown header {header_text!r}; expected a yfinance or Yahoo CSV layout")
    fields = [c.strip() for c in fields]
    lacking = [c for c in REQUIRED_PRICE_COLUMNS if c not in fields]
    if lacking:
        raise SourceError(f"{path}: header {header_text!r} lacks {', '.join(lacking)}")
    if len(set(fields)) != len(fields):
        raise SourceError(f"{path}: header {header_text!r} repeats a column")
    return layout, fields, header_rows


def _read_file(path: Path, symbol: str, tz: str) -> tuple[pd.DataFrame, str, list[str], list[str]]:
    """Parse one replay file into a raw frame in local time; also layout, file columns and dropped ones."""
    rows = _read_header(path)
    layout, fields, header_rows = _detect_layout(path, symbol, rows)
    header_text = " / ".join(",".join(row) for row in rows[:header_rows])
    raw_positions = {i + 1: c for i, c in enumerate(fields) if c in RAW_COLUMNS}
    try:
        data = pd.read_csv(
            path,
            skiprows=header_rows,
            header=None,
            index_col=False,
            dtype={0: str, **{i: "float64" for i in raw_positions}},
            encoding="utf-8-sig",
        )
    except pd.errors.EmptyDataError:
        data = pd.DataFrame(
            {0: pd.Series(dtype=str), **{i: pd.Series(dtype="float64") for i in raw_positions}}
        )
    except (ValueError, pd.errors.ParserError) as exc:
        raise SourceError(f"{path}: cannot parse rows under header {header_text!r}: {exc}") from exc
    if data.shape[1] != len(fields) + 1:
        raise SourceError(
            f"{path}: rows have {data.shape[1]} cells but header {header_text!r} has {len(fields) + 1}"
        )

    index = _parse_dates(path, data[0], tz)
    frame = pd.DataFrame({c: data[i].to_numpy() for i, c in raw_positions.items()}, index=index)
    frame = frame[[c for c in RAW_COLUMNS if c in frame.columns]].astype("float64")
    dropped = [c for c in fields if c not in RAW_COLUMNS]
    return frame, layout, fields, dropped


def _parse_dates(path: Path, cells: pd.Series, tz: str) -> pd.DatetimeIndex:
    """Stamps in the exchange timezone: tz-aware ones converted, naive ones localized as local wall time."""
    if cells.isna().any():
        line = int(np.flatnonzero(cells.isna().to_numpy())[0])
        raise SourceError(f"{path}: a row has no date (data row {line + 1})")
    cells = cells.str.strip()
    aware = cells.str.contains(_OFFSET_PATTERN, regex=True)
    try:
        if aware.all():
            index = pd.DatetimeIndex(pd.to_datetime(cells, utc=True, format="ISO8601")).tz_convert(tz)
        elif not aware.any():
            naive = pd.DatetimeIndex(pd.to_datetime(cells, format="ISO8601"))
            # Midnight does not exist on some DST-start days and repeats on rare DST ends; keep every row.
            index = naive.tz_localize(
                tz, nonexistent="shift_forward", ambiguous=np.ones(len(naive), dtype=bool)
            )
        else:
            first_naive = cells[~aware].iloc[0]
            raise SourceError(f"{path}: mixes tz-aware and naive dates (e.g. {first_naive!r})")
    except (ValueError, TypeError) as exc:
        raise SourceError(f"{path}: unparseable date: {exc}") from exc
    index.name = "Date"
    return index


def _local_dates(index: pd.DatetimeIndex) -> pd.DatetimeIndex:
    """Each stamp's local market date, as naive midnight."""
    return index.tz_localize(None).normalize()
