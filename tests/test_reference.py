"""Hand-computed checks of the pandas reference marts (tests/reference.py).

Every expected figure below is worked out by hand from the tiny source sets written here, not by
the code under test.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.reference import (
    Params,
    collapse_strata,
    compare_frames,
    detractor_outcomes,
    detractor_recovery,
    enrich_responses,
    load_sources,
    nps_by_segment,
    passive_movement,
    promoter_queue,
    theme_impact,
    theme_recurrence,
)

COLUMNS = {
    "survey_responses": [
        "response_id", "survey_id", "survey_type", "trigger_event", "account_id", "contact_id",
        "channel", "sent_at", "responded_at", "score", "comment", "language",
    ],
    "accounts": [
        "account_id", "name", "industry", "region", "employee_band", "plan", "arr", "currency",
        "customer_since", "owner", "churned_at", "updated_at",
    ],
    "contacts": ["contact_id", "account_id", "email", "full_name", "role", "created_at", "updated_at"],
    "activities": [
        "activity_id", "account_id", "contact_id", "response_id", "activity_type", "created_at", "outcome",
    ],
    "usage_daily": ["account_id", "usage_date", "active_users", "sessions", "core_events"],
}  # fmt: skip
INTERVAL = {
    "survey_responses": "responded_at",
    "accounts": "updated_at",
    "contacts": "updated_at",
    "activities": "created_at",
    "usage_daily": "usage_date",
}
DEFAULTS = {
    "survey_responses": {"survey_id": "s1", "survey_type": "relational", "trigger_event": "quarterly",
                         "channel": "email", "language": "en"},
    "accounts": {"name": "Acme", "industry": "software", "region": "emea", "employee_band": "51-200",
                 "plan": "pro", "currency": "USD", "customer_since": "2020-01-01", "owner": "o1"},
    "activities": {"activity_type": "call", "outcome": "done"},
}  # fmt: skip


def write_sources(root: Path, **entities: list[dict]) -> Path:
    """Write rows in the contract layout: <root>/<entity>/<entity>_<date of interval column>.csv."""
    for entity in COLUMNS:
        (root / entity).mkdir(parents=True, exist_ok=True)
        rows = [{**DEFAULTS.get(entity, {}), **row} for row in entities.get(entity, [])]
        by_day: dict[str, list[dict]] = {}
        for row in rows:
            by_day.setdefault(str(row[INTERVAL[entity]])[:10] or "0000-00-00", []).append(row)
        for day, day_rows in by_day.items():
            with open(root / entity / f"{entity}_{day}.csv", "w", newline="", encoding="utf-8") as fh:
                writer = csv.DictWriter(fh, fieldnames=COLUMNS[entity])
                writer.writeheader()
                for row in day_rows:
                    writer.writerow({c: "" if row.get(c) is None else row.get(c) for c in COLUMNS[entity]})
    return root


def resp(rid, account, at, score, contact=None, **kw) -> dict:
    return {"response_id": rid, "account_id": account, "contact_id": contact, "responded_at": at,
            "score": score, **kw}  # fmt: skip


def acct(account, updated_at, **kw) -> dict:
    return {"account_id": account, "updated_at": updated_at, **kw}


def row(df: pd.DataFrame, **where) -> pd.Series:
    mask = pd.Series(True, index=df.index)
    for col, val in where.items():
        mask &= df[col] == val
    assert mask.sum() == 1, f"expected one row for {where}, got {mask.sum()}"
    return df[mask].iloc[0]


D = dt.date


# --------------------------------------------------------------------------------------------
# load_sources
# --------------------------------------------------------------------------------------------


def test_load_sources_parses_quotes_rejects_bad_rows_and_filters_window(tmp_path):
    tricky = 'Slow, "very" slow\nand a second line, with commas'
    write_sources(
        tmp_path,
        survey_responses=[
            resp("r1", "A", "2025-01-03T14:05:00+00:00", 9, comment=tricky),
            resp("r2", "A", "2025-01-03T15:00:00+01:00", 11),  # score out of range
            resp("", "A", "2025-01-03T16:00:00+00:00", 5),  # missing id
            resp("r4", "A", "2025-01-03Tnot-a-time", 5),  # unparseable timestamp
            resp("r5", "A", "2025-01-04T10:00:00+00:00", 4),
            resp("r5", "A", "2025-01-04T10:00:00+00:00", 4),  # identical duplicate: collapsed
            resp("r6", "A", "2025-01-04T11:00:00+00:00", 4),
            resp("r6", "A", "2025-01-04T11:00:00+00:00", 5),  # conflicting duplicate: both rejected
            resp("r7", "A", "2025-01-04T12:00:00+00:00", "7.5"),  # not an integer
            resp("r8", "A", "2025-01-04T12:00:00+00:00", 8, comment="x" * 5001),  # too long
            resp("r9", "A", "2025-01-04T12:00:00+00:00", 8),  # kept ...
            resp("r9", "A", "2025-01-04T13:00:00+00:00", 3),  # ... same id in a later interval: rejected
            resp("r10", "A", "2025-01-05T00:00:00+00:00", 7),  # outside [start, end)
        ],
        accounts=[acct("A", "2025-01-01T00:00:00+00:00", arr="1234.567")],
        usage_daily=[{"account_id": "A", "usage_date": "2025-01-03", "sessions": -1}],
    )
    src = load_sources(tmp_path, dt.datetime(2025, 1, 3), dt.datetime(2025, 1, 5, tzinfo=dt.UTC))
    assert sorted(src.responses["response_id"]) == ["r1", "r5", "r9"]
    r1 = src.responses.set_index("response_id").loc["r1"]
    assert r1["comment"] == tricky
    assert r1["responded_at"] == pd.Timestamp("2025-01-03 14:05", tz="UTC")
    assert src.responses.set_index("response_id").at["r9", "score"] == 8
    assert sorted(zip(src.rejected["key"], src.rejected["reason"], strict=True)) == [
        ("", "missing_response_id"),
        ("A|2025-01-03", "negative_sessions"),
        ("r2", "score_out_of_range"),
        ("r4", "unparseable_responded_at"),
        ("r6", "duplicate_id_different_content"),
        ("r6", "duplicate_id_different_content"),
        ("r7", "non_integer_score"),
        ("r8", "comment_too_long"),
        ("r9", "duplicate_id_other_interval"),
    ]
    # accounts were updated before the window: filtered out by their own interval column
    assert src.accounts.empty
    assert load_sources(tmp_path).accounts["arr"].iloc[0] == pytest.approx(1234.57)
    assert list(src.keys()) == ["responses", "accounts", "contacts", "activities", "usage", "sends"]
    assert src["survey_responses"] is src.responses
    assert src.sends is None  # no survey_sends folder: the optional source is not available


def test_load_sources_rejects_future_timestamps(tmp_path):
    write_sources(
        tmp_path,
        survey_responses=[
            resp("r1", "A", "2025-06-20T10:00:00Z", 9),
            resp("r2", "A", "2025-06-21T11:00:00Z", 9),  # more than 24 h after "now"
        ],
    )
    src = load_sources(tmp_path, now=dt.datetime(2025, 6, 20, 10, 30, tzinfo=dt.UTC))
    assert list(src.responses["response_id"]) == ["r1"]
    assert list(src.rejected["reason"]) == ["future_responded_at"]


# --------------------------------------------------------------------------------------------
# nps_by_segment
# --------------------------------------------------------------------------------------------


@pytest.fixture
def nps_sources(tmp_path):
    # January: account A (arr 100k, plan pro) 9,10,9,7,6 ; account B (arr 20k, plan starter) 10,9,8,7,0
    #   -> 5 promoters, 3 passives, 2 detractors of 10
    # February: account C (arr null) 9 and 3
    jan = [
        ("A", 9),
        ("A", 10),
        ("A", 9),
        ("A", 7),
        ("A", 6),
        ("B", 10),
        ("B", 9),
        ("B", 8),
        ("B", 7),
        ("B", 0),
    ]
    responses = [resp(f"j{i}", a, f"2025-01-{i + 10:02d}T12:00:00+00:00", s) for i, (a, s) in enumerate(jan)]
    responses += [resp("f1", "C", "2025-02-03T08:00:00+00:00", 9), resp("f2", "C", "2025-02-04T08:00:00Z", 3)]
    return write_sources(
        tmp_path,
        survey_responses=responses,
        accounts=[
            acct("A", "2025-01-01T00:00:00+00:00", arr="100000", plan="pro"),
            acct("B", "2025-01-01T00:00:00+00:00", arr="20000", plan="starter", industry=""),
            acct("C", "2025-01-01T00:00:00+00:00", arr="", plan="pro"),
        ],
    )


def test_nps_categories_moe_and_revenue_weighting(nps_sources):
    out = nps_by_segment(load_sources(nps_sources))
    assert list(out.columns) == [
        "period_grain", "period_start", "segment_type", "segment_value", "responses", "promoters",
        "passives", "detractors", "nps", "margin_of_error", "revenue_weighted_nps", "below_min_n",
        "previous_period_start", "previous_responses", "previous_nps", "nps_change",
        "change_margin_of_error", "change_exceeds_margin_of_error", "change_p_value", "change_is_significant",
        "representative_nps", "representative_margin_of_error", "representative_design_effect",
        "representative_responses", "population_accounts", "representative_population", "representative_weighting",
        "sends", "responses_to_sends", "response_rate",
    ]  # fmt: skip
    assert out["sends"].isna().all()  # no survey_sends folder: the rate is not known
    jan = row(out, period_grain="month", period_start=D(2025, 1, 1), segment_type="overall")
    assert jan["segment_value"] == "all"
    assert (jan["responses"], jan["promoters"], jan["passives"], jan["detractors"]) == (10, 5, 3, 2)
    assert jan["nps"] == pytest.approx(30.0)
    # p = 0.5, d = 0.2: var = (0.7 - 0.3^2) / 10 = 0.061
    assert jan["margin_of_error"] == pytest.approx(1.96 * math.sqrt(0.061) * 100)
    # A: 100k x (3 - 1) = 200k over 500k ; B: 20k x (2 - 1) = 20k over 100k  ->  220k / 600k
    assert jan["revenue_weighted_nps"] == pytest.approx(100 * 220_000 / 600_000)
    assert bool(jan["below_min_n"]) is True

    feb = row(out, period_grain="month", period_start=D(2025, 2, 1), segment_type="overall")
    assert feb["nps"] == pytest.approx(0.0)
    assert np.isnan(feb["revenue_weighted_nps"])  # ARR sum is 0 (null arr = weight 0)
    # change vs January: 0 - 30; February p = d = 0.5, n = 2: var = (1 - 0) / 2 -> MoE 138.6;
    # combined sqrt(138.6^2 + 48.4^2) = 146.8 > 30: not a significant move
    assert (feb["previous_period_start"], feb["previous_responses"]) == (D(2025, 1, 1), 10)
    assert feb["nps_change"] == pytest.approx(-30.0)
    moe_feb, moe_jan = 1.96 * math.sqrt(0.5) * 100, 1.96 * math.sqrt(0.061) * 100
    assert feb["change_margin_of_error"] == pytest.approx(math.hypot(moe_feb, moe_jan))
    assert feb["change_exceeds_margin_of_error"] is False
    # January has no December: no comparison
    assert jan["previous_period_start"] == D(2024, 12, 1)
    assert np.isnan(jan["previous_nps"]) and jan["change_exceeds_margin_of_error"] is None
    assert row(out, period_grain="quarter", segment_type="overall")["previous_period_start"] == D(2024, 10, 1)
    # account_owner as of the response is a segment type (default owner o1)
    assert row(out, period_grain="month", period_start=D(2025, 1, 1), segment_type="account_owner")[
        "segment_value"
    ] == "o1"

    q1 = row(out, period_grain="quarter", period_start=D(2025, 1, 1), segment_type="overall")
    assert (q1["responses"], q1["promoters"], q1["detractors"]) == (12, 6, 3)
    assert q1["nps"] == pytest.approx(25.0)
    assert q1["revenue_weighted_nps"] == pytest.approx(100 * 220_000 / 600_000)

    starter = row(
        out, period_grain="month", period_start=D(2025, 1, 1), segment_type="plan", segment_value="starter"
    )
    assert (starter["promoters"], starter["passives"], starter["detractors"]) == (2, 2, 1)
    assert starter["nps"] == pytest.approx(20.0)
    # empty industry -> 'unknown'; only combinations with a response have a row
    assert row(out, period_grain="month", period_start=D(2025, 1, 1), segment_value="unknown",
               segment_type="industry")["responses"] == 5  # fmt: skip
    assert set(out.loc[out["segment_type"] == "plan", "segment_value"]) == {"pro", "starter"}
    assert (
        len(
            out[
                (out.period_grain == "month")
                & (out.period_start == D(2025, 2, 1))
                & (out.segment_type == "plan")
            ]
        )
        == 1
    )


def test_nps_min_n_flag(tmp_path):
    responses = [resp(f"r{i}", "A", f"2025-03-{1 + i % 28:02d}T00:00:00Z", 9) for i in range(30)]
    write_sources(tmp_path, survey_responses=responses, accounts=[acct("A", "2025-01-01T00:00:00Z", arr="1")])
    out = nps_by_segment(load_sources(tmp_path), Params(min_n=30))
    overall = row(out, period_grain="month", segment_type="overall")
    assert overall["responses"] == 30 and not overall["below_min_n"]
    assert overall["margin_of_error"] == pytest.approx(0.0)
    assert bool(row(nps_by_segment(load_sources(tmp_path), Params(min_n=31)), period_grain="month",
                    segment_type="overall")["below_min_n"])  # fmt: skip


def test_as_of_segmentation_and_bands(tmp_path):
    write_sources(
        tmp_path,
        survey_responses=[
            # P changes plan (and ARR) at 2025-02-10 12:00; a response at that exact instant sees the new one
            resp("p1", "P", "2025-02-10T11:59:59Z", 9),
            resp("p2", "P", "2025-02-10T12:00:00Z", 9),
            # Q's only version is later than the response -> earliest version
            resp("q1", "Q", "2025-02-01T00:00:00Z", 9),
            # tenure: customer_since 2025-01-01; 2025-07-02 is day 182, 2025-07-03 is day 183
            resp("t1", "T", "2025-07-02T23:59:59Z", 9),
            resp("t2", "T", "2025-07-03T00:00:00Z", 9),
            # usage: window for 2025-03-31 is [03-01, 03-30]
            resp("u1", "U1", "2025-03-31T10:00:00Z", 9),
            resp("u2", "U2", "2025-03-31T10:00:00Z", 9),
            resp("u3", "U3", "2025-03-31T10:00:00Z", 9),
            resp("u4", "U4", "2025-03-31T10:00:00Z", 9),
            resp("x1", "NOPE", "2025-03-31T10:00:00Z", 9),  # account never seen
        ],
        accounts=[
            acct("P", "2025-01-01T00:00:00Z", plan="starter", arr="9999.99"),
            acct("P", "2025-02-10T12:00:00Z", plan="pro", arr="10000"),
            acct("Q", "2025-03-01T00:00:00Z", plan="enterprise", arr="250000"),
            acct("T", "2025-01-01T00:00:00Z", customer_since="2025-01-01", arr="249999.99"),
            acct("U1", "2025-01-01T00:00:00Z"),
            acct("U2", "2025-01-01T00:00:00Z"),
            acct("U3", "2025-01-01T00:00:00Z"),
            acct("U4", "2025-01-01T00:00:00Z", customer_since=""),
        ],
        usage_daily=[
            # U1: 200 + 100 = 300 in window = 10/day -> medium; the days just outside do not count
            {"account_id": "U1", "usage_date": "2025-02-28", "sessions": 5000},
            {"account_id": "U1", "usage_date": "2025-03-01", "sessions": 200},
            {"account_id": "U1", "usage_date": "2025-03-30", "sessions": 100},
            {"account_id": "U1", "usage_date": "2025-03-31", "sessions": 5000},
            # U2: 299 -> 9.97/day -> low
            {"account_id": "U2", "usage_date": "2025-03-15", "sessions": 299},
            # U3: 1500 = 50/day -> high ; U4: no usage -> none
            {"account_id": "U3", "usage_date": "2025-03-15", "sessions": 1499},
            {"account_id": "U3", "usage_date": "2025-03-16", "sessions": 1},
        ],
    )
    r = enrich_responses(load_sources(tmp_path)).set_index("response_id")
    assert (r.at["p1", "plan"], r.at["p1", "arr_band"]) == ("starter", "under_10k")
    assert (r.at["p2", "plan"], r.at["p2", "arr_band"]) == ("pro", "10k_50k")
    assert (r.at["q1", "plan"], r.at["q1", "arr_band"]) == ("enterprise", "250k_plus")
    assert (r.at["t1", "tenure_band"], r.at["t2", "tenure_band"]) == ("0_6m", "6_12m")
    assert r.at["t1", "arr_band"] == "50k_250k"
    assert r.at["u1", "tenure_band"] == "2y_plus" and r.at["u4", "tenure_band"] == "unknown"
    assert [r.at[k, "usage_band"] for k in ["u1", "u2", "u3", "u4"]] == ["medium", "low", "high", "none"]
    assert r.at["u1", "usage_sessions_sum"] == 300
    assert (r.at["x1", "plan"], r.at["x1", "arr_band"], r.at["x1", "tenure_band"]) == ("unknown",) * 3

    out = nps_by_segment(load_sources(tmp_path))
    feb_plans = out[
        (out.period_grain == "month") & (out.period_start == D(2025, 2, 1)) & (out.segment_type == "plan")
    ]
    assert dict(zip(feb_plans.segment_value, feb_plans.responses, strict=True)) == {
        "starter": 1,
        "pro": 1,
        "enterprise": 1,
    }
    # revenue weighting uses ARR as of the response: (9999.99 + 10000 + 250000) all promoters -> 100
    assert row(out, period_grain="month", period_start=D(2025, 2, 1), segment_type="overall")[
        "revenue_weighted_nps"
    ] == pytest.approx(100.0)


# --------------------------------------------------------------------------------------------
# nps_by_segment: representative (post-stratified) NPS and the significance of changes
# --------------------------------------------------------------------------------------------


def test_collapse_strata_merges_small_strata_level_by_level():
    # plan x region x size, at least 5 respondents
    respondents = {
        ("pro", "emea", "s"): 7,  # kept
        ("pro", "emea", "m"): 3,  # small: with pro/emea/l (2) -> pro x emea x * has 5: kept there
        ("pro", "emea", "l"): 2,
        ("pro", "apac", "s"): 1,  # small, pro x apac x * has 1 + 0: still small; pro x * x * has 1 + 3 ...
        ("pro", "apac", "m"): 0,  # (an empty stratum with population merges the same way)
        ("pro", "amer", "s"): 3,  # ... + 3 = 4: still small -> other
        ("basic", "emea", "s"): 4,  # basic x emea x * has 4: small; basic x * x * 4 + 2 = 6: kept there
        ("basic", "apac", "s"): 2,
        ("free", "emea", "s"): 1,  # free: 1 -> other
    }
    into = collapse_strata(respondents, 5)
    assert into == {
        ("pro", "emea", "s"): ("pro", "emea", "s"),
        ("pro", "emea", "m"): ("pro", "emea"),
        ("pro", "emea", "l"): ("pro", "emea"),
        ("pro", "apac", "s"): (),
        ("pro", "apac", "m"): (),
        ("pro", "amer", "s"): (),
        ("basic", "emea", "s"): ("basic",),
        ("basic", "apac", "s"): ("basic",),
        ("free", "emea", "s"): (),
    }
    assert collapse_strata({("pro",): 1, ("basic",): 9}, 5) == {("pro",): (), ("basic",): ("basic",)}


@pytest.fixture
def representative_sources(tmp_path):
    """Q1 (all answers in January) and Q2 (May). Accounts at the end of Q1: A1, A2 pro/emea, A3
    pro/apac, A4 basic/emea, A7 enterprise/emea (it becomes pro exactly at 2025-04-01 00:00, which
    belongs to Q2); A5 (basic/emea) churned on 2025-02-15; A6 (basic/apac) is a customer from
    2025-04-10. GHOST is unknown to the CRM."""
    def acc(account, plan, region, arr, **kw):
        return acct(account, "2025-01-01T00:00:00Z", plan=plan, region=region, arr=arr, **kw)

    return write_sources(
        tmp_path,
        survey_responses=[
            resp("a1", "A1", "2025-01-10T10:00:00Z", 10),
            resp("a2", "A1", "2025-01-11T10:00:00Z", 9),
            resp("a3", "A2", "2025-01-12T10:00:00Z", 3),
            resp("a4", "A3", "2025-01-13T10:00:00Z", 9),
            resp("a5", "A4", "2025-01-14T10:00:00Z", 6),
            resp("a6", "A5", "2025-01-15T10:00:00Z", 10),
            resp("a7", "GHOST", "2025-01-16T10:00:00Z", 0),
            resp("b1", "A1", "2025-05-05T10:00:00Z", 9),
            resp("b2", "A2", "2025-05-06T10:00:00Z", 9),
            resp("b3", "A3", "2025-05-07T10:00:00Z", 9),
            resp("b4", "A4", "2025-05-08T10:00:00Z", 9),
        ],
        accounts=[
            acc("A1", "pro", "emea", "100"),
            acc("A2", "pro", "emea", "300"),
            acc("A3", "pro", "apac", "200"),
            acc("A4", "basic", "emea", "400"),
            acc("A5", "basic", "emea", "500"),
            acct("A5", "2025-02-15T00:00:00Z", plan="basic", region="emea", arr="500",
                 churned_at="2025-02-15T00:00:00Z"),
            acc("A6", "basic", "apac", "600", customer_since="2025-04-10"),
            acc("A7", "enterprise", "emea", "1000"),
            acct("A7", "2025-04-01T00:00:00Z", plan="pro", region="emea", arr="1000"),
        ],
    )  # fmt: skip


def test_representative_nps_post_stratified_to_active_accounts(representative_sources):
    out = nps_by_segment(load_sources(representative_sources), Params(representative_min_stratum_responses=2))
    q1 = row(out, period_grain="quarter", period_start=D(2025, 1, 1), segment_type="overall")
    # raw: P = a1 a2 a4 a6, D = a3 a5 a7 -> 100 x 1/7
    assert (q1["responses"], q1["nps"]) == (7, pytest.approx(100 / 7))
    # strata (>= 2 respondents), GHOST left out: pro/emea n=3 (P2 D1), 2 accounts; basic/emea n=2
    # (P1 D1), 1 account (A5 churned); pro/apac n=1 and enterprise/emea n=0 (1 account, A7 as of
    # the end) are small, so are their plans' leftovers -> other: n=1 (P1), 2 accounts. A6 is not
    # a customer yet. W = 2/5, 1/5, 2/5
    assert q1["population_accounts"] == 5 and q1["representative_responses"] == 6
    assert q1["representative_nps"] == pytest.approx(100 * (2 / 5 * 1 / 3 + 1 / 5 * 0 + 2 / 5 * 1))  # 53.3
    # var = sum W^2 (p + d - (p - d)^2) / n: pro/emea (1 - 1/9) / 3, basic/emea (1 - 0) / 2, other 0
    var = (2 / 5) ** 2 * (8 / 9) / 3 + (1 / 5) ** 2 * 1 / 2 + (2 / 5) ** 2 * 0
    assert q1["representative_margin_of_error"] == pytest.approx(1.96 * math.sqrt(var) * 100)
    # simple random sample of the 6 represented: P4 D2: (1 - 1/9) / 6
    assert q1["representative_design_effect"] == pytest.approx(var / ((8 / 9) / 6))
    assert (q1["representative_population"], q1["representative_weighting"]) == ("all_accounts", "accounts")

    # plan = pro: weighted to the pro accounts at the end of Q1 (A1, A2, A3; A7 is still enterprise):
    # pro/emea n=3 (2 accounts) kept, pro/apac n=1 (1 account) -> other
    pro = row(out, period_grain="quarter", period_start=D(2025, 1, 1), segment_type="plan", segment_value="pro")
    assert (pro["population_accounts"], pro["representative_population"]) == (3, "segment_accounts")
    assert pro["representative_nps"] == pytest.approx(100 * (2 / 3 * 1 / 3 + 1 / 3 * 1))
    # survey_type is not an account attribute: all accounts (every answer here is relational)
    rel = row(out, period_grain="quarter", period_start=D(2025, 1, 1), segment_type="survey_type")
    assert rel["representative_nps"] == pytest.approx(q1["representative_nps"])
    assert (rel["population_accounts"], rel["representative_population"]) == (5, "all_accounts")
    # the GHOST segment values have no represented response and, for account attributes, no population
    ghost = row(out, period_grain="quarter", period_start=D(2025, 1, 1), segment_type="plan", segment_value="unknown")
    assert (ghost["responses"], ghost["representative_responses"], ghost["population_accounts"]) == (1, 0, 0)
    assert np.isnan(ghost["representative_nps"]) and np.isnan(ghost["representative_margin_of_error"])

    # Q2 ends at as_of (2025-05-09): A6 is a customer, A7 pro, A5 gone -> 6 accounts, 4 of them pro
    q2 = row(out, period_grain="quarter", period_start=D(2025, 4, 1), segment_type="overall")
    assert q2["population_accounts"] == 6
    assert row(out, period_grain="quarter", period_start=D(2025, 4, 1), segment_type="plan",
               segment_value="pro")["population_accounts"] == 4  # fmt: skip
    # all four answers are promoters: 100 whatever the weights, variance 0 -> design effect null
    assert (q2["representative_nps"], q2["representative_margin_of_error"]) == (pytest.approx(100), 0)
    assert np.isnan(q2["representative_design_effect"])


def test_representative_nps_weighted_by_arr(representative_sources):
    out = nps_by_segment(
        load_sources(representative_sources),
        Params(representative_min_stratum_responses=2, representative_weighting="arr"),
    )
    q1 = row(out, period_grain="quarter", period_start=D(2025, 1, 1), segment_type="overall")
    # pro/emea A1 + A2 = 400, basic/emea A4 = 400, other A3 + A7 = 1200 (of 2000)
    assert q1["representative_nps"] == pytest.approx(100 * (0.2 * 1 / 3 + 0.2 * 0 + 0.6 * 1))
    var = 0.2**2 * (8 / 9) / 3 + 0.2**2 * 1 / 2
    assert q1["representative_margin_of_error"] == pytest.approx(1.96 * math.sqrt(var) * 100)
    assert (q1["population_accounts"], q1["representative_weighting"]) == (5, "arr")


def test_change_p_value_and_benjamini_hochberg(representative_sources):
    src = load_sources(representative_sources)
    out = nps_by_segment(src, Params(representative_min_stratum_responses=2))
    q2 = out[(out.period_grain == "quarter") & (out.period_start == D(2025, 4, 1))].set_index(
        ["segment_type", "segment_value"]
    )
    # Q2: A1..A4 all promoters (nps 100, variance 0). Q1 (var = (p + d - (p - d)^2) / n):
    # overall P4 D3 n7: z = (1 - 1/7) / sqrt((1 - 1/49) / 7) = 2.2913 -> p = 0.021947
    # known accounts only (industry, arr / tenure / employee band, owner) P4 D2 n6: z = sqrt(3) -> 0.08326
    # region emea P3 D2 n5: z = 0.8 / sqrt(0.96 / 5) = 1.8257 -> 0.06789
    # plan pro P3 D1 n4: z = 0.5 / sqrt(0.75 / 4) = 1.1547 -> 0.24821; basic P1 D1: z = sqrt(2) -> 0.15730
    expected = {
        ("overall", "all"): 0.021947, ("usage_band", "none"): 0.021947, ("survey_type", "relational"): 0.021947,
        ("trigger_event", "quarterly"): 0.021947, ("industry", "software"): 0.083265,
        ("arr_band", "under_10k"): 0.083265, ("tenure_band", "2y_plus"): 0.083265,
        ("employee_band", "51-200"): 0.083265, ("account_owner", "o1"): 0.083265,
        ("region", "emea"): 0.067889, ("plan", "pro"): 0.248213, ("plan", "basic"): 0.157299,
    }  # fmt: skip
    tested = q2[q2["change_p_value"].notna()]
    assert dict(tested["change_p_value"]) == pytest.approx(expected, abs=1e-6)
    # region apac: one promoter in both quarters, both variances 0: no test
    apac = q2.loc[("region", "apac")]
    assert np.isnan(apac["change_p_value"]) and apac["change_is_significant"] is None
    # BH at 5 %, m = 12: the smallest p (0.02195, ranks 1-4) is above 4/12 x 0.05 = 0.0167 and no
    # larger rank passes either: nothing is significant, though 4 rows have p < 0.05 and the margin
    # of error flag calls the overall move (100 - 14.3 > 1.96 x 37.4) real
    assert not tested["change_is_significant"].any()
    assert q2.loc[("overall", "all"), "change_exceeds_margin_of_error"] is True
    # at 10 %: rank 4 passes (0.02195 <= 0.0333), rank 5 (0.0679) fails its own 0.0417, rank 10
    # (0.08326 <= 10/12 x 0.1 = 0.08333) passes -> the 10 smallest are significant (step-up)
    out10 = nps_by_segment(src, Params(representative_min_stratum_responses=2, nps_change_fdr=0.1))
    q2_10 = out10[(out10.period_grain == "quarter") & (out10.period_start == D(2025, 4, 1))].set_index(
        ["segment_type", "segment_value"]
    )
    significant = q2_10[q2_10["change_is_significant"].astype(object).eq(True)].index
    assert set(significant) == set(expected) - {("plan", "pro"), ("plan", "basic")}
    # months: every January / May row lacks a previous month
    assert out.loc[out.period_grain == "month", "change_p_value"].isna().all()


# --------------------------------------------------------------------------------------------
# detractor_recovery
# --------------------------------------------------------------------------------------------


@pytest.fixture
def recovery_sources(tmp_path):
    return write_sources(
        tmp_path,
        survey_responses=[
            # d1: linked follow-up at exactly +24 h -> within_24h; next (c1) 8 -> recovered, not fully
            resp("d1", "A", "2025-01-05T10:00:00Z", 3, contact="c1"),
            resp("n1", "A", "2025-03-01T10:00:00Z", 8, contact="c1"),
            # d2: linked follow-up at exactly +48 h -> within_48h; next exactly 200 days later, 10
            resp("d2", "B", "2025-01-06T00:00:00Z", 6, contact="c2"),
            resp("n2", "B", "2025-07-25T00:00:00Z", 10, contact="c2"),
            # d3: unlinked activity on the account at day 13 -> later; no next; account churned after
            resp("d3", "C", "2025-01-10T00:00:00Z", 0, contact="c3"),
            # d4: unlinked activity at day 15 -> never; churned before the response -> awaiting
            resp("d4", "D", "2025-01-10T00:00:00Z", 5, contact="c4"),
            # d5: respondent = account E (no contact); its next is 200 days + 1 s later -> not observed;
            # c9's response on the same account is another respondent. E un-churned in its latest version.
            resp("d5", "E", "2025-01-12T00:00:00Z", 6),
            resp("e2", "E", "2025-02-01T00:00:00Z", 8, contact="c9"),
            resp("e3", "E", "2025-07-31T00:00:01Z", 9),
            # tie on responded_at: ordered by response_id, so r6a's next is r6b (9)
            resp("r6b", "F", "2025-01-15T00:00:00Z", 9, contact="c6"),
            resp("r6a", "F", "2025-01-15T00:00:00Z", 2, contact="c6"),
        ],
        accounts=[
            acct("A", "2025-01-01T00:00:00Z"),
            acct("B", "2025-01-01T00:00:00Z"),
            acct("C", "2025-01-01T00:00:00Z"),
            acct("C", "2025-02-01T00:00:00Z", churned_at="2025-02-01T00:00:00Z"),
            acct("D", "2025-01-01T00:00:00Z", churned_at="2025-01-03T00:00:00Z"),
            acct("E", "2025-01-01T00:00:00Z", churned_at="2025-01-20T00:00:00Z"),
            acct("E", "2025-03-01T00:00:00Z"),
            acct("F", "2025-01-01T00:00:00Z"),
        ],
        activities=[
            {
                "activity_id": "a1",
                "account_id": "A",
                "response_id": "d1",
                "created_at": "2025-01-06T10:00:00Z",
            },
            {
                "activity_id": "a2",
                "account_id": "B",
                "response_id": "d2",
                "created_at": "2025-01-08T00:00:00Z",
            },
            {
                "activity_id": "a2x",
                "account_id": "B",
                "created_at": "2025-01-05T00:00:00Z",
            },  # before: ignored
            {"activity_id": "a3", "account_id": "C", "created_at": "2025-01-23T00:00:00Z"},  # day 13
            {"activity_id": "a4", "account_id": "D", "created_at": "2025-01-25T00:00:00Z"},  # day 15
            {
                "activity_id": "a4x",
                "account_id": "D",
                "response_id": "d4",
                "created_at": "2025-01-09T00:00:00Z",
            },
        ],
    )


def test_detractor_outcomes_per_response(recovery_sources):
    det = detractor_outcomes(load_sources(recovery_sources)).set_index("response_id")
    assert sorted(det.index) == ["d1", "d2", "d3", "d4", "d5", "r6a"]
    assert det["follow_up_bucket"].to_dict() == {
        "d1": "within_24h", "d2": "within_48h", "d3": "later", "d4": "never", "d5": "never", "r6a": "never",
    }  # fmt: skip
    assert det.at["d3", "follow_up_hours"] == pytest.approx(13 * 24)
    assert det["has_next"].to_dict() == {
        "d1": True,
        "d2": True,
        "d3": False,
        "d4": False,
        "d5": False,
        "r6a": True,
    }
    assert det.at["r6a", "next_response_id"] == "r6b"
    assert det.at["d5", "next_response_id"] == "e3"
    assert det["lost_to_churn"].to_dict() == {k: k == "d3" for k in det.index}
    assert det["awaiting_next"].to_dict() == {k: k in {"d4", "d5"} for k in det.index}


def test_detractor_recovery_mart(recovery_sources):
    out = detractor_recovery(load_sources(recovery_sources))
    cols = [
        "detractors",
        "with_next_response",
        "recovered",
        "fully_recovered",
        "awaiting_next",
        "lost_to_churn",
    ]
    expected = {
        "within_24h": (1, 1, 1, 0, 0, 0, 1.0),
        "within_48h": (1, 1, 1, 1, 0, 0, 1.0),
        "later": (1, 0, 0, 0, 0, 1, None),
        "never": (3, 1, 1, 1, 2, 0, 1.0),
    }
    # every month/quarter with a detractor (only January / Q1), all four buckets
    assert sorted(set(zip(out.period_grain, out.period_start, strict=True))) == [
        ("month", D(2025, 1, 1)),
        ("quarter", D(2025, 1, 1)),
    ]
    for grain in ["month", "quarter"]:
        for bucket, (*counts, rate) in expected.items():
            got = row(out, period_grain=grain, follow_up_bucket=bucket, segment_type="overall")
            assert [int(got[c]) for c in cols] == counts, (grain, bucket)
            assert np.isnan(got["recovery_rate"]) if rate is None else got["recovery_rate"] == rate, bucket
            assert (
                got["detractors"] == got["with_next_response"] + got["awaiting_next"] + got["lost_to_churn"]
            )


def test_next_response_window_is_a_parameter(recovery_sources):
    det = detractor_outcomes(load_sources(recovery_sources), Params(next_response_window_days=199))
    assert not det.set_index("response_id").at["d2", "has_next"]  # 200 days > 199


# --------------------------------------------------------------------------------------------
# theme_recurrence
# --------------------------------------------------------------------------------------------


def test_theme_recurrence_statuses_and_arr_at_risk(tmp_path):
    responses, assigned = [], []

    def add(rid, account, at, score, theme):
        responses.append(resp(rid, account, at, score))
        assigned.append((rid, theme))

    # theme 7: Q1'25 3 (passives) | Q2'25 4 | Q3'25 2 | Q4'25 0 | Q1'26 3 | Q2'26 0
    for i in range(3):
        add(f"a{i}", "C", f"2025-02-0{i + 1}T00:00:00Z", 7, 7)
    add("b1", "A", "2025-04-10T00:00:00Z", 2, 7)  # A at 100k (superseded by b3)
    add("b2", "B", "2025-04-15T00:00:00Z", 6, 7)  # B at 30k
    add("b3", "A", "2025-05-20T00:00:00Z", 0, 7)  # A at 120k: A's latest detractor mention in Q2
    add("b4", "B", "2025-06-01T00:00:00Z", 10, 7)
    add("c1", "C", "2025-07-01T00:00:00Z", 3, 7)
    add("c2", "C", "2025-09-30T23:59:59Z", 9, 7)
    for i in range(3):
        add(f"e{i}", "C", f"2026-01-0{i + 1}T00:00:00Z", 8, 7)
    responses.append(resp("z1", "C", "2026-04-02T00:00:00Z", 5))  # latest quarter with a response
    assigned.append(("z1", None))  # unassigned
    # theme 9 (active): a single mention in Q3'25 -> present never
    add("t9", "C", "2025-08-01T00:00:00Z", 1, 9)
    # theme 8 is merged: no rows
    add("m1", "C", "2025-08-02T00:00:00Z", 1, 8)
    assigned.append(("not-in-sources", 7))

    write_sources(
        tmp_path,
        survey_responses=responses,
        accounts=[
            acct("A", "2025-01-01T00:00:00Z", arr="100000"),
            acct("A", "2025-05-01T00:00:00Z", arr="120000"),
            acct("B", "2025-01-01T00:00:00Z", arr="30000"),
            acct("C", "2025-01-01T00:00:00Z", arr="5000"),
        ],
    )
    comment_themes = pd.DataFrame(assigned, columns=["response_id", "theme_id"])
    themes = pd.DataFrame(
        {
            "theme_id": [7, 8, 9],
            "label": ["Login / SSO", "old", "Invoices"],
            "keywords": [["login", "sso"], ["x"], np.array(["invoice", "billing"])],
            "status": ["active", "merged", "active"],
        }
    )
    out = theme_recurrence(load_sources(tmp_path), comment_themes, themes)
    assert list(out.columns) == [
        "theme_id", "theme_level", "parent_theme_id", "parent_theme_label", "is_no_feedback", "theme_label",
        "keywords", "is_actionable", "actionability_source", "quarter_start",
        "mentions", "promoter_mentions", "passive_mentions", "detractor_mentions", "detractor_share",
        "promoter_mention_share", "detractor_mention_share", "negative_share", "positive_share", "arr_at_risk",
        "quarters_present", "current_streak", "first_seen_quarter", "last_seen_quarter", "status",
    ]  # fmt: skip
    assert set(out["theme_id"]) == {7, 9}
    assert out["negative_share"].isna().all() and out["positive_share"].isna().all()  # no sentiment given

    q1, q2, q3 = D(2025, 1, 1), D(2025, 4, 1), D(2025, 7, 1)
    q4, q5, q6 = D(2025, 10, 1), D(2026, 1, 1), D(2026, 4, 1)
    nan = float("nan")
    t7 = pd.DataFrame(
        [
            # quarter, mentions, det, share, arr, present, streak, first, last, status
            (q1, 3, 0, 0.0, 0.0, 1, 1, q1, q1, "new"),
            (q2, 4, 3, 0.75, 150_000.0, 2, 2, q1, q2, "recurring"),
            (q3, 2, 1, 0.5, 5_000.0, 2, 0, q1, q2, "resolved"),
            (q4, 0, 0, nan, 0.0, 2, 0, q1, q2, "absent"),
            (q5, 3, 0, 0.0, 0.0, 3, 1, q1, q5, "re-emerged"),
            (q6, 0, 0, nan, 0.0, 3, 0, q1, q5, "resolved"),
        ],
        columns=[
            "quarter_start", "mentions", "detractor_mentions", "detractor_share", "arr_at_risk",
            "quarters_present", "current_streak", "first_seen_quarter", "last_seen_quarter", "status",
        ],
    )  # fmt: skip
    t7.insert(0, "theme_id", 7)
    t7.insert(1, "theme_label", "Login / SSO")
    t7.insert(2, "keywords", "login, sso")
    compare_frames(out[out.theme_id == 7][t7.columns], t7, keys=["theme_id", "quarter_start"])
    # Q2'25: mentions 2 (6 is a detractor too), 0, 10 -> 1 promoter, 0 passive, 3 detractors; the
    # quarter has 1 promoter (b4) and 3 detractors overall: each mentions the theme
    q2_row = row(out, theme_id=7, quarter_start=q2)
    assert (q2_row["promoter_mentions"], q2_row["passive_mentions"], q2_row["detractor_mentions"]) == (1, 0, 3)
    assert (q2_row["promoter_mention_share"], q2_row["detractor_mention_share"]) == (1.0, 1.0)
    # Q3'25: detractors c1, t9, m1 (m1's theme 8 is merged without a target: dropped); c1 mentions 7
    assert row(out, theme_id=7, quarter_start=q3)["detractor_mention_share"] == pytest.approx(1 / 3)
    # nobody decided: theme 7 has 4 detractor mentions of 12 (0.33 >= 0.3), theme 9 1 of 1
    assert row(out, theme_id=7, quarter_start=q1)["is_actionable"]
    assert row(out, theme_id=9, quarter_start=q3)["is_actionable"]
    assert set(out["actionability_source"]) == {"heuristic"}
    stricter = theme_recurrence(load_sources(tmp_path), comment_themes, themes,
                                Params(theme_actionable_min_detractor_share=0.34))  # fmt: skip
    assert not row(stricter, theme_id=7, quarter_start=q1)["is_actionable"]
    # a person's decision wins over the heuristic
    decided = themes.assign(is_actionable=[False, None, None])
    assert not row(theme_recurrence(load_sources(tmp_path), comment_themes, decided), theme_id=7,
                   quarter_start=q1)[["is_actionable"]].item()  # fmt: skip

    t9 = out[out.theme_id == 9]
    assert list(t9["quarter_start"]) == [q3, q4, q5, q6]
    assert list(t9["status"]) == ["absent"] * 4
    assert list(t9["quarters_present"]) == [0] * 4
    assert t9["first_seen_quarter"].isna().all() and t9["last_seen_quarter"].isna().all()
    assert t9["keywords"].iloc[0] == "invoice, billing"
    assert t9["arr_at_risk"].iloc[0] == 5_000.0  # detractor mention, even though absent


def test_theme_recurrence_sentiment_shares(tmp_path):
    """negative_share / positive_share over the theme's mentions with a sentiment in the quarter; a
    mention without one counts in neither; null without any; a parent theme counts its sub-themes'."""
    rows = [  # response, responded_at, score, sub-theme, sentiment
        ("r1", "2025-02-01T00:00:00Z", 2, 1, "negative"),
        ("r2", "2025-02-02T00:00:00Z", 3, 1, "negative"),
        ("r3", "2025-02-03T00:00:00Z", 9, 1, "positive"),
        ("r4", "2025-02-04T00:00:00Z", 7, 1, None),  # themed, not scored
        ("r5", "2025-02-05T00:00:00Z", 8, 2, "neutral"),
        ("r6", "2025-05-01T00:00:00Z", 10, 1, None),
        ("r7", "2025-08-01T00:00:00Z", 10, 2, "positive"),
    ]
    write_sources(tmp_path, survey_responses=[resp(r, "A", at, score) for r, at, score, _, _ in rows],
                  accounts=[acct("A", "2025-01-01T00:00:00Z", arr="1000")])
    comment_themes = pd.DataFrame([(r, t, sent) for r, _, _, t, sent in rows],
                                  columns=["response_id", "theme_id", "sentiment"])
    themes = pd.DataFrame({
        "theme_id": [1, 2, 10], "label": ["slow", "reports", "product"], "keywords": [["a"], ["b"], ["c"]],
        "status": ["active"] * 3, "level": ["subtheme", "subtheme", "theme"], "parent_theme_id": [10, 10, None],
    })
    out = theme_recurrence(load_sources(tmp_path), comment_themes, themes)
    q1, q2, q3 = D(2025, 1, 1), D(2025, 4, 1), D(2025, 7, 1)

    def shares(theme_id, quarter):
        r = row(out, theme_id=theme_id, quarter_start=quarter)
        return r["negative_share"], r["positive_share"]

    assert shares(1, q1) == (pytest.approx(2 / 3), pytest.approx(1 / 3))  # r4 has no sentiment
    assert shares(2, q1) == (0.0, 0.0)  # neutral only
    assert shares(10, q1) == (0.5, 0.25)  # the parent: r1-r3 and r5 scored
    assert all(np.isnan(v) for v in shares(1, q2))  # one mention, not scored
    assert all(np.isnan(v) for v in shares(1, q3))  # no mention
    assert shares(2, q3) == (0.0, 1.0)


# --------------------------------------------------------------------------------------------
# compare_frames
# --------------------------------------------------------------------------------------------


def _expected_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "period_start": [D(2025, 1, 1), D(2025, 2, 1), D(2025, 3, 1)],
            "segment": ["all", "all", "all"],
            "responses": [10, 12, 3],
            "nps": [30.0, 25.0, float("nan")],
            "label": ["a", None, "c"],
        }
    )


def test_compare_frames_accepts_equal_frames_from_a_driver():
    actual = pd.DataFrame(
        {  # as a DB driver returns them: Decimal, None for null, timestamps for dates, other row order
            "period_start": [
                pd.Timestamp("2025-03-01"),
                pd.Timestamp("2025-01-01", tz="UTC"),
                dt.datetime(2025, 2, 1),
            ],
            "segment": ["all", "all", "all"],
            "responses": [3, 10, 12],
            "nps": [None, Decimal("30.0000000001"), Decimal("25")],
            "label": ["c", "a", float("nan")],
        }
    )
    compare_frames(actual, _expected_frame(), keys=["period_start", "segment"])


def test_compare_frames_reports_wrong_value():
    actual = _expected_frame()
    actual.loc[1, "nps"] = 24.5
    with pytest.raises(AssertionError) as err:
        compare_frames(actual, _expected_frame(), keys=["period_start", "segment"])
    msg = str(err.value)
    assert "1 value mismatch" in msg and "'nps'" in msg and "24.5" in msg and "25.0" in msg


def test_compare_frames_reports_missing_and_extra_keys():
    actual = _expected_frame().iloc[:2].copy()
    actual.loc[5] = [D(2025, 9, 1), "all", 1, 0.0, "x"]
    with pytest.raises(AssertionError) as err:
        compare_frames(actual, _expected_frame(), keys=["period_start", "segment"])
    msg = str(err.value)
    assert "missing in actual: [(datetime.date(2025, 3, 1), 'all')]" in msg
    assert "extra in actual: [(datetime.date(2025, 9, 1), 'all')]" in msg


def test_compare_frames_reports_columns_and_null_vs_value():
    actual = _expected_frame().drop(columns=["label"])
    actual.loc[2, "nps"] = 0.0
    with pytest.raises(AssertionError) as err:
        compare_frames(actual, _expected_frame(), keys=["period_start", "segment"])
    msg = str(err.value)
    assert "missing in actual ['label']" in msg and "'nps'" in msg


# --------------------------------------------------------------------------------------------
# theme_impact, passive_movement, promoter_queue
# --------------------------------------------------------------------------------------------


def test_theme_impact_by_hand(tmp_path):
    """One quarter, 10 respondents on two plans; NPS 0 overall (4 promoters, 4 detractors)."""
    rows = [  # response, account, score, sub-theme
        ("r1", "A", 2, 1), ("r2", "A", 3, 1), ("r3", "B", 5, 1), ("r4", "B", 0, 9),
        ("r5", "C", 10, 1), ("r6", "C", 9, 2), ("r7", "C", 9, None), ("r8", "C", 10, None),
        ("r9", "C", 7, None), ("r10", "C", 8, None),
    ]
    write_sources(
        tmp_path,
        survey_responses=[resp(r, a, f"2025-02-{i + 1:02d}T00:00:00Z", s) for i, (r, a, s, _) in enumerate(rows)],
        accounts=[acct("A", "2025-01-01T00:00:00Z", arr="100", plan="pro"),
                  acct("A", "2025-02-01T12:00:00Z", arr="300", plan="pro"),  # r2 sees 300, r1 100
                  acct("B", "2025-01-01T00:00:00Z", arr="50", plan="pro"),
                  acct("C", "2025-01-01T00:00:00Z", arr="999", plan="team")],
    )
    sentiment = {"r1": "negative", "r2": "negative", "r5": "positive", "r6": "neutral"}  # r3: not scored
    comment_themes = pd.DataFrame([(r, t, sentiment.get(r)) for r, _, _, t in rows],
                                  columns=["response_id", "theme_id", "sentiment"])
    themes = pd.DataFrame({
        "theme_id": [1, 2, 9, 10], "label": ["billing", "support", "nothing", "money"],
        "keywords": [["a"], ["b"], ["c"], ["d"]], "status": ["active"] * 4,
        "level": ["subtheme", "subtheme", "subtheme", "theme"], "parent_theme_id": [10, 10, None, None],
        "kind": ["discovered", "discovered", "no_feedback", "discovered"],
    })
    out = theme_impact(load_sources(tmp_path), comment_themes, themes)
    q = D(2025, 1, 1)
    t1 = row(out, theme_id=1, quarter_start=q, segment_type="overall")
    # mentioners r1 r2 r3 (detractors) r5 (promoter): NPS -50; others 3 P, 2 passives, 1 D: 33.3
    assert (t1["respondents"], t1["mentioners"], t1["detractor_mentioners"]) == (10, 4, 3)
    assert t1["nps_mentioners"] == pytest.approx(-50) and t1["nps_non_mentioners"] == pytest.approx(100 / 3)
    assert t1["nps_difference"] == pytest.approx(-50 - 100 / 3)
    assert t1["nps_points_at_stake"] == pytest.approx(30)  # 100 x 3 / 10: NPS 0 -> 30 with them passive
    assert t1["mentioners_margin_of_error"] == pytest.approx(1.96 * 100 * math.sqrt((0.25 + 0.75 - 0.25) / 4))
    assert t1["detractor_arr"] == pytest.approx(300 + 50)  # A once, at its latest detractor mention
    assert t1["priority_quadrant"] == "high_frequency_high_impact" and t1["priority_rank"] == 1
    assert t1["negative_share"] == pytest.approx(2 / 3) and t1["positive_share"] == pytest.approx(1 / 3)
    t2 = row(out, theme_id=2, quarter_start=q, segment_type="overall")
    assert t2["nps_points_at_stake"] == 0 and t2["priority_quadrant"] == "low_frequency_low_impact"
    nothing = row(out, theme_id=9, quarter_start=q, segment_type="overall")
    assert nothing["priority_quadrant"] is None and pd.isna(nothing["priority_rank"])
    parent = row(out, theme_id=10, quarter_start=q, segment_type="overall")
    assert parent["theme_level"] == "theme" and parent["mentioners"] == 5  # r1 r2 r3 r5 r6
    # plan pro: r1-r4, all detractors; theme 1 mentioned by r1-r3: NPS -100 both sides
    pro = row(out, theme_id=1, quarter_start=q, segment_type="plan", segment_value="pro")
    assert (pro["respondents"], pro["mentioners"]) == (4, 3)
    assert pro["nps_difference"] == 0 and pro["nps_points_at_stake"] == pytest.approx(75)
    assert pro["difference_exceeds_margin_of_error"] is False
    # theme 2 has no mention on plan pro: no row
    assert not ((out["theme_id"] == 2) & (out["segment_value"] == "pro")).any()


def test_passive_movement_by_hand(tmp_path):
    write_sources(
        tmp_path,
        survey_responses=[
            resp("p1", "A", "2025-01-10T00:00:00Z", 7, contact="c1"),
            resp("n1", "A", "2025-04-10T00:00:00Z", 9, contact="c1"),
            resp("p2", "A", "2025-01-11T00:00:00Z", 8, contact="c2"),
            resp("n2", "A", "2025-02-11T00:00:00Z", 3, contact="c2"),
            resp("p3", "A", "2025-01-12T00:00:00Z", 8, contact="c3"),  # 201 days later: not "next"
            resp("n3", "A", "2025-08-01T00:00:00Z", 2, contact="c3"),
            resp("p4", "B", "2025-02-12T00:00:00Z", 7, contact="c4"),  # B churned after: lost
        ],
        accounts=[acct("A", "2025-01-01T00:00:00Z"), acct("B", "2025-01-01T00:00:00Z"),
                  acct("B", "2025-03-01T00:00:00Z", churned_at="2025-03-01T00:00:00Z")],
    )
    out = passive_movement(load_sources(tmp_path))
    q1 = row(out, period_grain="quarter", period_start=D(2025, 1, 1), segment_type="overall")
    assert (q1["passives"], q1["with_next_response"], q1["converted"], q1["slipped"]) == (4, 2, 1, 1)
    assert (q1["awaiting_next"], q1["lost_to_churn"]) == (1, 1)
    assert q1["conversion_rate"] == 0.5 and q1["slip_rate"] == 0.5
    feb = row(out, period_grain="month", period_start=D(2025, 2, 1), segment_type="overall")
    assert (feb["passives"], feb["with_next_response"], feb["lost_to_churn"]) == (1, 0, 1)
    assert pd.isna(feb["conversion_rate"])


def test_promoter_queue_by_hand(tmp_path):
    """as_of 2025-04-01: window from 2025-03-02, cooldown from 2025-01-01."""
    write_sources(
        tmp_path,
        survey_responses=[
            resp("big", "A", "2025-03-10T00:00:00Z", 10, contact="ca"),
            resp("new", "B", "2025-03-20T00:00:00Z", 9, contact="cb"),
            resp("old", "B", "2025-03-02T00:00:00Z", 9, contact="cb2"),
            resp("x_window", "B", "2025-03-01T23:00:00Z", 9, contact="cb3"),
            resp("x_asked", "A", "2025-03-15T00:00:00Z", 10, contact="ca2"),
            resp("x_account_ask", "C", "2025-03-15T00:00:00Z", 10, contact="cc"),
            resp("x_again", "B", "2025-03-05T00:00:00Z", 10, contact="cb4"),
            resp("again", "B", "2025-03-25T00:00:00Z", 4, contact="cb4"),
            resp("last", "B", "2025-03-31T12:00:00Z", 5, contact="cb5"),  # as_of = next midnight
        ],
        accounts=[acct("A", "2025-01-01T00:00:00Z", arr="90000", owner="o1"),
                  acct("B", "2025-01-01T00:00:00Z", arr="10000", owner="o2"),
                  acct("C", "2025-01-01T00:00:00Z", arr="500000", owner="o3")],
        activities=[
            {"activity_id": "a1", "account_id": "A", "contact_id": "ca", "created_at": "2024-12-31T23:00:00Z",
             "outcome": "referral_requested", "activity_type": "email"},  # before the cooldown
            {"activity_id": "a2", "account_id": "A", "contact_id": "ca2", "created_at": "2025-03-16T00:00:00Z",
             "outcome": "review_requested", "activity_type": "email"},
            {"activity_id": "a3", "account_id": "C", "created_at": "2025-02-01T00:00:00Z",
             "outcome": "case_study_requested", "activity_type": "meeting"},
            {"activity_id": "a4", "account_id": "B", "contact_id": "cb", "created_at": "2025-03-21T00:00:00Z",
             "outcome": "reached", "activity_type": "call"},  # not an ask
        ],
    )
    src = load_sources(tmp_path)
    out = promoter_queue(src, pd.DataFrame(columns=["response_id", "theme_id"]),
                         pd.DataFrame(columns=["theme_id", "label", "keywords", "status"]))
    assert out["response_id"].tolist() == ["big", "new", "old"]
    assert out["queue_position"].tolist() == [1, 2, 3]
    assert out.loc[0, "last_asked_at"] == pd.Timestamp("2024-12-31T23:00:00Z")
    assert out.loc[0, "account_owner"] == "o1" and out.loc[1, "days_since_response"] == pytest.approx(12)
    only_calls = promoter_queue(src, pd.DataFrame(columns=["response_id", "theme_id"]),
                                pd.DataFrame(columns=["theme_id", "label", "keywords", "status"]),
                                Params(promoter_ask_activity_types=("call",)))
    # only calls count as asks: the e-mail and meeting asks no longer do; a call that "reached" is no ask
    assert set(only_calls["response_id"]) == {"big", "new", "old", "x_asked", "x_account_ask"}


# --------------------------------------------------------------------------------------------
# survey sends: response rates and fatigue
# --------------------------------------------------------------------------------------------

SEND_COLUMNS = ["send_id", "survey_id", "survey_type", "trigger_event", "account_id", "contact_id", "channel",
                "sent_at", "response_id"]


def write_sends(root: Path, rows: list[dict]) -> None:
    """survey_sends drops (<root>/survey_sends/survey_sends_<date of sent_at>.csv); an empty list
    writes a header-only file: the source is configured, with no sends."""
    folder = root / "survey_sends"
    folder.mkdir(parents=True, exist_ok=True)
    by_day: dict[str, list[dict]] = {}
    for r in rows:
        by_day.setdefault(str(r["sent_at"])[:10] or "0000-00-00", []).append(r)
    for day, day_rows in (by_day or {"2025-01-01": []}).items():
        with open(folder / f"survey_sends_{day}.csv", "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=SEND_COLUMNS)
            writer.writeheader()
            for r in day_rows:
                full = {"survey_type": "relational", "trigger_event": "quarterly", "channel": "email", **r}
                writer.writerow({c: "" if full.get(c) is None else full[c] for c in SEND_COLUMNS})


def send(sid, account, contact, survey, at, response_id=None, **kw) -> dict:
    return {"send_id": sid, "account_id": account, "contact_id": contact, "survey_id": survey, "sent_at": at,
            "response_id": response_id, **kw}


def test_load_sources_reads_and_validates_survey_sends(tmp_path):
    write_sources(tmp_path, survey_responses=[resp("r1", "A", "2025-01-05T10:00:00Z", 9)])
    write_sends(tmp_path, [
        send("s1", "A", "c1", "S", "2025-01-05T09:00:00Z", "r1"),
        send("s2", "A", "c2", "S", "2025-01-05T09:00:00Z", survey_type=""),  # no type: kept
        send("s3", "A", "c3", "S", "2025-01-05T09:00:00Z", survey_type="nps"),
        send("s4", "", "c4", "S", "2025-01-05T09:00:00Z"),
        send("s5", "A", "c5", "S", "2025-01-05Tlater"),
    ])
    src = load_sources(tmp_path)
    assert sorted(src.sends["send_id"]) == ["s1", "s2"]
    assert src.sends.set_index("send_id").at["s1", "response_id"] == "r1"
    rejected = src.rejected[src.rejected["entity"] == "survey_sends"]
    assert sorted(zip(rejected["key"], rejected["reason"], strict=True)) == [
        ("s3", "invalid_survey_type"), ("s4", "missing_account_id"), ("s5", "unparseable_sent_at")]


@pytest.fixture
def sends_sources(tmp_path):
    """as_of 2025-04-01 (responses up to 2025-03-31). A is pro until 2025-02-01 and basic after; B is
    enterprise. s1 links r1 (linked); s2 is unlinked and r2 answers the same survey and contact 10
    days later (matched); s3 gets no answer; s4's response r4 comes 33 days after it (outside the
    30-day window); s5 links r5, which is answered after as_of (not known: unanswered); s6 is sent
    at as_of (not known)."""
    write_sources(
        tmp_path,
        survey_responses=[
            resp("r1", "A", "2025-01-11T00:00:00Z", 10, contact="c1", survey_id="S1"),
            resp("r2", "A", "2025-01-20T00:00:00Z", 6, contact="c2", survey_id="S1"),
            resp("r4", "B", "2025-03-20T00:00:00Z", 9, contact="c4", survey_id="S2", survey_type="transactional",
                 trigger_event="onboarding"),
            resp("r_last", "B", "2025-03-31T12:00:00Z", 8, contact="c9", survey_id="S9"),
            resp("r5", "A", "2025-04-02T00:00:00Z", 9, contact="c1", survey_id="S3"),
        ],
        accounts=[acct("A", "2025-01-01T00:00:00Z", plan="pro"), acct("A", "2025-02-01T00:00:00Z", plan="basic"),
                  acct("B", "2025-01-01T00:00:00Z", plan="enterprise")],
    )
    write_sends(tmp_path, [
        send("s1", "A", "c1", "S1", "2025-01-10T00:00:00Z", "r1"),
        send("s2", "A", "c2", "S1", "2025-01-10T00:00:00Z"),
        send("s3", "A", "c3", "S1", "2025-01-10T00:00:00Z"),
        send("s4", "B", "c4", "S2", "2025-02-15T00:00:00Z", survey_type="transactional", trigger_event="onboarding"),
        send("s5", "A", "c1", "S3", "2025-03-05T00:00:00Z", "r5", survey_type="transactional", trigger_event=""),
        send("s6", "B", "c5", "S2", "2025-04-01T00:00:00Z", survey_type="transactional"),
    ])
    return tmp_path


def test_survey_sends_answered_links_matches_and_segments_as_of_the_send(sends_sources):
    from tests.reference import survey_sends_answered

    out = survey_sends_answered(load_sources(sends_sources), as_of="2025-04-01").set_index("send_id")
    assert list(out.index) == ["s1", "s2", "s3", "s4", "s5"]
    assert out["answered_by"].tolist() == ["r1", "r2", None, None, None]
    assert out["answer_source"].tolist() == ["linked", "matched", None, None, None]
    assert out["plan"].tolist() == ["pro", "pro", "pro", "enterprise", "basic"]
    assert out.at["s5", "trigger_event"] == "unknown"
    # a 40-day window lets r4 answer s4
    wide = survey_sends_answered(load_sources(sends_sources), Params(send_response_window_days=40), "2025-04-01")
    assert wide.set_index("send_id").at["s4", "answered_by"] == "r4"


def test_response_rate_per_period_and_segment_by_hand(sends_sources):
    from tests.reference import survey_sends_rated

    rated = survey_sends_rated(load_sources(sends_sources), as_of="2025-04-01")
    jan = row(rated, period_grain="month", period_start=D(2025, 1, 1), segment_type="overall", segment_value="all")
    assert (jan["sends"], jan["responses_to_sends"], jan["response_rate"]) == (3, 2, pytest.approx(2 / 3))
    q1 = row(rated, period_grain="quarter", period_start=D(2025, 1, 1), segment_type="overall", segment_value="all")
    assert (q1["sends"], q1["responses_to_sends"], q1["response_rate"]) == (5, 2, pytest.approx(0.4))
    pro = row(rated, period_grain="quarter", period_start=D(2025, 1, 1), segment_type="plan", segment_value="pro")
    basic = row(rated, period_grain="quarter", period_start=D(2025, 1, 1), segment_type="plan", segment_value="basic")
    assert (pro["sends"], pro["responses_to_sends"], basic["sends"], basic["response_rate"]) == (3, 2, 1, 0)
    unknown = row(rated, period_grain="quarter", period_start=D(2025, 1, 1), segment_type="trigger_event",
                  segment_value="unknown")
    assert (unknown["sends"], unknown["responses_to_sends"]) == (1, 0)

    seg = nps_by_segment(load_sources(sends_sources), as_of="2025-04-01")
    jan = row(seg, period_grain="month", period_start=D(2025, 1, 1), segment_type="overall", segment_value="all")
    assert (jan["responses"], jan["sends"], jan["responses_to_sends"]) == (2, 3, 2)
    assert jan["response_rate"] == pytest.approx(2 / 3)
    march = row(seg, period_grain="month", period_start=D(2025, 3, 1), segment_type="overall", segment_value="all")
    assert (march["responses"], march["sends"], march["responses_to_sends"], march["response_rate"]) == (2, 1, 0, 0)
    # February had a send (s4) but no response: no row, the grain is the responses'
    assert not ((seg["period_grain"] == "month") & (seg["period_start"] == D(2025, 2, 1))).any()
    enterprise = row(seg, period_grain="quarter", period_start=D(2025, 1, 1), segment_type="plan",
                     segment_value="enterprise")
    assert (enterprise["responses"], enterprise["sends"], enterprise["responses_to_sends"]) == (2, 1, 0)
    quarterly = row(seg, period_grain="quarter", period_start=D(2025, 1, 1), segment_type="trigger_event",
                    segment_value="quarterly")
    assert (quarterly["responses"], quarterly["sends"], quarterly["responses_to_sends"]) == (3, 3, 2)
    # a segment with a response and no send of its own that month (s4 was in February): 0 sends, no rate
    onboarding = row(seg, period_grain="month", period_start=D(2025, 3, 1), segment_type="trigger_event",
                     segment_value="onboarding")
    assert (onboarding["responses"], onboarding["sends"], onboarding["responses_to_sends"]) == (1, 0, 0)
    assert pd.isna(onboarding["response_rate"])


def test_without_sends_the_rate_is_null_and_with_an_empty_source_zero(sends_sources, tmp_path_factory):
    import shutil

    shutil.rmtree(sends_sources / "survey_sends")
    seg = nps_by_segment(load_sources(sends_sources), as_of="2025-04-01")
    assert seg["sends"].isna().all() and seg["responses_to_sends"].isna().all() and seg["response_rate"].isna().all()
    write_sends(sends_sources, [])  # configured, no sends yet
    seg = nps_by_segment(load_sources(sends_sources), as_of="2025-04-01")
    assert (seg["sends"] == 0).all() and (seg["responses_to_sends"] == 0).all() and seg["response_rate"].isna().all()


def test_unanswered_sends_count_towards_fatigue_by_hand(tmp_path):
    """as_of 2025-07-01. c1 ignored a relational invitation on 2025-06-01: fatigued until
    2025-08-30 with sends, eligible without them. c2 answered a relational survey on 2025-01-10
    (sent the same day) and ignored a transactional one on 2025-06-21: transactional fatigue until
    2025-08-20. c3's only send is 100 days old; a send without a contact counts for nobody."""
    from tests.reference import survey_eligibility

    write_sources(
        tmp_path,
        survey_responses=[resp("r1", "A", "2025-01-10T01:00:00Z", 9, contact="c2", sent_at="2025-01-10T00:00:00Z"),
                          resp("r2", "A", "2025-06-30T12:00:00Z", 9)],
        accounts=[acct("A", "2025-01-01T00:00:00Z")],
        contacts=[{"contact_id": c, "account_id": "A", "updated_at": "2025-01-01T00:00:00Z"}
                  for c in ("c1", "c2", "c3")],
    )
    write_sends(tmp_path, [
        send("s1", "A", "c1", "S", "2025-06-01T00:00:00Z"),
        send("s2", "A", "c2", "S", "2025-01-10T00:00:00Z", "r1"),
        send("s3", "A", "c2", "T", "2025-06-21T00:00:00Z", survey_type="transactional"),
        send("s4", "A", "c3", "S", "2025-03-23T00:00:00Z"),
        send("s5", "A", None, "T", "2025-06-30T00:00:00Z", survey_type="transactional"),
    ])
    out = survey_eligibility(load_sources(tmp_path), as_of="2025-07-01").set_index("contact_id")
    assert out["is_eligible"].to_dict() == {"c1": False, "c2": False, "c3": True}
    assert out.at["c1", "eligible_from"] == pd.Timestamp("2025-08-30", tz="UTC")
    assert out.at["c2", "eligible_from"] == pd.Timestamp("2025-08-20", tz="UTC")
    assert out.at["c2", "last_relational_survey_at"] == pd.Timestamp("2025-01-10", tz="UTC")
    assert out.at["c3", "last_relational_survey_at"] == pd.Timestamp("2025-03-23", tz="UTC")
    import shutil

    shutil.rmtree(tmp_path / "survey_sends")  # without sends: only c2's answer counts, as before
    before = survey_eligibility(load_sources(tmp_path), as_of="2025-07-01").set_index("contact_id")
    assert before["is_eligible"].to_dict() == {"c1": True, "c2": True, "c3": True}
    assert before["last_transactional_survey_at"].isna().all()

