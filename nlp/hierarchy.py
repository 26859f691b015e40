"""Parent themes over sub-themes: fine clusters first, parents by agglomerating their centroids.

People review about ten themes and drill into their sub-themes ("Staff" -> "staff attitude",
"staff shortages"). The engine finds sub-themes by density clustering (nlp/cluster.py), then groups
them here:

* **A first grouping** (fit_transform, the first night of a warehouse, or a registry of sub-themes
  without parents): average-linkage agglomeration of the sub-theme centroids (cosine). Sub-themes
  whose centroids are at least ``parent_similarity`` alike share a parent; if that leaves more than
  ``max_parents`` groups, the closest groups keep merging until ``max_parents`` remain.
* **Later nights** never regroup: a parent id keeps its sub-themes (only a person moves or merges
  them, through the overrides seed). A new sub-theme joins the parent whose centroid is nearest when
  it is as close as that parent's loosest sub-theme already is (a one-child parent: as the loosest
  sub-theme of any parent); the new sub-themes that join no parent are grouped among themselves as
  above, as new parents.

How the defaults were chosen (bench/themes_quality.py, BENCHMARKS.md "Themes"): a grid on one half
of every labelled set, scored against BERTopic at each label level, the winner scored on the other
half. The parent level is worth having only where the sub-themes are too many to review: wherever
the similarity cut grouped sub-themes below the cap it joined ones the human labels keep apart
("late flight" and "cancelled flight" sit at cosine ~0.8 in MiniLM): the airline complaints' 27
sub-themes grouped at 0.80 into 21 parents scored NMI .213 against their 9 reasons, the same 27
sub-themes as they are .246. So ``parent_similarity`` is 0.90 (above the 0.85 at which sub-themes
are merged as duplicates): parents come from the ``max_parents`` cap, by average linkage, and a set
with at most 25 sub-themes has one parent per sub-theme. Silhouette-chosen cuts were measured too and
rejected: on three of five sets they picked two parents (NMI 0.02-0.09), whatever the sub-themes.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np

from nlp.registry import DISCOVERED, THEME, Theme, ThemeRegistry

__all__ = ["assign_parents", "group"]


def group(centroids: np.ndarray, similarity: float, max_groups: int) -> np.ndarray:
    """Group index per row of ``centroids`` (unit rows): average linkage on cosine distance, cut at
    ``1 - similarity``, then at ``max_groups`` groups if the cut leaves more."""
    n = centroids.shape[0]
    if n <= 1:
        return np.zeros(n, dtype=np.int64)
    from scipy.cluster.hierarchy import fcluster, linkage

    Z = linkage(np.asarray(centroids, dtype=np.float64), method="average", metric="cosine")
    labels = fcluster(Z, 1.0 - similarity, criterion="distance")
    if labels.max() > max_groups:
        labels = fcluster(Z, max_groups, criterion="maxclust")
    return (labels - 1).astype(np.int64)


def _mint_parent(reg: ThemeRegistry, kids: list[Theme], run_id: str | None) -> Theme:
    firsts: list[datetime] = [k.first_seen_at for k in kids if k.first_seen_at is not None]
    centroid = np.sum([k.centroid * max(k.size, 1) for k in kids], axis=0)
    parent = reg.mint(centroid, sum(k.size for k in kids), min(firsts) if firsts else None, run_id, level=THEME)
    for k in kids:
        k.parent_id, k.dirty = parent.theme_id, True
    return parent


def _loosest(reg: ThemeRegistry, parent: Theme) -> float | None:
    """The cosine of ``parent``'s farthest sub-theme to its centroid (None for a one-child parent)."""
    kids = reg.children(parent.theme_id)
    if len(kids) < 2:
        return None
    return min(float(k.centroid @ parent.centroid) for k in kids)


def _tolerances(reg: ThemeRegistry, parents: list[Theme], similarity: float) -> np.ndarray:
    """How close a new sub-theme must be to each parent's centroid to join it: as close as that
    parent's loosest sub-theme already is; for a one-child parent, as close as the loosest sub-theme
    of any parent (how loose groups are in this registry), never looser than ``similarity`` when no
    parent has two children yet."""
    loosest = [_loosest(reg, p) for p in parents]
    known = [x for x in loosest if x is not None]
    default = min(known) if known else similarity
    return np.array([default if x is None else x for x in loosest])


def assign_parents(reg: ThemeRegistry, similarity: float, max_parents: int, run_id: str | None = None) -> int:
    """Give every active discovered sub-theme without a parent one (see the module docstring);
    returns the number of parents minted. Parents left without sub-themes (all merged away) are
    merged into the parent of the sub-theme that took their last one."""
    _retire_empty_parents(reg)
    orphans = [t for t in reg.clusterable() if t.parent_id is None or t.parent_id not in reg.themes
               or reg.themes[t.parent_id].status != "active"]
    if not orphans:
        return 0
    parents = [p for p in reg.parents() if p.kind == DISCOVERED and reg.children(p.theme_id)]
    rest: list[Theme] = []
    if parents:
        P = np.vstack([p.centroid for p in parents])
        tolerance = _tolerances(reg, parents, similarity)
        for t in orphans:
            sims = P @ t.centroid
            best = int(np.argmax(sims))
            if sims[best] >= tolerance[best]:
                t.parent_id, t.dirty = parents[best].theme_id, True
            else:
                rest.append(t)
    else:
        rest = orphans
    minted = 0
    if rest:
        labels = group(np.vstack([t.centroid for t in rest]), similarity, max_parents)
        for g in np.unique(labels):
            _mint_parent(reg, [t for t, lab in zip(rest, labels, strict=True) if lab == g], run_id)
            minted += 1
    reg.refresh_parents()
    return minted


def _retire_empty_parents(reg: ThemeRegistry) -> None:
    for p in reg.parents():
        if p.kind == DISCOVERED and not reg.children(p.theme_id):
            p.status, p.dirty = "merged", True
            # its last sub-themes were merged away: follow the first one to its new parent
            gone = [t for t in reg.themes.values() if t.level != THEME and t.parent_id == p.theme_id
                    and t.status == "merged"]
            target = reg.resolve(gone[0].merged_into) if gone else None
            new_parent = reg.themes[target].parent_id if target in reg.themes else None
            if new_parent is not None and new_parent != p.theme_id:
                p.merged_into, p.merged_by = new_parent, "engine"
