"""Human decisions about themes: the overrides seed (``dbt_project/seeds/theme_overrides.csv``).

A person edits one CSV, one decision per row::

    action,theme_id,value,note
    rename,12,Invoice errors (VAT / PO number),finance asked for a clearer name
    merge,31,12,same complaint as 12
    actionable,12,true,billing team owns it
    actionable,40,false,praise - nothing to do
    pin,12,R000123,this one is about the invoice, not pricing

=============  ==========================  ====================================================
action         theme_id                    value
=============  ==========================  ====================================================
``rename``     the theme                   its new label (shown as ``theme_label`` everywhere)
``merge``      the theme that goes away    the theme id it is merged into
``actionable`` the theme                   ``true`` / ``false`` (also yes/no, 1/0)
``pin``        the theme the comment gets  the ``response_id`` of the comment
=============  ==========================  ====================================================

The theme engine reads the file at the start of every run (:func:`read_overrides`, path from
``ThemeConfig.overrides_path``, ``NPS_THEME_OVERRIDES`` or the default above), checks every row
against the warehouse and applies it (:func:`apply_overrides`), before it themes anything:

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
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from nlp.embed import EmbeddingCache
    from nlp.registry import ThemeRegistry

log = logging.getLogger(__name__)

__all__ = [
    "ACTIONS",
    "COLUMNS",
    "DEFAULT_OVERRIDES_PATH",
    "OVERRIDES_ENV",
    "Override",
    "OverrideError",
    "apply_overrides",
    "read_overrides",
    "resolve_overrides_path",
]

DEFAULT_OVERRIDES_PATH = Path(__file__).resolve().parent.parent / "dbt_project" / "seeds" / "theme_overrides.csv"
OVERRIDES_ENV = "NPS_THEME_OVERRIDES"
COLUMNS = ("action", "theme_id", "value", "note")
ACTIONS = ("actionable", "merge", "pin", "rename")
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
    """(path, explicitly configured). ``None`` -> $NPS_THEME_OVERRIDES, else the default seed."""
    if path not in (None, ""):
        return Path(path), True
    env = os.environ.get(OVERRIDES_ENV)
    if env:
        return Path(env), True
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
            if action == "merge":
                try:
                    target = int(value)
                except ValueError:
                    raise OverrideError(f"{where}: merge value {value!r} is not a theme id") from None
                if target == theme_id:
                    raise OverrideError(f"{where}: theme {theme_id} cannot be merged into itself")
                value = str(target)
            if action == "actionable" and value.lower() not in _TRUE | _FALSE:
                raise OverrideError(f"{where}: actionable value {value!r} must be true or false")
            out.append(Override(line, action, theme_id, value, cell("note")))
    _check_duplicates(out, p.name)
    return out


_VALUE_HELP = {
    "rename": "the new label",
    "merge": "the theme id to merge into",
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


def apply_overrides(
    conn: Any,
    reg: ThemeRegistry,
    overrides: list[Override],
    cache: EmbeddingCache,
    run_id: str,
    source: str = "theme_overrides.csv",
) -> dict[str, int]:
    """Check ``overrides`` against the warehouse, then apply them to ``reg`` and nlp.* (no commit).

    ``reg`` is the loaded registry of this run (active themes); merges happen in it, so the run
    that follows already works with the merged themes. Returns counts per kind of change.
    """
    from nlp.pipeline import ThemeEngine  # prepare(): the text the engine hashes and embeds

    stats = {"merged": 0, "renamed": 0, "flagged": 0, "pinned": 0, "unpinned": 0}
    with conn.cursor() as cur:
        cur.execute("select theme_id, status, merged_into, model from nlp.themes")
        known = {int(t): (s, m, mo) for t, s, m, mo in cur.fetchall()}

    def where(o: Override) -> str:
        return f"{source} line {o.line}"

    def final(tid: int) -> int:
        seen: set[int] = set()
        while tid in known and known[tid][0] == "merged" and known[tid][1] is not None and tid not in seen:
            seen.add(tid)
            tid = int(known[tid][1])
        return tid

    for o in overrides:
        if o.theme_id not in known:
            raise OverrideError(f"{where(o)}: theme {o.theme_id} does not exist in nlp.themes")
        if o.action == "merge" and int(o.value) not in known:
            raise OverrideError(f"{where(o)}: merge target theme {o.value} does not exist in nlp.themes")

    # -- check everything before writing anything: merges simulated in file order on `known`
    merges: list[tuple[Override, int, int]] = []
    for o in (o for o in overrides if o.action == "merge"):
        src, dst = o.theme_id, final(int(o.value))
        if known[src][2] != known[dst][2]:
            raise OverrideError(f"{where(o)}: themes {src} and {dst} belong to different embedding models")
        if final(src) == dst:
            continue  # already done (this row in an earlier run, or the engine did it)
        if known[src][0] == "merged":
            raise OverrideError(
                f"{where(o)}: theme {src} was already merged into {final(src)}; merge {final(src)} into {dst} instead"
            )
        merges.append((o, src, dst))
        known[src] = ("merged", dst, known[src][2])
        for t, (s, m, mo) in list(known.items()):
            if s == "merged" and m == src:
                known[t] = (s, dst, mo)
    for o in overrides:
        if o.action in ("rename", "actionable") and known[o.theme_id][0] == "merged":
            raise OverrideError(
                f"{where(o)}: theme {o.theme_id} is merged into {final(o.theme_id)}; "
                f"{o.action} theme {final(o.theme_id)} instead"
            )
    pins = [o for o in overrides if o.action == "pin"]
    comments: dict[str, str] = {}
    current: dict[str, tuple[Any, str]] = {}
    if pins:
        with conn.cursor() as cur:
            cur.execute(
                "select response_id, comment from raw.survey_responses where response_id = any(%s)",
                ([o.value for o in pins],),
            )
            comments = dict(cur.fetchall())
            cur.execute(
                "select response_id, theme_id, method from nlp.comment_themes where response_id = any(%s)",
                ([o.value for o in pins],),
            )
            current = {r: (t, m) for r, t, m in cur.fetchall()}
    pin_rows: list[tuple[str, str, int]] = []
    for o in pins:
        if o.value not in comments:
            raise OverrideError(f"{where(o)}: response {o.value!r} does not exist in raw.survey_responses")
        text = ThemeEngine.prepare(comments[o.value])
        if _is_content_free(text):
            raise OverrideError(f"{where(o)}: response {o.value!r} has no comment to pin")
        pin_rows.append((o.value, text, final(o.theme_id)))

    # -- merges first (in file order): later rows and the rest of the run see merged themes
    for o, src, dst in merges:
        if dst not in reg.themes or src not in reg.themes:
            # themes of another model than this run's: applied by a run of that model
            log.warning("%s: themes %s/%s are not themes of model %s; skipped", where(o), src, dst, reg.model)
            continue
        reg.merge_into(src, dst, by="human")
        with conn.cursor() as cur:
            cur.execute(
                "update nlp.comment_themes set theme_id = %s, run_id = %s where theme_id = %s", (dst, run_id, src)
            )
            cur.execute("update nlp.themes set merged_into = %s where merged_into = %s", (dst, src))
        stats["merged"] += 1
        log.info("%s: merged theme %s into %s (human)", where(o), src, dst)

    # -- renames and flags: the file's current state
    labels: dict[int, str] = {}
    flags: dict[int, bool] = {}
    for o in overrides:
        if o.action == "rename":
            labels[o.theme_id] = o.value
        elif o.action == "actionable":
            flags[o.theme_id] = o.flag
    with conn.cursor() as cur:
        cur.execute(
            """
            update nlp.themes t set human_label = v.label, updated_at = now()
            from (select unnest(%s::integer[]) as theme_id, unnest(%s::text[]) as label) v
            where t.theme_id = v.theme_id and t.human_label is distinct from v.label
            """,
            (list(labels), list(labels.values())),
        )
        stats["renamed"] = cur.rowcount
        cur.execute(
            "update nlp.themes set human_label = null, updated_at = now() "
            "where human_label is not null and not (theme_id = any(%s))",
            (list(labels),),
        )
        cur.execute(
            """
            update nlp.themes t set is_actionable = v.flag, updated_at = now()
            from (select unnest(%s::integer[]) as theme_id, unnest(%s::boolean[]) as flag) v
            where t.theme_id = v.theme_id and t.is_actionable is distinct from v.flag
            """,
            (list(flags), list(flags.values())),
        )
        stats["flagged"] = cur.rowcount
        cur.execute(
            "update nlp.themes set is_actionable = null, updated_at = now() "
            "where is_actionable is not null and not (theme_id = any(%s))",
            (list(flags),),
        )

    # -- pins
    rows = [(rid, text, tid) for rid, text, tid in pin_rows if tid in reg.themes]
    if len(rows) < len(pin_rows):
        log.warning("%d pin(s) name themes of another model than %s; skipped", len(pin_rows) - len(rows), reg.model)
    if rows:
        from psycopg2.extras import execute_values

        from nlp.text import text_hash

        hashes = [text_hash(t) for _, t, _ in rows]
        E = cache.get_or_compute(conn, hashes, [t for _, t, _ in rows])
        values = []
        for (rid, _text, tid), h, e in zip(rows, hashes, E, strict=True):
            if current.get(rid) != (tid, "pinned"):
                stats["pinned"] += 1
            values.append((rid, h, tid, float(np.dot(e, reg.themes[tid].centroid)), "pinned", reg.model, run_id))
        with conn.cursor() as cur:
            execute_values(
                cur,
                """
                insert into nlp.comment_themes (response_id, text_hash, theme_id, confidence, method, model, run_id)
                values %s
                on conflict (response_id) do update set
                    text_hash = excluded.text_hash, theme_id = excluded.theme_id,
                    confidence = excluded.confidence, method = excluded.method, model = excluded.model,
                    run_id = case when nlp.comment_themes.theme_id is distinct from excluded.theme_id
                                    or nlp.comment_themes.method <> 'pinned'
                                  then excluded.run_id else nlp.comment_themes.run_id end,
                    assigned_at = case when nlp.comment_themes.theme_id is distinct from excluded.theme_id
                                         or nlp.comment_themes.method <> 'pinned'
                                       then now() else nlp.comment_themes.assigned_at end
                """,
                values,
            )
        reg.protected |= {tid for _, _, tid in rows}
    with conn.cursor() as cur:
        # a pin deleted from the file: the comment keeps its theme as an ordinary assignment
        cur.execute(
            "update nlp.comment_themes set method = 'assigned', run_id = %s, assigned_at = now() "
            "where method = 'pinned' and not (response_id = any(%s))",
            (run_id, [o.value for o in pins]),
        )
        stats["unpinned"] = cur.rowcount

    reg.protected |= set(labels) | set(flags) | {final(int(o.value)) for o in overrides if o.action == "merge"}
    if any(stats.values()):
        log.info("theme overrides applied from %s: %s", source, stats)
    return stats


def _is_content_free(text: str) -> bool:
    from nlp.text import is_content_free

    return is_content_free(text)
