"""Every SQL statement of the theme engine: ``nlp.embeddings``, ``nlp.themes``, ``nlp.comment_themes``,
``nlp.comment_sentiment`` and the reads of ``raw.survey_responses`` they need.

The engine (nlp/pipeline.py), the registry (nlp/registry.py), the embedding cache (nlp/embed.py) and
the overrides (nlp/overrides.py) work on Python objects; :class:`ThemeStore` moves those objects in
and out of the warehouse, in the caller's transaction (it never commits).
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import numpy as np

from nlp.vectors import from_bytes, to_bytes

__all__ = ["Assignment", "Comment", "SentimentRow", "ThemeStore"]


@dataclass(frozen=True)
class Comment:
    """A response's comment as the engine reads it. ``text_hash``/``theme_id`` are what an earlier
    run stored (None for a comment never themed)."""

    response_id: str
    responded_at: datetime | None
    comment: str | None
    text_hash: str | None = None
    theme_id: int | None = None


@dataclass(frozen=True)
class Assignment:
    """One row of ``nlp.comment_themes``."""

    response_id: str
    text_hash: str
    theme_id: int | None
    confidence: float | None
    method: str  # empty | no_feedback | noise | assigned | discovered | pinned


@dataclass(frozen=True)
class SentimentRow:
    """One row of ``nlp.comment_sentiment``."""

    response_id: str
    text_hash: str
    sentiment: str  # negative | neutral | positive
    score: float  # in [-1, 1]
    method: str  # score_classifier | anchors | no_feedback


class ThemeRow(Protocol):
    """What :meth:`ThemeStore.save_themes` reads of a theme (nlp.registry.Theme has it)."""

    theme_id: int
    label: str
    keywords: list[str]
    centroid: np.ndarray
    size: int
    status: str
    merged_into: int | None
    merged_by: str | None
    first_seen_at: datetime | None
    created_run_id: str | None
    level: str
    parent_id: int | None
    kind: str


def _copy_text(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


class ThemeStore:
    """The theme engine's tables for one embedding ``model``, through ``conn``."""

    def __init__(self, conn: Any, model: str) -> None:
        self.conn = conn
        self.model = model

    # -- embeddings --------------------------------------------------------------------------------
    def embeddings(self, hashes: Iterable[str]) -> dict[str, np.ndarray]:
        """The cached vectors of ``hashes`` (missing ones are absent)."""
        with self.conn.cursor() as cur:
            cur.execute(
                "select text_hash, embedding from nlp.embeddings where model = %s and text_hash = any(%s)",
                (self.model, list(hashes)),
            )
            return {h: from_bytes(buf) for h, buf in cur.fetchall()}

    def put_embeddings(self, hashes: Sequence[str], vecs: np.ndarray) -> None:
        """New vectors into nlp.embeddings with one COPY (a night may bring tens of thousands)."""
        with self.conn.cursor() as cur:
            cur.execute("create temp table if not exists _new_embeddings (like nlp.embeddings including defaults)"
                        " on commit drop")
            cur.execute("truncate _new_embeddings")
            buf = io.StringIO()
            model, dim = _copy_text(self.model), vecs.shape[1]
            for h, v in zip(hashes, vecs, strict=True):
                buf.write(f"{_copy_text(h)}\t{model}\t{dim}\t\\\\x{to_bytes(v).hex()}\n")
            buf.seek(0)
            cur.copy_expert("copy _new_embeddings (text_hash, model, dim, embedding) from stdin", buf)
            cur.execute("insert into nlp.embeddings (text_hash, model, dim, embedding)"
                        " select text_hash, model, dim, embedding from _new_embeddings"
                        " on conflict (text_hash, model) do nothing")

    # -- the registry ------------------------------------------------------------------------------
    def any_active_theme(self) -> bool:
        """Whether the warehouse has an active theme of this model (no centroids read)."""
        with self.conn.cursor() as cur:
            cur.execute("select exists (select 1 from nlp.themes where model = %s and status = 'active'"
                        " and centroid is not null)", (self.model,))
            return bool(cur.fetchone()[0])

    def max_theme_id(self) -> int:
        """The id high-water mark over every theme (any model, any status): ids are never reused."""
        with self.conn.cursor() as cur:
            cur.execute("select coalesce(max(theme_id), 0) from nlp.themes")
            return int(cur.fetchone()[0])

    def active_themes(self) -> list[dict[str, Any]]:
        """Active themes of this model, with centroids, as the registry's Theme fields;
        ``protected`` = a person decided about them."""
        with self.conn.cursor() as cur:
            cur.execute(
                "select theme_id, centroid, size, label, keywords, first_seen_at, created_run_id, "
                "human_label is not null or is_actionable is not null, level, parent_theme_id, kind "
                "from nlp.themes where model = %s and status = 'active' and centroid is not null "
                "order by theme_id",
                (self.model,),
            )
            return [
                {"theme_id": tid, "centroid": from_bytes(cen), "size": int(size), "label": label,
                 "keywords": list(kws or []), "first_seen_at": fsa, "created_run_id": crid, "protected": bool(human),
                 "level": level, "parent_id": parent, "kind": kind}
                for tid, cen, size, label, kws, fsa, crid, human, level, parent, kind in cur.fetchall()
            ]

    def human_merged_subthemes(self) -> list[tuple[int, np.ndarray, int]]:
        """(theme_id, centroid, merged_into) of the sub-themes of this model a person merged away."""
        with self.conn.cursor() as cur:
            cur.execute(
                "select theme_id, centroid, merged_into from nlp.themes where model = %s and status = 'merged' "
                "and merged_by = 'human' and level = 'subtheme' and centroid is not null and merged_into is not null",
                (self.model,),
            )
            return [(int(t), from_bytes(c), int(m)) for t, c, m in cur.fetchall()]

    def save_themes(self, themes: Iterable[ThemeRow]) -> int:
        """Upsert ``themes``; returns the number written."""
        from psycopg2.extras import execute_values

        rows = [
            (t.theme_id, t.label or f"theme {t.theme_id}", list(t.keywords), to_bytes(t.centroid), int(t.size),
             t.status, t.merged_into, t.merged_by, self.model, t.first_seen_at, t.created_run_id, t.level,
             t.parent_id, t.kind)
            for t in themes
        ]
        if not rows:
            return 0
        with self.conn.cursor() as cur:
            execute_values(
                cur,
                """
                insert into nlp.themes (theme_id, label, keywords, centroid, size, status, merged_into,
                                        merged_by, model, first_seen_at, created_run_id, level,
                                        parent_theme_id, kind)
                values %s
                on conflict (theme_id) do update set
                    label = excluded.label, keywords = excluded.keywords, centroid = excluded.centroid,
                    size = excluded.size, status = excluded.status, merged_into = excluded.merged_into,
                    merged_by = excluded.merged_by,
                    first_seen_at = least(nlp.themes.first_seen_at, excluded.first_seen_at),
                    level = excluded.level, parent_theme_id = excluded.parent_theme_id, kind = excluded.kind,
                    updated_at = now()
                """,
                rows,
                template="(%s, %s, %s::text[], %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            )
        return len(rows)

    def theme_states(self) -> dict[int, tuple[str, int | None, str, str, str]]:
        """``{theme_id: (status, merged_into, model, level, kind)}`` of every theme, for checking overrides."""
        with self.conn.cursor() as cur:
            cur.execute("select theme_id, status, merged_into, model, level, kind from nlp.themes")
            return {int(t): (s, m, mo, lv, k) for t, s, m, mo, lv, k in cur.fetchall()}

    def repoint(self, drop: int, keep: int, run_id: str) -> None:
        """A merge in the tables: ``drop``'s comments and the themes merged into it go to ``keep``."""
        with self.conn.cursor() as cur:
            cur.execute("update nlp.comment_themes set theme_id = %s, run_id = %s where theme_id = %s",
                        (keep, run_id, drop))
            cur.execute("update nlp.themes set merged_into = %s where merged_into = %s", (keep, drop))

    # -- comments ----------------------------------------------------------------------------------
    def comments_in(self, start: datetime, end: datetime) -> list[Comment]:
        """Commented responses with ``responded_at`` in [start, end), with what an earlier run stored
        for them (pinned comments are left out: a person decided, never overwritten)."""
        with self.conn.cursor() as cur:
            cur.execute(
                """
                select r.response_id, r.responded_at, r.comment, ct.text_hash, ct.model
                from raw.survey_responses r
                left join nlp.comment_themes ct on ct.response_id = r.response_id
                where r.responded_at >= %s and r.responded_at < %s and r.comment is not null
                  and ct.method is distinct from 'pinned'
                order by r.responded_at, r.response_id
                """,
                (start, end),
            )
            return [Comment(rid, at, comment, old_hash if old_model == self.model else None)
                    for rid, at, comment, old_hash, old_model in cur.fetchall()]

    def recent_noise(self, since: datetime, until: datetime, exclude: set[str], limit: int) -> list[Comment]:
        """The ``limit`` most recent comments left as noise in [since, until), oldest first."""
        with self.conn.cursor() as cur:
            cur.execute(
                """
                select * from (
                    select ct.response_id, r.responded_at, r.comment, ct.text_hash
                    from nlp.comment_themes ct
                    join raw.survey_responses r on r.response_id = ct.response_id
                    where ct.method = 'noise' and ct.model = %s
                      and r.responded_at >= %s and r.responded_at < %s
                      and not (ct.response_id = any(%s))
                    order by r.responded_at desc, ct.response_id desc
                    limit %s
                ) recent order by responded_at, response_id
                """,
                (self.model, since, until, sorted(exclude), limit),
            )
            return [Comment(*row) for row in cur.fetchall()]

    def recent_themed(self, before: datetime, limit: int, exclude: set[str]) -> list[Comment]:
        """The ``limit`` most recent themed comments before ``before`` (newest first)."""
        if limit <= 0:
            return []
        with self.conn.cursor() as cur:
            cur.execute(
                """
                select ct.response_id, r.responded_at, r.comment, ct.text_hash, ct.theme_id
                from nlp.comment_themes ct
                join raw.survey_responses r on r.response_id = ct.response_id
                where ct.theme_id is not null and ct.model = %s and r.responded_at < %s
                  and ct.method <> 'no_feedback'
                order by r.responded_at desc, ct.response_id desc
                limit %s
                """,
                (self.model, before, limit),
            )
            return [Comment(*row) for row in cur.fetchall() if row[0] not in exclude]

    def comments_of(self, response_ids: Sequence[str]) -> dict[str, str | None]:
        with self.conn.cursor() as cur:
            cur.execute("select response_id, comment from raw.survey_responses where response_id = any(%s)",
                        (list(response_ids),))
            return dict(cur.fetchall())

    def assignments_of(self, response_ids: Sequence[str]) -> dict[str, tuple[int | None, str]]:
        """``{response_id: (theme_id, method)}`` as stored."""
        with self.conn.cursor() as cur:
            cur.execute("select response_id, theme_id, method from nlp.comment_themes where response_id = any(%s)",
                        (list(response_ids),))
            return {r: (t, m) for r, t, m in cur.fetchall()}

    def write_assignments(self, rows: Iterable[Assignment], run_id: str) -> None:
        from psycopg2.extras import execute_values

        values = [(a.response_id, a.text_hash, a.theme_id, a.confidence, a.method, self.model, run_id)
                  for a in sorted(rows, key=lambda a: a.response_id)]
        if not values:
            return
        with self.conn.cursor() as cur:
            execute_values(
                cur,
                """
                insert into nlp.comment_themes
                    (response_id, text_hash, theme_id, confidence, method, model, run_id)
                values %s
                on conflict (response_id) do update set
                    text_hash = excluded.text_hash, theme_id = excluded.theme_id,
                    confidence = excluded.confidence, method = excluded.method, model = excluded.model,
                    run_id = excluded.run_id, assigned_at = now()
                """,
                values,
                page_size=1000,
            )

    def write_pins(self, rows: Iterable[Assignment], run_id: str) -> None:
        """Pinned assignments; an unchanged pin keeps its run_id and assigned_at."""
        from psycopg2.extras import execute_values

        values = [(a.response_id, a.text_hash, a.theme_id, a.confidence, "pinned", self.model, run_id) for a in rows]
        if not values:
            return
        with self.conn.cursor() as cur:
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

    def unpin_all_but(self, keep: Sequence[str], run_id: str) -> int:
        """A pin deleted from the overrides file: the comment keeps its theme as an ordinary assignment."""
        with self.conn.cursor() as cur:
            cur.execute(
                "update nlp.comment_themes set method = 'assigned', run_id = %s, assigned_at = now() "
                "where method = 'pinned' and not (response_id = any(%s))",
                (run_id, list(keep)),
            )
            return int(cur.rowcount)

    # -- human labels and flags (the overrides file's current state) -------------------------------
    def set_human_labels(self, labels: Mapping[int, str]) -> int:
        """``human_label`` of the listed themes set, of every other theme cleared; returns the number set."""
        return self._set_per_theme("human_label", "text", labels)

    def set_actionable(self, flags: Mapping[int, bool]) -> int:
        """``is_actionable`` of the listed themes set, of every other theme cleared; returns the number set."""
        return self._set_per_theme("is_actionable", "boolean", flags)

    def _set_per_theme(self, column: str, sql_type: str, values: Mapping[int, Any]) -> int:
        """One override column (a constant of this class, never user input) set from the file's
        current state: the listed themes get their value, every other theme is cleared."""
        with self.conn.cursor() as cur:
            cur.execute(
                f"""
                update nlp.themes t set {column} = v.value, updated_at = now()
                from (select unnest(%s::integer[]) as theme_id, unnest(%s::{sql_type}[]) as value) v
                where t.theme_id = v.theme_id and t.{column} is distinct from v.value
                """,
                (list(values), list(values.values())),
            )
            changed = int(cur.rowcount)
            cur.execute(
                f"update nlp.themes set {column} = null, updated_at = now() "
                f"where {column} is not null and not (theme_id = any(%s))",
                (list(values),),
            )
            return changed

    # -- labels ------------------------------------------------------------------------------------
    def label_sample(self, theme_ids: Sequence[int], per_theme: int) -> list[tuple[int, str]]:
        """(theme_id, comment) of a bounded, deterministic sample per theme (ordered by text hash),
        through the (theme_id, text_hash, response_id) index: the cost does not grow with history."""
        with self.conn.cursor() as cur:
            cur.execute(
                """
                select t.theme_id, r.comment
                from unnest(%s::int[]) as t (theme_id)
                cross join lateral (
                    select ct.response_id from nlp.comment_themes ct
                    where ct.theme_id = t.theme_id
                    order by ct.text_hash, ct.response_id
                    limit %s
                ) sample
                join raw.survey_responses r on r.response_id = sample.response_id
                """,
                (list(theme_ids), per_theme),
            )
            return cur.fetchall()

    def theme_sizes(self, theme_ids: Iterable[int]) -> dict[int, int]:
        with self.conn.cursor() as cur:
            cur.execute(
                "select theme_id, count(*) from nlp.comment_themes where theme_id = any(%s) group by theme_id",
                (sorted(theme_ids),),
            )
            return {int(tid): int(n) for tid, n in cur.fetchall()}

    # -- sentiment ---------------------------------------------------------------------------------
    def comments_to_score(self, start: datetime, end: datetime) -> list[Comment]:
        """Responses with ``responded_at`` in [start, end) that have a comment or a sentiment row, with
        the text hash their sentiment was computed from by this model (None: never scored, or by
        another model). Pinned comments are included: a person fixed their theme, not their tone."""
        with self.conn.cursor() as cur:
            cur.execute(
                """
                select r.response_id, r.responded_at, r.comment,
                       case when cs.model = %s then cs.text_hash end
                from raw.survey_responses r
                left join nlp.comment_sentiment cs on cs.response_id = r.response_id
                where r.responded_at >= %s and r.responded_at < %s
                  and (r.comment is not null or cs.response_id is not null)
                order by r.responded_at, r.response_id
                """,
                (self.model, start, end),
            )
            return [Comment(*row) for row in cur.fetchall()]

    def sentiment_training_sample(self, before: datetime, per_category: int) -> list[tuple[str, np.ndarray]]:
        """(NPS category, embedding) of the latest ``per_category`` comments with content (themed
        by this model, not empty, not a no-feedback answer) of each category answered before
        ``before``: the sentiment classifier's training set, bounded whatever the history, in a
        fixed order (the same rows in the same order give the same fit)."""
        with self.conn.cursor() as cur:
            cur.execute(
                """
                select c.category, e.embedding
                from (values ('detractor', 0, 6), ('passive', 7, 8), ('promoter', 9, 10))
                    as c (category, low, high)
                cross join lateral (
                    select ct.text_hash, r.responded_at, r.response_id
                    from raw.survey_responses r
                    join nlp.comment_themes ct on ct.response_id = r.response_id
                    where r.responded_at < %s and r.score between c.low and c.high
                      and ct.model = %s and ct.method not in ('empty', 'no_feedback')
                    order by r.responded_at desc, r.response_id desc
                    limit %s
                ) latest
                join nlp.embeddings e on e.text_hash = latest.text_hash and e.model = %s
                order by c.category, latest.responded_at desc, latest.response_id desc
                """,
                (before, self.model, per_category, self.model),
            )
            return [(category, from_bytes(buf)) for category, buf in cur.fetchall()]

    def write_sentiment(self, rows: Iterable[SentimentRow], run_id: str) -> None:
        """Upsert by response_id: a rerun replaces a row, never duplicates it."""
        from psycopg2.extras import execute_values

        values = [(r.response_id, r.text_hash, r.sentiment, r.score, r.method, self.model, run_id)
                  for r in sorted(rows, key=lambda r: r.response_id)]
        if not values:
            return
        with self.conn.cursor() as cur:
            execute_values(
                cur,
                """
                insert into nlp.comment_sentiment
                    (response_id, text_hash, sentiment, sentiment_score, method, model, run_id)
                values %s
                on conflict (response_id) do update set
                    text_hash = excluded.text_hash, sentiment = excluded.sentiment,
                    sentiment_score = excluded.sentiment_score, method = excluded.method,
                    model = excluded.model, run_id = excluded.run_id, scored_at = now()
                """,
                values,
                page_size=1000,
            )

    def delete_sentiment(self, response_ids: Sequence[str]) -> None:
        """Rows of responses whose comment is now empty (or gone): no comment, no sentiment."""
        if not response_ids:
            return
        with self.conn.cursor() as cur:
            cur.execute("delete from nlp.comment_sentiment where response_id = any(%s)", (list(response_ids),))
