"""A survey-only team: just a Qualtrics CSV export, no CRM, no product usage. It once could not start
(`no source configured for entity 'accounts'`; the workaround was header-only CSVs). Following the
README's "Survey-only teams" steps (its sources file, `nps sources check`, `nps run`), the run
records the five optional entities as not configured, builds and publishes every mart, and the marts say what
is missing: segments 'unknown', recovery 'no_follow_up_data', nps_outcomes empty, with the reasons
in marts.source_coverage and the summary. NPS is checked against pandas over the export itself."""

from __future__ import annotations

import csv
import re
from dataclasses import replace
from datetime import date

import pandas as pd
import pytest

from nps import config, contracts, sources, warehouse
from nps.cli import main
from tests.conftest import query

pytestmark = pytest.mark.integration

README = config.PROJECT_ROOT / "README.md"
START, END = "2025-01-01", "2025-03-01"
HEADER = ["StartDate", "EndDate", "Status", "Progress", "Duration (in seconds)", "Finished", "RecordedDate",
          "ResponseId", "ExternalReference", "DistributionChannel", "UserLanguage", "Q1", "Q1_NPS_GROUP", "Q2",
          "account_id"]


def _readme_section() -> str:
    text = README.read_text(encoding="utf-8")
    return text[text.index("### Survey-only teams"):text.index("\n## ", text.index("### Survey-only teams"))]


def _qualtrics_export(responses: pd.DataFrame) -> pd.DataFrame:
    """The generated answers as a Qualtrics CSV export (numeric values, 3 header rows, UTC)."""
    when = pd.to_datetime(responses["responded_at"], utc=True).dt.strftime("%Y-%m-%d %H:%M:%S")
    group = pd.cut(responses["score"].astype(int), [-1, 6, 8, 10], labels=["3", "2", "1"]).astype(str)
    rows = pd.DataFrame({
        "StartDate": when, "EndDate": when, "Status": "0", "Progress": "100", "Duration (in seconds)": "41",
        "Finished": "1", "RecordedDate": when, "ResponseId": "R_" + responses["response_id"],
        "ExternalReference": responses["contact_id"], "DistributionChannel": responses["channel"],
        "UserLanguage": responses["language"].str.upper(), "Q1": responses["score"].astype(str),
        "Q1_NPS_GROUP": group, "Q2": responses["comment"], "account_id": responses["account_id"],
    })[HEADER]
    text = ["Start Date", "End Date", "Response Type", "Progress", "Duration (in seconds)", "Finished",
            "Recorded Date", "Response ID", "External Data Reference", "Distribution Channel", "User Language",
            "How likely are you to recommend us to a friend or colleague?",
            "How likely are you to recommend us? - Group", "What is the main reason for your score?", "account_id"]
    ids = ['{"ImportId":"startDate","timeZone":"UTC"}', '{"ImportId":"endDate","timeZone":"UTC"}',
           '{"ImportId":"status"}', '{"ImportId":"progress"}', '{"ImportId":"duration"}', '{"ImportId":"finished"}',
           '{"ImportId":"recordedDate","timeZone":"UTC"}', '{"ImportId":"_recordId"}',
           '{"ImportId":"externalDataReference"}', '{"ImportId":"distributionChannel"}',
           '{"ImportId":"userLanguage"}', '{"ImportId":"QID1"}', '{"ImportId":"QID1_NPS_GROUP"}',
           '{"ImportId":"QID2_TEXT"}', '{"ImportId":"account_id"}']
    return pd.concat([pd.DataFrame([text, ids], columns=HEADER), rows], ignore_index=True)


@pytest.fixture(scope="module")
def survey_only(tmp_path_factory, make_database):
    """The README's survey-only steps on a two-month Qualtrics export: (url, the answers, check output,
    run output)."""
    from nps.demo.generator import PRESETS, generate

    generated = tmp_path_factory.mktemp("survey_only_generated")
    generate(generated, replace(PRESETS["small"], start=date(2025, 1, 1), quarters=1), progress=False)
    answers = pd.concat([pd.read_csv(f, dtype=str, keep_default_na=False)
                         for f in sorted((generated / "survey_responses").glob("*.csv"))], ignore_index=True)
    answers = answers[(answers["responded_at"] >= START) & (answers["responded_at"] < END)].reset_index(drop=True)
    export = _qualtrics_export(answers)
    # a preview and an unfinished response: excluded, never answers
    preview = export.iloc[2].copy()
    preview[["Status", "ResponseId", "Q1"]] = ["1", "R_preview", "10"]
    unfinished = export.iloc[3].copy()
    unfinished[["Finished", "Progress", "ResponseId", "Q1"]] = ["0", "40", "R_unfinished", "2"]
    exports = tmp_path_factory.mktemp("exports")
    pd.concat([export, pd.DataFrame([preview, unfinished])], ignore_index=True).to_csv(
        exports / "nps_export.csv", index=False, quoting=csv.QUOTE_NONNUMERIC)

    # the README's own sources file, as written there
    yaml_block = re.search(r"```yaml\n(.*?)```", _readme_section(), re.S).group(1)
    config_file = tmp_path_factory.mktemp("config") / "my-sources.yml"
    config_file.write_text("\n".join(line[3:] for line in yaml_block.splitlines()), encoding="utf-8")
    url = make_database("nps_survey_only")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(warehouse.URL_ENV, url)
        mp.setenv("NPS_SOURCES_CONFIG", str(config_file))
        mp.setenv("NPS_EXPORTS_DIR", str(exports))
        mp.setenv("NPS_DATA_DIR", str(tmp_path_factory.mktemp("survey_only_data")))
        from contextlib import redirect_stdout
        from io import StringIO

        check, run = StringIO(), StringIO()
        with redirect_stdout(check):
            check_code = main(["sources", "check", "--start", START, "--end", END])
        with redirect_stdout(run):
            run_code = main(["run", "--start", START, "--end", END, "--by", "whole"])
    assert check_code == 0, check.getvalue()
    assert run_code == 0, run.getvalue()
    return url, answers, check.getvalue(), run.getvalue()


def test_sources_check_passes_and_says_what_is_not_configured(survey_only) -> None:
    _, answers, out, _ = survey_only
    assert f"read {len(answers) + 2}, would load {len(answers)}, quarantine 0" in out
    assert "excluded, not answers: Status 1 x1, Finished false x1" in out
    for entity in contracts.OPTIONAL_ENTITIES:
        assert re.search(rf"^{entity}\s+ok\s+not configured in .*my-sources.yml \(optional\)", out, re.M), out
    assert "nps_outcomes: empty: churn and expansion" in out


def test_the_load_audit_records_the_entities_as_not_configured(survey_only) -> None:
    url, answers, _, _ = survey_only
    audit = query(url, "select entity, load_mode, connector, rows_read, rows_loaded, rows_excluded from raw.load_audit")
    not_configured = audit[audit["load_mode"] == "not_configured"]
    assert sorted(not_configured["entity"]) == sorted(contracts.OPTIONAL_ENTITIES)
    assert set(not_configured["connector"]) == {"none"} and not_configured["rows_read"].sum() == 0
    survey = audit[audit["entity"] == "survey_responses"].iloc[0]
    assert (survey.rows_loaded, survey.rows_excluded) == (len(answers), 2)
    for table in ("accounts", "contacts", "activities", "usage_daily", "survey_sends"):
        assert query(url, f"select count(*) as n from raw.{table}").n[0] == 0


def test_nps_matches_the_export_and_account_segments_are_unknown(survey_only) -> None:
    url, answers, _, _ = survey_only
    score = answers["score"].astype(int)
    month = pd.to_datetime(answers["responded_at"], utc=True).dt.strftime("%Y-%m-01")
    expected = (100 * ((score >= 9).groupby(month).mean() - (score <= 6).groupby(month).mean())).round(6)
    marts = query(url, "select to_char(period_start, 'YYYY-MM-DD') as month, responses, nps from marts.nps_by_segment"
                       " where period_grain = 'month' and segment_type = 'overall' order by 1")
    assert marts["month"].tolist() == sorted(expected.index)
    assert marts["responses"].tolist() == month.value_counts().sort_index().tolist()
    assert marts["nps"].round(6).tolist() == expected.tolist()
    segments = query(url, "select segment_type, array_agg(distinct segment_value) as values_ from marts.nps_by_segment"
                          " where segment_type in ('plan', 'industry', 'region', 'employee_band', 'arr_band',"
                          " 'tenure_band', 'usage_band', 'account_owner') group by 1")
    assert len(segments) == 8 and all(v == ["unknown"] for v in segments["values_"]), segments
    assert query(url, "select count(*) as n from marts.nps_by_segment where revenue_weighted_nps is not null").n[0] == 0
    # no survey sends: the response rate is unknown, not 0
    assert query(url, "select count(*) as n from marts.nps_by_segment where sends is not null"
                      " or responses_to_sends is not null or response_rate is not null").n[0] == 0


def test_recovery_says_no_follow_up_data_and_outcomes_are_empty_with_a_reason(survey_only) -> None:
    url, answers, _, _ = survey_only
    buckets = query(url, "select follow_up_bucket, sum(detractors) as detractors from marts.detractor_recovery"
                         " where period_grain = 'month' and segment_type = 'overall' group by 1")
    assert buckets["follow_up_bucket"].tolist() == ["no_follow_up_data"]
    assert int(buckets["detractors"].iloc[0]) == int((answers["score"].astype(int) <= 6).sum())
    assert query(url, "select count(*) as n from marts.nps_outcomes").n[0] == 0
    coverage = query(url, "select mart, source_entity, source_status, effect from marts.source_coverage")
    needs = sources.source_needs()
    assert sorted(zip(coverage["mart"], coverage["source_entity"], coverage["effect"], strict=True)) == sorted(needs)
    assert set(coverage["source_status"]) == {"not_configured"}


def test_the_summary_says_what_is_missing_once(survey_only) -> None:
    _, _, _, out = survey_only
    assert out.count("Not configured: accounts, activities, contacts, survey_sends, usage_daily") == 1, out
    assert re.search(r"accounts\s+nps_outcomes\s+empty: churn and expansion", out)
    assert "no_follow_up_data" in out


def test_the_readme_table_is_the_seed() -> None:
    """One home for "what each mart shows without a source": the seed; the README shows it as is."""
    rows = [r for r in re.findall(r"^\| (\w+) \| (\w+) \| (.+) \|$", _readme_section(), re.M) if r[0] != "mart"]
    assert rows == sources.source_needs()
    marts = {m for m, _, _ in rows}
    manifest_marts = {p.stem for p in (config.DBT_PROJECT_DIR / "models" / "marts").glob("*.sql")}
    assert marts <= manifest_marts
