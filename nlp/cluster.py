"""Density clustering of the discovery pool (HDBSCAN on PCA-reduced embeddings).

How fine the themes are (third grid, 2026-12-06, held out). Granularity is not one constant: it
comes from the hierarchy. HDBSCAN first finds *fine* clusters (``min_cluster_size`` =
``max(5, n / 600)``, capped at 100: 5 up to about 3,300 comments, then n / 600), short answers
being many small topics; a set that yields more than ``max_subthemes`` = 100 has its surplus
merged by Ward's cost (the smallest sub-themes into their nearest first, nlp/hierarchy.py); the
parent themes come from average linkage of the sub-theme centroids, cut at ``max_parents`` = 25
(``parent_similarity`` 0.90 sits above the 0.85 merge threshold, so the cap decides). How it was
chosen: every labelled set (BANKING77 77 intents; airline tweets 9 reasons; CLINC150 150 intents
in 10 domains; the demo's 13 latent themes, whole and small) split in two seeded halves; 32
configurations (floor 5 / 8, per 600 / 1,200, parent_similarity 0.75 - 0.90, merge 0.85 / 0.90;
earlier grids that day: floor 10, merge 0.80, parent cuts 0.55 - 0.70) on halves A; of those
within the goals on every set (<= 10 % of comments with content unassigned, <= 100 sub-themes,
<= 25 themes) the one with the largest *worst* NMI margin over BERTopic's defaults won, and was
scored on halves B (bench/themes_quality.py)::

    half B           label level       NMI ours  BERTopic   unassigned   sub-themes / themes
    banking77        77 intents          .789      .754        0.3 %          98 / 25
    airline          9 reasons           .245      .217        8.8 %          17 / 17
    clinc150         150 intents         .872      .840        3.1 %         100 / 25
    clinc150         10 domains          .556      .529        3.1 %         100 / 25
    demo             13 themes           .809      .567        0.1 %         100 / 25
    demo-small       13 themes           .763      .740        0.1 %          61 / 25

Why the rule holds: floor 5 beat floor 8 and 10 on the worst margin of every half (a coarse floor
lumps the many small topics of short answers together, the failure the real survey showed: 21
themes where people saw 44); the cap merges by Ward's cost rather than most-similar-pair, which
cost banking77 .03 NMI (half A, 170 -> 100). Every similarity cut for parents below the cap
grouped what the labels keep apart (airline "late" vs "cancelled" flights sit at cosine ~0.8:
27 sub-themes grouped at 0.80 scored .213 against .246 as they are), so a set with at most 25
sub-themes keeps one parent per sub-theme, and a larger one gets its parents from the cap
(CLINC150 domains .556; demo .809 at the parent level vs .663 at the sub-theme level).
Silhouette-chosen cuts picked two parents on three of five sets: rejected. Pools under 1,000
comments (a first night) are reduced to 10 dims instead of 20 (nlp/reduce.py).

Second grid (2026-12-02, whole sets rather than samples: banking77 train+test 13,083 queries / 77
intents; airline 7,988 negative tweets / 9 reasons; the demo generator's 16,408 and 1,784 themed
comments / 13 latent themes), how dims, ``per`` and near-duplicate collapsing were chosen.
Pipeline: near-duplicates (cosine >= ``dedup``) collapsed to one point -> PCA(dims) ->
HDBSCAN(leaf, min_samples 3, min_cluster_size max(10, n / per)) -> themes merged at centroid
cosine >= 0.80 -> 5 nearest-centroid refinement passes -> rows below cosine 0.40 to every theme
unassigned. 36 combinations were run (dims 10/20 x per 300/450/600 x dedup none/0.90/0.92 x
min_samples 3/5); a few rows::

    dims per  dedup | banking77 NMI  themes | airline NMI themes unassigned | demo NMI themes | small NMI themes
    10   300  none  |     .722      47      |      .192     6     13.7 %    |   .705    51    |   .758    29
    10   600  0.90  |     .758      65      |      .202     8     11.6 %    |   .726    36    |   .790    19
    20   300  0.90  |     .721      39      |      .205     7     11.9 %    |   .738    35    |   .798    19
    20   600  none  |     .779      98      |      .248    11     10.3 %    |   .652   108    |   .731    32
    20   600  0.90  |     .766      72      |      .247    11     10.3 %    |   .698    60    |   .798    19

20 dims and n / 600 lift the two human-labelled sets (airline .20 -> .25); collapsing
near-duplicates (each point keeping the weight of what it stands for) keeps the demo's templated
praise from splitting into dozens of micro-themes (108 -> 60 themes) at a small cost on banking.
The figures next to BERTopic are in BENCHMARKS.md.

First grid (2026-11, samples), how the earlier defaults were chosen (measured on real
human-labelled text, MiniLM-L6-v2, 3,000-row random samples: banking77 ``train.csv`` with its 77
intents, and the negative tweets of twitter_airline_sentiment without "Can't Tell", 9 reasons,
@handles stripped). Pipeline per row:
PCA(dims) -> HDBSCAN(mcs, ms, method) -> unclustered comments assigned to the nearest theme when
cosine >= thr -> themes merged at centroid cosine >= 0.85. NMI / ARI (sklearn) count
"unassigned" as one extra cluster::

    dims mcs ms method  thr  | banking77: themes  NMI   ARI  unassigned | airline: themes  NMI   ARI  unassigned
    10   10  3  leaf   0.40 |             59   .738  .409     1.1 %  |          13   .211  .078    13.1 %
    10   10  3  leaf   0.45 |             59   .735  .407     1.9 %  |          13   .212  .070    19.8 %
     8   10  3  leaf   0.40 |             58   .729  .391     0.7 %  |          11   .232  .125    19.0 %
    15   10  3  leaf   0.40 |             68   .756  .430     1.0 %  |          11   .206  .066    17.0 %
    20   10  3  leaf   0.45 |             73   .761  .449     1.2 %  |           9   .213  .094    28.6 %
    10   15  3  leaf   0.40 |             38   .704  .337     1.7 %  |           6   .204  .086    17.8 %
    10   10  5  leaf   0.40 |             45   .715  .359     1.2 %  |           8   .160  .056    18.9 %
    10   10  3  eom    0.45 |             48   .708  .329     2.0 %  |           4   .115  .017    21.0 %
    10   15  5  eom    0.50 |             24   .606  .161     5.0 %  |           4   .108  .008    52.7 %

Reference ceiling, KMeans on the raw 384-d vectors with the *true* number of classes: banking77
NMI .771 / ARI .447, airline NMI .242 / ARI .146 (airline reasons overlap inside one tweet - late
flight *and* rude staff - so no clustering of these embeddings gets much above .24 there).

(the 20-dim and eom rows come from the first grid, without the 0.85 merge; merging changes
little: 0.85 vs 0.90 moved theme counts by 0-3.)

* ``leaf`` over ``eom``: eom lumps most comments into a few giant clusters (airline: 4 themes,
  NMI .11; a synthetic 5-topic set: 3-4 themes, NMI .44), leaf does not.
* ``min_samples=3`` over 5 / 10: fewer comments declared noise, better NMI on both sets.
* ``min_cluster_size`` trades granularity for NMI (banking, n=1,000: mcs 5 -> 45 themes NMI .734,
  mcs 10 -> 19 themes .639; n=3,000: mcs 10 -> 59 themes .738, mcs 15 -> 38 themes .704). A floor
  of 10 keeps small nightly pools from splitting into themes of a handful of near-identical
  comments (synthetic 5-topic set of 300: floor 5 -> 25 themes NMI .60, floor 10 -> 7 themes NMI
  .86-.89). Hence ``max(10, round(n / 300))`` capped at 100.
* PCA to 10 dims: 15-20 dims gain a little NMI on banking but lose it on airline, and cost
  2-3x the time. PCA + HDBSCAN on 3,000 points: 0.3-0.9 s on 2 cores.

End-to-end ``ThemeEngine.fit_transform`` with these defaults (match 0.80 / merge 0.85 / prune):
banking77 51 themes, NMI .728, ARI .383, 1.2 % unassigned; airline 11 themes, NMI .213, ARI .094,
14.5 % unassigned. ``run_interval`` on 2 x 3,000 banking77 rows (January, then February):
56 themes, NMI .742 (Jan) / .747 (Feb, almost all assigned to January's themes), 0.5 % noise.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from nlp.reduce import PCAReducer

__all__ = ["Clusterer", "HDBSCANClusterer", "collapse_near_duplicates", "scaled_min_cluster_size"]


@runtime_checkable
class Clusterer(Protocol):
    def fit_predict(self, X: np.ndarray) -> np.ndarray:
        """Cluster labels 0..k-1 per row, -1 for noise."""
        ...


def scaled_min_cluster_size(n: int, per: int = 600, floor: int = 5, cap: int = 100) -> int:
    """``max(floor, round(n / per))`` capped at ``cap``: 5 up to 3,300 points, then n / 600."""
    return int(min(cap, max(floor, round(n / per))))


class HDBSCANClusterer:
    """HDBSCAN with a pool-size-scaled ``min_cluster_size`` (unless one is given)."""

    def __init__(
        self,
        min_cluster_size: int | None = None,
        min_samples: int = 3,
        cluster_selection_method: str = "leaf",
        mcs_per: int = 600,
        mcs_floor: int = 5,
        mcs_cap: int = 100,
        algorithm: str = "prims_kdtree",
    ) -> None:
        self.min_cluster_size = min_cluster_size
        self.min_samples = min_samples
        self.cluster_selection_method = cluster_selection_method
        self.mcs_per = mcs_per
        self.mcs_floor = mcs_floor
        self.mcs_cap = mcs_cap
        #: prims_kdtree: the same exact minimum spanning tree as hdbscan's default (boruvka) in 1/2 to
        #: 1/3 of the time on 20-dim pools (3,000 points 0.16 s vs 0.56 s; 16,000 3.3 s vs 5.6 s)
        self.algorithm = algorithm
        #: min_cluster_size used by the last fit
        self.min_cluster_size_: int | None = None

    def resolve_min_cluster_size(self, n: int) -> int:
        if self.min_cluster_size is not None:
            return self.min_cluster_size
        return scaled_min_cluster_size(n, self.mcs_per, self.mcs_floor, self.mcs_cap)

    def fit_predict(self, X: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        """Labels per row of ``X``; with ``weights``, row i stands for ``weights[i]`` identical points
        (the result is HDBSCAN's on the repeated rows, computed without repeating them)."""
        import hdbscan

        if weights is not None and bool((np.asarray(weights) > 1).any()):
            return self._fit_predict_weighted(X, np.asarray(weights, dtype=np.int64))
        n = X.shape[0]
        mcs = self.resolve_min_cluster_size(n)
        self.min_cluster_size_ = mcs
        if n < 2 * mcs:
            return np.full(n, -1, dtype=np.int64)
        model = hdbscan.HDBSCAN(
            min_cluster_size=mcs,
            min_samples=min(self.min_samples, mcs),
            cluster_selection_method=self.cluster_selection_method,
            core_dist_n_jobs=1,
            algorithm=self.algorithm,
        )
        return np.asarray(model.fit_predict(np.asarray(X, dtype=np.float64)), dtype=np.int64)

    def _fit_predict_weighted(self, X: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """HDBSCAN of the multiset where row i occurs ``weights[i]`` times, on the distinct rows only.

        The repeated rows' minimum spanning tree of mutual reachability is the distinct rows' tree
        plus, per row, a chain joining its copies at its core distance (no edge from a copy is
        shorter than that), so the spanning tree costs O(distinct^2) instead of O(copies^2): the
        scale night's pool of 13,736 points holds 7,016 distinct ones (discovery 4.4 s -> 1.4 s).
        Core distances count copies as neighbours, as hdbscan does on repeated rows (identical on
        the demo pool). The single-linkage tree, condensing and leaf selection are hdbscan's own
        functions (its Prim's MST, ``label``, ``_tree_to_labels``). What differs is only the order
        of equal edges, which hdbscan leaves to an unstable sort: here it is a seeded random order
        with each row's copies joined in one block (copies of one comment never form clusters of
        their own). Putting all copy edges before or after the others instead cost the demo .018
        NMI; this order matches the library (2026-12-07: ARI with hdbscan on the repeated rows .987
        / .998 / .993 on the banking77 / CLINC150 / demo pools; whole-set NMI .781 / .247 / .867 /
        .554 / .805 against .781 / .246 / .867 / .554 / .805 with the library)."""
        from hdbscan._hdbscan_linkage import label, mst_linkage_core_vector
        from hdbscan.dist_metrics import DistanceMetric
        from hdbscan.hdbscan_ import _tree_to_labels

        total = int(weights.sum())
        mcs = self.resolve_min_cluster_size(total)
        self.min_cluster_size_ = mcs
        if total < 2 * mcs:
            return np.full(X.shape[0], -1, dtype=np.int64)
        X = np.ascontiguousarray(X, dtype=np.float64)
        core = _weighted_core_distances(X, weights, min(total - 1, self.min_samples, mcs))
        mst = mst_linkage_core_vector(X, core, DistanceMetric.get_metric("euclidean"), 1.0)
        first = np.concatenate([[0], np.cumsum(weights)[:-1]])  # each row's first copy in the multiset
        mst[:, 0] = first[mst[:, 0].astype(np.int64)]
        mst[:, 1] = first[mst[:, 1].astype(np.int64)]
        # equal edges in a seeded random order, as hdbscan's unstable sort leaves them, but a row's
        # copies joined in one block: copies of one comment never make clusters of their own
        rng = np.random.default_rng(0)
        tie = rng.random((mst.shape[0],))
        step = np.zeros(mst.shape[0])
        owner = np.repeat(np.arange(X.shape[0]), weights - 1)
        if owner.size:
            chain = np.arange(owner.size) - np.repeat(np.cumsum(weights - 1) - (weights - 1), weights - 1)
            a = first[owner] + chain
            mst = np.vstack([mst, np.column_stack([a, a + 1, core[owner]])])
            per_row = rng.random((X.shape[0],))
            tie = np.concatenate([tie, per_row[owner]])
            step = np.concatenate([step, chain])
        mst = mst[np.lexsort((step, tie, mst[:, 2]))]
        labels = _tree_to_labels(None, label(mst), mcs, self.cluster_selection_method)[0]
        return np.asarray(labels[first], dtype=np.int64)


def _weighted_core_distances(X: np.ndarray, weights: np.ndarray, min_samples: int) -> np.ndarray:
    """Per row, the distance to its ``min_samples``-th nearest other point of the multiset (a row's
    own other copies sit at distance 0), as hdbscan computes core distances on repeated rows."""
    from sklearn.neighbors import KDTree

    n = X.shape[0]
    k = min(n, min_samples + 1)
    dist, idx = KDTree(X, leaf_size=40).query(X, k=k, dualtree=True, breadth_first=True)
    counts = weights[idx].astype(np.int64)
    counts[idx == np.arange(n)[:, None]] -= 1  # the row itself counts only its other copies
    reached = np.cumsum(counts, axis=1) >= min_samples
    nth = np.where(reached.any(axis=1), reached.argmax(axis=1), k - 1)
    return np.ascontiguousarray(dist[np.arange(n), nth], dtype=np.float64)


def collapse_near_duplicates(E: np.ndarray, threshold: float, block: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Greedy leader clustering: every row joins the first earlier leader with cosine >= ``threshold``.

    Returns (leader row indices, leader row index per row). ``E`` rows must be L2-normalised.
    Deterministic (input order). Blocks of ``block`` rows are compared with all leaders in one
    matrix product, so 16,000 rows take about a second.
    """
    n = E.shape[0]
    leader_of = np.full(n, -1, dtype=np.int64)
    leaders: list[int] = []
    L = np.zeros((0, E.shape[1]), dtype=np.float32)
    for s in range(0, n, block):
        idx = np.arange(s, min(n, s + block))
        rest = idx
        if leaders:
            S = E[idx] @ L.T
            best = S.argmax(axis=1)
            ok = S[np.arange(idx.size), best] >= threshold
            leader_of[idx[ok]] = np.asarray(leaders)[best[ok]]
            rest = idx[~ok]
        if rest.size == 0:
            continue
        SS = E[rest] @ E[rest].T
        new: list[int] = []
        for k in range(rest.size):
            i = int(rest[k])
            if leader_of[i] >= 0:
                continue
            leader_of[i] = i
            new.append(i)
            close = rest[k + 1 :][SS[k, k + 1 :] >= threshold]
            leader_of[close[leader_of[close] < 0]] = i
        leaders += new
        L = np.vstack([L, E[new]]).astype(np.float32)
    return np.asarray(leaders, dtype=np.int64), leader_of


def discover_labels(
    E: np.ndarray, reducer: Any, clusterer: Clusterer, collapse_threshold: float | None, keep_weight: bool = True
) -> np.ndarray:
    """Cluster labels per row (-1 noise): near-duplicates collapsed to one point, PCA, HDBSCAN.

    Collapsing first stops a phrase repeated many times (templates, copy-pasted praise) from
    dominating the density estimate, and makes HDBSCAN cheaper. It keeps the weight of what it
    collapses (``keep_weight``): a point standing for w comments counts as min(w, min_cluster_size)
    points in HDBSCAN, so "Too expensive for what we use" written 28 times still forms a theme of
    its own, while no phrase counts for more than one cluster's worth of density. HDBSCAN sees each
    distinct point once with that count (:meth:`HDBSCANClusterer.fit_predict` with ``weights``).
    """
    from threadpoolctl import threadpool_limits

    # one BLAS thread: these products are small, and after the model has encoded, its idle OpenMP
    # threads make two-thread BLAS calls several times slower (measured: 384x384 eigh 0.125 s -> 0.006 s)
    with threadpool_limits(1, user_api="blas"):
        return _discover_labels(E, reducer, clusterer, collapse_threshold, keep_weight)


def _discover_labels(
    E: np.ndarray, reducer: Any, clusterer: Clusterer, collapse_threshold: float | None, keep_weight: bool
) -> np.ndarray:
    n = E.shape[0]
    if collapse_threshold is None or n == 0:
        return clusterer.fit_predict(reducer.fit_transform(E))
    leaders, leader_of = collapse_near_duplicates(E, collapse_threshold)
    pos = np.full(n, -1, dtype=np.int64)
    pos[leaders] = np.arange(leaders.size)
    copies = np.ones(leaders.size, dtype=np.int64)
    if keep_weight and isinstance(clusterer, HDBSCANClusterer):
        weight = np.bincount(pos[leader_of], minlength=leaders.size)
        copies = np.minimum(weight, clusterer.resolve_min_cluster_size(n))
    if isinstance(clusterer, HDBSCANClusterer) and isinstance(reducer, PCAReducer):
        # each distinct point once, with the number of comments it stands for
        return clusterer.fit_predict(reducer.fit_transform(E[leaders], weights=copies), weights=copies)[pos[leader_of]]
    if isinstance(reducer, PCAReducer):
        reduced = np.repeat(reducer.fit_transform(E[leaders], weights=copies), copies, axis=0)
    else:
        reduced = reducer.fit_transform(np.repeat(E[leaders], copies, axis=0))
    labels = clusterer.fit_predict(reduced)
    first_copy = np.concatenate([[0], np.cumsum(copies)[:-1]])
    return labels[first_copy][pos[leader_of]]
