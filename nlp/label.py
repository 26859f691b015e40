"""Theme keywords and labels with class-based TF-IDF (c-TF-IDF, as in BERTopic).

All comments of a theme form one document; term weight = tf(term, theme) / words(theme) x
log(1 + average words per theme / frequency of term over all themes). Unigrams and bigrams of
words in any alphabet ("améliorer", "größe"); French/Italian elisions ("l'accueil") are split.

Stop words: English ones plus survey filler ("really", "just", "thanks", ...) always, and those of
every other language the comments are written in (the lists of the PyPI package ``stop-words``:
French, German, Spanish, Portuguese, Italian, Dutch and 25 more). A language counts as present when
its own stop words (those that are not English ones) make up at least ``language_share`` of one
theme's words: French comments labelled "les / pas / la" before this rule are labelled by what
they are about. The ``[email]`` / ``[phone]`` redaction tokens are removed too.
"""

from __future__ import annotations

import functools
import re
import warnings
from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["FILLER_WORDS", "ClassTfidfLabeler", "languages_present", "make_label", "representatives", "stop_words"]

#: Survey filler: words frequent in every theme that never name one.
FILLER_WORDS: frozenset[str] = frozenset(
    """
    really just very much lot lots bit quite pretty thing things stuff like also good great
    nice ok okay thanks thank please would could should get got make made use using used
    im ive dont didnt doesnt cant wont isnt its it's i'm i've don't didn't can't won't
    overall product service company team experience always still even far well way time
    us you your yours we our one two etc able maybe sometimes recommend recommended
    score nps rating rate survey feedback comment comments will us
    """.split()
)

_REDACTION_RE = re.compile(r"\[(?:email|phone)\]", re.IGNORECASE)
_ELISION_RE = re.compile(r"\b(?:[cdjlmnst]|qu)['’](?=[^\W\d_])", re.IGNORECASE)  # l'accueil, qu'on
TOKEN_PATTERN = r"(?u)\b[^\W\d_][^\W\d_]+(?:['-][^\W\d_]+)*\b"  # two letters or more, any alphabet
_TOKEN_RE = re.compile(TOKEN_PATTERN)


def _english_stop_words() -> frozenset[str]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return frozenset(ENGLISH_STOP_WORDS) | FILLER_WORDS


@functools.lru_cache(maxsize=1)
def _other_languages() -> dict[str, tuple[frozenset[str], frozenset[str]]]:
    """{language: (its stop words, those of them that are not English ones)} from ``stop-words``."""
    from stop_words import AVAILABLE_LANGUAGES, get_stop_words

    english = _english_stop_words() | frozenset(get_stop_words("english"))
    out = {}
    for lang in AVAILABLE_LANGUAGES:
        if lang != "english":
            words = frozenset(w.lower() for w in get_stop_words(lang))
            out[lang] = (words, words - english)
    return out


def languages_present(docs_by_theme: Mapping[int, Sequence[str]], share: float) -> list[str]:
    """The non-English languages whose own stop words (not English ones) make up at least ``share``
    of some theme's words."""
    from collections import Counter

    found: set[str] = set()
    others = _other_languages()
    for docs in docs_by_theme.values():
        # fifty comments tell a theme's language; the cost stays flat however large the theme
        counts = Counter(t for d in docs[:50] for t in _TOKEN_RE.findall(_clean(d)))
        total = sum(counts.values())
        if not total:
            continue
        for lang, (_, own) in others.items():
            if lang not in found and sum(n for t, n in counts.items() if t in own) >= share * total:
                found.add(lang)
    return sorted(found)


def stop_words(languages: Sequence[str] = ()) -> list[str]:
    """English stop words and survey filler, and every stop word of ``languages``."""
    words = set(_english_stop_words())
    for lang in languages:
        words |= _other_languages()[lang][0]
    return sorted(words)


def _clean(text: str) -> str:
    return _ELISION_RE.sub("", _REDACTION_RE.sub(" ", text or "")).lower()


def make_label(keywords: Sequence[str], n_terms: int = 3, sep: str = " / ") -> str:
    """Join the top ``n_terms`` keyword phrases, skipping ones whose words are already shown.

    ``["card arrive", "card", "arrive", "delivery"]`` -> ``"card arrive / delivery"``.
    """
    chosen: list[str] = []
    for kw in keywords:
        words = set(kw.split())
        if words <= {w for c in chosen for w in c.split()}:
            continue
        # a bigram replaces the chosen unigram it contains ("card" -> "card arrive")
        chosen = [c for c in chosen if not set(c.split()) < words]
        chosen.append(kw)
        if len(chosen) >= n_terms:
            break
    return sep.join(chosen) if chosen else "(no keywords)"


class ClassTfidfLabeler:
    """Top keywords per theme by c-TF-IDF, and a short label from them."""

    def __init__(self, top_n: int = 10, label_terms: int = 3, min_df: int = 2, language_share: float = 0.05) -> None:
        self.top_n = top_n
        self.label_terms = label_terms
        self.min_df = min_df
        self.language_share = language_share
        #: the non-English languages found in the last keywords() call
        self.languages_: list[str] = []

    def keywords(self, docs_by_theme: Mapping[int, Sequence[str]]) -> dict[int, list[str]]:
        """``{theme_id: [keyword, ...]}`` (best first) for every theme in ``docs_by_theme``."""
        return self.keywords_two_levels(docs_by_theme, {})

    def keywords_two_levels(self, docs_by_theme: Mapping[int, Sequence[str]],
                            parents: Mapping[int, Sequence[int]], *,
                            weights: Mapping[int, float] | None = None) -> dict[int, list[str]]:
        """Keywords of every theme in ``docs_by_theme`` (c-TF-IDF across them) and of every parent
        in ``parents`` (``{parent_id: [its themes]}``; c-TF-IDF across the parents, a parent's
        words being its themes'), from one pass of the vectorizer over the documents.
        ``weights`` scales a theme's word counts: a theme read from a smaller sample than the
        others counts as the sample it stands for."""
        from sklearn.feature_extraction.text import CountVectorizer

        theme_ids = [t for t, docs in docs_by_theme.items() if len(docs) > 0]
        out: dict[int, list[str]] = {t: [] for t in [*docs_by_theme, *parents]}
        if not theme_ids:
            return out
        n_docs = sum(len(docs_by_theme[t]) for t in theme_ids)
        self.languages_ = languages_present(docs_by_theme, self.language_share)
        vec = CountVectorizer(
            ngram_range=(1, 2),
            stop_words=stop_words(self.languages_),
            token_pattern=TOKEN_PATTERN,
            min_df=self.min_df if n_docs >= 20 * self.min_df else 1,
            preprocessor=_clean,
        )
        all_docs = [d for t in theme_ids for d in docs_by_theme[t]]
        try:
            with warnings.catch_warnings():  # stop words with apostrophes tokenise differently: harmless
                warnings.filterwarnings("ignore", message="Your stop_words may be inconsistent")
                counts = vec.fit_transform(all_docs)
        except ValueError:  # empty vocabulary
            return out
        vocab = np.asarray(vec.get_feature_names_out())
        # sum document rows into one row per theme
        bounds = np.cumsum([0] + [len(docs_by_theme[t]) for t in theme_ids])
        tf = np.vstack(
            [np.asarray(counts[bounds[i] : bounds[i + 1]].sum(axis=0)).ravel() for i in range(len(theme_ids))]
        ).astype(np.float64)
        if weights:
            tf *= np.array([weights.get(t, 1.0) for t in theme_ids])[:, None]
        out.update(self._top_terms(tf, vocab, theme_ids))
        row = {t: i for i, t in enumerate(theme_ids)}
        parent_ids = [p for p, kids in parents.items() if any(k in row for k in kids)]
        if parent_ids:
            tf_parents = np.vstack([tf[[row[k] for k in parents[p] if k in row]].sum(axis=0) for p in parent_ids])
            out.update(self._top_terms(tf_parents, vocab, parent_ids))
        return out

    def _top_terms(self, tf: np.ndarray, vocab: np.ndarray, ids: Sequence[int]) -> dict[int, list[str]]:
        """c-TF-IDF (BERTopic's: term share in the class x log(1 + mean words per class / term
        frequency across classes)), the ``top_n`` terms of each class."""
        words_per_theme = tf.sum(axis=1, keepdims=True)
        words_per_theme[words_per_theme == 0] = 1.0
        avg_words = float(tf.sum()) / len(ids)
        freq = tf.sum(axis=0)
        freq[freq == 0] = 1.0
        idf = np.log(1.0 + avg_words / freq)
        ctfidf = tf / words_per_theme * idf
        out: dict[int, list[str]] = {}
        for i, t in enumerate(ids):
            scores = ctfidf[i]
            order = np.lexsort((vocab, -scores))  # score desc, then alphabetical: deterministic
            out[t] = [str(vocab[j]) for j in order[: self.top_n] if scores[j] > 0]
        return out

    def label(self, keywords: Sequence[str]) -> str:
        return make_label(keywords, self.label_terms)


def representatives(embeddings: np.ndarray, centroid: np.ndarray, texts: Sequence[str], k: int = 3) -> list[str]:
    """The ``k`` distinct texts closest (cosine) to ``centroid``."""
    if len(texts) == 0:
        return []
    sims = embeddings @ centroid
    out: list[str] = []
    for i in np.argsort(-sims, kind="stable"):
        if texts[i] not in out:
            out.append(texts[i])
        if len(out) >= k:
            break
    return out
