"""The optional survey_sends entity through the real loader and PostgreSQL: its contract's quarantine
rules (blank required values, unparseable and future sent_at, a survey type that is neither
relational nor transactional, the same send id with other content), idempotent reruns of a window,
raw.load_audit's rows_read = loaded + quarantined + duplicates + excluded, a source of one's own
mapped onto the contract, and what a team without sends gets: a `not_configured` load."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

import pytest

from nps import config, contracts, sources
from nps_airflow.load import load_entity

COLUMNS = list(contracts.SPECS["survey_sends"].columns)
JAN = (datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 2, 1, tzinfo=UTC))
FEB = (JAN[1], datetime(2025, 3, 1, tzinfo=UTC))
NOW = datetime(2025, 6, 1, tzinfo=UTC)
LENIENT = config.LoadSettings(max_quarantine_share=0.9)


def _send(send_id: str, sent_at: str, **values: str) -> dict[str, str]:
    row = {"send_id": send_id, "survey_id": "NPS-REL-2025Q1", "survey_type": "relational",
           "trigger_event": "quarterly", "account_id": "A1", "contact_id": "C1", "channel": "email",
           "sent_at": sent_at, "response_id": ""}
    row.update(values)
    return row


def _write(root: Path, day: str, rows: list[dict], columns: list[str] | None = None) -> Path:
    folder = root / "survey_sends"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"survey_sends_{day}.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns or COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return path


def _load(conn, root: Path, window=JAN, settings=LENIENT, run_id="t1"):
    return load_entity(conn, "survey_sends", *window, run_id=run_id, sources_dir=root, settings=settings, now=NOW)


def _table(conn, sql: str) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


def _audit_adds_up(conn) -> None:
    rows = _table(conn, "select rows_read, rows_loaded, rows_quarantined, duplicates_dropped, rows_excluded"
                        " from raw.load_audit where entity = 'survey_sends'")
    assert rows
    for read, loaded, quarantined, duplicates, excluded in rows:
        assert read == loaded + quarantined + duplicates + excluded, rows


def test_the_demo_configuration_reads_survey_sends_drops(tmp_path):
    src = sources.load(sources.DEFAULT_CONFIG, sources_dir=tmp_path).entity("survey_sends")
    assert src.connector == "file" and src.option("partition_date") == "filename"
    assert src.option("path") == f"{tmp_path}/survey_sends/survey_sends_*.csv"
    assert "survey_sends" in contracts.OPTIONAL_ENTITIES


def test_rerun_replaces_the_window_and_never_duplicates(db_conn, tmp_path):
    _write(tmp_path, "2025-01-05", [_send("S1", "2025-01-05T10:00:00+00:00", response_id="R1"),
                                    _send("S2", "2025-01-05T11:00:00+00:00", contact_id="C2")])
    _write(tmp_path, "2025-02-02", [_send("S3", "2025-02-02T09:00:00+00:00")])  # the next window's file
    first = _load(db_conn, tmp_path)
    table = "select send_id, contact_id, response_id, sent_at from raw.survey_sends order by 1"
    before = _table(db_conn, table)
    second = _load(db_conn, tmp_path)
    assert _table(db_conn, table) == before
    assert [r[0] for r in before] == ["S1", "S2"]
    assert dict((r[0], r[2]) for r in before) == {"S1": "R1", "S2": None}  # empty response_id: null
    assert (first.rows_loaded, second.rows_loaded, second.rows_replaced) == (2, 2, 2)
    assert first.checksum == second.checksum and first.mode == "partition"
    _load(db_conn, tmp_path, window=FEB)
    assert [r[0] for r in _table(db_conn, table)] == ["S1", "S2", "S3"]
    _load(db_conn, tmp_path, window=(JAN[0], FEB[1]))  # a backfill of both months: the same rows
    assert [r[0] for r in _table(db_conn, table)] == ["S1", "S2", "S3"]
    _audit_adds_up(db_conn)


def test_contract_breakers_are_quarantined_and_nothing_is_lost(db_conn, tmp_path):
    rows = [
        _send("S1", "2025-01-05T10:00:00+00:00"),
        _send("S2", "2025-01-05T10:00:00+00:00", survey_type=" transactional "),  # trimmed, kept
        _send("S3", "2025-01-05T10:00:00+00:00", survey_type=""),  # unknown type: allowed
        _send("", "2025-01-05T10:00:00+00:00"),
        _send("S5", "2025-01-05T10:00:00+00:00", account_id=""),
        _send("S6", ""),
        _send("S7", "2025-01-05 whenever"),
        _send("S8", "2025-06-03T10:00:00+00:00"),  # two days after the load's now
        _send("S9", "2025-01-05T10:00:00+00:00", survey_type="nps"),
        _send("S10", "2025-01-05T10:00:00+00:00", survey_type="Relational"),
        _send("S11", "2025-01-06T10:00:00+00:00", channel="sms"),
        _send("S11", "2025-01-06T10:00:00+00:00", channel="sms"),  # the same row twice: dropped
        _send("S12", "2025-01-06T10:00:00+00:00", response_id="R1"),
        _send("S12", "2025-01-06T10:00:00+00:00", response_id="R2"),  # same id, other content
    ]
    _write(tmp_path, "2025-01-05", rows)
    result = _load(db_conn, tmp_path)
    loaded = _table(db_conn, "select send_id, survey_type from raw.survey_sends order by 1")
    assert loaded == [("S1", "relational"), ("S11", "relational"), ("S2", "transactional"), ("S3", None)]
    rules = _table(db_conn, "select coalesce(payload->>'send_id', ''), rule, source_line from raw.quarantine"
                            " where entity = 'survey_sends' order by source_line")
    assert rules == [
        ("", "missing_send_id", 5), ("S5", "missing_account_id", 6), ("S6", "missing_sent_at", 7),
        ("S7", "unparseable_sent_at", 8), ("S8", "future_sent_at", 9), ("S9", "invalid_survey_type", 10),
        ("S10", "invalid_survey_type", 11), ("S12", "duplicate_id_different_content", 14),
        ("S12", "duplicate_id_different_content", 15),
    ]
    [(detail,)] = _table(db_conn, "select detail from raw.quarantine where payload->>'send_id' = 'S9'")
    assert detail == "not one of relational, transactional: nps"
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined, result.duplicates_dropped) == (14, 4, 9, 1)
    _audit_adds_up(db_conn)


def test_a_send_id_loaded_from_another_file_is_kept_once(db_conn, tmp_path):
    _write(tmp_path, "2025-01-05", [_send("S1", "2025-01-05T10:00:00+00:00")])
    _load(db_conn, tmp_path)
    # the survey tool re-sends S1 in February's drop: once as it was, once with a response linked
    _write(tmp_path, "2025-02-03", [_send("S1", "2025-01-05T10:00:00+00:00")])
    again = _load(db_conn, tmp_path, window=FEB)
    assert (again.rows_loaded, again.duplicates_dropped, again.rows_quarantined) == (0, 1, 0)
    _write(tmp_path, "2025-02-03", [_send("S1", "2025-01-05T10:00:00+00:00", response_id="R9")])
    changed = _load(db_conn, tmp_path, window=FEB, settings=config.LoadSettings(max_quarantine_share=1.0))
    assert changed.rows_quarantined == 1
    assert _table(db_conn, "select send_id, response_id from raw.survey_sends") == [("S1", None)]
    assert _table(db_conn, "select rule, payload->>'response_id' from raw.quarantine") == [
        ("duplicate_id_other_interval", "R9")]
    _audit_adds_up(db_conn)


def test_a_distribution_history_of_ones_own_maps_onto_the_contract(db_conn, tmp_path):
    """A survey tool's per-recipient history (no built-in preset: docs/contracts.md section 1),
    exported undated and in local time: mapped column by column, undelivered invitations excluded
    with exclude_when, cut into windows on sent_at, rerun without change."""
    path = tmp_path / "distribution_history.csv"
    header = ["recipient_key", "SurveyID", "AccountId", "contactId", "sentAt", "responseId", "status", "wave"]
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows([
            ["EMD_1:C1", "SV_1", "A1", "C1", "2025-01-31 20:00:00", "R_1", "SurveyFinished", "w1"],
            ["EMD_1:C2", "SV_1", "A1", "C2", "2025-01-31 20:00:00", "", "Opened", "w1"],
            ["EMD_1:C3", "SV_1", "A2", "C3", "2025-01-31 20:00:00", "", "HardBounce", "w1"],
            ["EMD_2:C1", "SV_1", "A1", "C1", "2025-02-10 09:00:00", "", "Success", "w2"],
        ])
    src = sources.parse({"entities": {"survey_sends": {
        "path": str(path), "partition_date": "none", "timezone": "America/New_York", "max_quarantine_share": 0.5,
        "mapping": {"send_id": "recipient_key", "survey_id": "SurveyID", "account_id": "AccountId",
                    "contact_id": "contactId", "sent_at": "sentAt", "response_id": "responseId",
                    "survey_type": {"const": "relational"}, "trigger_event": None, "channel": {"const": "email"}},
        "exclude_when": [{"column": "status", "values": ["HardBounce", "Failed", "Skipped"],
                          "reason": "not delivered"}],
    }}}, origin="test").entity("survey_sends")
    jan = load_entity(db_conn, "survey_sends", *JAN, run_id="j", source=src, now=NOW)
    feb = load_entity(db_conn, "survey_sends", *FEB, run_id="f", source=src, now=NOW)
    again = load_entity(db_conn, "survey_sends", *FEB, run_id="f2", source=src, now=NOW)
    # 20:00 in New York on Jan 31 is Feb 1, 01:00 UTC: February's window
    assert (jan.rows_read, feb.rows_read, feb.rows_loaded, feb.rows_excluded) == (0, 4, 3, 1)
    assert (again.rows_loaded, again.rows_replaced) == (3, 3)
    stored = _table(db_conn, "select send_id, survey_type, channel, sent_at, response_id, extras"
                             " from raw.survey_sends order by 1")
    assert [r[0] for r in stored] == ["EMD_1:C1", "EMD_1:C2", "EMD_2:C1"]
    assert stored[0][1:5] == ("relational", "email", datetime(2025, 2, 1, 1, tzinfo=UTC), "R_1")
    assert stored[0][5] == {"status": "SurveyFinished", "wave": "w1"}
    assert _table(db_conn, "select payload->>'send_id', rule, detail from raw.quarantine") == [
        ("EMD_1:C3", "excluded", "status HardBounce: not delivered")]
    _audit_adds_up(db_conn)


def test_a_team_without_sends_gets_a_not_configured_load(db_url, tmp_path, monkeypatch):
    from nps import warehouse
    from nps_airflow import stages

    config_file = tmp_path / "sources.yml"
    config_file.write_text(f"entities:\n  survey_responses: {{path: '{tmp_path}/responses/*.csv'}}\n")
    monkeypatch.setenv("NPS_SOURCES_CONFIG", str(config_file))
    monkeypatch.setenv(warehouse.URL_ENV, db_url)
    result = stages.extract("survey_sends", *JAN, "run-1")
    assert result["mode"] == "not_configured" and result["rows_read"] == 0
    conn = warehouse.connect(db_url)
    try:
        assert _table(conn, "select entity, load_mode, connector, rows_read from raw.load_audit") == [
            ("survey_sends", "not_configured", "none", 0)]
        assert _table(conn, "select count(*) from raw.survey_sends") == [(0,)]
    finally:
        conn.close()
    needs = dict((mart, effect) for mart, _, effect in sources.source_needs("survey_sends"))
    assert set(needs) == {"nps_by_segment", "survey_eligibility"}
    assert "response_rate are null" in needs["nps_by_segment"]


def test_sources_check_lists_sends_as_optional_with_what_the_marts_show(tmp_path, monkeypatch, capsys):
    from nps.cli import main

    drops = tmp_path / "drops"
    drops.mkdir()
    config_file = tmp_path / "sources.yml"
    config_file.write_text(f"entities:\n  survey_responses: {{path: '{drops}/responses_*.csv'}}\n")
    monkeypatch.setenv("NPS_SOURCES_CONFIG", str(config_file))
    assert main(["sources", "check", "--start", "2025-01-01", "--end", "2025-02-01", "--entity", "survey_sends"]) == 0
    out = capsys.readouterr().out
    assert "survey_sends      ok    not configured in" in out
    assert "nps_by_segment: sends, responses_to_sends and response_rate are null" in out
    assert "survey_eligibility: only answered surveys count towards fatigue" in out


@pytest.mark.parametrize("value", ["relational", "transactional", ""])
def test_the_documented_survey_types_pass_the_loader(value):
    import pandas as pd

    from nps_airflow.extract import validate

    spec = contracts.SPECS["survey_sends"]
    row = _send("S1", "2025-01-05T10:00:00+00:00", survey_type=value)
    good, quarantined = validate(pd.DataFrame([row]), spec, config.LoadSettings(), NOW)
    assert len(good) == 1 and quarantined.empty
