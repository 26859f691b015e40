"""Night-by-night bookkeeping of ``ThemeEngine.run_interval``: how a window is cut into nights, what a
night carries from step to step, and how the nights' stats add up to the window's."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from nlp.store import Assignment, Comment

__all__ = ["Night", "Texts", "add_night_stats", "nights"]


def nights(
    start: datetime, end: datetime, days: int | None, *, first_end: datetime | None = None
) -> list[tuple[datetime, datetime]]:
    """[start, end) cut at every ``days``-th UTC midnight (after ``first_end`` when given), so a
    window that starts at midnight is cut where the nightly runs are; one piece when ``days`` is
    None or the window is no longer."""
    if not days or end - start <= timedelta(days=days):
        return [(start, end)]
    out, cursor = [], start
    if first_end is not None and first_end > start:
        out.append((start, min(first_end, end)))
        cursor = min(first_end, end)
    while cursor < end:
        midnight = datetime.combine(cursor.date(), datetime.min.time(), cursor.tzinfo)
        nxt = min(midnight + timedelta(days=days), end)
        out.append((cursor, nxt))
        cursor = nxt
    return out


@dataclass
class Texts:
    """Comments with their prepared text, hash and embedding, in one order."""

    comments: list[Comment]
    texts: list[str]
    hashes: list[str]
    E: np.ndarray

    def __len__(self) -> int:
        return len(self.comments)

    @property
    def seen_at(self) -> list[datetime | None]:
        return [c.responded_at for c in self.comments]


@dataclass
class Night:
    """One night's state as the steps pass it on."""

    start: datetime
    end: datetime
    run_id: str
    stats: dict[str, Any]
    rows: dict[str, Assignment] = field(default_factory=dict)  # response_id -> what gets written
    seconds: dict[str, float] = field(default_factory=dict)  # wall time per stage
    _lap: float = field(default_factory=time.monotonic)

    def timed(self, stage: str) -> None:
        now = time.monotonic()
        self.seconds[stage] = round(self.seconds.get(stage, 0.0) + now - self._lap, 3)
        self._lap = now


def add_night_stats(total: dict[str, Any], part: dict[str, Any]) -> None:
    """Fold one night's stats into the window's: counts and stage seconds add up, themes_active is
    the last night's, everything else (model, run_id, overrides applied) the first night's."""
    for key, value in part.items():
        if key == "seconds_by_stage":
            seconds = total.setdefault(key, {})
            for name, v in value.items():
                seconds[name] = round(seconds.get(name, 0.0) + v, 3)
        elif key == "themes_active" or key not in total:
            total[key] = value
        elif isinstance(value, int):
            total[key] += value
