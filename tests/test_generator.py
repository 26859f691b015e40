"""Tests for the demo source generator (nps/demo): contract shape, determinism and the features
every mart depends on, checked on the 'small' preset."""

from __future__ import annotations

import csv
import json
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nps.contracts import ENTITIES, SPECS
from nps.demo.generator import PRESETS, generate

CFG = PRESETS["small"]


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("gen") / "sources"
    generate(path, CFG, progress=False)
    return path


@pytest.fixture(scope="module")
def data(out: Path) -> dict[str, pd.DataFrame]:
    frames = {}
    for entity in ENTITIES:
        parts = []
        for f in sorted((out / entity).glob("*.csv")):
            df = pd.read_csv(f, dtype=str, keep_default_na=False, na_filter=False)
            df["_file_date"] = f.stem.rsplit("_", 1)[1]
            parts.append(df)
        frames[entity] = pd.concat(parts, ignore_index=True)
    return frames


@pytest.fixture(scope="module")
def manifest(out: Path) -> dict:
    return json.loads((out / "_truth" / "manifest.json").read_text())


def _ts(s: pd.Series) -> pd.Series:
    return pd.to_datetime(s, format="ISO8601", utc=True)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_deterministic(out: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    generate(again, CFG, progress=False)
    a, b = _files(out), _files(again)
    assert a.keys() == b.keys()
    assert [k for k in a if a[k] != b[k]] == []
    # rerunning into the same folder replaces the output
    generate(again, CFG, progress=False)
    assert _files(again) == a


def test_layout_and_columns(out: Path, manifest: dict) -> None:
    days = [(CFG.start + timedelta(days=i)).isoformat() for i in range((CFG.end - CFG.start).days)]
    for entity, columns in ((e, list(s.columns)) for e, s in SPECS.items()):
        files = sorted(p.name for p in (out / entity).glob("*.csv"))
        assert files == [f"{entity}_{d}.csv" for d in days], entity
        for name in files:
            with open(out / entity / name, newline="", encoding="utf-8") as fh:
                assert next(csv.reader(fh)) == columns, name
    with open(out / "_truth" / "comment_themes.csv", newline="", encoding="utf-8") as fh:
        assert next(csv.reader(fh)) == ["response_id", "theme_key", "has_pii", "sentiment"]
    assert manifest["seed"] == CFG.seed
    assert manifest["start"] == CFG.start.isoformat() and manifest["end"] == CFG.end.isoformat()
    assert manifest["fixed_theme"] in manifest["themes"] and manifest["emerging_theme"] in manifest["themes"]


def test_rows_fall_on_their_file_date(data: dict[str, pd.DataFrame], manifest: dict) -> None:
    end = pd.Timestamp(CFG.end, tz="UTC")
    for entity, column in ((e, s.interval_column) for e, s in SPECS.items()):
        df = data[entity]
        assert len(df) == manifest["counts"][entity] > 0, entity
        if entity == "usage_daily":
            day = df[column]
        else:
            ts = _ts(df[column])
            assert (ts < end).all() and (ts >= pd.Timestamp(CFG.start, tz="UTC")).all(), entity
            assert df[column].str.endswith("+00:00").all(), entity
            day = ts.dt.strftime("%Y-%m-%d")
        assert (day == df["_file_date"]).all(), entity


def test_keys_unique_and_scores_valid(data: dict[str, pd.DataFrame]) -> None:
    r = data["survey_responses"]
    assert r["response_id"].is_unique and data["activities"]["activity_id"].is_unique
    assert not data["accounts"].duplicated(["account_id", "updated_at"]).any()
    assert not data["contacts"].duplicated(["contact_id", "updated_at"]).any()
    assert not data["usage_daily"].duplicated(["account_id", "usage_date"]).any()
    scores = r["score"].astype(int)
    assert scores.between(0, 10).all() and set(scores) == set(range(11))
    assert (_ts(r["sent_at"]) < _ts(r["responded_at"])).all()
    assert set(r["survey_type"]) == {"relational", "transactional"}
    assert {"quarterly", "renewal", "onboarding", "support_ticket_closed"} <= set(r["trigger_event"])
    assert 0 < (r["contact_id"] == "").sum() < 0.05 * len(r)
    assert (r["language"] == "en").mean() > 0.85
    n = len(r)
    nps = 100 * ((scores >= 9).sum() - (scores <= 6).sum()) / n
    assert 10 <= nps <= 40
    assert abs(n - CFG.responses_target) < 0.1 * CFG.responses_target


def test_first_day_snapshot_and_change_feed(data: dict[str, pd.DataFrame]) -> None:
    acc, con = data["accounts"], data["contacts"]
    first = CFG.start.isoformat()
    snap = acc[acc["_file_date"] == first]
    existing = acc.groupby("account_id")["customer_since"].first() < first
    assert set(snap.loc[snap["updated_at"] == f"{first}T00:00:00+00:00", "account_id"]) == set(
        existing[existing].index)
    created_in_range = acc.groupby("account_id").first()
    new = created_in_range[created_in_range["customer_since"] >= first]
    assert len(new) > 0
    assert (new["updated_at"].str[:10] == new["customer_since"]).all()
    assert acc["account_id"].duplicated().any()  # attribute changes -> new versions
    assert (acc["churned_at"] != "").any()
    assert con["contact_id"].duplicated().any()
    n_per_account = con.drop_duplicates("contact_id").groupby("account_id").size()
    assert n_per_account.between(1, 6).all()
    assert set(acc["plan"]) == {"starter", "growth", "business", "enterprise"}
    assert set(acc["region"]) == {"NA", "EMEA", "APAC", "LATAM"}
    assert set(acc["currency"]) == {"USD"}


def _responses_with_segments(data: dict[str, pd.DataFrame]) -> pd.DataFrame:
    r = data["survey_responses"].copy()
    r["ts"] = _ts(r["responded_at"])
    acc = data["accounts"].copy()
    acc["ats"] = _ts(acc["updated_at"])
    versions = acc.sort_values("ats")[["account_id", "ats", "arr", "customer_since"]]
    r = pd.merge_asof(r.sort_values("ts"), versions, left_on="ts", right_on="ats", by="account_id")
    first = acc.sort_values("ats").groupby("account_id").first()
    for col in ("arr", "customer_since"):
        r[col] = r[col].fillna(r["account_id"].map(first[col]))
    return r


def test_segments_populated(data: dict[str, pd.DataFrame]) -> None:
    r = _responses_with_segments(data)
    arr = r["arr"].astype(float)
    arr_band = np.select([arr < 10_000, arr < 50_000, arr < 250_000], ["under_10k", "10k_50k", "50k_250k"],
                         "250k_plus")
    assert set(arr_band) == {"under_10k", "10k_50k", "50k_250k", "250k_plus"}
    tenure = (r["ts"].dt.tz_localize(None).dt.normalize() - pd.to_datetime(r["customer_since"])).dt.days
    tenure_band = np.select([tenure < 183, tenure < 365, tenure < 730], ["0_6m", "6_12m", "1_2y"], "2y_plus")
    assert set(tenure_band) == {"0_6m", "6_12m", "1_2y", "2y_plus"}
    u = data["usage_daily"]
    sessions = u.assign(s=u["sessions"].astype(int), d=pd.to_datetime(u["usage_date"])).pivot(
        index="d", columns="account_id", values="s")
    days = pd.date_range(pd.Timestamp(CFG.start) - pd.Timedelta(days=31), pd.Timestamp(CFG.end))
    sessions = sessions.reindex(index=days, columns=sorted(set(r["account_id"])), fill_value=0).fillna(0)
    per_day = sessions.rolling(30).sum().shift(1) / 30
    d = r["ts"].dt.tz_localize(None).dt.normalize()
    spd = per_day.to_numpy()[per_day.index.get_indexer(d), per_day.columns.get_indexer(r["account_id"])]
    band = np.select([spd == 0, spd < 10, spd < 50], ["none", "low", "medium"], "high")
    assert set(band) == {"none", "low", "medium", "high"}
    score = r["score"].astype(int)
    nps_high = 100 * ((score[band == "high"] >= 9).mean() - (score[band == "high"] <= 6).mean())
    nps_low = 100 * ((score[band == "low"] >= 9).mean() - (score[band == "low"] <= 6).mean())
    assert nps_high > nps_low + 10  # usage correlates with score


def test_theme_truth(out: Path, data: dict[str, pd.DataFrame], manifest: dict) -> None:
    truth = pd.read_csv(out / "_truth" / "comment_themes.csv", dtype=str, keep_default_na=False)
    r = data["survey_responses"].merge(truth, on="response_id", how="left", validate="1:1")
    assert r["theme_key"].notna().all()
    assert ((r["comment"] == "") <= (r["theme_key"] == "")).all()
    assert 0.08 < (r["comment"] == "").mean() < 0.25
    assert ((r["comment"] != "") & (r["theme_key"] == "")).sum() > 0  # content-free comments
    assert set(r["theme_key"]) - {""} <= set(manifest["themes"])
    assert len(set(r["theme_key"]) - {""}) >= 10
    quarter = np.searchsorted(
        np.array([pd.Timestamp(q["start"], tz="UTC") for q in manifest["quarters"]]),
        _ts(r["responded_at"]).to_numpy(), side="right") - 1
    fixed, emerging = manifest["fixed_theme"], manifest["emerging_theme"]
    assert ((r["theme_key"] == fixed) & (quarter == 0)).sum() >= 10
    assert ((r["theme_key"] == fixed) & (quarter >= 1)).sum() == 0
    assert ((r["theme_key"] == emerging) & (quarter < 2)).sum() == 0
    assert ((r["theme_key"] == emerging) & (quarter == 2)).sum() >= 10
    # sentiment truth: a themed comment's theme lean (a mixed theme's template), none without a theme
    assert set(r["sentiment"]) == {"negative", "neutral", "positive", ""}
    assert (r.loc[r["theme_key"] == "", "sentiment"] == "").all()
    lean = r.loc[r["theme_key"] == "pricing_too_expensive", "sentiment"]
    assert (lean == "negative").all() and len(lean) > 0
    mixed = r.loc[r["theme_key"] == emerging, "sentiment"]
    assert {"negative", "positive"} <= set(mixed)  # one theme, comments of both polarities
    assert manifest["themes"][fixed]["active_quarters"] == [manifest["quarters"][0]["start"]]
    assert manifest["themes"][emerging]["active_quarters"][0] == manifest["quarters"][2]["start"]
    # PII, and CSV-hostile characters that must survive RFC 4180 quoting
    pii = r[r["has_pii"] == "true"]
    assert len(pii) > 0 and set(r["has_pii"]) == {"true", "false"}
    assert pii["comment"].str.contains("@").any()
    assert pii["comment"].str.contains(r"\d{3}[ .)-]", regex=True).any()
    assert not r.loc[r["has_pii"] == "false", "comment"].str.contains("@").any()
    for ch in ("\n", '"', ","):
        assert r["comment"].str.contains(ch, regex=False).any(), repr(ch)


def test_detractor_follow_up_and_recovery(data: dict[str, pd.DataFrame]) -> None:
    r = data["survey_responses"].copy()
    r["ts"] = _ts(r["responded_at"])
    r["score"] = r["score"].astype(int)
    act = data["activities"].copy()
    act["ts"] = _ts(act["created_at"])
    act = act.sort_values(["ts", "activity_id"])
    assert set(act["activity_type"]) == {"call", "email", "meeting", "ticket"}
    assert (act["response_id"] != "").any() and (act["response_id"] == "").any()
    assert set(act.loc[act["response_id"] != "", "response_id"]) <= set(r["response_id"])

    # next response of the same contact (contract: respondent = contact, else account)
    r["who"] = np.where(r["contact_id"] != "", r["contact_id"], r["account_id"])
    r = r.sort_values(["ts", "response_id"])
    r["next_score"] = r.groupby("who")["score"].shift(-1)
    det = r[(r["score"] <= 6) & (r["contact_id"] != "")]
    by_account = {k: g for k, g in act.groupby("account_id")}

    def bucket(row: pd.Series) -> str:
        a = by_account.get(row["account_id"])
        if a is None:
            return "never"
        a = a[a["ts"] >= row["ts"]]
        a = a[(a["response_id"] == row["response_id"]) | (a["ts"] <= row["ts"] + pd.Timedelta(days=14))]
        if a.empty:
            return "never"
        hours = (a["ts"].iloc[0] - row["ts"]).total_seconds() / 3600
        return "within_24h" if hours <= 24 else "within_48h" if hours <= 48 else "later"

    det = det.assign(bucket=det.apply(bucket, axis=1))
    share = det["bucket"].value_counts(normalize=True)
    for b in ("within_24h", "within_48h", "later", "never"):
        with_next = det[(det["bucket"] == b) & det["next_score"].notna()]
        assert len(with_next) >= 5, b
        assert share[b] > 0.08, b
    rate = det[det["next_score"].notna()].groupby("bucket")["next_score"].apply(lambda s: (s >= 7).mean())
    assert rate["within_24h"] > rate["never"] + 0.15  # fast follow-up recovers detractors


def test_survey_sends_cover_every_answer_and_the_unanswered(out: Path, data: dict[str, pd.DataFrame],
                                                            manifest: dict) -> None:
    """Every response answered one send; most sends link it, web links do not (the truth says which
    answer they got); the unanswered sends went to customers, before their account churned."""
    s, r = data["survey_sends"], data["survey_responses"]
    truth = pd.read_csv(out / "_truth" / "survey_sends.csv", dtype=str, keep_default_na=False)
    assert s["send_id"].is_unique and truth["send_id"].tolist() == s["send_id"].tolist()
    answered = truth[truth["response_id"] != ""]
    assert sorted(answered["response_id"]) == sorted(r["response_id"])  # each response: one send
    linked = s[s["response_id"] != ""]
    assert set(linked["channel"]) <= {"email", "in_app"} and (s.loc[s["channel"] == "web", "response_id"] == "").all()
    assert (linked["response_id"] == linked["send_id"].map(truth.set_index("send_id")["response_id"])).all()
    sent = r.set_index("response_id")["sent_at"]
    assert (linked["sent_at"] == linked["response_id"].map(sent)).all()  # the answer's own send
    rate = len(answered) / len(s)
    assert 0.3 < rate < 0.6, rate
    assert set(s["survey_type"]) == {"relational", "transactional"}
    assert set(s["trigger_event"]) == set(r["trigger_event"])
    stats = manifest["stats"]
    assert (stats["survey_sends"], stats["survey_sends_answered"], stats["survey_sends_linked"]) == (
        len(s), len(answered), len(linked))
    acc = data["accounts"].sort_values("updated_at").groupby("account_id").last()
    churned = _ts(s["account_id"].map(acc["churned_at"]).replace("", None))
    assert not (churned <= _ts(s["sent_at"])).any()


def test_survey_sends_draw_from_their_own_stream(out: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The sends have a random stream of their own: with another one, every other generated file is
    byte for byte the same (adding the sends changed none of them), and the sends differ."""
    from nps.demo import generator

    original = generator._Sim.__init__

    def other_send_stream(self: generator._Sim, cfg: generator.GeneratorConfig) -> None:
        original(self, cfg)
        self.r_send = np.random.default_rng(12345)

    monkeypatch.setattr(generator._Sim, "__init__", other_send_stream)
    generate(tmp_path / "other", CFG, progress=False)
    a, b = _files(out), _files(tmp_path / "other")
    assert a.keys() == b.keys()
    differing = {k for k in a if a[k] != b[k]}
    assert differing and all(k.startswith(("survey_sends/", "_truth/survey_sends.csv", "_truth/manifest.json"))
                             for k in differing), sorted(differing)[:5]
