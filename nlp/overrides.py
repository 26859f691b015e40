"""Human decisions about themes: the overrides seed (``dbt_project/seeds/theme_overrides.csv``).

A person edits one CSV, one decision per row::

    action,theme_id,value,note
    rename,12,Invoice errors (VAT / PO number),finance asked for a clearer name
    merge,31,12,same complaint as 12
    actionable,12,true,billing team owns it
    actionable,40,false,praise - nothing to do
    pin,12,R000123,this one is about the invoice, not pricing
    parent,12,5,invoice errors belong under Billing

=============  ==========================  ====================================================
action         theme_id                    value
=============  ==========================  ====================================================
``rename``     the theme (either level)    its new label (shown as ``theme_label`` everywhere)
``merge``      the theme that goes away    the theme id it is merged into (the same level)
``actionable`` the theme (either level)    ``true`` / ``false`` (also yes/no, 1/0)
``pin``        the sub-theme of a comment  the ``response_id`` of the comment
``parent``     a sub-theme                 the parent theme it belongs under from now on
=============  ==========================  ====================================================

Themes have two levels (nlp/hierarchy.py): parent themes (``level = 'theme'``) and their
sub-themes (``level = 'subtheme'``), one id sequence for both. Merging two parents moves the merged
one's sub-themes under the other; ``parent`` moves one sub-theme (permanent, like a merge).

The theme engine reads the file at the start of every run (:func:`read_overrides`, path from
``ThemeConfig.overrides_path`` (the pipeline's NPS_THEME_OVERRIDES) or the default above), checks every row
against the themes and comments it names (:func:`plan_overrides`, a pure function: no database) and
applies the resulting :class:`OverridePlan` through the store (:func:`apply_plan`), before it themes
anything (:func:`apply_overrides` does the three):

* renames and actionable flags are the file's current state: ``nlp.themes.human_label`` /
  ``is_actionable`` are set for the listed themes and cleared for themes no longer listed. The
  engine keeps writing its own keyword label to ``label``; it never touches ``human_label``.
* a merge repoints the theme's comments (and themes merged into it) to the target and marks it
  ``merged`` with ``merged_by = 'human'``. Merges are permanent: deleting the row later does not
  un-merge, and the engine never reactivates a merged theme.
* a pin fixes one comment's theme (``method = 'pinned'``, confidence = cosine to the theme
  centroid). Later runs never re-theme a pinned comment; a pin removed from the file turns back
  into an ordinary assignment (``method = 'assigned'``) with the same theme.
* themes a person touched (renamed, flagged, merge target, pin target) are never merged away by
  the engine's automatic near-duplicate merge; it merges other themes into them instead.

Any bad row stops the run before anything is written, with a message naming the file and line:
unknown action, a theme id that is not a number or not in ``nlp.themes``, a merge into itself or
into a theme merged away, a rename of a merged theme, a response id that does not exist or has
no comment, the same decision twice.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nlp.store import Assignment, ThemeStore
from nlp.text import is_content_free, prepare, text_hash

if TYPE_CHECKING:
    from nlp.embed import EmbeddingCache
    from nlp.registry import ThemeRegistry

log = logging.getLogger(__name__)

__all__ = [
    "ACTIONS",
    "COLUMNS",
    "DEFAULT_OVERRIDES_PATH",
    "Override",
    "OverrideError",
    "OverridePlan",
    "apply_overrides",
    "apply_plan",
    "plan_overrides",
    "read_overrides",
    "resolve_overrides_path",
]

DEFAULT_OVERRIDES_PATH = Path(__file__).resolve().parent.parent / "dbt_project" / "seeds" / "theme_overrides.csv"
COLUMNS = ("action", "theme_id", "value", "note")
ACTIONS = ("actionable", "merge", "parent", "pin", "rename")
_TRUE = frozenset({"true", "t", "yes", "y", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "0"})


class OverrideError(ValueError):
    """A row of the overrides file cannot be applied; the message names the file and line."""


@dataclass(frozen=True)
class Override:
    line: int
    action: str
    theme_id: int
    value: str
    note: str = ""

    @property
    def flag(self) -> bool:
        return self.value.strip().lower() in _TRUE


def resolve_overrides_path(path: str | Path | None) -> tuple[Path, bool]:
    """(path, explicitly configured). ``None`` -> the default seed (the pipeline passes
    NPS_THEME_OVERRIDES as ThemeConfig.overrides_path: nps.config reads the environment)."""
    if path is not None and str(path) != "":
        return Path(path), True
    return DEFAULT_OVERRIDES_PATH, False


def read_overrides(path: str | Path | None = None) -> list[Override]:
    """Parse and check the file on its own (no database). A missing default file = no overrides;
    a missing file that was configured explicitly is an error."""
    p, explicit = resolve_overrides_path(path)
    if not p.exists():
        if explicit:
            raise OverrideError(f"theme overrides file {p} does not exist")
        return []
    out: list[Override] = []
    with p.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            return []
        header = [h.strip().lower() for h in header]
        missing = [c for c in COLUMNS[:3] if c not in header]
        if missing:
            raise OverrideError(f"{p} line 1: header must be {','.join(COLUMNS)}; missing {', '.join(missing)}")
        col = {c: header.index(c) for c in COLUMNS if c in header}
        for row in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue  # blank line

            def cell(name: str, row: list[str] = row) -> str:
                i = col.get(name)
                return row[i].strip() if i is not None and i < len(row) else ""

            where = f"{p.name} line {line}"
            action = cell("action").lower()
            if action not in ACTIONS:
                expected = ", ".join(ACTIONS)
                raise OverrideError(f"{where}: unknown action {cell('action')!r} (expected one of: {expected})")
            raw_id = cell("theme_id")
            try:
                theme_id = int(raw_id)
            except ValueError:
                raise OverrideError(f"{where}: theme_id {raw_id!r} is not a theme id (a whole number)") from None
            value = cell("value")
            if not value:
                raise OverrideError(f"{where}: {action} needs a value ({_VALUE_HELP[action]})")
            if action in ("merge", "parent"):
                try:
                    target = int(value)
                except ValueError:
                    raise OverrideError(f"{where}: {action} value {value!r} is not a theme id") from None
                if target == theme_id:
                    what = "merged into" if action == "merge" else "its own parent"
                    raise OverrideError(f"{where}: theme {theme_id} cannot be {what} itself")
                value = str(target)
            if action == "actionable" and value.lower() not in _TRUE | _FALSE:
                raise OverrideError(f"{where}: actionable value {value!r} must be true or false")
            out.append(Override(line, action, theme_id, value, cell("note")))
    _check_duplicates(out, p.name)
    return out


_VALUE_HELP = {
    "rename": "the new label",
    "merge": "the theme id to merge into",
    "parent": "the parent theme id",
    "actionable": "true or false",
    "pin": "the response_id to pin",
}


def _check_duplicates(rows: list[Override], name: str) -> None:
    seen: dict[tuple[str, str], int] = {}
    for o in rows:
        # one label / flag / merge per theme, one pin per response
        key = ("pin", o.value) if o.action == "pin" else (o.action, str(o.theme_id))
        if key in seen:
            what = f"response {o.value} is pinned" if o.action == "pin" else f"theme {o.theme_id} has a {o.action}"
            raise OverrideError(f"{name} line {o.line}: {what} twice (also line {seen[key]})")
        seen[key] = o.line


@dataclass
class OverridePlan:
    """What the overrides file asks for, checked: merges in file order, the labels and flags to hold,
    the pins (response, prepared text, final theme) and the themes a person decided about."""

    merges: list[tuple[Override, int, int]] = field(default_factory=list)  # (row, merged theme, target)
    parents: dict[int, int] = field(default_factory=dict)  # sub-theme -> the parent it goes under
    labels: dict[int, str] = field(default_factory=dict)
    flags: dict[int, bool] = field(default_factory=dict)
    pins: list[tuple[str, str, int]] = field(default_factory=list)
    protected: set[int] = field(default_factory=set)
    source: str = "theme_overrides.csv"

    def where(self, o: Override) -> str:
        return f"{self.source} line {o.line}"


_States = dict[int, tuple[str, int | None, str, str, str]]  # theme_id -> (status, merged_into, model, level, kind)


def plan_overrides(
    overrides: list[Override],
    states: _States,
    comments: dict[str, str | None],
    source: str = "theme_overrides.csv",
) -> OverridePlan:
    """Check every row against the themes (``{theme_id: (status, merged_into, model, level, kind)}``,
    :meth:`nlp.store.ThemeStore.theme_states`) and the pinned responses' comments, and say what to
    do; raises :class:`OverrideError` naming the line of the first bad row. Pure: nothing is read or
    written."""
    known = dict(states)
    plan = OverridePlan(source=source)
    for o in overrides:
        if o.theme_id not in known:
            raise OverrideError(f"{plan.where(o)}: theme {o.theme_id} does not exist in nlp.themes")
        if o.action in ("merge", "parent") and int(o.value) not in known:
            raise OverrideError(f"{plan.where(o)}: {o.action} target theme {o.value} does not exist in nlp.themes")
        _check_levels(o, known, plan.where(o))
    _plan_merges([o for o in overrides if o.action == "merge"], known, plan)
    for o in overrides:
        _plan_row(o, known, comments, plan)
    plan.protected = set(plan.labels) | set(plan.flags) | {_final(known, int(o.value)) for o in overrides
                                                           if o.action == "merge"} | set(plan.parents)
    return plan


def _final(known: _States, tid: int) -> int:
    """The theme at the end of ``tid``'s merged_into chain."""
    seen: set[int] = set()
    while tid in known and known[tid][0] == "merged" and known[tid][1] is not None and tid not in seen:
        seen.add(tid)
        tid = int(known[tid][1])  # type: ignore[arg-type]
    return tid


def _plan_merges(merges: list[Override], known: _States, plan: OverridePlan) -> None:
    """Merges simulated in file order on ``known``, so later rows see the merged themes."""
    for o in merges:
        src, dst = o.theme_id, _final(known, int(o.value))
        if known[src][2] != known[dst][2]:
            raise OverrideError(f"{plan.where(o)}: themes {src} and {dst} belong to different embedding models")
        if _final(known, src) == dst:
            continue  # already done (this row in an earlier run, or the engine did it)
        if known[src][0] == "merged":
            now = _final(known, src)
            raise OverrideError(f"{plan.where(o)}: theme {src} was already merged into {now}; merge {now} into "
                                f"{dst} instead")
        plan.merges.append((o, src, dst))
        _, _, model, level, kind = known[src]
        known[src] = ("merged", dst, model, level, kind)
        for t, (s, m, mo, lv, k) in list(known.items()):
            if s == "merged" and m == src:
                known[t] = (s, dst, mo, lv, k)


def _plan_row(o: Override, known: _States, comments: dict[str, str | None], plan: OverridePlan) -> None:
    """A rename, flag, pin or move of one row, after the merges."""
    if o.action in ("rename", "actionable") and known[o.theme_id][0] == "merged":
        now = _final(known, o.theme_id)
        raise OverrideError(f"{plan.where(o)}: theme {o.theme_id} is merged into {now}; {o.action} theme {now} instead")
    if o.action == "parent":
        plan.parents[_final(known, o.theme_id)] = _final(known, int(o.value))
    elif o.action == "rename":
        plan.labels[o.theme_id] = o.value
    elif o.action == "actionable":
        plan.flags[o.theme_id] = o.flag
    elif o.action == "pin":
        if o.value not in comments:
            raise OverrideError(f"{plan.where(o)}: response {o.value!r} does not exist in raw.survey_responses")
        text = prepare(comments[o.value])
        if is_content_free(text):  # empty, or a no-feedback answer: nothing a theme could be about
            raise OverrideError(f"{plan.where(o)}: response {o.value!r} has no comment to pin")
        plan.pins.append((o.value, text, _final(known, o.theme_id)))


def _check_levels(o: Override, known: _States, where: str) -> None:
    """Merges stay within a level, pins name sub-themes, ``parent`` puts a sub-theme under a parent,
    and the built-in no-feedback theme is never merged away."""
    level, kind = known[o.theme_id][3], known[o.theme_id][4]
    if o.action == "merge":
        target = int(o.value)
        if known[target][3] != level:
            raise OverrideError(f"{where}: theme {o.theme_id} is a {level} and theme {target} a {known[target][3]}; "
                                "merge themes of one level (move a sub-theme with 'parent')")
        if kind != "discovered":
            raise OverrideError(f"{where}: theme {o.theme_id} is the built-in {kind} theme; it cannot be merged away")
    elif o.action == "pin" and level != "subtheme":
        raise OverrideError(f"{where}: theme {o.theme_id} is a parent theme; pin the comment to one of its sub-themes")
    elif o.action == "parent" and (level != "subtheme" or known[int(o.value)][3] != "theme"):
        raise OverrideError(f"{where}: parent needs a sub-theme ({o.theme_id} is a {level}) and a parent theme "
                            f"({o.value} is a {known[int(o.value)][3]})")


def apply_plan(store: ThemeStore, reg: ThemeRegistry, plan: OverridePlan, cache: EmbeddingCache,
               run_id: str) -> dict[str, int]:
    """Apply a checked plan to ``reg`` and nlp.* (no commit): merges first, in file order, so the rest
    of the run works with the merged themes; then labels and flags (the file's current state); then
    pins. Returns counts per kind of change."""
    stats = {"merged": 0, "moved": 0, "renamed": 0, "flagged": 0, "pinned": 0, "unpinned": 0}
    for o, src, dst in plan.merges:
        if dst not in reg.themes or src not in reg.themes:
            # themes of another model than this run's: applied by a run of that model
            log.warning("%s: themes %s/%s are not themes of model %s; skipped", plan.where(o), src, dst, reg.model)
            continue
        reg.merge_into(src, dst, by="human")
        store.repoint(src, dst, run_id)
        stats["merged"] += 1
        log.info("%s: merged theme %s into %s (human)", plan.where(o), src, dst)

    for sub, parent in plan.parents.items():
        t = reg.themes.get(sub)
        if t is not None and parent in reg.themes and t.parent_id != parent:
            t.parent_id, t.dirty = parent, True
            stats["moved"] += 1
    stats["renamed"] = store.set_human_labels(plan.labels)
    stats["flagged"] = store.set_actionable(plan.flags)

    rows = [(rid, text, tid) for rid, text, tid in plan.pins if tid in reg.themes]
    if len(rows) < len(plan.pins):
        log.warning("%d pin(s) name themes of another model than %s; skipped", len(plan.pins) - len(rows), reg.model)
    if rows:
        current = store.assignments_of([rid for rid, _, _ in rows])
        hashes = [text_hash(t) for _, t, _ in rows]
        E = cache.get_or_compute(store, hashes, [t for _, t, _ in rows])
        pins = []
        for (rid, _text, tid), h, e in zip(rows, hashes, E, strict=True):
            if current.get(rid) != (tid, "pinned"):
                stats["pinned"] += 1
            pins.append(Assignment(rid, h, tid, float(np.dot(e, reg.themes[tid].centroid)), "pinned"))
        store.write_pins(pins, run_id)
        reg.protected |= {tid for _, _, tid in rows}
    stats["unpinned"] = store.unpin_all_but([rid for rid, _, _ in plan.pins], run_id)
    reg.protected |= plan.protected
    if any(stats.values()):
        log.info("theme overrides applied from %s: %s", plan.source, stats)
    return stats


def apply_overrides(
    store: ThemeStore | Any,
    reg: ThemeRegistry,
    overrides: list[Override],
    cache: EmbeddingCache,
    run_id: str,
    source: str = "theme_overrides.csv",
) -> dict[str, int]:
    """Check ``overrides`` against the warehouse (:func:`plan_overrides`), then apply them to ``reg``
    and nlp.* (:func:`apply_plan`; no commit). ``store``: a ThemeStore, or a database connection."""
    if not isinstance(store, ThemeStore):
        store = ThemeStore(store, reg.model)
    pinned = [o.value for o in overrides if o.action == "pin"]
    comments = store.comments_of(pinned) if pinned else {}
    plan = plan_overrides(overrides, store.theme_states(), comments, source)
    return apply_plan(store, reg, plan, cache, run_id)
