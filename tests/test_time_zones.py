"""Timestamps without an offset: a source that declares no time zone has them taken as UTC, and
says so (log and `nps sources check`), never silently; `timezone:` on the source applies to every
timestamp column (presets honour it too). A Qualtrics export whose ImportId row carries no time
zone once had its local RecordedDate stored as UTC without a word. Real files and database."""

from __future__ import annotations

from datetime import UTC, datetime

from nps.cli import main
from tests.test_file_faults import _csv, _drop, _line, _load, _rows, _source
from tests.test_qualtrics_exclusions import HEADER, IMPORT, TEXT, _answer


def _naive(rid: str) -> str:
    return _line(rid).replace("2025-01-05T10:00:00+00:00", "2025-01-05 10:00:00")


def test_naive_timestamps_are_taken_as_utc_and_said_so(db_conn, tmp_path, caplog):
    _drop(tmp_path, 5, _csv(_naive("R1"), _line("R2")))
    result = _load(db_conn, _source(tmp_path))
    assert result.rows_loaded == 2
    assert _rows(db_conn, "select responded_at from raw.survey_responses where response_id = 'R1'") == [
        (datetime(2025, 1, 5, 10, tzinfo=UTC),)]
    said = [r.getMessage() for r in caplog.records if "have no time zone" in r.getMessage()]
    assert len(said) == 2  # sent_at and responded_at, once each
    assert "1 value(s) of responded_at" in said[1] and "'2025-01-05 10:00:00'" in said[1]
    assert "set timezone:" in said[1]


def test_a_declared_time_zone_applies_to_every_timestamp_column(db_conn, tmp_path, caplog):
    _drop(tmp_path, 5, _csv(_naive("R1"), _line("R2")))
    _load(db_conn, _source(tmp_path, timezone="America/Denver"))
    assert _rows(db_conn, "select response_id, sent_at, responded_at from raw.survey_responses order by 1") == [
        ("R1", datetime(2025, 1, 5, 17, tzinfo=UTC), datetime(2025, 1, 5, 17, tzinfo=UTC)),  # Denver: UTC-7
        ("R2", datetime(2025, 1, 5, 10, tzinfo=UTC), datetime(2025, 1, 5, 10, tzinfo=UTC))]  # had an offset
    assert not [r for r in caplog.records if "have no time zone" in r.getMessage()]


def test_sources_check_warns_about_a_qualtrics_export_without_a_time_zone(tmp_path, monkeypatch, capsys):
    import pandas as pd

    no_zone = [i.replace(',"timeZone":"UTC"', "") for i in IMPORT]
    path = tmp_path / "qualtrics.csv"
    pd.DataFrame([TEXT, no_zone, _answer("R_1", "9")], columns=HEADER).to_csv(path, index=False)
    config = tmp_path / "sources.yml"
    config.write_text(f"entities:\n  survey_responses: {{path: '{path}', mapping: qualtrics_csv}}\n")
    monkeypatch.setenv("NPS_SOURCES_CONFIG", str(config))
    main(["sources", "check", "--start", "2025-01-01", "--end", "2025-02-01", "--entity", "survey_responses"])
    out = capsys.readouterr().out
    assert "WARNING survey_responses: 1 value(s) of RecordedDate" in out and "taken as UTC" in out
    config.write_text(f"entities:\n  survey_responses: {{path: '{path}', mapping: qualtrics_csv,"
                      " timezone: America/Denver}\n")
    main(["sources", "check", "--start", "2025-01-01", "--end", "2025-02-01", "--entity", "survey_responses"])
    assert "WARNING" not in capsys.readouterr().out
