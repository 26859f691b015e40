"""Sentiment per comment (nlp/sentiment.py) and the theme engine's ``sentiment`` step: the real MiniLM
model on small real text, against a real PostgreSQL (tests/conftest.py). Nothing is mocked."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

NEGATIVE = [
    "the app is painfully slow and crashes all the time",
    "support ignored our ticket for two weeks, terrible service",
    "way too expensive for what we get",
    "billing charged us twice and nobody answers our emails",
    "the sync keeps failing and we lose data",
    "onboarding was a confusing mess",
    "very disappointed, we are looking at alternatives",
    "the reports are broken again, really frustrating",
    "awful performance since the last update",
    "the mobile app is unusable, it freezes on every screen",
    "the price went up again and the product got worse",
    "nobody from customer success called us back, unacceptable",
]
NEUTRAL = [
    "would be nice to have a slack integration",
    "it does the job, nothing special",
    "we mostly use it for the monthly reporting",
    "please add an export to csv",
    "decent tool, a few features are missing",
    "the dashboard could show more columns",
    "an api for custom fields would help us",
    "it is fine, we would like a dark mode",
    "average product, some parts better than others",
    "a calendar view would be a good addition",
    "we would use it more with a jira connector",
    "ok overall, the setup took a while",
]
POSITIVE = [
    "love it, the support team is fantastic",
    "great product and really easy to use",
    "support solved our issue in minutes, thank you",
    "saves us hours every week, brilliant",
    "excellent tool, highly recommend it to everyone",
    "the new dashboards are beautiful and fast",
    "best vendor we work with, always helpful",
    "our team loves the automations",
    "super intuitive, everyone picked it up in a day",
    "amazing customer service, keep up the good work",
    "very happy with the product, it just works",
    "fantastic experience from start to finish",
]
PREFIXES = ["", "", "Honestly, ", "To be frank, ", "In short: "]
SUFFIXES = ["", ".", "!", " Thanks.", " That's all."]
SCORES = {"negative": (0, 6), "neutral": (7, 8), "positive": (9, 10)}


def labelled(n_per_class: int, seed: int) -> list[tuple[str, str, int]]:
    """[(sentiment, comment, score)]: phrases of each class with prefix/suffix noise and a score of
    the matching NPS category."""
    rng = random.Random(seed)
    out = []
    for label, phrases in (("negative", NEGATIVE), ("neutral", NEUTRAL), ("positive", POSITIVE)):
        for _ in range(n_per_class):
            text = rng.choice(PREFIXES) + rng.choice(phrases) + rng.choice(SUFFIXES)
            out.append((label, text, rng.randint(*SCORES[label])))
    rng.shuffle(out)
    return out


@pytest.fixture(scope="session")
def embedder() -> Any:
    """The real MiniLM model, loaded once per session."""
    from nlp.embed import Embedder

    emb = Embedder()
    emb.encode(["warm up"])
    return emb


# ------------------------------------------------------------------------------------------------
# the methods, in memory
# ------------------------------------------------------------------------------------------------


def test_anchors_read_clear_praise_and_complaints_without_training(embedder: Any) -> None:
    from nlp.sentiment import AnchorSentiment

    complaints = ["The app crashes every day and support never answers. Terrible.",
                  "Way too expensive and full of bugs, we are cancelling.",
                  "Nobody ever answers our tickets, we are very disappointed."]
    praise = ["Fantastic product, the team is wonderful, thank you!",
              "Love it, so easy to use and it saves us hours.",
              "Excellent service, we are very pleased with the product."]
    scored = AnchorSentiment(embedder).predict(embedder.encode(complaints + praise))
    assert scored.method == "anchors"
    assert scored.labels == ["negative"] * 3 + ["positive"] * 3, scored.labels
    assert (scored.scores[:3] < 0).all() and (scored.scores[3:] > 0).all()
    assert ((scored.scores >= -1) & (scored.scores <= 1)).all()


def test_classifier_learns_the_three_classes_from_score_categories(embedder: Any) -> None:
    """Trained on comments labelled by their response's category, it scores new wordings (held-out
    phrases) right, with score = P(positive) - P(negative)."""
    from nlp.sentiment import EmbeddingClassifier

    held_out = {label: phrases[-3:] for label, phrases in
                (("negative", NEGATIVE), ("neutral", NEUTRAL), ("positive", POSITIVE))}
    train = [(lab, t) for lab, t, _ in labelled(40, seed=3) if not any(p in t for p in held_out[lab])]
    clf = EmbeddingClassifier().fit(embedder.encode([t for _, t in train]), [lab for lab, _ in train])
    assert clf.trained_on == {lab: sum(1 for x, _ in train if x == lab) for lab in ("negative", "neutral", "positive")}
    test = [(lab, t) for lab, phrases in held_out.items() for t in phrases]
    scored = clf.predict(embedder.encode([t for _, t in test]))
    assert scored.method == "score_classifier"
    right = sum(pred == lab for pred, (lab, _) in zip(scored.labels, test, strict=True))
    assert right >= 7, list(zip(scored.labels, test, strict=True))  # 9 held-out phrases, 3 per class
    for pred, score in zip(scored.labels, scored.scores, strict=True):
        assert -1 <= score <= 1
        if pred == "negative":
            assert score < 0
        elif pred == "positive":
            assert score > 0


def test_cold_start_falls_back_to_anchors(embedder: Any) -> None:
    from nlp.sentiment import AnchorSentiment, EmbeddingClassifier, choose_model

    data = labelled(30, seed=4)
    E = embedder.encode([t for _, t, _ in data])
    labels = [lab for lab, _, _ in data]
    assert isinstance(choose_model("score_classifier", embedder, E, labels, 30), EmbeddingClassifier)
    assert isinstance(choose_model("score_classifier", embedder, E, labels, 31), AnchorSentiment)  # 30 < 31
    no_neutral = [k for k, lab in enumerate(labels) if lab != "neutral"]
    assert isinstance(choose_model("score_classifier", embedder, E[no_neutral], [labels[k] for k in no_neutral], 1),
                      AnchorSentiment)
    assert isinstance(choose_model("score_classifier", embedder, None, [], 1), AnchorSentiment)
    assert isinstance(choose_model("anchors", embedder, E, labels, 1), AnchorSentiment)
    with pytest.raises(ValueError, match="unknown sentiment method"):
        choose_model("vader", embedder, E, labels, 1)
    with pytest.raises(ValueError, match="neutral"):
        EmbeddingClassifier().fit(E[no_neutral], [labels[k] for k in no_neutral])


def test_training_cutoff_is_the_nights_monday() -> None:
    from nlp.sentiment import training_cutoff

    monday = datetime(2025, 1, 6, tzinfo=UTC)
    for day in range(7):
        assert training_cutoff(monday + timedelta(days=day, hours=23), 7) == monday
    assert training_cutoff(monday + timedelta(days=7), 7) == monday + timedelta(days=7)
    assert training_cutoff(monday + timedelta(days=2, hours=5), 1) == monday + timedelta(days=2)


# ------------------------------------------------------------------------------------------------
# the sentiment step of run_interval, against PostgreSQL
# ------------------------------------------------------------------------------------------------

WEEK1 = datetime(2025, 1, 6, tzinfo=UTC)  # a Monday
WEEK2 = WEEK1 + timedelta(days=7)
WEEK3 = WEEK2 + timedelta(days=7)
Row = tuple[str, str | None, datetime, int]  # response_id, comment, responded_at, score


def _insert(conn: Any, rows: list[Row]) -> None:
    from psycopg2.extras import execute_values

    with conn.cursor() as cur:
        execute_values(
            cur,
            "insert into raw.survey_responses (response_id, account_id, responded_at, score, comment) values %s",
            [(rid, "A1", at, score, comment) for rid, comment, at, score in rows],
        )
    conn.commit()


def _sentiment_rows(conn: Any) -> dict[str, tuple[Any, ...]]:
    with conn.cursor() as cur:
        cur.execute("select response_id, text_hash, sentiment, sentiment_score, method, model, run_id, scored_at "
                    "from nlp.comment_sentiment")
        return {r[0]: r[1:] for r in cur.fetchall()}


def _week(data: list[tuple[str, str, int]], start: datetime, prefix: str) -> list[Row]:
    step = timedelta(days=7) / (len(data) + 1)
    return [(f"{prefix}{k:04d}", text, start + step * (k + 1), score) for k, (_, text, score) in enumerate(data)]


def test_the_nightly_step_scores_new_comments_once(db_conn: Any, embedder: Any) -> None:
    """Week 1 (no scored history: anchors), week 2 (classifier trained on week 1's comments and
    scores), a rerun that changes nothing, an edited comment scored again, an emptied one dropped."""
    from nlp import ThemeConfig, ThemeEngine
    from nlp.text import prepare, text_hash

    conn = db_conn
    engine = ThemeEngine(ThemeConfig(), embedder=embedder)
    week1 = labelled(60, seed=5)
    week2 = labelled(8, seed=6)
    extra = [("E1", "n/a", WEEK1 + timedelta(hours=3), 8), ("E2", "...", WEEK1 + timedelta(hours=4), 9),
             ("E3", "Nothing to improve, all good", WEEK2 + timedelta(hours=3), 10),
             ("E4", None, WEEK2 + timedelta(hours=5), 3)]
    rows1, rows2 = _week(week1, WEEK1, "A"), _week(week2, WEEK2, "B")
    _insert(conn, rows1 + rows2 + extra)
    truth = {rid: lab for (rid, *_), (lab, _, _) in zip(rows1 + rows2, week1 + week2, strict=True)}

    s1 = engine.run_interval(conn, WEEK1, WEEK2, "run-w1")
    conn.commit()
    got = _sentiment_rows(conn)
    assert s1["sentiment_scored"] == len(rows1) + 1 == s1["sentiment_anchors"] + 1
    assert set(got) == {r[0] for r in rows1} | {"E1"}  # "..." is no answer: no row
    assert got["E1"][1:4] == ("neutral", 0.0, "no_feedback")
    assert {got[r[0]][3] for r in rows1} == {"anchors"}  # no scored comment before the week: cold start
    assert all(got[rid][0] == text_hash(prepare(c)) and got[rid][4] == engine.model for rid, c, _, _ in rows1)

    s2 = engine.run_interval(conn, WEEK2, WEEK3, "run-w2")
    conn.commit()
    assert s2["nights"] == 7 and s2["sentiment_scored"] == len(rows2) + 1 and s2["sentiment_anchors"] == 0
    got = _sentiment_rows(conn)
    assert "E4" not in got and got["E3"][1:4] == ("neutral", 0.0, "no_feedback")
    week2_rows = {r[0]: got[r[0]] for r in rows2}
    assert {r[3] for r in week2_rows.values()} == {"score_classifier"}
    right = sum(r[1] == truth[rid] for rid, r in week2_rows.items())
    assert right >= 0.8 * len(week2_rows), {rid: (r[1], truth[rid]) for rid, r in week2_rows.items()}
    assert all(-1 <= r[2] <= 1 for r in got.values())
    assert all((r[2] < 0) == (r[1] == "negative") for r in week2_rows.values() if r[1] != "neutral")

    # a rerun of either week: nothing scored, encoded or rewritten (run_id and scored_at unchanged)
    before, encoded = _sentiment_rows(conn), embedder.n_encoded
    for start, end in ((WEEK1, WEEK2), (WEEK2, WEEK3)):
        s = engine.run_interval(conn, start, end, "rerun")
        conn.commit()
        assert s["sentiment_scored"] == 0
    assert _sentiment_rows(conn) == before and embedder.n_encoded == encoded

    # a comment edited by a reload is scored again with its new text; one emptied loses its row
    edited, emptied = rows2[0][0], rows2[1][0]
    with conn.cursor() as cur:
        cur.execute("update raw.survey_responses set comment = %s where response_id = %s",
                    ("Terrible, the worst support we have ever had. Cancelling.", edited))
        cur.execute("update raw.survey_responses set comment = '-' where response_id = %s", (emptied,))
    conn.commit()
    s = engine.run_interval(conn, WEEK2, WEEK3, "rerun-edited")
    conn.commit()
    after = _sentiment_rows(conn)
    assert s["sentiment_scored"] == 1
    assert after[edited][1] == "negative" and after[edited][5] == "rerun-edited"
    assert emptied not in after
    unchanged = {k: v for k, v in before.items() if k not in (edited, emptied)}
    assert {k: v for k, v in after.items() if k != edited} == unchanged
    with conn.cursor() as cur:
        cur.execute("select count(*), count(distinct response_id) from nlp.comment_sentiment")
        n, distinct = cur.fetchone()
    assert n == distinct == len(after)


def test_a_backfill_scores_as_the_nightly_runs(make_database: Any, embedder: Any) -> None:
    """Three weeks as one backfilled window and as a warm start + nightly runs: the same sentiment
    rows (the nights of a week share the model trained before its Monday)."""
    from nlp import ThemeConfig, ThemeEngine
    from nlp.pipeline import nights
    from nps import warehouse

    rows = (_week(labelled(25, seed=7), WEEK1, "A") + _week(labelled(6, seed=8), WEEK2, "B")
            + _week(labelled(6, seed=9), WEEK3, "C"))
    end = WEEK3 + timedelta(days=7)
    config = ThemeConfig(warm_start_days=7, sentiment_min_per_category=20, progress=False)
    results = []
    for mode in ("backfill", "nightly"):
        conn = warehouse.connect(make_database("nps_sentiment"))
        _insert(conn, rows)
        engine = ThemeEngine(config, embedder=embedder)
        if mode == "backfill":
            engine.run_interval(conn, WEEK1, end, "run")
        else:
            for s, e in [(WEEK1, WEEK2), *nights(WEEK2, end, 1)]:
                ThemeEngine(config, embedder=embedder).run_interval(conn, s, e, "run")
                conn.commit()
        conn.commit()
        results.append({rid: r[:5] for rid, r in _sentiment_rows(conn).items()})
        conn.close()
    backfill, nightly = results
    assert len(backfill) == len(rows)
    assert {r[3] for rid, r in backfill.items() if rid.startswith(("B", "C"))} == {"score_classifier"}
    assert backfill.keys() == nightly.keys()
    for rid in backfill:
        assert backfill[rid][:2] == nightly[rid][:2] and backfill[rid][3:] == nightly[rid][3:], rid
        assert backfill[rid][2] == pytest.approx(nightly[rid][2], abs=1e-5), rid
    assert np.isfinite([r[2] for r in backfill.values()]).all()
