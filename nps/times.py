"""Time helpers every layer shares: ISO dates and times as aware UTC datetimes."""

from __future__ import annotations

from datetime import UTC, datetime


def parse_when(value: str | datetime) -> datetime:
    """An ISO date/time (naive means UTC) as an aware UTC datetime.

    Always a plain `datetime`: Airflow's data interval is a pendulum `DateTime`, which Great
    Expectations turns into a naive timestamp when it serialises a suite parameter (a scheduled run
    then failed its freshness check comparing naive with aware datetimes)."""
    when = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    return datetime(when.year, when.month, when.day, when.hour, when.minute, when.second,
                    when.microsecond, tzinfo=UTC)
