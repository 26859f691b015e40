"""Qualtrics rows that are not respondents' answers: a "Survey Preview" (score 10) and an
unfinished response (score 2) once loaded as answers, so March's NPS was over 296 instead of 294
answers. They are excluded, counted (`raw.load_audit.rows_excluded`) and kept in raw.quarantine
under rule `excluded`, apart from contract breakers. Real files, a real PostgreSQL."""

from __future__ import annotations

import pandas as pd

from nps.cli import main
from tests.test_connectors import _load, _rows, _source, delighted  # noqa: F401 (fixture)

HEADER = ["StartDate", "EndDate", "Status", "Progress", "Finished", "RecordedDate", "ResponseId",
          "ExternalReference", "Q1", "Q1_NPS_GROUP", "Q2", "account_id"]
TEXT = ["Start Date", "End Date", "Response Type", "Progress", "Finished", "Recorded Date", "Response ID",
        "External Data Reference", "How likely are you to recommend us?", "Group", "Why?", "account_id"]
IMPORT = ['{"ImportId":"startDate"}', '{"ImportId":"endDate"}', '{"ImportId":"status"}', '{"ImportId":"progress"}',
          '{"ImportId":"finished"}', '{"ImportId":"recordedDate","timeZone":"UTC"}', '{"ImportId":"_recordId"}',
          '{"ImportId":"externalDataReference"}', '{"ImportId":"QID1"}', '{"ImportId":"QID1_NPS_GROUP"}',
          '{"ImportId":"QID2_TEXT"}', '{"ImportId":"account_id"}']


def _answer(rid: str, score: str, status: str = "IP Address", finished: str = "True", comment: str = "fine"):
    when = "2025-01-06 10:00:00"
    return [when, when, status, "100" if finished == "True" else "40", finished, when, rid, "C1", score,
            "Promoter", comment, "A1"]


def _export(tmp_path, *rows) -> str:
    path = tmp_path / "qualtrics.csv"
    pd.DataFrame([TEXT, IMPORT, *rows], columns=HEADER).to_csv(path, index=False)
    return str(path)


def test_previews_tests_spam_and_unfinished_responses_are_excluded_and_counted(db_conn, tmp_path):
    path = _export(tmp_path, _answer("R_1", "9"), _answer("R_2", "7"), _answer("R_prev", "10", "Survey Preview"),
                   _answer("R_test", "0", "Survey Test"), _answer("R_spam", "1", "Spam"),
                   _answer("R_half", "2", finished="False"), _answer("R_bad", "eleven"))
    result = _load(db_conn, _source("survey_responses", path=path, mapping="qualtrics_csv"))
    assert sorted(r[0] for r in _rows(db_conn, "select response_id from raw.survey_responses")) == ["R_1", "R_2"]
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined, result.rows_excluded) == (7, 2, 1, 4)
    assert result.rows_read == (result.rows_loaded + result.rows_quarantined + result.duplicates_dropped
                                + result.rows_excluded)
    kept = _rows(db_conn, "select payload->>'response_id', rule, detail from raw.quarantine order by 1")
    assert [(rid, rule) for rid, rule, _ in kept] == [
        ("R_bad", "non_numeric_score"), ("R_half", "excluded"), ("R_prev", "excluded"), ("R_spam", "excluded"),
        ("R_test", "excluded")]
    assert dict((rid, detail) for rid, _, detail in kept)["R_prev"].startswith("Status Survey Preview: a preview")
    assert _rows(db_conn, "select rows_excluded, rows_quarantined from raw.load_audit") == [(4, 1)]


def test_include_unfinished_keeps_unfinished_responses(db_conn, tmp_path):
    path = _export(tmp_path, _answer("R_1", "9"), _answer("R_half", "2", finished="False"))
    result = _load(db_conn, _source("survey_responses", path=path, mapping="qualtrics_csv", include_unfinished=True))
    assert (result.rows_loaded, result.rows_excluded) == (2, 0)


def test_sources_check_reports_the_excluded_rows(tmp_path, monkeypatch, capsys):
    path = _export(tmp_path, _answer("R_1", "9"), _answer("R_prev", "10", "Survey Preview"),
                   _answer("R_half", "2", finished="False"))
    config = tmp_path / "sources.yml"
    config.write_text(f"entities:\n  survey_responses: {{path: '{path}', mapping: qualtrics_csv}}\n")
    monkeypatch.setenv("NPS_SOURCES_CONFIG", str(config))
    main(["sources", "check", "--start", "2025-01-01", "--end", "2025-02-01", "--entity", "survey_responses"])
    out = capsys.readouterr().out
    assert "read 3, would load 1, quarantine 0" in out
    assert "excluded, not answers: Status Survey Preview x1, Finished false x1" in out


# Delighted's survey_responses API marks no test or "special" responses (its fields: id, person,
# survey_type, score, comment, permalink, created_at, updated_at, person_properties, notes, tags,
# additional_answers). Teams mark them themselves, with a tag or a person property: `exclude_when`
# excludes those rows like Qualtrics previews (counted, rule excluded, never answers).
def test_exclude_when_excludes_a_teams_own_test_marks_from_delighted(db_conn, delighted, monkeypatch):  # noqa: F811
    from tests.test_connectors import _delighted_record

    monkeypatch.setenv("DELIGHTED_API_KEY", "sekret")
    delighted.records = [_delighted_record(n, f"2025-01-{n + 1:02d}T10:00:00+00:00") for n in range(6)]
    delighted.records[2]["tags"] = ["Test"]
    delighted.records[3]["person_properties"]["internal_test"] = True
    src = _source("survey_responses", connector="http", url=delighted.url, mapping="delighted_json",
                  backoff_seconds=0.01, exclude_when=[
                      {"column": "tags", "contains": ["test"], "reason": "tagged test in Delighted"},
                      {"column": "person_properties.internal_test", "values": [True]}])
    result = _load(db_conn, src)
    assert (result.rows_read, result.rows_loaded, result.rows_excluded) == (6, 4, 2)
    kept = _rows(db_conn, "select payload->>'response_id', rule, detail from raw.quarantine order by 1")
    assert kept == [("1002", "excluded", "tags test: tagged test in Delighted"),
                    ("1003", "excluded", "person_properties.internal_test true: excluded by exclude_when")]
    assert sorted(r[0] for r in _rows(db_conn, "select response_id from raw.survey_responses")) == [
        "1000", "1001", "1004", "1005"]


def test_exclude_when_a_column_the_export_lacks_is_an_error_before_any_row(db_conn, tmp_path):
    import pytest

    from nps_airflow.extract import SourceContractError

    path = _export(tmp_path, _answer("R_1", "9"))
    src = _source("survey_responses", path=path, mapping="qualtrics_csv",
                  exclude_when=[{"column": "IsTest", "values": ["yes"]}])
    with pytest.raises(SourceContractError, match="exclude_when column.*IsTest.*missing"):
        _load(db_conn, src)
    assert _rows(db_conn, "select count(*) from raw.load_audit") == [(0,)]


def test_exclude_when_is_checked_when_the_configuration_is_read():
    import pytest

    from nps import sources

    for bad, message in (([{"values": ["x"]}], "needs 'column'"), ([{"column": "tags"}], "give 'values'"),
                         ([{"column": "tags", "value": "x"}], "unknown key")):
        with pytest.raises(sources.SourceConfigError, match=message):
            sources.parse({"entities": {"survey_responses": {"path": "x.csv", "exclude_when": bad}}}, origin="t")
