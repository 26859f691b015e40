"""Density clustering of the discovery pool (HDBSCAN on PCA-reduced embeddings).

How the defaults were chosen (measured on real human-labelled text, MiniLM-L6-v2, 3,000-row
random samples: banking77 ``train.csv`` with its 77 intents, and the negative tweets of
twitter_airline_sentiment without "Can't Tell", 9 reasons, @handles stripped). Pipeline per row:
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

from typing import Protocol, runtime_checkable

import numpy as np

__all__ = ["Clusterer", "HDBSCANClusterer", "scaled_min_cluster_size"]


@runtime_checkable
class Clusterer(Protocol):
    def fit_predict(self, X: np.ndarray) -> np.ndarray:
        """Cluster labels 0..k-1 per row, -1 for noise."""
        ...


def scaled_min_cluster_size(n: int, per: int = 300, floor: int = 10, cap: int = 100) -> int:
    """``max(floor, round(n / per))`` capped at ``cap``: 10 up to 3,150 points, then n / 300."""
    return int(min(cap, max(floor, round(n / per))))


class HDBSCANClusterer:
    """HDBSCAN with a pool-size-scaled ``min_cluster_size`` (unless one is given)."""

    def __init__(
        self,
        min_cluster_size: int | None = None,
        min_samples: int = 3,
        cluster_selection_method: str = "leaf",
        mcs_per: int = 300,
        mcs_floor: int = 10,
        mcs_cap: int = 100,
    ) -> None:
        self.min_cluster_size = min_cluster_size
        self.min_samples = min_samples
        self.cluster_selection_method = cluster_selection_method
        self.mcs_per = mcs_per
        self.mcs_floor = mcs_floor
        self.mcs_cap = mcs_cap
        #: min_cluster_size used by the last fit
        self.min_cluster_size_: int | None = None

    def resolve_min_cluster_size(self, n: int) -> int:
        if self.min_cluster_size is not None:
            return self.min_cluster_size
        return scaled_min_cluster_size(n, self.mcs_per, self.mcs_floor, self.mcs_cap)

    def fit_predict(self, X: np.ndarray) -> np.ndarray:
        import hdbscan

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
        )
        return np.asarray(model.fit_predict(np.asarray(X, dtype=np.float64)), dtype=np.int64)
