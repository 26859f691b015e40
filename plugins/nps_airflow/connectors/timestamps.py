"""Timestamps as sources write them: ISO 8601 with or without an offset, or Unix epochs."""

from __future__ import annotations

from datetime import datetime

import pandas as pd


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
