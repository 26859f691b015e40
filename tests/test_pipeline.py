"""End to end: nps_nightly through Airflow's dag.test() on a small generated data set, against a
real PostgreSQL, the real MiniLM model, real dbt and real Great Expectations. Every mart figure
is checked against an independent pandas computation from the generated source files."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from nps import orchestrate
from tests.conftest import mart as _mart
from tests.conftest import query as _query
from tests.reference import compare_frames, detractor_recovery, nps_by_segment, theme_recurrence

pytestmark = pytest.mark.integration

# Theme quality floor on the generator's ground truth. The small set has ~1,800 themed comments
# over 13 latent themes written from varied templates with typos, secondary topics and some
# non-English text; the engine measured NMI 0.73 / ARI 0.60 on it. 0.5 NMI is the level below
# which themes stop matching what people wrote about (ad-hoc clusters, or everything in a few blobs).
NMI_FLOOR = 0.5
MAX_UNASSIGNED_SHARE = 0.30

MART_KEYS = {
    "nps_by_segment": ["period_grain", "period_start", "segment_type", "segment_value"],
    "detractor_recovery": ["period_grain", "period_start", "follow_up_bucket"],
    "theme_recurrence": ["theme_id", "quarter_start"],
}


def test_every_source_row_is_loaded_or_quarantined(pipeline):
    url, sources, _ = pipeline
    tables = {"survey_responses": "raw.survey_responses", "accounts": "raw.accounts",
              "contacts": "raw.contacts", "activities": "raw.activities", "usage_daily": "raw.usage_daily"}
    for entity, table in tables.items():
        in_files = sum(len(pd.read_csv(p, dtype=str)) for p in (sources / entity).glob("*.csv"))
        loaded = int(_query(url, f"select count(*) as n from {table}")["n"][0])
        quarantined = int(_query(url, f"select count(*) as n from raw.quarantine where entity = '{entity}'")["n"][0])
        assert loaded + quarantined == in_files, entity
        assert loaded > 0


def test_nps_by_segment_matches_independent_computation(pipeline, sources_frames):
    url = pipeline[0]
    actual = _mart(url, "nps_by_segment")
    expected = nps_by_segment(sources_frames)
    compare_frames(actual, expected, MART_KEYS["nps_by_segment"])
    assert {"overall", "plan", "arr_band", "tenure_band", "industry", "region", "employee_band",
            "usage_band", "survey_type", "trigger_event"} <= set(actual["segment_type"])


def test_detractor_recovery_matches_independent_computation(pipeline, sources_frames):
    url = pipeline[0]
    actual = _mart(url, "detractor_recovery")
    expected = detractor_recovery(sources_frames)
    compare_frames(actual, expected, MART_KEYS["detractor_recovery"])
    assert actual["recovered"].sum() > 0 and actual["lost_to_churn"].sum() >= 0


def test_theme_recurrence_matches_independent_computation(pipeline, sources_frames):
    url = pipeline[0]
    comment_themes = _query(url, "select response_id, theme_id from nlp.comment_themes")
    themes = _query(url, "select theme_id, label, keywords, status from nlp.themes")
    actual = _mart(url, "theme_recurrence")
    expected = theme_recurrence(sources_frames, comment_themes, themes)
    compare_frames(actual, expected, MART_KEYS["theme_recurrence"])
    assert len(actual) > 0


def test_themes_recover_the_generators_latent_themes(pipeline):
    url, sources, manifest = pipeline
    truth = pd.read_csv(sources / "_truth" / "comment_themes.csv", dtype=str, keep_default_na=False)
    truth = truth[truth["theme_key"] != ""]
    assigned = _query(url, "select response_id, theme_id from nlp.comment_themes")
    merged = truth.merge(assigned, on="response_id", how="left")
    assert merged["theme_id"].notna().mean() >= 1 - MAX_UNASSIGNED_SHARE
    predicted = merged["theme_id"].fillna(-1).astype(int)  # noise as its own group: penalised, not hidden
    nmi = normalized_mutual_info_score(merged["theme_key"], predicted)
    ari = adjusted_rand_score(merged["theme_key"], predicted)
    print(f"theme quality on generator truth: NMI={nmi:.3f} ARI={ari:.3f} "
          f"unassigned={merged['theme_id'].isna().mean():.1%} themes={predicted[predicted >= 0].nunique()}")
    assert nmi >= NMI_FLOOR


def test_fixed_theme_resolves_and_emerging_theme_is_new(pipeline):
    """The generator's fixed theme is reported resolved after its quarter; the emerging one new."""
    url, sources, manifest = pipeline
    truth = pd.read_csv(sources / "_truth" / "comment_themes.csv", dtype=str, keep_default_na=False)
    assigned = _query(url, "select response_id, theme_id from nlp.comment_themes where theme_id is not null")
    merged = truth.merge(assigned, on="response_id")
    recurrence = _mart(url, "theme_recurrence")

    def dominant_theme(key: str) -> int:
        return int(merged.loc[merged["theme_key"] == key, "theme_id"].mode()[0])

    fixed = recurrence[recurrence["theme_id"] == dominant_theme(manifest["fixed_theme"])]
    assert "resolved" in set(fixed["status"])
    emerging = recurrence[recurrence["theme_id"] == dominant_theme(manifest["emerging_theme"])]
    first = emerging.sort_values("quarter_start").iloc[0]
    assert first["status"] == "new"
    assert first["quarter_start"] >= date.fromisoformat(manifest["start"]).replace(month=7)


def test_pii_never_reaches_nlp_or_marts(pipeline):
    url = pipeline[0]
    email = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"
    leaks = _query(url, f"""
        select 'raw' as where_, count(*) as n from raw.survey_responses where comment ~ '{email}'
        union all
        select 'themes', count(*) from nlp.themes
        where label ~ '{email}' or array_to_string(keywords, ' ') ~ '{email}'
        union all
        select 'marts', count(*) from marts.theme_recurrence where theme_label ~ '{email}' or keywords ~ '{email}'
    """)
    assert leaks["n"].sum() == 0, leaks


def test_rerunning_a_quarter_changes_nothing(pipeline):
    url, _, manifest = pipeline
    before = {name: _mart(url, name) for name in MART_KEYS}
    raw_before = _query(url, "select count(*) as n, sum(score) as s from raw.survey_responses")
    themes_before = _query(url, "select response_id, theme_id from nlp.comment_themes order by 1")
    last_quarter = list(orchestrate.quarter_windows(date.fromisoformat(manifest["start"]),
                                                    date.fromisoformat(manifest["end"])))[-1]
    orchestrate.run_window(*last_quarter)
    for name, keys in MART_KEYS.items():
        compare_frames(_mart(url, name), before[name], keys)
    assert _query(url, "select count(*) as n, sum(score) as s from raw.survey_responses").equals(raw_before)
    assert _query(url, "select response_id, theme_id from nlp.comment_themes order by 1").equals(themes_before)


def test_a_failing_stage_fails_the_run_with_a_clear_message(pipeline, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("NPS_SOURCES_DIR", str(tmp_path / "nowhere"))
    outcome = orchestrate.run_window(date(2025, 1, 1), date(2025, 1, 2), raise_on_failure=False)
    assert outcome.state == "failed"
    assert any(t.startswith("extract_") for t in outcome.failed_tasks)
    with pytest.raises(orchestrate.PipelineRunFailed, match="failed tasks"):
        orchestrate.run_window(date(2025, 1, 1), date(2025, 1, 2))
