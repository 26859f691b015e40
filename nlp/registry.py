"""The theme registry: stable theme ids across nights, in memory.

A run loads it from ``nlp.themes`` (:meth:`ThemeRegistry.load`, through :class:`nlp.store.ThemeStore`),
works on it and saves the themes it changed (:meth:`ThemeRegistry.save`); ``fit_transform`` uses the
same object without a database. No SQL here.

* ids are minted as ``max(theme_id) + 1`` over *all* rows of nlp.themes (any model, any status),
  so an id is never reused;
* a cluster is matched to the active theme with the most similar centroid when cosine >=
  ``match_threshold``, else it becomes a new theme;
* centroids are running means weighted by size, re-normalised to unit length;
* near-duplicates (centroid cosine >= ``merge_threshold``) are merged into the older (smaller)
  id: the other gets ``status='merged'``, ``merged_into`` and its comment_themes rows repointed.

Two levels (nlp/hierarchy.py builds the upper one): comments belong to **sub-themes** (level
``subtheme``, found by clustering); each sub-theme has a **parent theme** (level ``theme``,
``parent_id``) whose centroid is the size-weighted mean of its sub-themes'. One id sequence serves
both levels. The built-in ``no specific feedback`` theme (kind ``no_feedback``) is a parent with one
sub-theme; it has no centroid of its own meaning and never takes part in matching or merging.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np

from nlp.vectors import unit as _unit

if TYPE_CHECKING:
    from nlp.store import ThemeStore

log = logging.getLogger(__name__)

__all__ = ["DISCOVERED", "NO_FEEDBACK", "NO_FEEDBACK_LABEL", "SUBTHEME", "THEME", "Theme", "ThemeRegistry"]

SUBTHEME, THEME = "subtheme", "theme"  # nlp.themes.level
DISCOVERED, NO_FEEDBACK = "discovered", "no_feedback"  # nlp.themes.kind
NO_FEEDBACK_LABEL = "no specific feedback"


@dataclass
class Theme:
    theme_id: int
    centroid: np.ndarray
    size: int = 0
    label: str = ""
    keywords: list[str] = field(default_factory=list)
    status: str = "active"
    merged_into: int | None = None
    #: who merged it: 'engine' (near-duplicate centroids) or 'human' (overrides seed)
    merged_by: str | None = None
    first_seen_at: datetime | None = None
    created_run_id: str | None = None
    is_new: bool = False
    dirty: bool = False
    #: loaded with a person's decision (a human label or actionable flag): see ThemeRegistry.protected
    protected: bool = False
    level: str = SUBTHEME
    #: a sub-theme's parent theme (None for parents, and for a sub-theme not grouped yet)
    parent_id: int | None = None
    kind: str = DISCOVERED


class ThemeRegistry:
    def __init__(self, model: str) -> None:
        self.model = model
        self.themes: dict[int, Theme] = {}
        self.max_id = 0
        #: (merged_id, kept_id) pairs of the last :meth:`merge_duplicates`, in order
        self.merges: list[tuple[int, int]] = []
        #: themes a person decided about (overrides seed): never merged away automatically
        self.protected: set[int] = set()
        #: sub-themes a person merged away: {merged id: (its centroid, the theme it went into)}
        self.aliases: dict[int, tuple[np.ndarray, int]] = {}

    # -- queries -----------------------------------------------------------------------------
    def active(self, level: str = SUBTHEME) -> list[Theme]:
        """Active themes of one level (sub-themes by default), by id."""
        return [t for t in sorted(self.themes.values(), key=lambda t: t.theme_id)
                if t.status == "active" and t.level == level]

    def parents(self) -> list[Theme]:
        return self.active(THEME)

    def clusterable(self) -> list[Theme]:
        """The sub-themes comments are matched against: every active discovered one."""
        return [t for t in self.active() if t.kind == DISCOVERED]

    def children(self, parent_id: int) -> list[Theme]:
        return [t for t in self.active() if t.parent_id == parent_id]

    def builtin(self, kind: str, level: str = SUBTHEME) -> Theme | None:
        return next((t for t in self.active(level) if t.kind == kind), None)

    def centroid_matrix(self) -> tuple[list[int], np.ndarray]:
        act = self.clusterable()
        if not act:
            return [], np.zeros((0, 0), dtype=np.float32)
        return [t.theme_id for t in act], np.vstack([t.centroid for t in act]).astype(np.float32)

    def scores(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(theme ids, cosine of each row of ``X`` to each theme): a theme's score is its best over its
        own centroid and those of the themes a person merged into it (:attr:`aliases`), so the
        comments of a merged-away theme keep finding the theme it went into."""
        ids, C = self.centroid_matrix()
        S = X @ C.T if len(ids) and X.shape[0] else np.zeros((X.shape[0], len(ids)), np.float32)
        if self.aliases and len(ids):
            col = {tid: j for j, tid in enumerate(ids)}
            for centroid, target in self.aliases.values():
                j = col.get(self.resolve(target))  # type: ignore[arg-type]
                if j is not None:
                    S[:, j] = np.maximum(S[:, j], X @ centroid)
        return np.asarray(ids, dtype=np.int64), S

    def nearest(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(theme id, cosine) of the nearest active theme per row; id -1 when there is none."""
        ids, S = self.scores(X)
        if len(ids) == 0 or X.shape[0] == 0:
            return np.full(X.shape[0], -1, dtype=np.int64), np.zeros(X.shape[0], dtype=np.float32)
        best = S.argmax(axis=1)
        return ids[best], S[np.arange(X.shape[0]), best]

    def nearest2(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Like :meth:`nearest`, plus the cosine of the nearest theme under another parent theme (-1
        when there is none): two sibling sub-themes close to a comment leave no doubt about its parent,
        and the nearest of them is its sub-theme (themes without a parent are their own family)."""
        ids, S = self.scores(X)
        n = X.shape[0]
        if len(ids) == 0 or n == 0:
            return np.full(n, -1, dtype=np.int64), np.zeros(n, dtype=np.float32), np.full(n, -1.0, np.float32)
        best = S.argmax(axis=1)
        top = S[np.arange(n), best]
        if len(ids) < 2:
            return ids[best], top, np.full(n, -1.0, np.float32)
        family = np.array([-tid if self.themes[tid].parent_id is None else self.themes[tid].parent_id for tid in ids])
        other = np.where(family[None, :] == family[best][:, None], -np.inf, S)
        second = other.max(axis=1)
        return ids[best], top, np.where(np.isfinite(second), second, -1.0).astype(np.float32)

    def similarity(self, theme_id: int, vec: np.ndarray) -> float:
        """Cosine of ``vec`` to a theme, as :meth:`scores` counts it."""
        sims = [float(vec @ self.themes[theme_id].centroid)]
        sims += [float(vec @ c) for c, target in self.aliases.values() if self.resolve(target) == theme_id]
        return max(sims)

    # -- mutations ---------------------------------------------------------------------------
    def mint(
        self,
        centroid: np.ndarray,
        size: int,
        first_seen_at: datetime | None = None,
        run_id: str | None = None,
        *,
        level: str = SUBTHEME,
        kind: str = DISCOVERED,
    ) -> Theme:
        self.max_id += 1
        t = Theme(
            theme_id=self.max_id,
            centroid=_unit(centroid),
            size=size,
            first_seen_at=first_seen_at,
            created_run_id=run_id,
            is_new=True,
            dirty=True,
            level=level,
            kind=kind,
        )
        self.themes[t.theme_id] = t
        return t

    def no_feedback(self, dim: int, run_id: str | None = None) -> Theme:
        """The built-in ``no specific feedback`` sub-theme, minted with its parent the first time."""
        sub = self.builtin(NO_FEEDBACK)
        if sub is None:
            parent = self.mint(np.zeros(dim, np.float32), 0, None, run_id, level=THEME, kind=NO_FEEDBACK)
            sub = self.mint(np.zeros(dim, np.float32), 0, None, run_id, kind=NO_FEEDBACK)
            sub.parent_id = parent.theme_id
            for t in (parent, sub):
                t.label, t.keywords = NO_FEEDBACK_LABEL, []
        return sub

    def refresh_parents(self) -> None:
        """Each parent's centroid and size from its sub-themes (size-weighted), where they changed."""
        for p in self.parents():
            kids = self.children(p.theme_id)
            if not kids or p.kind != DISCOVERED:
                if p.kind == NO_FEEDBACK and kids and p.size != sum(k.size for k in kids):
                    p.size, p.dirty = sum(k.size for k in kids), True
                continue
            size = sum(k.size for k in kids)
            centroid = _unit(np.sum([k.centroid * max(k.size, 1) for k in kids], axis=0))
            if size != p.size or not np.array_equal(centroid, p.centroid):
                p.centroid, p.size, p.dirty = centroid, size, True

    def absorb(self, theme_id: int, vec_sum: np.ndarray, count: int, first_seen_at: datetime | None = None) -> None:
        """Running weighted mean: centroid <- unit(size * centroid + sum of new vectors)."""
        t = self.themes[theme_id]
        t.centroid = _unit(t.centroid * max(t.size, 0) + vec_sum)
        t.size += count
        if first_seen_at is not None and (t.first_seen_at is None or first_seen_at < t.first_seen_at):
            t.first_seen_at = first_seen_at
        t.dirty = True

    def match_or_mint(
        self,
        members: np.ndarray,
        match_threshold: float,
        first_seen_at: datetime | None = None,
        run_id: str | None = None,
    ) -> tuple[int, bool]:
        """Attach a discovered cluster (member embeddings) to a theme: (theme id, newly minted)."""
        centroid = _unit(members.mean(axis=0))
        ids, sims = self.nearest(centroid[None, :])
        if ids[0] >= 0 and sims[0] >= match_threshold:
            tid = int(ids[0])
            self.absorb(tid, members.sum(axis=0), members.shape[0], first_seen_at)
            return tid, False
        t = self.mint(centroid, members.shape[0], first_seen_at, run_id)
        return t.theme_id, True

    def merge_into(self, drop: int, keep: int, by: str = "engine") -> None:
        """Merge active theme ``drop`` into active theme ``keep`` of the same level (size-weighted
        centroid); a parent's sub-themes move to the parent it is merged into."""
        tk, td = self.themes[keep], self.themes[drop]
        for t in self.themes.values():
            if t.parent_id == drop:
                t.parent_id, t.dirty = keep, True
        if by == "human" and td.level == SUBTHEME:
            self.aliases[drop] = (td.centroid.copy(), keep)
        w_k, w_d = max(tk.size, 1), max(td.size, 1)
        tk.centroid = _unit(tk.centroid * w_k + td.centroid * w_d)
        tk.size += td.size
        if td.first_seen_at is not None:
            tk.first_seen_at = min(filter(None, (tk.first_seen_at, td.first_seen_at)))
        tk.dirty = True
        td.status, td.merged_into, td.merged_by, td.dirty = "merged", keep, by, True
        for t in self.themes.values():  # keep merged_into chains flat
            if t.merged_into == drop:
                t.merged_into, t.dirty = keep, True

    def merge_duplicates(self, merge_threshold: float, only_new: bool = False,
                         max_active: int | None = None) -> list[tuple[int, int]]:
        """Merge active themes whose centroids have cosine >= ``merge_threshold``.

        Most similar pair first; the older (smaller) id is kept, unless only the other one is
        :attr:`protected` (a person decided about it); two protected themes are never merged.
        With ``only_new``, a pair needs a theme minted in this run (``is_new``), and that one is
        the one merged away: comments themed on earlier nights never change theme. With
        ``max_active``, the most similar pairs keep merging until at most that many remain.
        Returns (merged, kept) pairs.
        """
        merges: list[tuple[int, int]] = []
        skip: set[tuple[int, int]] = set()
        while True:
            ids, C = self.centroid_matrix()
            if len(ids) < 2:
                break
            S = C @ C.T
            np.fill_diagonal(S, -1.0)
            pos = {tid: k for k, tid in enumerate(ids)}
            for a, b in skip:
                if a in pos and b in pos:
                    S[pos[a], pos[b]] = S[pos[b], pos[a]] = -1.0
            i, j = np.unravel_index(int(np.argmax(S)), S.shape)
            if S[i, j] <= -1.0 or (S[i, j] < merge_threshold and (max_active is None or len(ids) <= max_active)):
                break  # (-1: every remaining pair was skipped)
            a, b = (int(i), int(j)) if S[i, j] >= merge_threshold else self._cheapest_pair(ids, S)
            keep, drop = (ids[a], ids[b]) if ids[a] < ids[b] else (ids[b], ids[a])
            if only_new:
                if not self.themes[drop].is_new:
                    if not self.themes[keep].is_new:
                        skip.add((keep, drop))
                        continue
                    keep, drop = drop, keep
            if drop in self.protected:
                if keep in self.protected:
                    skip.add((keep, drop))
                    continue
                keep, drop = drop, keep
            self.merge_into(drop, keep)
            merges.append((drop, keep))
            log.info("merged theme %s into %s (cos %.3f)", drop, keep, S[a, b])
        self.merges = merges
        return merges

    def _cheapest_pair(self, ids: list[int], S: np.ndarray) -> tuple[int, int]:
        """Over the cap, the pair whose merge moves the fewest comments the least (Ward's cost:
        n_i n_j / (n_i + n_j) x cosine distance): small themes go into their nearest neighbour before
        two large, distinct themes are lumped (banking77 capped at 100 from 170: NMI .789 vs .756
        merging the most similar pair)."""
        n = np.array([max(self.themes[t].size, 1) for t in ids], dtype=np.float64)
        cost = np.outer(n, n) / np.add.outer(n, n) * (1.0 - S)
        cost[S <= -1.0] = np.inf  # the diagonal and skipped pairs
        i, j = np.unravel_index(int(np.argmin(cost)), cost.shape)
        return int(i), int(j)

    def resolve(self, theme_id: int | None) -> int | None:
        """Follow merged_into to the active theme."""
        seen = set()
        while theme_id is not None and theme_id in self.themes and self.themes[theme_id].status == "merged":
            if theme_id in seen:
                break
            seen.add(theme_id)
            theme_id = self.themes[theme_id].merged_into
        return theme_id

    # -- database (through the store) ---------------------------------------------------------
    def load(self, store: ThemeStore) -> ThemeRegistry:
        """Active themes of this model (with centroids) and the id high-water mark."""
        self.max_id = store.max_theme_id()
        for row in store.active_themes():
            t = Theme(**row)
            self.themes[t.theme_id] = t
            if t.protected:
                self.protected.add(t.theme_id)
        self.aliases = {tid: (centroid, target) for tid, centroid, target in store.human_merged_subthemes()}
        return self

    def save(self, store: ThemeStore) -> int:
        """Upsert every changed theme; returns the number written. No commit."""
        written = store.save_themes(t for t in sorted(self.themes.values(), key=lambda t: t.theme_id) if t.dirty)
        for t in self.themes.values():
            t.dirty = False
        return written
