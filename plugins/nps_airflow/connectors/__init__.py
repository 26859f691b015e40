"""Source connectors: read one entity's rows for a data interval, as strings, with their location.

A connector turns a configured source (`nps.sources.EntitySource`) into a `Batch`: a list of
`Part`s (a file, an API page, a SQL result chunk), each a DataFrame of *source* columns with every
value as a string (null = ""), plus `_source_line` (where in the part the row came from) and, for
rows the connector could not read cleanly, `_reject` / `_reject_detail` (e.g. invalid UTF-8,
broken JSON, a CSV row with fewer or more fields than the header) so the loader quarantines them
instead of losing them. A file that cannot be parsed at all (empty, an unterminated quote, a
corrupt Parquet file) is not a Part but an `Unreadable` entry of the Batch: the loader quarantines
it or fails naming it (`on_unreadable_file`), and keeps the rows loaded from it before. Column
mapping onto the contract and validation happen in `nps_airflow.extract`, the same for every
connector.

Kinds: `file` (CSV / JSON Lines / JSON / Parquet under a path or glob), `http` (JSON API with
pagination, auth, retries, updated-since), `sql` (any SQLAlchemy URL, incremental watermark).

Module names are unique on purpose (file_drops, http_api, sql_db, column_mapping): Airflow's
plugin loader also imports every .py under plugins/ as a top-level module named after the file,
so a `http.py` here would replace the standard library's `http` in the whole process.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

import pandas as pd

if TYPE_CHECKING:
    from nps.sources import EntitySource

# Lone surrogates (bytes that did not decode, via errors="surrogateescape") and NUL, which
# PostgreSQL text cannot hold; and their placeholders in the private-use plane (U+F0000 + byte,
# U+F0100 for NUL), which let a fast parser that needs valid UTF-8 read a dirty file.
DIRTY = re.compile("[\udc80-\udcff\x00\U000f0000-\U000f0100]")
_PLACEHOLDER = 0xF0000


def placeholders(text: str) -> str:
    """Undecodable bytes / NUL as private-use placeholders (valid UTF-8, one char each)."""
    def one(match: re.Match) -> str:
        ch = match.group(0)
        if ch == "\x00":
            return chr(_PLACEHOLDER + 0x100)
        code = ord(ch)
        return chr(_PLACEHOLDER + code - 0xDC00) if 0xDC80 <= code <= 0xDCFF else ch

    return DIRTY.sub(one, text)
REJECT, REJECT_DETAIL, RAW, LINE = "_reject", "_reject_detail", "_raw", "_source_line"


class SourceUnavailable(RuntimeError):
    """The source could not be read (HTTP errors after retries, database unreachable, ...)."""


@dataclass
class Part:
    """One unit of a source (a file, an API page, a result chunk): string columns + _source_line."""

    frame: pd.DataFrame
    location: str
    tabular: bool = True  # True: the header defines the columns (CSV/Parquet/SQL); False: JSON records
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Unreadable:
    """A file no parser could read: where, the parser's message, and the start of its text."""

    location: str
    detail: str
    head: str = ""


@dataclass
class Batch:
    parts: list[Part]
    location: str  # the source as a whole, for the audit (glob, URL, redacted SQL URL + table)
    units: int  # files / pages / chunks read
    #: date-partitioned file drops: the files this window owns. The loader then replaces the rows
    #: of these files, whatever each row's own date (None: the window is defined by the rows' dates)
    files: list[str] | None = None
    #: files that could not be parsed (their rows loaded earlier are kept, not replaced)
    unreadable: list[Unreadable] = field(default_factory=list)
    #: what the loader had to assume (e.g. a time zone for timestamps without an offset)
    warnings: list[str] = field(default_factory=list)


class Connector(Protocol):
    def read(self, start: datetime, end: datetime, *, window_column: str | None) -> Batch:
        """Rows that may belong to [start, end): for an incremental source, rows updated in the
        window; otherwise rows whose `window_column` (a source column) is in the window, or more
        (the loader filters by the contract's interval column)."""


def build(source: EntitySource) -> Connector:
    if source.connector == "file":
        from nps_airflow.connectors.file_drops import FileConnector

        return FileConnector(source)
    if source.connector == "http":
        from nps_airflow.connectors.http_api import HttpConnector

        return HttpConnector(source)
    if source.connector == "sql":
        from nps_airflow.connectors.sql_db import SqlConnector

        return SqlConnector(source)
    raise ValueError(f"unknown connector {source.connector!r}")


# ---------------------------------------------------------------- value helpers


def escape_dirty(value: str) -> str:
    """Undecodable bytes as \\xNN and NUL as \\x00: a valid string that still shows the raw bytes."""
    def one(match: re.Match) -> str:
        code = ord(match.group(0))
        if code in (0, _PLACEHOLDER + 0x100):
            return "\\x00"
        return f"\\x{code - (0xDC00 if code < _PLACEHOLDER else _PLACEHOLDER):02x}"

    return DIRTY.sub(one, value)


def to_text(value: Any, *, naive_tz: str = "UTC") -> str:
    """A Python value from JSON / a database driver as the loader's string form."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = pd.Timestamp(value).tz_localize(naive_tz).to_pydatetime()
        return value.isoformat()
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", errors="surrogateescape")
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, ensure_ascii=False, default=str, sort_keys=True)
    if pd.isna(value):
        return ""
    return str(value)


def flatten(record: Any, prefix: str = "", out: dict[str, Any] | None = None) -> dict[str, Any]:
    """A JSON record with nested objects as dotted keys (`person.id`); lists stay as JSON text."""
    out = {} if out is None else out
    if not isinstance(record, dict):
        out[prefix or "value"] = record
        return out
    for key, value in record.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value:
            flatten(value, name, out)
        else:
            out[name] = value
    return out


def records_frame(records: list[dict[str, Any]], lines: list[int], rejects: list[tuple[int, str, str, str]]
                  ) -> pd.DataFrame:
    """Flattened JSON records (+ records that could not be parsed) as an all-string frame."""
    rows = [{k: to_text(v) for k, v in flatten(r).items()} for r in records]
    for row, line in zip(rows, lines, strict=True):
        row[LINE] = line
    for line, rule, detail, raw in rejects:
        rows.append({LINE: line, REJECT: rule, REJECT_DETAIL: detail, RAW: raw})
    return clean_frame(pd.DataFrame(rows)) if rows else pd.DataFrame({LINE: []})


def clean_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Make every data column a string column with "" for null; cells with undecodable bytes or
    NUL are escaped and their row marked `_reject = invalid_encoding`, naming the columns."""
    frame = frame.copy()
    if REJECT not in frame.columns:
        frame[REJECT] = ""
        frame[REJECT_DETAIL] = ""
    if all(isinstance(frame[c].dtype, pd.StringDtype) and not frame[c].hasnans for c in frame.columns if c != LINE):
        return frame  # the fast path: a parser that already read valid strings ("" for empty)
    bad_columns: dict[int, list[str]] = {}
    for column in frame.columns:
        if column == LINE:
            continue
        values = frame[column]
        if values.dtype == object:
            values = values.map(lambda v: v if isinstance(v, str) else to_text(v))
            dirty = values.map(lambda v: DIRTY.search(v) is not None)
            if dirty.any():
                for pos in dirty.to_numpy().nonzero()[0]:
                    bad_columns.setdefault(int(pos), []).append(str(column))
                values = values.map(escape_dirty)
        frame[column] = values.astype(str).where(values.notna(), "") if values.dtype != object else values
    frame = frame.astype({c: str for c in frame.columns if c != LINE})
    for pos, columns in bad_columns.items():
        frame.iat[pos, frame.columns.get_loc(REJECT)] = "invalid_encoding"
        frame.iat[pos, frame.columns.get_loc(REJECT_DETAIL)] = (
            "bytes that are not valid in the declared encoding (or NUL) in: " + ", ".join(columns)
        )
    return frame


def is_epoch(text: pd.Series) -> pd.Series:
    """Values that are Unix epochs (a plain number), which carry no time zone question."""
    return text.str.fullmatch(r"-?\d+(?:\.\d+)?").fillna(False).astype(bool)


def has_offset(text: pd.Series) -> pd.Series:
    """ISO timestamps that end in a UTC offset or Z."""
    return text.str.contains(r"(?:[+-]\d{2}:?\d{2}|Z)$", regex=True, na=False)


def parse_instant(values: pd.Series, naive_tz: str = "UTC") -> pd.Series:
    """Timestamps from ISO strings or Unix epochs (seconds, or milliseconds when > 1e11) as UTC;
    ISO strings without an offset are in `naive_tz`. Unparseable -> NaT."""
    values = values.astype(str).str.strip()
    is_number = is_epoch(values)
    numeric = pd.to_numeric(values.where(is_number), errors="coerce")
    millis = numeric.where(numeric.abs() > 1e11, numeric * 1000)
    epoch = pd.to_datetime(millis, unit="ms", utc=True, errors="coerce")
    iso = _mixed_to_utc(values.where(~is_number & (values != "")), naive_tz)
    return epoch.where(is_number, iso)


def _mixed_to_utc(text: pd.Series, naive_tz: str) -> pd.Series:
    """ISO strings, some with an offset and some without: naive ones are in `naive_tz`."""
    offset = has_offset(text)
    aware = pd.to_datetime(text.where(offset), errors="coerce", format="ISO8601", utc=True)
    naive = pd.to_datetime(text.where(~offset), errors="coerce", format="ISO8601")
    if naive.dt.tz is None:
        naive = naive.dt.tz_localize(naive_tz, ambiguous="NaT", nonexistent="NaT").dt.tz_convert("UTC")
    return aware.where(offset, naive)


def in_window(values: pd.Series, start: datetime, end: datetime, naive_tz: str = "UTC") -> pd.Series:
    """Rows whose timestamp is in [start, end); unparseable values count as in (the loader decides)."""
    when = parse_instant(values, naive_tz)
    return when.isna() | ((when >= pd.Timestamp(start)) & (when < pd.Timestamp(end)))
