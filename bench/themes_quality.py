"""Theme quality against human labels, at both levels, next to BERTopic, with a held-out split.

Every labelled set (bench/themes_data.py) has one or two label levels. A level with at most
``THEME_LEVEL_MAX`` labels is a *theme* level (compared with the engine's parent themes), a finer one
a *sub-theme* level (compared with its sub-themes): banking77's 77 intents and CLINC150's 150 are
sub-themes, CLINC150's 10 domains, the airline tweets' 9 reasons and the demo's 13 latent themes are
themes. BERTopic gives one flat level; it is compared with every label level.

NMI / ARI (scikit-learn) count the comments left without a theme (our noise, BERTopic's -1 outliers)
as one more cluster, so leaving comments out is penalised, not hidden. The engine's built-in
no-feedback theme counts as a theme like any other. "unassigned" is the share of comments with
content (neither empty nor a no-feedback answer) left without a theme.

Held-out: each set is split in two halves (a seeded permutation). A grid of configurations runs on
half A of every set; among those within the goals (at most 10 % unassigned, 100 sub-themes, 25
parent themes) the one whose worst margin over BERTopic (our NMI minus BERTopic's, over every set
and label level, on the same half) is largest, the mean margin breaking ties, is the tuned
configuration, chosen for all sets at once. It is then
scored on half B, next to the shipped defaults and BERTopic on the same half B.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import time
from dataclasses import replace
from typing import Any

import numpy as np
import themes_data as td

from nlp.config import ThemeConfig
from nlp.embed import Embedder
from nlp.no_feedback import is_no_feedback
from nlp.pipeline import ThemeEngine
from nlp.text import is_empty

THEME_LEVEL_MAX = 25
GOALS = {"unassigned": 0.10, "subthemes": 100, "themes": 25}

#: the knobs the held-out grid explores (everything else: ThemeConfig defaults)
#: (with parent_similarity >= merge_threshold the similarity cut groups nothing, sub-themes that
#: alike being merged as duplicates: parents then come from the max_parents cap alone. The first
#: grids also ran floor 10, per 600 with floor 5, merge 0.80 and parent 0.55-0.70: never better.)
GRID: dict[str, list[Any]] = {
    "min_cluster_size_floor": [5, 8],
    "min_cluster_size_per": [600, 1200],
    "parent_similarity": [0.75, 0.80, 0.85, 0.90],
    "merge_threshold": [0.85, 0.90],
}


def _levels(ds: td.LabelledSet) -> list[tuple[str, list[str]]]:
    """(our level it is compared with, labels) per label level of the set."""
    out = []
    for labels in (ds.labels, ds.parents):
        if labels is not None:
            out.append(("theme" if len(set(labels)) <= THEME_LEVEL_MAX else "subtheme", labels))
    return out


def _score(labels: list[str], pred: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    return {"nmi": round(float(normalized_mutual_info_score(labels, pred)), 4),
            "ari": round(float(adjusted_rand_score(labels, pred)), 4)}


def fit(texts: list[str], E: np.ndarray, config: ThemeConfig, embedder: Embedder) -> dict[str, Any]:
    """Our engine on the texts: sub-theme and parent per text (-1 none), counts, seconds."""
    engine = ThemeEngine(config, embedder=embedder)
    t0 = time.perf_counter()
    res = engine.fit_transform(texts, embeddings=E)
    seconds = time.perf_counter() - t0
    sub = res["theme_id"].fillna(-1).astype(int).to_numpy()
    parent = res["parent_theme_id"].fillna(-1).astype(int).to_numpy()
    themes = engine.themes_
    no_feedback = np.array([is_no_feedback(t) for t in texts])
    content = ~no_feedback & ~np.array([is_empty(t) for t in texts])
    return {
        "subtheme": sub, "theme": parent, "seconds": round(seconds, 1),
        "unassigned": round(float((sub[content] < 0).mean()), 4) if content.any() else 0.0,
        "no_feedback_share": round(float(no_feedback.mean()), 4),
        "subthemes": int((themes["level"] == "subtheme").sum()), "themes": int((themes["level"] == "theme").sum()),
        "content": content,
    }


def bertopic(name: str, texts: list[str], E: np.ndarray, embedder: Embedder) -> dict[str, Any]:
    """BERTopic 0.17 with its defaults on the same texts and embeddings (cached per text set)."""
    key = hashlib.sha256(("\n".join(texts) + embedder.key).encode()).hexdigest()[:16]
    path = td.CACHE / f"bertopic-{name}-{key}.json"
    if path.exists():
        return json.loads(path.read_text())
    from bertopic import BERTopic

    t0 = time.perf_counter()
    topics, _ = BERTopic(embedding_model=embedder._load()).fit_transform(texts, E)
    out = {"topics": [int(t) for t in topics], "seconds": round(time.perf_counter() - t0, 1)}
    td.CACHE.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out))
    return out


def evaluate(ds: td.LabelledSet, idx: np.ndarray, E: np.ndarray, config: ThemeConfig, embedder: Embedder,
             part: str, with_bertopic: bool = True) -> dict[str, Any]:
    """One set (rows ``idx``) with one configuration, next to BERTopic."""
    texts = [ds.texts[i] for i in idx]
    ours = fit(texts, E[idx], config, embedder)
    row: dict[str, Any] = {"set": ds.name, "part": part, "n": len(idx), "seconds": ours["seconds"],
                           "unassigned": ours["unassigned"], "no_feedback_share": ours["no_feedback_share"],
                           "subthemes": ours["subthemes"], "themes": ours["themes"], "levels": []}
    bt = bertopic(f"{ds.name}-{part}", texts, E[idx], embedder) if with_bertopic else None
    if bt is not None:
        topics = np.asarray(bt["topics"])
        row.update(bt_seconds=bt["seconds"], bt_topics=int(len(set(topics[topics >= 0].tolist()))),
                   bt_unassigned=round(float((topics[ours["content"]] < 0).mean()), 4))
    for level, labels in _levels(ds):
        lab = [labels[i] for i in idx]
        entry = {"labels": len(set(lab)), "our_level": level, "ours": _score(lab, ours[level]),
                 "ours_other_level": _score(lab, ours["theme" if level == "subtheme" else "subtheme"])}
        if bt is not None:
            entry["bertopic"] = _score(lab, np.asarray(bt["topics"]))
        row["levels"].append(entry)
    return row


def within_goals(row: dict[str, Any]) -> bool:
    return (row["unassigned"] <= GOALS["unassigned"] and row["subthemes"] <= GOALS["subthemes"]
            and row["themes"] <= GOALS["themes"])


def margin(rows: list[dict[str, Any]]) -> tuple[float, float]:
    """(worst, mean) over every set and label level of our NMI minus BERTopic's: the goal is every
    set above BERTopic, so the worst margin decides and the mean breaks ties."""
    diffs = [lv["ours"]["nmi"] - lv["bertopic"]["nmi"] for r in rows for lv in r["levels"]]
    return (float(np.min(diffs)), float(np.mean(diffs))) if diffs else (float("nan"), float("nan"))


@contextlib.contextmanager
def clusters_memoised() -> Any:
    """The grid reruns the same HDBSCAN (same rows, same min_cluster_size rule) for every value of the
    knobs that act after it (merging, parents): compute it once per input. Results are identical;
    only the grid's wall time changes (the per-set wall times are measured without this)."""
    import nlp.pipeline

    original = nlp.pipeline.discover_labels
    memo: dict[tuple[Any, ...], np.ndarray] = {}

    def memoised(E: np.ndarray, reducer: Any, clusterer: Any, *args: Any) -> np.ndarray:
        key = (hashlib.sha1(np.ascontiguousarray(E).tobytes()).hexdigest(), repr(vars(reducer)),
               repr({k: v for k, v in vars(clusterer).items() if k != "min_cluster_size_"}), args)
        if key not in memo:
            memo[key] = original(E, reducer, clusterer, *args)
        return memo[key].copy()

    nlp.pipeline.discover_labels = memoised  # type: ignore[assignment]
    try:
        yield
    finally:
        nlp.pipeline.discover_labels = original  # type: ignore[assignment]


def halves(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[: n // 2]), np.sort(perm[n // 2:])


def run(names: list[str], embedder: Embedder, grid: dict[str, list[Any]] | None = None,
        with_bertopic: bool = True) -> dict[str, Any]:
    """Defaults on every whole set; the grid on halves A, the tuned configuration and the defaults on
    halves B. Prints a JSON line per evaluation."""
    sets = {name: td.SETS[name]() for name in names}
    emb = {name: td.embeddings(ds.texts, embedder, name)[0] for name, ds in sets.items()}
    out: dict[str, Any] = {"whole": [], "grid": [], "held_out": []}
    defaults = ThemeConfig(progress=False)
    for name, ds in sets.items():
        row = evaluate(ds, np.arange(len(ds.texts)), emb[name], defaults, embedder, "whole", with_bertopic)
        print(json.dumps(row), flush=True)
        out["whole"].append(row)
    if not with_bertopic or grid == {}:
        return out
    split = {name: halves(len(ds.texts)) for name, ds in sets.items()}
    keys = list((grid or GRID).keys())
    best: tuple[tuple[float, float], dict[str, Any]] | None = None
    with clusters_memoised():
        for values in itertools.product(*(grid or GRID).values()):
            knobs = dict(zip(keys, values, strict=True))
            rows = [evaluate(ds, split[name][0], emb[name], replace(defaults, **knobs), embedder, "A")
                    for name, ds in sets.items()]
            worst, mean = margin(rows)
            entry = {"config": knobs, "margin": (round(worst, 4), round(mean, 4)),
                     "within_goals": all(map(within_goals, rows)), "rows": rows}
            misses = [f"{r['set']}: {r['unassigned']:.1%} unassigned, {r['subthemes']}/{r['themes']}"
                      for r in rows if not within_goals(r)]
            print(json.dumps({"config": knobs, "margin": entry["margin"], "outside_goals": misses}), flush=True)
            out["grid"].append(entry)
            if entry["within_goals"] and (best is None or entry["margin"] > best[0]):
                best = (entry["margin"], knobs)
    tuned = best[1] if best else {}
    out["tuned"] = tuned
    out["defaults_are_tuned"] = all(getattr(defaults, k) == v for k, v in tuned.items())
    for label, config in (("tuned on A", replace(defaults, **tuned)), ("defaults", defaults)):
        for name, ds in sets.items():
            row = evaluate(ds, split[name][1], emb[name], config, embedder, "B")
            row["config"] = label
            print(json.dumps(row), flush=True)
            out["held_out"].append(row)
    return out


def print_tables(q: dict[str, Any]) -> None:
    def lines(rows: list[dict[str, Any]], with_config: bool = False) -> None:
        head = "| set | " + ("config | " if with_config else "") + ("comments | label level | engine | NMI | ARI | "
                                                                    "unassigned | sub-themes / themes | wall time |")
        print(head)
        print("|" + "---|" * (head.count("|") - 1))
        for r in rows:
            cfg = f"{r['config']} | " if with_config else ""
            for lv in r["levels"]:
                ours, other = lv["ours"], lv["ours_other_level"]
                print(f"| {r['set']} | {cfg}{r['n']:,} | {lv['labels']} labels | ThemeEngine ({lv['our_level']}s) | "
                      f"**{ours['nmi']:.3f}** | {ours['ari']:.3f} | {r['unassigned']:.1%} | "
                      f"{r['subthemes']} / {r['themes']} | {r['seconds']:.1f} s |")
                if "bertopic" in lv:
                    bt = lv["bertopic"]
                    print(f"| {r['set']} | {cfg}{r['n']:,} | {lv['labels']} labels | BERTopic defaults | "
                          f"{bt['nmi']:.3f} | {bt['ari']:.3f} | {r['bt_unassigned']:.1%} | {r['bt_topics']} topics | "
                          f"{r['bt_seconds']:.1f} s |")
                print(f"| {r['set']} | {cfg}{r['n']:,} | {lv['labels']} labels | (ThemeEngine, other level) | "
                      f"{other['nmi']:.3f} | {other['ari']:.3f} | | | |")
    print("\nwhole sets, defaults:")
    lines(q["whole"])
    print("\nno-feedback share: " + ", ".join(f"{r['set']} {r['no_feedback_share']:.1%}" for r in q["whole"]))
    if q.get("held_out"):
        print(f"\ntuned on halves A: {q['tuned']} (defaults are the tuned configuration: {q['defaults_are_tuned']})")
        lines(q["held_out"], with_config=True)
