"""Sentiment per comment: ``negative`` / ``neutral`` / ``positive`` and a score in [-1, 1], computed
on the MiniLM embeddings the theme step already has (nothing else is encoded, nothing downloads).

Methods (each a :class:`SentimentModel`: ``predict(E) -> Scored`` labels and scores, row for row):

* :class:`EmbeddingClassifier` (method ``score_classifier``, the default): a balanced logistic
  regression over the comment embeddings, trained on the warehouse's own comments labelled by their
  response's score category (detractor -> negative, passive -> neutral, promoter -> positive). In
  the nightly run it is fitted on a bounded sample of the comments themed before the night (the
  latest ``sentiment_train_per_category`` per category, ``ThemeStore.sentiment_training_sample``),
  so its cost does not grow with history, and it learns the domain (and what the embedding model
  gives of other languages; measured in English only) from the customers' own comments.
  score = P(positive) - P(negative).
* :class:`AnchorSentiment` (method ``anchors``): zero-shot, no training data: the mean cosine of
  a comment to a few anchor sentences per class, softmax at ``temperature``; label = the nearest
  class, score = P(positive) - P(negative). The cold-start fallback: a night whose history has
  fewer than ``sentiment_min_per_category`` scored comments in some category is scored by anchors,
  and each row records its method, so a BI user can tell (a row is scored again only when its
  comment's text changes).
* VADER (PyPI ``vadersentiment``, lexicon based, English only) is only the benchmark's baseline: it
  would be a new runtime dependency and reads neither the embeddings nor other languages.

Measured (``make bench-sentiment``, BENCHMARKS.md "Sentiment", one run on 2026-12-07; macro-F1 /
accuracy on a seeded held-out half; the classifier trained on the other half):

    set / truth                          majority      VADER         anchors       classifier
    airline tweets / human labels        .255 / .618   .522 / .554   .555 / .656   .748 / .784 (human labels)
    demo / polarity the text was written .219 / .488   .444 / .574   .621 / .705   .796 / .832 (score categories)
    demo / score category                .215 / .476   .439 / .524   .486 / .550   .700 / .727 (score categories)

The classifier wins everywhere, by .17 - .21 macro-F1 over the anchors and .23 - .35 over VADER,
for 1-2 ms per 1,000 comments on embeddings the theme step already has (VADER: 27-31 ms) and a fit
of 0.5 s on 6,000 comments. What it learns is the domain: trained on the demo's score categories it
scores the airline tweets at .512, below the anchors (.555), so it is always trained on the
warehouse's own comments. On the demo it needs little history: 25 comments per category give .631
on the polarity truth (the anchors .621), 50 give .690, 1,000 .804, 2,000 .787 (the category truth:
.559, .565, .688, .692). Caveat: the demo generator draws each comment's theme with a lean from its
score category, so there the score category is a cleaner label of the text than customers' scores
usually are; the airline figure (human labels, no scores exist) is what the method reaches when the
labels are clean.

Answers without content are not classified: a no-feedback answer ("nothing", "all good", "n/a";
nlp/no_feedback.py) is ``neutral`` with score 0 and method ``no_feedback``; an empty answer (blank,
punctuation only) gets no sentiment row at all, as it gets no theme.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import numpy as np

__all__ = [
    "ANCHORS",
    "CATEGORY_SENTIMENT",
    "SENTIMENTS",
    "AnchorSentiment",
    "EmbeddingClassifier",
    "Scored",
    "SentimentModel",
    "choose_model",
    "training_cutoff",
]

#: the three labels, in the order of every probability matrix here
SENTIMENTS: tuple[str, str, str] = ("negative", "neutral", "positive")
#: an NPS category as a sentiment label (the training labels of the classifier)
CATEGORY_SENTIMENT: dict[str, str] = {"detractor": "negative", "passive": "neutral", "promoter": "positive"}

#: anchor sentences per class for the zero-shot method: generic customer feedback, written once and
#: not tuned on any evaluation set
ANCHORS: dict[str, tuple[str, ...]] = {
    "negative": (
        "This is terrible, I am very unhappy.",
        "Really frustrating, it does not work.",
        "I am disappointed, this is a bad product.",
        "Awful service, nobody helps us.",
        "Too expensive and full of problems.",
        "It keeps failing and wastes our time.",
    ),
    "neutral": (
        "It is okay.",
        "I have a question about my account.",
        "No strong opinion either way.",
        "Some things are fine, some could be better.",
        "A suggestion for a new feature.",
        "We use it for reporting.",
    ),
    "positive": (
        "This is great, I am very happy.",
        "Excellent product, I love it.",
        "Fantastic service, thank you so much.",
        "Works perfectly, highly recommended.",
        "Very helpful team and easy to use.",
        "It saves us a lot of time.",
    ),
}


@dataclass(frozen=True)
class Scored:
    """Sentiment of a batch of comments, row for row."""

    labels: list[str]
    scores: np.ndarray  # float64 in [-1, 1]
    method: str


class SentimentModel(Protocol):
    """What the theme engine's sentiment step calls: a method name (stored per row) and predict."""

    method: str

    def predict(self, E: np.ndarray) -> Scored: ...


def _from_probabilities(P: np.ndarray, method: str) -> Scored:
    """Labels (argmax over SENTIMENTS) and score P(positive) - P(negative) from an (n, 3) matrix."""
    if P.shape[0] == 0:
        return Scored([], np.zeros(0), method)
    labels = [SENTIMENTS[k] for k in np.argmax(P, axis=1)]
    scores = np.clip(P[:, 2] - P[:, 0], -1.0, 1.0).astype(np.float64)
    return Scored(labels, scores, method)


class AnchorSentiment:
    """Zero-shot sentiment: the mean cosine to each class's anchor sentences, softmax at ``temperature``."""

    method = "anchors"

    def __init__(self, embedder: Any, anchors: dict[str, tuple[str, ...]] | None = None,
                 temperature: float = 0.02) -> None:
        self.embedder = embedder
        self.anchors = anchors or ANCHORS
        self.temperature = temperature
        self._centroids: np.ndarray | None = None

    def centroids(self) -> np.ndarray:
        """(3, dim): the mean anchor embedding per class (encoded once, on first use)."""
        if self._centroids is None:
            rows = []
            for label in SENTIMENTS:
                A = self.embedder.encode(list(self.anchors[label]))
                rows.append(A.mean(axis=0))
            self._centroids = np.vstack(rows).astype(np.float32)
        return self._centroids

    def predict(self, E: np.ndarray) -> Scored:
        if len(E) == 0:
            return Scored([], np.zeros(0), self.method)
        S = np.asarray(E, dtype=np.float32) @ self.centroids().T  # mean cosine to each class's anchors
        Z = (S - S.max(axis=1, keepdims=True)) / self.temperature
        P = np.exp(Z)
        return _from_probabilities(P / P.sum(axis=1, keepdims=True), self.method)


class EmbeddingClassifier:
    """Balanced multinomial logistic regression over the embeddings."""

    method = "score_classifier"

    def __init__(self, C: float = 1.0, max_iter: int = 1000, random_state: int = 42) -> None:
        self.C = C
        self.max_iter = max_iter
        self.random_state = random_state
        self._clf: Any = None
        #: training rows per label of the last fit
        self.trained_on: dict[str, int] = {}

    def fit(self, E: np.ndarray, labels: Sequence[str]) -> EmbeddingClassifier:
        from sklearn.linear_model import LogisticRegression

        y = np.array([SENTIMENTS.index(lab) for lab in labels])
        missing = set(range(3)) - set(y.tolist())
        if missing:
            raise ValueError(f"no training comment labelled {', '.join(SENTIMENTS[k] for k in sorted(missing))}")
        self._clf = LogisticRegression(C=self.C, class_weight="balanced", max_iter=self.max_iter,
                                       random_state=self.random_state)
        self._clf.fit(np.asarray(E, dtype=np.float64), y)
        self.trained_on = {lab: int((y == k).sum()) for k, lab in enumerate(SENTIMENTS)}
        return self

    def predict(self, E: np.ndarray) -> Scored:
        if self._clf is None:
            raise RuntimeError("EmbeddingClassifier.predict before fit")
        if len(E) == 0:
            return Scored([], np.zeros(0), self.method)
        P = np.zeros((len(E), 3))
        P[:, self._clf.classes_] = self._clf.predict_proba(np.asarray(E, dtype=np.float64))
        return _from_probabilities(P, self.method)


def choose_model(method: str, embedder: Any, train_E: np.ndarray | None, train_labels: Sequence[str],
                 min_per_category: int, anchors: AnchorSentiment | None = None) -> SentimentModel:
    """The model a night scores with: ``method`` (``score_classifier`` / ``anchors``), falling back
    to anchors when the classifier has fewer than ``min_per_category`` training comments in a class
    (a first night, a warehouse without scores yet)."""
    anchors = anchors or AnchorSentiment(embedder)
    if method == "anchors":
        return anchors
    if method != "score_classifier":
        raise ValueError(f"unknown sentiment method {method!r} (score_classifier, anchors)")
    counts = {lab: sum(1 for t in train_labels if t == lab) for lab in SENTIMENTS}
    if train_E is None or min(counts.values()) < max(1, min_per_category):
        return anchors
    return EmbeddingClassifier().fit(train_E, train_labels)


#: a Monday: training cutoffs of 7 days fall on UTC Mondays
_EPOCH = datetime(1970, 1, 5, tzinfo=UTC)


def training_cutoff(night_start: datetime, days: int) -> datetime:
    """``night_start`` floored to a multiple of ``days`` days from a Monday (7: the UTC Monday on or
    before it; 1: its UTC midnight): the classifier of a night trains on comments answered before it."""
    step = timedelta(days=max(1, days))
    at = night_start if night_start.tzinfo else night_start.replace(tzinfo=UTC)
    return _EPOCH + ((at - _EPOCH) // step) * step
