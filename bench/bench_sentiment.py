"""Sentiment benchmark: the methods of nlp/sentiment.py next to a majority-class baseline and VADER,
on human labels and on the demo generator's truth, in one run.

    make bench-sentiment                                  # (installs vadersentiment: requirements-bench.txt)
    .venv/bin/python bench/bench_sentiment.py --preset small

Sets:

* ``airline`` — every tweet of the Twitter US Airline Sentiment ``Tweets.csv`` (14,640) with its
  human label ``airline_sentiment`` (negative / neutral / positive); @handles and links stripped as
  bench/themes_data.py does. Not shipped (CC BY-NC-SA 4.0): ``NPS_BENCH_AIRLINE_CSV`` points at a
  copy, else the set is skipped, saying so.
* ``demo`` — the demo generator's comments with a latent theme (``--preset``, default ``demo``),
  against two truths: ``polarity``, the generator's ``_truth`` sentiment column (what the theme's
  text was written with: a theme's lean, the mixed theme's template; comments whose two sentences
  disagree are left out), and ``category``, the score category of the response
  (detractor -> negative, passive -> neutral, promoter -> positive).

Each set is split in two halves (seeded permutation). Every method is scored on half B: the
majority class of half A; VADER (``vadersentiment``, compound >= 0.05 positive, <= -0.05 negative,
its authors' thresholds); the zero-shot anchors (no training); the classifier trained on half A —
on the airline tweets with the human labels (no scores exist there: an in-domain bound), on the
demo with the score categories (what the pipeline does: the warehouse's own scores). A classifier
trained on the whole demo's score categories is also scored on the airline tweets (another domain).
The MiniLM embeddings are computed once per set and cached under .bench/themes/ (bench/themes_data.py).

Timing: milliseconds per 1,000 comments of half B for the scoring itself (the pipeline has the
embeddings from the theme step); a MiniLM encode of 1,000 comments and the classifier's fit on the
training size the pipeline uses are measured beside it. Writes .bench/sentiment/results-<date>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import themes_data as td  # noqa: E402

from nlp.config import ThemeConfig  # noqa: E402
from nlp.embed import Embedder  # noqa: E402
from nlp.sentiment import CATEGORY_SENTIMENT, SENTIMENTS, AnchorSentiment, EmbeddingClassifier  # noqa: E402
from nlp.text import is_empty  # noqa: E402

OUT = ROOT / ".bench" / "sentiment"


def _metrics(truth: np.ndarray, pred: np.ndarray) -> dict[str, Any]:
    from sklearn.metrics import accuracy_score, f1_score

    per_class = f1_score(truth, pred, labels=list(SENTIMENTS), average=None, zero_division=0)
    return {"macro_f1": float(f1_score(truth, pred, labels=list(SENTIMENTS), average="macro", zero_division=0)),
            "accuracy": float(accuracy_score(truth, pred)),
            "f1_by_class": dict(zip(SENTIMENTS, map(float, per_class), strict=True)), "n": len(truth)}


def _vader(texts: list[str]) -> tuple[np.ndarray, float]:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    t0 = time.perf_counter()
    compound = np.array([analyzer.polarity_scores(t)["compound"] for t in texts])
    seconds = time.perf_counter() - t0
    return np.where(compound >= 0.05, "positive", np.where(compound <= -0.05, "negative", "neutral")), seconds


def _timed_predict(model: Any, E: np.ndarray) -> tuple[np.ndarray, float]:
    t0 = time.perf_counter()
    labels = model.predict(E).labels
    return np.array(labels), time.perf_counter() - t0


def _halves(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    idx = np.random.default_rng(seed).permutation(n)
    return np.sort(idx[: n // 2]), np.sort(idx[n // 2:])


def _row(set_name: str, truth_name: str, method: str, truth: np.ndarray, pred: np.ndarray,
         per_1000: float | None, note: str = "") -> dict[str, Any]:
    m = _metrics(truth, pred)
    row = {"set": set_name, "truth": truth_name, "method": method, **m, "seconds_per_1000": per_1000, "note": note}
    print(f"{set_name:8s} {truth_name:9s} {method:34s} n={m['n']:6d} macro-F1={m['macro_f1']:.3f} "
          f"acc={m['accuracy']:.3f}" + ("" if per_1000 is None else f" {1000 * per_1000:.1f} ms/1k"), flush=True)
    return row


def _evaluate(set_name: str, texts: list[str], E: np.ndarray, truths: dict[str, np.ndarray],
              train_labels: np.ndarray, train_note: str, anchors: AnchorSentiment, seed: int) -> list[dict[str, Any]]:
    """Every method on half B of one set, against each truth (rows without a truth value left out)."""
    a, b = _halves(len(texts), seed)
    majority = pd.Series(train_labels[a]).mode()[0]
    vader, vader_s = _vader([texts[i] for i in b])
    anchor, anchor_s = _timed_predict(anchors, E[b])
    clf = EmbeddingClassifier().fit(E[a], list(train_labels[a]))
    classifier, clf_s = _timed_predict(clf, E[b])
    per_1000 = 1000 / len(b)
    rows = []
    for truth_name, truth in truths.items():
        keep = truth[b] != ""
        t = truth[b][keep]
        rows += [
            _row(set_name, truth_name, f"majority class ({majority})", t, np.full(len(t), majority), None),
            _row(set_name, truth_name, "VADER", t, vader[keep], vader_s * per_1000),
            _row(set_name, truth_name, "anchors (zero-shot)", t, anchor[keep], anchor_s * per_1000),
            _row(set_name, truth_name, f"classifier ({train_note})", t, classifier[keep], clf_s * per_1000,
                 note=f"trained on {len(a)} comments of half A"),
        ]
    return rows


def airline_set() -> tuple[list[str], np.ndarray]:
    df = pd.read_csv(td.airline_csv())
    return td._prepare([td.clean_tweet(t) for t in df["text"]]), df["airline_sentiment"].to_numpy(dtype=object)


def demo_set(preset: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Themed comments (texts, polarity truth, score-category truth) of the generator's preset."""
    df = td.demo_frame(preset)
    df = df[df["theme_key"] != ""].sort_values(["responded_at", "response_id"])
    category = np.select([df["score"] >= 9, df["score"] >= 7], ["promoter", "passive"], "detractor")
    texts = td._prepare(df["comment"].tolist())
    keep = np.array([not is_empty(t) for t in texts])
    texts = [t for t, k in zip(texts, keep, strict=True) if k]
    return (texts, df["sentiment"].to_numpy(dtype=object)[keep],
            np.array([CATEGORY_SENTIMENT[c] for c in category], dtype=object)[keep])


def training_curve(E: np.ndarray, category: np.ndarray, polarity: np.ndarray, seed: int,
                   sizes: tuple[int, ...]) -> list[dict[str, Any]]:
    """Classifier trained on n comments per score category of half A (random, seeded), scored on
    half B against both truths: how much history the classifier needs (the cold-start threshold)."""
    a, b = _halves(len(category), seed)
    rng = np.random.default_rng(seed + 1)
    out = []
    for n in sizes:
        take = np.concatenate([rng.permutation(a[category[a] == lab])[:n] for lab in SENTIMENTS])
        t0 = time.perf_counter()
        clf = EmbeddingClassifier().fit(E[take], list(category[take]))
        fit_s = time.perf_counter() - t0
        pred = np.array(clf.predict(E[b]).labels)
        keep = polarity[b] != ""
        row = {"per_category": n, "trained_on": len(take), "fit_seconds": fit_s,
               "polarity": _metrics(polarity[b][keep], pred[keep]), "category": _metrics(category[b], pred)}
        print(f"curve n/category={n:5d} (train {len(take):5d}) fit {fit_s:5.2f} s  polarity macro-F1 "
              f"{row['polarity']['macro_f1']:.3f}  category macro-F1 {row['category']['macro_f1']:.3f}", flush=True)
        out.append(row)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="demo", help="demo generator preset (demo | small)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--curve", default="25,50,100,250,500,1000,2000", help="training sizes per category")
    args = p.parse_args()
    embedder = Embedder()
    anchors = AnchorSentiment(embedder)
    anchors.centroids()
    rows: list[dict[str, Any]] = []
    out: dict[str, Any] = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": platform.machine(),
                           "cpus": os.cpu_count(), "python": platform.python_version(), "model": embedder.key,
                           "preset": args.preset, "seed": args.seed}

    texts, polarity, category = demo_set(args.preset)
    DE, _ = td.embeddings(texts, embedder, tag=f"sentiment-demo-{args.preset}")
    print(f"demo ({args.preset}): {len(texts)} themed comments; polarity truth for "
          f"{int((polarity != '').sum())} (left out: {int((polarity == '').sum())} mixed)", flush=True)
    rows += _evaluate("demo", texts, DE, {"polarity": polarity, "category": category}, category,
                      "score categories", anchors, args.seed)
    out["curve"] = training_curve(DE, category, polarity, args.seed, tuple(int(n) for n in args.curve.split(",")))

    try:
        air_texts, air_truth = airline_set()
    except td.MissingSet as exc:
        print(f"skipping {exc}", file=sys.stderr)
    else:
        AE, _ = td.embeddings(air_texts, embedder, tag="sentiment-airline")
        rows += _evaluate("airline", air_texts, AE, {"human": air_truth}, air_truth, "human labels", anchors,
                          args.seed)
        _, b = _halves(len(air_texts), args.seed)
        demo_clf = EmbeddingClassifier().fit(DE, list(category))
        pred, s = _timed_predict(demo_clf, AE[b])
        rows.append(_row("airline", "human", "classifier (demo score categories)", air_truth[b], pred,
                         s * 1000 / len(b),
                         note=f"trained on the {len(DE)} demo comments: another domain"))

    # cost: what the pipeline adds per night
    cfg = ThemeConfig()
    sample = texts[:1000]
    t0 = time.perf_counter()
    embedder.encode(sample)
    encode_s = time.perf_counter() - t0
    take = np.concatenate([np.flatnonzero(category == lab)[: cfg.sentiment_train_per_category] for lab in SENTIMENTS])
    t0 = time.perf_counter()
    EmbeddingClassifier().fit(DE[take], list(category[take]))
    fit_s = time.perf_counter() - t0
    out["cost"] = {"encode_1000_seconds": encode_s, "fit_rows": len(take), "fit_seconds": fit_s}
    print(f"MiniLM encode of 1,000 comments {encode_s:.2f} s; classifier fit on {len(take)} comments "
          f"({cfg.sentiment_train_per_category} per category at most) {fit_s:.2f} s", flush=True)

    out["rows"] = rows
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"results-{datetime.now(UTC):%Y-%m-%d-%H%M%S}.json"
    path.write_text(json.dumps(out, indent=2, default=str) + "\n")
    print(f"wrote {path.relative_to(ROOT)}")
    print()
    print("| set | truth | method | comments (half B) | macro-F1 | accuracy | ms per 1,000 |")
    print("|---|---|---|---:|---:|---:|---:|")
    for r in rows:
        secs = "" if r["seconds_per_1000"] is None else f"{1000 * r['seconds_per_1000']:.1f}"
        print(f"| {r['set']} | {r['truth']} | {r['method']} | {r['n']:,} | {r['macro_f1']:.3f} | "
              f"{r['accuracy']:.3f} | {secs} |")


if __name__ == "__main__":
    main()
