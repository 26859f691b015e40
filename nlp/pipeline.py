"""The theme engine: one configurable pipeline object, BERTopic style.

``ThemeEngine.run_interval`` (nightly, against the warehouse) themes a window night by night;
one night (:meth:`ThemeEngine._theme_night`) reads as its list of steps::

    registry   = load active themes, apply the overrides seed          (_load_registry)
    batch      = new comments of the night (skip responses already themed with this text)
    empty      = content-free comments -> method 'empty', theme null   (_split_empty)
    embed      = EmbeddingCache: only cache misses are encoded        (_embed)
    pool       = the night's comments + earlier 'noise' comments of the last discovery_lookback_days,
                 with up to discovery_context recent themed comments before the night
                 (density only: their theme never changes)            (_read_pool)
    discover   = reduce (PCA) + cluster (HDBSCAN) pool + context (cluster first, then assign);
                 a cluster whose context members mostly share a theme -> its pool members join it;
                 a cluster (almost) without context = a new topic -> centroid match or new theme;
                 near-duplicate new themes merged into the older id; members far from their final
                 centroid dropped                                      (_discover)
    assign     = pool leftovers -> nearest theme when cosine >= nightly_assign_threshold and it beats
                 the second nearest by assign_margin -> 'assigned', the rest 'noise'   (_assign)
    write      = nlp.comment_themes upsert, merges repointed          (_write)
    sentiment  = the night's comments not yet scored with their text -> negative / neutral / positive
                 + score on the embeddings above (nlp/sentiment.py: classifier trained on the latest
                 scored comments before the night's week, anchors on a cold start; no-feedback
                 answers neutral, empty ones no row) -> nlp.comment_sentiment upsert   (_sentiment)
    label      = sizes recounted; c-TF-IDF keywords + label only for themes minted or merged in
                 this run (labels stay stable: a theme's identity is fixed when it is discovered)
    save       = nlp.themes upsert of the changed themes

``ThemeEngine.fit_transform`` runs the same ideas in memory, without a database. Components
(embedder, reducer, clusterer, labeler) can be passed in; defaults come from :class:`ThemeConfig`.
Every SQL statement lives in nlp/store.py; the clustering arithmetic in nlp/discovery.py.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from nlp import discovery, hierarchy, results
from nlp.cluster import Clusterer, HDBSCANClusterer, discover_labels
from nlp.config import ThemeConfig
from nlp.embed import Embedder, EmbeddingCache
from nlp.label import ClassTfidfLabeler
from nlp.nights import Night, Texts, add_night_stats, nights
from nlp.no_feedback import is_no_feedback
from nlp.overrides import apply_overrides, read_overrides
from nlp.reduce import PCAReducer, Reducer
from nlp.registry import ThemeRegistry
from nlp.sentiment import CATEGORY_SENTIMENT, AnchorSentiment, SentimentModel, choose_model, training_cutoff
from nlp.store import Assignment, Comment, SentimentRow, ThemeStore
from nlp.text import is_empty, prepare, text_hash

log = logging.getLogger(__name__)

__all__ = ["ThemeConfig", "ThemeEngine", "nights"]


def _kind_of(text: str) -> str:
    """'empty' (no answer), 'no_feedback' (an answer saying there is nothing to say) or 'content'."""
    if is_empty(text):
        return "empty"
    return "no_feedback" if is_no_feedback(text) else "content"


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
        self.embedder = embedder or Embedder(cfg.model, batch_size=cfg.batch_size, device=cfg.device,
                                             backend=cfg.backend)
        self.reducer: Reducer = reducer or PCAReducer(cfg.reduce_dims, cfg.random_state)
        self.clusterer: Clusterer = clusterer or HDBSCANClusterer(
            min_cluster_size=cfg.min_cluster_size,
            min_samples=cfg.min_samples,
            cluster_selection_method=cfg.cluster_selection_method,
            mcs_per=cfg.min_cluster_size_per,
            mcs_floor=cfg.min_cluster_size_floor,
        )
        self.labeler = labeler or ClassTfidfLabeler(cfg.top_n_keywords, cfg.label_terms)
        self.cache = EmbeddingCache(self.embedder)
        #: per-theme summary of the last fit_transform (theme_id, label, keywords, size, representatives)
        self.themes_: Any = None
        #: embeddings read during one run_interval call, by text hash (cleared at its start)
        self._seen: dict[str, np.ndarray] = {}
        #: sentiment models of one run_interval call, by training cutoff (the nights of a week share one)
        self._sentiment_models: dict[datetime, SentimentModel] = {}
        self._anchors = AnchorSentiment(self.embedder)

    @property
    def model(self) -> str:
        """The model key stored with embeddings, themes and comment_themes rows."""
        return self.embedder.key

    prepare = staticmethod(prepare)

    def _cluster(self, E: np.ndarray) -> np.ndarray:
        return discover_labels(E, self.reducer, self.clusterer, self.config.collapse_threshold,
                               self.config.collapse_keeps_weight)

    # ======================================================================================
    # in memory
    # ======================================================================================
    def fit_transform(self, texts: Sequence[str | None], embeddings: np.ndarray | None = None) -> Any:
        """Themes for a list of comments, no database.

        Returns a DataFrame aligned with ``texts``: ``theme_id`` (the sub-theme; Int64, NA for empty
        comments and noise), ``theme_label``, ``parent_theme_id``, ``parent_theme_label`` and
        ``confidence`` (cosine to the sub-theme centroid; 1.0 for the built-in no-feedback theme).
        ``self.themes_`` holds one row per theme of either level (level, parent, label, keywords,
        size, representative comments). ``embeddings`` (one L2-normalised row per text, e.g.
        computed once for a benchmark) skips the encoding; rows of content-free texts are ignored.
        """
        cfg = self.config
        prepared = [prepare(t) for t in texts]
        kinds = [_kind_of(t) for t in prepared]
        idx = np.flatnonzero(np.array([k == "content" for k in kinds], dtype=bool))
        E = self._fit_embed(prepared, idx, embeddings)
        reg = ThemeRegistry(self.model)
        builtin = int("no_feedback" in kinds)  # the no-feedback theme counts against the caps too
        theme = self._fit_subthemes(reg, E, cfg.max_subthemes - builtin)
        hierarchy.assign_parents(reg, cfg.parent_similarity, cfg.max_parents - builtin)
        no_feedback = reg.no_feedback(E.shape[1] if E.size else 1) if builtin else None
        self.themes_ = results.label_themes(self.labeler, reg, E, theme, [prepared[i] for i in idx],
                                            kinds.count("no_feedback"), self.config.representatives)
        return results.comment_frame(reg, kinds, idx, theme, discovery.confidence(reg, E, theme), no_feedback)

    def _fit_subthemes(self, reg: ThemeRegistry, E: np.ndarray, max_subthemes: int) -> np.ndarray:
        """Sub-theme per row of ``E`` (-1 unassigned): discover, merge, refine, assign."""
        cfg = self.config
        labels = self._cluster(E) if E.shape[0] >= cfg.min_discovery_pool else np.full(E.shape[0], -1)
        theme, _ = discovery.attach_clusters(reg, E, labels, [None] * E.shape[0], cfg.match_threshold, None)
        reg.merge_duplicates(cfg.merge_threshold, max_active=max_subthemes)
        discovery.resolve(reg, theme)
        if cfg.refine_iterations > 0:
            theme = discovery.refine(reg, E, theme, cfg.refine_iterations)
            conf = discovery.confidence(reg, E, theme)
            theme[~(conf >= cfg.assign_threshold)] = -1  # too far from every theme: unassigned
        else:
            discovery.prune(reg, E, theme, cfg.assign_threshold)
            discovery.reassign(reg, E, theme, cfg.assign_threshold)
        return theme

    def _fit_embed(self, prepared: list[str], idx: np.ndarray, embeddings: np.ndarray | None) -> np.ndarray:
        if embeddings is not None:
            if len(embeddings) != len(prepared):
                raise ValueError(f"{len(embeddings)} embeddings for {len(prepared)} texts")
            return np.asarray(embeddings, dtype=np.float32)[idx]
        uniq: dict[str, int] = {}
        for i in idx:
            uniq.setdefault(prepared[i], len(uniq))
        U = self.embedder.encode(list(uniq))
        return U[[uniq[prepared[i]] for i in idx]] if idx.size else np.zeros((0, 1), dtype=np.float32)

    # ======================================================================================
    # against the warehouse
    # ======================================================================================
    def run_interval(self, conn: Any, start: datetime, end: datetime, run_id: str) -> dict[str, Any]:
        """Theme the comments of responses with ``responded_at`` in ``[start, end)``.

        Writes nlp.embeddings, nlp.comment_themes and nlp.themes in the caller's transaction
        (no commit). Idempotent: a rerun of the same interval changes nothing and encodes nothing.
        A window longer than ``night_days`` (a backfill) is themed night by night, as the nightly
        runs would have themed it; on a warehouse without themes the first ``warm_start_days`` are
        one night. Each night encodes its own new comments, as the nightly run would: the same texts
        in the same batches give bit-identical embeddings (another batch composition pads
        differently and moves float32 results in the 7th digit), so a backfill writes exactly what
        the nightly runs would have written.
        """
        cfg = self.config
        store = ThemeStore(conn, self.model)
        self._seen = {}
        self._sentiment_models = {}
        first_end = None
        if cfg.night_days and end - start > timedelta(days=cfg.night_days) and not store.any_active_theme():
            first_end = min(end, start + timedelta(days=max(cfg.warm_start_days, cfg.night_days)))
        windows = nights(start, end, cfg.night_days, first_end=first_end)
        if len(windows) == 1:
            return self._theme_night(store, start, end, run_id)
        from tqdm.auto import tqdm

        t0 = time.monotonic()
        total: dict[str, Any] = {}
        # a backfilled quarter themes for minutes: nights done / total, and what they found so far
        bar = tqdm(windows, desc="themes", unit="night", mininterval=2.0, disable=not cfg.progress)
        for s, e in bar:
            add_night_stats(total, self._theme_night(store, s, e, run_id))  # each applies the seed, as nights do
            bar.set_postfix(themes=total.get("themes_active", 0), comments=total.get("new_comments", 0), refresh=False)
        bar.close()
        total.update(interval_start=start, interval_end=end, nights=len(windows),
                     seconds=round(time.monotonic() - t0, 3))
        log.info("themes run %s [%s, %s) in %d nights: %s", run_id, start, end, len(windows), total)
        return total

    def _theme_night(self, store: ThemeStore, start: datetime, end: datetime, run_id: str) -> dict[str, Any]:
        """One night of :meth:`run_interval`: the steps listed in the module docstring."""
        t0 = time.monotonic()
        night = Night(start, end, run_id, stats={
            "model": self.model, "interval_start": start, "interval_end": end, "run_id": run_id,
            "new_comments": 0, "embedded": 0, "empty": 0, "no_feedback": 0, "assigned": 0, "discovered": 0,
            "noise": 0, "pool": 0, "reclaimed": 0, "new_themes": 0, "merged": 0, "new_parent_themes": 0,
            "sentiment_scored": 0, "sentiment_anchors": 0,
        })
        reg = self._load_registry(store, night)
        batch = self._read_batch(store, night)
        new = self._embed(store, self._split_by_content(reg, batch, night), night)
        noise, context = self._read_pool(store, new, night)
        theme, method = self._discover(reg, new, noise, context, night)
        self._assign(reg, new, noise, theme, method, night)
        self._group(reg, night)
        self._write(store, reg, new, noise, theme, method, night)
        self._sentiment(store, new, night)
        self._label(store, reg, night)
        reg.save(store)
        night.timed("save")
        night.stats.update(seconds_by_stage=night.seconds, themes_active=len(reg.active()),
                           seconds=round(time.monotonic() - t0, 3))
        log.info("themes run %s [%s, %s): %s", run_id, start, end, night.stats)
        return night.stats

    # -- the steps of one night ------------------------------------------------------------------
    def _load_registry(self, store: ThemeStore, night: Night) -> ThemeRegistry:
        """Active themes, with the overrides seed applied (a bad file fails before anything is read)."""
        overrides = read_overrides(self.config.overrides_path)
        reg = ThemeRegistry(self.model).load(store)
        night.stats["overrides"] = apply_overrides(store, reg, overrides, self.cache, night.run_id)
        night.stats["themes_active"] = len(reg.active())
        night.timed("registry_overrides")
        return reg

    def _read_batch(self, store: ThemeStore, night: Night) -> list[Comment]:
        """The night's comments not yet themed with this very text (by this model)."""
        batch = [c for c in store.comments_in(night.start, night.end)
                 if c.text_hash is None or c.text_hash != text_hash(prepare(c.comment))]
        night.stats["new_comments"] = len(batch)
        return batch

    def _split_by_content(self, reg: ThemeRegistry, batch: list[Comment], night: Night) -> list[tuple[Comment, str]]:
        """Comments without content get their row now: empty ones (method 'empty', no theme) and
        no-feedback answers (the built-in 'no specific feedback' theme, method 'no_feedback'); the
        rest go on to be embedded and themed."""
        rest = []
        for c in batch:
            text = prepare(c.comment)
            kind = _kind_of(text)
            if kind == "content":
                rest.append((c, text))
                continue
            row = Assignment(c.response_id, text_hash(text), None, None, "empty")
            if kind == "no_feedback":
                dim = next((t.centroid.shape[0] for t in reg.clusterable()), 1)
                row = Assignment(c.response_id, row.text_hash, reg.no_feedback(dim, night.run_id).theme_id, 1.0,
                                 "no_feedback")
                night.stats["no_feedback"] += 1
            else:
                night.stats["empty"] += 1
            night.rows[c.response_id] = row
        night.timed("read_batch")
        return rest

    def _embed(self, store: ThemeStore, comments: list[tuple[Comment, str]], night: Night) -> Texts:
        texts = [t for _, t in comments]
        hashes = [text_hash(t) for t in texts]
        E = self.cache.get_or_compute(store, hashes, texts) if texts else np.zeros((0, 1), np.float32)
        night.stats["embedded"] = self.cache.last_misses if texts else 0
        night.timed("embed")
        return Texts([c for c, _ in comments], texts, hashes, E)

    def _read_pool(self, store: ThemeStore, new: Texts, night: Night) -> tuple[Texts, Texts]:
        """Earlier noise comments (candidates again) and recent themed ones (density context)."""
        cfg = self.config
        old: list[Comment] = []
        ctx: list[Comment] = []
        if len(new):
            ids = {c.response_id for c in new.comments}
            since = night.start - timedelta(days=cfg.discovery_lookback_days)
            old = store.recent_noise(since, night.end, ids, cfg.max_noise_pool)
            ctx = store.recent_themed(night.start, cfg.discovery_context, ids)
        night.timed("read_pool")
        dim = new.E.shape[1] if new.E.size else 1
        noise, context = self._embed_stored(store, old, dim, night), self._embed_stored(store, ctx, dim, night)
        night.stats.update(pool=len(new) + len(noise), context=len(context))
        night.timed("embed_pool")
        return noise, context

    def _embed_stored(self, store: ThemeStore, rows: list[Comment], dim: int, night: Night) -> Texts:
        """Embeddings of comments an earlier run stored with their text hash: from this window's
        memory (the nights of a backfill see the same context again and again), else nlp.embeddings,
        else encoded (a cache someone emptied)."""
        hashes = [str(c.text_hash) for c in rows]
        if not rows:
            return Texts([], [], [], np.zeros((0, dim), np.float32))
        if len(self._seen) > 50_000:  # bounded: a long backfill keeps only what recent nights used
            self._seen = {}
        missing = list(dict.fromkeys(h for h in hashes if h not in self._seen))
        if missing:
            self._seen.update(store.embeddings(missing))
        gone = [k for k, h in enumerate(hashes) if h not in self._seen]
        if gone:
            vecs = self.cache.get_or_compute(store, [hashes[k] for k in gone], [prepare(rows[k].comment) for k in gone])
            night.stats["embedded"] += self.cache.last_misses
            self._seen.update(zip((hashes[k] for k in gone), vecs, strict=True))
        return Texts(rows, [""] * len(rows), hashes, np.vstack([self._seen[h] for h in hashes]).astype(np.float32))

    def _discover(self, reg: ThemeRegistry, new: Texts, noise: Texts, context: Texts,
                  night: Night) -> tuple[np.ndarray, np.ndarray]:
        """Cluster first, then assign: every new comment enters discovery, so a topic that starts
        tonight forms its own cluster instead of being absorbed by the nearest old theme. Returns
        (theme id, method) per candidate: the night's comments, then the earlier noise."""
        cfg = self.config
        n = len(new) + len(noise)
        theme = np.full(n, -1, dtype=np.int64)
        method = np.array(["noise"] * n, dtype=object)
        if len(new) == 0 or n < cfg.min_discovery_pool:
            return theme, method
        E = np.vstack([new.E, noise.E]) if len(noise) else new.E
        ctx_theme = np.array([reg.resolve(int(c.theme_id)) or -1 for c in context.comments],  # type: ignore[arg-type]
                             dtype=np.int64)
        labels = self._cluster(np.vstack([E, context.E]) if len(context) else E)
        theme, night.stats["new_themes"] = discovery.attach_in_context(
            reg, cfg, E, labels, len(context), ctx_theme, new.seen_at + noise.seen_at, night.run_id)
        method[theme >= 0] = "discovered"
        night.stats["merged"] = len(reg.merge_duplicates(cfg.merge_threshold, only_new=True))
        discovery.resolve(reg, theme)
        method[discovery.prune(reg, E, theme, cfg.assign_threshold)] = "noise"
        night.timed("discover")
        return theme, method

    def _assign(self, reg: ThemeRegistry, new: Texts, noise: Texts, theme: np.ndarray, method: np.ndarray,
                night: Night) -> None:
        """Comments outside every cluster join the nearest theme when it is a clear winner; noise
        older than noise_settle_days at assign_threshold (their themes have had time to form)."""
        cfg = self.config
        if len(new) == 0:
            return
        E = np.vstack([new.E, noise.E]) if len(noise) else new.E
        settled = night.start - timedelta(days=cfg.noise_settle_days)
        loose = np.array([False] * len(new) + [t is not None and t < settled for t in noise.seen_at], dtype=bool)
        hit = discovery.reassign(reg, E, theme, cfg.assign_threshold, margin=cfg.assign_margin,
                                 strict=cfg.nightly_assign_threshold, loose=loose,
                                 clear_margin=cfg.nightly_clear_margin)
        method[hit] = "assigned"
        discovery.absorb(reg, E, theme, hit, new.seen_at + noise.seen_at)

    def _group(self, reg: ThemeRegistry, night: Night) -> None:
        """Sub-themes without a parent theme get one (nlp/hierarchy.py): a new sub-theme joins the
        nearest parent it is as close to as that parent's own sub-themes; the rest form new parents."""
        night.stats["new_parent_themes"] = hierarchy.assign_parents(
            reg, self.config.parent_similarity, self.config.max_parents, night.run_id)
        night.timed("group")

    def _write(self, store: ThemeStore, reg: ThemeRegistry, new: Texts, noise: Texts, theme: np.ndarray,
               method: np.ndarray, night: Night) -> None:
        """The night's rows and the earlier noise comments that found a theme; merges repointed."""
        n = len(new)
        conf = discovery.confidence(reg, new.E, theme[:n]) if n else np.zeros(0, np.float32)
        for j, c in enumerate(new.comments):
            tid = int(theme[j]) if theme[j] >= 0 else None
            night.rows[c.response_id] = Assignment(c.response_id, new.hashes[j], tid,
                                                   None if tid is None else float(conf[j]), str(method[j]))
        if len(noise):
            old_theme = theme[n:]
            old_conf = discovery.confidence(reg, noise.E, old_theme)
            for k, c in enumerate(noise.comments):
                if old_theme[k] >= 0:
                    night.rows[c.response_id] = Assignment(c.response_id, noise.hashes[k], int(old_theme[k]),
                                                           float(old_conf[k]), str(method[n + k]))
                    night.stats["reclaimed"] += 1
        for key in ("assigned", "discovered", "noise"):
            night.stats[key] = int(sum(1 for m in method[:n] if m == key))
        night.timed("assign")
        store.write_assignments(night.rows.values(), night.run_id)
        for drop, keep_id in reg.merges:
            store.repoint(drop, keep_id, night.run_id)
        night.timed("write")

    def _sentiment(self, store: ThemeStore, new: Texts, night: Night) -> None:
        """Sentiment of the night's comments not scored yet with their current text (a rerun scores
        nothing; an edited comment is scored again): no-feedback answers neutral, empty answers no
        row (an old one deleted), the rest by the night's model on the embeddings the night already
        has (nlp.embeddings for comments themed earlier, e.g. pinned ones)."""
        rows: list[SentimentRow] = []
        empty: list[str] = []
        todo: list[tuple[str, str, str]] = []
        for c in store.comments_to_score(night.start, night.end):
            text = prepare(c.comment)
            h = text_hash(text)
            kind = _kind_of(text)
            if kind == "empty":
                empty.append(c.response_id)
            elif c.text_hash != h:
                if kind == "no_feedback":
                    rows.append(SentimentRow(c.response_id, h, "neutral", 0.0, "no_feedback"))
                else:
                    todo.append((c.response_id, text, h))
        if todo:
            known = dict(zip(new.hashes, new.E, strict=True))
            rest = [(t, h) for _, t, h in todo if h not in known]
            if rest:
                vecs = self.cache.get_or_compute(store, [h for _, h in rest], [t for t, _ in rest])
                night.stats["embedded"] += self.cache.last_misses
                known.update(zip((h for _, h in rest), vecs, strict=True))
            model = self._sentiment_model(store, night)
            scored = model.predict(np.vstack([known[h] for _, _, h in todo]))
            rows += [SentimentRow(rid, h, label, round(float(score), 6), scored.method)
                     for (rid, _, h), label, score in zip(todo, scored.labels, scored.scores, strict=True)]
            if scored.method == "anchors":
                night.stats["sentiment_anchors"] += len(todo)
        store.delete_sentiment(empty)
        store.write_sentiment(rows, night.run_id)
        night.stats["sentiment_scored"] += len(rows)
        night.timed("sentiment")

    def _sentiment_model(self, store: ThemeStore, night: Night) -> SentimentModel:
        """The night's model: the classifier trained on the latest scored comments answered before
        the night's training cutoff (one fit per cutoff within a run), anchors on a cold start."""
        cfg = self.config
        cutoff = training_cutoff(night.start, cfg.sentiment_refit_days)
        if cutoff not in self._sentiment_models:
            sample = (store.sentiment_training_sample(cutoff, cfg.sentiment_train_per_category)
                      if cfg.sentiment_method == "score_classifier" else [])
            E = np.vstack([v for _, v in sample]) if sample else None
            labels = [CATEGORY_SENTIMENT[category] for category, _ in sample]
            self._sentiment_models[cutoff] = choose_model(cfg.sentiment_method, self.embedder, E, labels,
                                                          cfg.sentiment_min_per_category, self._anchors)
        return self._sentiment_models[cutoff]

    def _label(self, store: ThemeStore, reg: ThemeRegistry, night: Night) -> None:
        """Sizes of touched themes recounted; c-TF-IDF keywords + label only for themes born or
        merged in this run (or never labelled): a theme's label is not rewritten by the comments it
        absorbs later. c-TF-IDF reads (a deterministic sample of) every active sub-theme's comments,
        since IDF needs all themes of a level (a parent's comments are its sub-themes'); the themes
        that are not relabelled give a smaller sample, counted as the full one. Most nights label
        nothing and skip it."""
        touched = {a.theme_id for a in night.rows.values() if a.theme_id is not None}
        touched |= {keep for _drop, keep in reg.merges}
        touched |= {t.theme_id for t in reg.themes.values() if t.dirty and t.status == "active"}
        touched |= {t.merged_into for t in reg.themes.values()
                    if t.merged_by == "human" and t.dirty and t.merged_into is not None}
        relabel = {t.theme_id for t in reg.themes.values() if t.kind == "discovered" and (t.is_new or not t.keywords)}
        relabel |= {keep for _drop, keep in reg.merges}
        subs = [t.theme_id for t in reg.clusterable()]
        parents = {p.theme_id: [k.theme_id for k in reg.children(p.theme_id)]
                   for p in reg.parents() if p.kind == "discovered"}
        if not touched or not (subs or parents):
            night.timed("labels")
            return
        kws: dict[int, list[str]] = {}
        relabel_now = relabel & touched & {*subs, *parents}
        if relabel_now:
            full = {t for t in subs if t in relabel_now} | {k for p in relabel_now & set(parents) for k in parents[p]}
            docs, weights = self._label_sample(store, reg, subs, full)
            kws = self.labeler.keywords_two_levels({tid: docs.get(tid, []) for tid in subs}, parents,
                                                   weights=weights)
        sizes = store.theme_sizes(touched)
        for tid in touched:
            t = reg.themes.get(tid)
            if t is None or t.status != "active":
                continue
            if tid in relabel and tid in kws:
                t.keywords = kws[tid]
                t.label = self.labeler.label(t.keywords)
            if t.level == "subtheme":
                t.size = sizes.get(tid, 0)
            t.dirty = True
        reg.refresh_parents()
        night.timed("labels")

    def _label_sample(self, store: ThemeStore, reg: ThemeRegistry, subs: list[int], full: set[int]
                      ) -> tuple[dict[int, list[str]], dict[int, float]]:
        """The comments c-TF-IDF reads per sub-theme: up to label_max_docs_per_theme of the ones it
        labels (``full``), up to label_context_docs_per_theme of the rest, each of those weighted
        by how many comments it stands for."""
        cfg = self.config
        docs: dict[int, list[str]] = defaultdict(list)
        context = [t for t in subs if t not in full]
        for ids, per_theme in ((sorted(full), cfg.label_max_docs_per_theme),
                               (context, min(cfg.label_context_docs_per_theme, cfg.label_max_docs_per_theme))):
            if ids:
                for tid, comment in store.label_sample(ids, per_theme):
                    docs[tid].append(prepare(comment))
        weights = {tid: max(1.0, min(reg.themes[tid].size, cfg.label_max_docs_per_theme) / len(docs[tid]))
                   for tid in context if docs.get(tid)}
        return docs, weights

