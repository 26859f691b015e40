"""The human overrides seed end to end: rename, merge, actionable, pin against a real PostgreSQL,
the real MiniLM model and a real ``dbt build`` of the nlp staging models.

Two nightly ``run_interval`` calls with the seed edited in between; then reruns, a re-theme from
scratch and a further edit of the seed, checking that no run undoes a human decision.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from nps import warehouse
from tests.conftest import query
from tests.test_nlp import synthetic

JAN = datetime(2025, 1, 1, tzinfo=UTC)
FEB = datetime(2025, 2, 1, tzinfo=UTC)
MAR = datetime(2025, 3, 1, tzinfo=UTC)
HEADER = "action,theme_id,value,note\n"


@pytest.fixture(scope="module")
def embedder() -> Any:
    from nlp.embed import Embedder

    emb = Embedder()
    emb.encode(["warm up"])
    return emb


def _engine(embedder: Any, seed: Path) -> Any:
    from nlp import ThemeConfig, ThemeEngine

    return ThemeEngine(ThemeConfig(overrides_path=str(seed)), embedder=embedder)


def _insert(conn: Any, rows: list[tuple[str, str, datetime]]) -> None:
    from psycopg2.extras import execute_values

    with conn.cursor() as cur:
        execute_values(
            cur,
            "insert into raw.survey_responses (response_id, account_id, responded_at, score, comment) values %s",
            [(rid, "A1", at, 5, comment) for rid, comment, at in rows],
        )
    conn.commit()


def _themes(conn: Any) -> dict[int, dict[str, Any]]:
    with conn.cursor() as cur:
        cur.execute(
            "select theme_id, label, human_label, is_actionable, status, merged_into, merged_by from nlp.themes"
        )
        cols = [d.name for d in cur.description]
        return {r[0]: dict(zip(cols, r, strict=True)) for r in cur.fetchall()}


def _assignments(conn: Any) -> dict[str, tuple[Any, str, Any]]:
    with conn.cursor() as cur:
        cur.execute("select response_id, theme_id, method, confidence from nlp.comment_themes")
        return {r: (t, m, c) for r, t, m, c in cur.fetchall()}


def test_overrides_seed_end_to_end(db_url: str, embedder: Any, tmp_path: Path) -> None:
    from nps_airflow.dbt import run_dbt

    conn = warehouse.connect(db_url)
    seed = tmp_path / "theme_overrides.csv"
    seed.write_text(HEADER)
    topic_of: dict[str, str] = {}
    rows = []
    for k, (topic, text) in enumerate(synthetic(40, seed=21)):
        topic_of[f"J{k:04d}"] = topic
        rows.append((f"J{k:04d}", text, JAN + timedelta(hours=k)))
    for k, (topic, text) in enumerate(synthetic(8, seed=22)):
        topic_of[f"F{k:04d}"] = topic
        rows.append((f"F{k:04d}", text, FEB + timedelta(hours=k)))
    _insert(conn, rows)

    # night 1, empty seed: the engine discovers the themes on its own
    engine = _engine(embedder, seed)
    s1 = engine.run_interval(conn, JAN, FEB, "night-1")
    conn.commit()
    assert s1["overrides"] == {"merged": 0, "moved": 0, "renamed": 0, "flagged": 0, "pinned": 0, "unpinned": 0}
    by_topic: dict[str, Counter[Any]] = {}
    for rid, (tid, _m, _c) in _assignments(conn).items():
        by_topic.setdefault(topic_of[rid], Counter())[tid] += 1
    main = {topic: c.most_common(1)[0][0] for topic, c in by_topic.items()}
    assert len(set(main.values())) == 5 and None not in main.values(), by_topic
    pricing, support, integrations, onboarding = (main[k] for k in ("pricing", "support", "integrations", "onboarding"))
    before = _assignments(conn)
    n_integrations = sum(1 for t, _m, _c in before.values() if t == integrations)
    n_onboarding = sum(1 for t, _m, _c in before.values() if t == onboarding)
    pinned = next(r for r, (t, _m, _c) in sorted(before.items()) if t == support and r.startswith("J"))
    auto_label = _themes(conn)[pricing]["label"]

    # a person edits the seed
    seed.write_text(
        HEADER
        + f'rename,{pricing},"Pricing, renewals",finance\n'
        + f"merge,{integrations},{onboarding},same owner\n"
        + f"actionable,{pricing},true,\n"
        + f"actionable,{support},no,\n"
        + f"pin,{pricing},{pinned},about the price really\n"
    )
    s2 = engine.run_interval(conn, FEB, MAR, "night-2")
    conn.commit()
    assert s2["overrides"] == {"merged": 1, "moved": 0, "renamed": 1, "flagged": 2, "pinned": 1, "unpinned": 0}
    th = _themes(conn)
    assert th[pricing]["human_label"] == "Pricing, renewals" and th[pricing]["label"] == auto_label
    assert th[pricing]["is_actionable"] is True and th[support]["is_actionable"] is False
    assert th[onboarding]["is_actionable"] is None
    assert (th[integrations]["status"], th[integrations]["merged_into"], th[integrations]["merged_by"]) == (
        "merged",
        onboarding,
        "human",
    )
    after = _assignments(conn)
    assert all(t != integrations for t, _m, _c in after.values())  # every row repointed, none new
    merged_rows = [r for r, (t, _m, _c) in before.items() if t in (integrations, onboarding)]
    assert len(merged_rows) == n_integrations + n_onboarding
    assert all(after[r][0] == onboarding for r in merged_rows)
    tid, method, conf = after[pinned]
    assert (tid, method) == (pricing, "pinned") and 0 < conf < 1
    feb_integrations = Counter(after[r][0] for r, t in topic_of.items() if t == "integrations" and r.startswith("F"))
    assert feb_integrations.most_common(1)[0][0] == onboarding, feb_integrations

    # reruns of both nights and a re-theme from scratch never undo a decision
    with conn.cursor() as cur:
        cur.execute("delete from nlp.comment_themes where response_id like 'J%%' and method <> 'pinned'")
    conn.commit()
    for start, end in ((JAN, FEB), (FEB, MAR)):
        engine.run_interval(conn, start, end, "rerun")
        conn.commit()
    th2, again = _themes(conn), _assignments(conn)
    assert again[pinned][:2] == (pricing, "pinned")
    assert th2[integrations]["status"] == "merged" and th2[pricing]["human_label"] == "Pricing, renewals"
    assert all(t != integrations for t, _m, _c in again.values())

    # the decisions reach dbt: a real build (models + their tests) of the staging models here
    run_dbt(
        ["build", "--select", "stg_survey__responses", "stg_nlp__themes", "stg_nlp__comment_themes",
         "--indirect-selection", "cautious"],
        db_url,
    )
    stg = query(db_url, "select * from staging.stg_nlp__themes").set_index("theme_id")
    assert stg.loc[pricing, "theme_label"] == "Pricing, renewals" and stg.loc[pricing, "auto_theme_label"] == auto_label
    assert bool(stg.loc[pricing, "is_actionable"]) is True and bool(stg.loc[support, "is_actionable"]) is False
    assert stg.loc[onboarding, "is_actionable"] is None or np.isnan(stg.loc[onboarding, "is_actionable"])
    assert stg.loc[integrations, ["theme_status", "merged_into_theme_id", "merged_by"]].tolist() == [
        "merged", onboarding, "human",
    ]

    # the person drops the rename and the pin: label reverts, the comment keeps its theme unpinned
    seed.write_text(HEADER + f"merge,{integrations},{onboarding},\n" + f"actionable,{pricing},true,\n")
    s3 = engine.run_interval(conn, FEB, MAR, "night-3")
    conn.commit()
    assert s3["overrides"]["unpinned"] == 1 and s3["overrides"]["merged"] == 0
    th3, last = _themes(conn), _assignments(conn)
    assert th3[pricing]["human_label"] is None and th3[support]["is_actionable"] is None
    assert th3[integrations]["status"] == "merged"  # removing the row does not un-merge
    assert last[pinned][:2] == (pricing, "assigned")
    conn.close()


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("rname,1,x,", r"line 3: unknown action 'rname'"),
        ("rename,999,x,", r"line 3: theme 999 does not exist"),
        ("rename,abc,x,", r"line 3: theme_id 'abc' is not a theme id"),
        ("merge,1,1,", r"line 3: theme 1 cannot be merged into itself"),
        ("merge,1,77,", r"line 3: merge target theme 77 does not exist"),
        ("actionable,1,maybe,", r"line 3: actionable value 'maybe' must be true or false"),
        ("pin,1,NOPE,", r"line 3: response 'NOPE' does not exist"),
        ("pin,1,R-empty,", r"line 3: response 'R-empty' has no comment"),
        ("rename,2,,", r"line 3: rename needs a value"),
        ("rename,1,again,", r"line 3: theme 1 has a rename twice \(also line 2\)"),
    ],
)
def test_bad_override_rows_name_their_line(db_conn: Any, tmp_path: Path, row: str, message: str) -> None:
    from nlp.embed import Embedder, EmbeddingCache
    from nlp.overrides import OverrideError, apply_overrides, read_overrides
    from nlp.registry import ThemeRegistry
    from nlp.store import ThemeStore

    reg = ThemeRegistry("m")
    for _ in range(2):
        reg.mint(np.eye(4, dtype=np.float32)[0], 1).label = "x"
    reg.save(ThemeStore(db_conn, "m"))
    _insert(db_conn, [("R-empty", "n/a", JAN)])
    seed = tmp_path / "overrides.csv"
    seed.write_text(HEADER + "rename,1,first,\n" + row + "\n")
    with pytest.raises(OverrideError, match=message):
        apply_overrides(db_conn, reg, read_overrides(seed), EmbeddingCache(Embedder()), "r")
    db_conn.rollback()


def test_missing_configured_file_is_an_error(tmp_path: Path) -> None:
    from nlp.overrides import OverrideError, read_overrides

    with pytest.raises(OverrideError, match="does not exist"):
        read_overrides(tmp_path / "nope.csv")
    (tmp_path / "bad.csv").write_text("theme,label\n1,x\n")
    with pytest.raises(OverrideError, match="line 1: header"):
        read_overrides(tmp_path / "bad.csv")


def test_shipped_seed_is_valid_and_empty() -> None:
    from nlp.overrides import DEFAULT_OVERRIDES_PATH, read_overrides

    assert DEFAULT_OVERRIDES_PATH.read_text().splitlines()[0] == HEADER.strip()
    assert read_overrides(DEFAULT_OVERRIDES_PATH) == []


def test_automatic_merge_never_drops_a_protected_theme() -> None:
    from nlp.registry import ThemeRegistry

    reg = ThemeRegistry("m")
    a = np.array([1, 0, 0, 0], dtype=np.float32)
    b = np.array([1, 0.05, 0, 0], dtype=np.float32)
    c = np.array([1, 0, 0.05, 0], dtype=np.float32)
    t1, t2, t3 = (reg.mint(v, 5) for v in (a, b, c))
    reg.protected = {t2.theme_id, t3.theme_id}
    merges = reg.merge_duplicates(0.9)
    # t1 (unprotected, older) goes into a protected one; the two protected themes both stay
    assert merges == [(t1.theme_id, t2.theme_id)] or merges == [(t1.theme_id, t3.theme_id)]
    assert {t.theme_id for t in reg.active()} == {t2.theme_id, t3.theme_id}


def test_overrides_are_planned_without_a_database(tmp_path: Path) -> None:
    """The seed is checked and turned into a plan from plain data (no connection): merges in file
    order, the labels and flags it holds, and the themes a person decided about."""
    from nlp.overrides import OverrideError, plan_overrides, read_overrides

    seed = tmp_path / "overrides.csv"
    seed.write_text(HEADER + "merge,3,2,\nmerge,2,1,\nrename,1,Billing,\nactionable,4,false,\npin,1,R1,\n")
    states = {t: ("active", None, "m", "subtheme", "discovered") for t in (1, 2, 3, 4)}
    plan = plan_overrides(read_overrides(seed), states, {"R1": "The invoice was wrong"})
    assert [(src, dst) for _, src, dst in plan.merges] == [(3, 2), (2, 1)]
    assert plan.labels == {1: "Billing"} and plan.flags == {4: False}
    assert plan.pins == [("R1", "the invoice was wrong", 1)]
    assert plan.protected == {1, 4}
    with pytest.raises(OverrideError, match="line 2: theme 3 does not exist"):
        plan_overrides(read_overrides(seed), {k: v for k, v in states.items() if k != 3}, {})
