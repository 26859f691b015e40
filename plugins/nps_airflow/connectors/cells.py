"""Source values as the loader's strings: Python values from JSON / a database driver as text,
and bytes that did not decode (or NUL, which PostgreSQL text cannot hold) escaped and flagged."""

from __future__ import annotations

import json
import math
import re
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

import pandas as pd

from nps_airflow.connectors.base import LINE, REJECT, REJECT_DETAIL

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
