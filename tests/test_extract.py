"""File-drop loader against a real PostgreSQL: idempotent windows, quarantine, drift, PII."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

import pytest

from nps import config
from nps_airflow.extract import SourceContractError
from nps_airflow.load import QuarantineThresholdExceeded, load_entity

COLUMNS = ["response_id", "survey_id", "survey_type", "trigger_event", "account_id", "contact_id",
           "channel", "sent_at", "responded_at", "score", "comment", "language"]
JAN = (datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 2, 1, tzinfo=UTC))
NOW = datetime(2025, 6, 1, tzinfo=UTC)


def _row(rid: str, when: str, score: str = "8", comment: str = "fine", account: str = "A1", **extra):
    row = dict(zip(COLUMNS, [rid, "S1", "relational", "quarterly", account, "C1", "email",
                             when, when, score, comment, "en"], strict=True))
    row.update(extra)
    return row


def _write(root: Path, day: str, rows: list[dict], columns: list[str] | None = None) -> Path:
    folder = root / "survey_responses"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"survey_responses_{day}.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns or list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def _load(conn, root, window=JAN, settings=None):
    return load_entity(conn, "survey_responses", *window, run_id="t1", sources_dir=root,
                       settings=settings or config.LoadSettings(max_quarantine_share=0.9), now=NOW)


def _table(conn, sql: str) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


def test_rerun_replaces_the_window_and_never_duplicates(db_conn, tmp_path):
    _write(tmp_path, "2025-01-05", [_row("R1", "2025-01-05T10:00:00+00:00"),
                                    _row("R2", "2025-01-05T11:00:00+00:00")])
    _write(tmp_path, "2025-02-01", [_row("R3", "2025-02-01T00:00:00+00:00")])  # next window
    first = _load(db_conn, tmp_path)
    before = _table(db_conn, "select response_id, score, comment from raw.survey_responses order by 1")
    second = _load(db_conn, tmp_path)
    after = _table(db_conn, "select response_id, score, comment from raw.survey_responses order by 1")
    assert [r[0] for r in after] == ["R1", "R2"]
    assert before == after
    assert first.rows_loaded == second.rows_loaded == 2
    assert second.rows_replaced == 2
    assert first.checksum == second.checksum
    audits = _table(db_conn, "select rows_read, rows_loaded, rows_quarantined from raw.load_audit")
    assert audits == [(2, 2, 0), (2, 2, 0)]


def test_contract_breakers_are_quarantined_and_nothing_is_lost(db_conn, tmp_path):
    rows = [
        _row("R1", "2025-01-05T10:00:00+00:00"),
        _row("R2", "2025-01-05T10:00:00+00:00", score="11"),
        _row("R3", "2025-01-05T10:00:00+00:00", score="seven"),
        _row("", "2025-01-05T10:00:00+00:00"),
        _row("R5", "2025-01-05T10:00:00+00:00", account=""),
        _row("R6", "2025-13-45 nonsense"),
        _row("R8", "2025-01-05T10:00:00+00:00", comment="x" * 6000),
        _row("R9", "2025-01-06T10:00:00+00:00", comment="same"),
        _row("R9", "2025-01-06T10:00:00+00:00", comment="same"),  # exact duplicate: dropped
        _row("R10", "2025-01-06T10:00:00+00:00", score="3"),
        _row("R10", "2025-01-06T10:00:00+00:00", score="9"),  # same id, other content
        _row("R11", "2025-01-06T10:00:00+00:00", score="7.5"),
    ]
    _write(tmp_path, "2025-01-05", rows)
    result = _load(db_conn, tmp_path)
    loaded = [r[0] for r in _table(db_conn, "select response_id from raw.survey_responses order by 1")]
    assert loaded == ["R1", "R9"]
    rules = dict(_table(db_conn, "select coalesce(payload->>'response_id', ''), rule from raw.quarantine"
                                 " where rule <> 'duplicate_id_different_content'"))
    assert rules == {
        "R2": "score_out_of_range", "R3": "non_numeric_score", "": "missing_response_id",
        "R5": "missing_account_id", "R6": "unparseable_responded_at", "R8": "comment_too_long",
        "R11": "non_integer_score",
    }
    dup = _table(db_conn, "select count(*) from raw.quarantine where rule = 'duplicate_id_different_content'")
    assert dup == [(2,)]
    assert result.rows_read == len(rows)
    assert result.rows_read == result.rows_loaded + result.rows_quarantined + result.duplicates_dropped
    lines = _table(db_conn, "select source_line from raw.quarantine where payload->>'response_id' = 'R2'")
    assert lines == [(3,)]


def test_future_dates_are_quarantined(db_conn, tmp_path):
    window = (datetime(2025, 6, 1, tzinfo=UTC), datetime(2025, 7, 1, tzinfo=UTC))
    _write(tmp_path, "2025-06-20", [_row("R1", "2025-06-20T10:00:00+00:00"),
                                    _row("R2", "2025-06-01T10:00:00+00:00")])
    _load(db_conn, tmp_path, window=window)
    assert _table(db_conn, "select payload->>'response_id', rule from raw.quarantine") == [
        ("R1", "future_responded_at")]


def test_missing_required_column_fails_before_writing(db_conn, tmp_path):
    cols = [c for c in COLUMNS if c != "score"]
    _write(tmp_path, "2025-01-05", [{c: v for c, v in _row("R1", "2025-01-05T10:00:00+00:00").items()
                                     if c != "score"}], columns=cols)
    with pytest.raises(SourceContractError, match="score"):
        _load(db_conn, tmp_path)
    db_conn.rollback()
    assert _table(db_conn, "select count(*) from raw.survey_responses") == [(0,)]
    assert _table(db_conn, "select count(*) from raw.load_audit") == [(0,)]


def test_extra_columns_are_kept_and_pii_is_redacted(db_conn, tmp_path):
    comment = "call me at +44 20 7946 0958 or mail jane.doe@example.com, the export is slow"
    _write(tmp_path, "2025-01-05", [_row("R1", "2025-01-05T10:00:00+00:00", comment=comment, nps_wave="w7")])
    result = _load(db_conn, tmp_path)
    assert result.extra_columns == ["nps_wave"]
    [(stored, extras)] = _table(db_conn, "select comment, extras from raw.survey_responses")
    assert "jane.doe" not in stored and "7946" not in stored
    assert "the export is slow" in stored
    assert extras == {"nps_wave": "w7"}


def test_id_loaded_in_another_window_is_quarantined_not_duplicated(db_conn, tmp_path):
    _write(tmp_path, "2025-01-05", [_row("R1", "2025-01-05T10:00:00+00:00")])
    _load(db_conn, tmp_path)
    _write(tmp_path, "2025-02-03", [_row("R1", "2025-02-03T10:00:00+00:00", score="2")])
    _load(db_conn, tmp_path, window=(JAN[1], datetime(2025, 3, 1, tzinfo=UTC)),
          settings=config.LoadSettings(max_quarantine_share=1.0))
    assert _table(db_conn, "select response_id, score from raw.survey_responses") == [("R1", 8)]
    assert _table(db_conn, "select rule from raw.quarantine") == [("duplicate_id_other_interval",)]
    [(payload,)] = _table(db_conn, "select payload from raw.quarantine")
    assert payload["score"] == "2" and payload["comment"] == "fine" and payload["sent_at"].startswith("2025-02-03")


def test_quarantine_threshold_fails_the_load_after_keeping_good_rows(db_conn, tmp_path):
    _write(tmp_path, "2025-01-05", [_row("R1", "2025-01-05T10:00:00+00:00"),
                                    _row("R2", "2025-01-05T10:00:00+00:00", score="99")])
    with pytest.raises(QuarantineThresholdExceeded, match="1 of 2 rows quarantined"):
        _load(db_conn, tmp_path, settings=config.LoadSettings(max_quarantine_share=0.1))
    assert _table(db_conn, "select response_id from raw.survey_responses") == [("R1",)]
    assert _table(db_conn, "select rule from raw.quarantine") == [("score_out_of_range",)]


def test_rerun_replaces_the_windows_quarantine_rows_too(db_conn, tmp_path):
    """A rerun of an interval (or a backfill that contains it) re-quarantines the same bad rows:
    raw.quarantine holds them once, so loaded + quarantined still equals the rows in the source."""
    _write(tmp_path, "2025-01-05", [_row("R1", "2025-01-05T10:00:00+00:00"),
                                    _row("R2", "2025-01-05T10:00:00+00:00", score="11")])
    day = (datetime(2025, 1, 5, tzinfo=UTC), datetime(2025, 1, 6, tzinfo=UTC))
    _load(db_conn, tmp_path, window=day)
    _load(db_conn, tmp_path, window=day)
    assert _table(db_conn, "select payload->>'response_id', rule from raw.quarantine") == [
        ("R2", "score_out_of_range")]
    _load(db_conn, tmp_path)  # the month that contains the day
    assert _table(db_conn, "select payload->>'response_id', interval_start::date from raw.quarantine") == [
        ("R2", JAN[0].date())]
    # the source is fixed: the next rerun loads the row and nothing stays in quarantine
    _write(tmp_path, "2025-01-05", [_row("R1", "2025-01-05T10:00:00+00:00"),
                                    _row("R2", "2025-01-05T10:00:00+00:00", score="10")])
    _load(db_conn, tmp_path)
    assert _table(db_conn, "select count(*) from raw.quarantine") == [(0,)]
    assert _table(db_conn, "select response_id, score from raw.survey_responses order by 1") == [
        ("R1", 8), ("R2", 10)]


PII_CANARIES = [
    "jane.doe+nps@mail.example.co.uk", "JOHN@EXAMPLE.COM", "(415) 555-2671", "415.555.2671",
    "+1 415 555 0132", "+44 20 7946 0958", "0044 20 7946 0958", "020 7946 0958", "07700 900123",
    "+33 1 42 68 53 00", "06 12 34 56 78", "+49 (0)30 1234567", "030 1234567", "+91 98765 43210",
    "+81 3-1234-5678", "+86 138 0013 8000", "+4915112345678", "tel:+14155552671",
]
NOT_PII = ["version 2.3.1", "2025-01-05 at 10:00", "$1,200,000", "99.9% uptime", "10/10",
           "invoice INV-2024-000123", "order 2024 000123", "100 200 300 400 users"]


def test_pii_in_many_formats_is_redacted_before_it_is_stored(db_conn, tmp_path):
    rows = [_row(f"P{i}", "2025-01-05T10:00:00+00:00", comment=f"reach me at {c} please")
            for i, c in enumerate(PII_CANARIES)]
    rows += [_row(f"N{i}", "2025-01-05T10:00:00+00:00", comment=f"about {c} please") for i, c in enumerate(NOT_PII)]
    _write(tmp_path, "2025-01-05", rows)
    _load(db_conn, tmp_path)
    stored = dict(_table(db_conn, "select response_id, comment from raw.survey_responses"))
    for i, canary in enumerate(PII_CANARIES):
        assert stored[f"P{i}"] in ("reach me at [email] please", "reach me at [phone] please",
                                   "reach me at tel:[phone] please"), canary
    for i, text in enumerate(NOT_PII):
        assert stored[f"N{i}"] == f"about {text} please"


def _day(d: int) -> tuple[datetime, datetime]:
    return datetime(2025, 1, d, tzinfo=UTC), datetime(2025, 1, d + 1, tzinfo=UTC)


def test_a_late_row_in_a_later_days_file_is_loaded_and_survives_reruns(db_conn, tmp_path):
    """Date-partitioned drops: the run of a day owns that day's file and loads every row in it, so a
    response recorded on Jan 3 that only arrives in the Jan 10 drop is loaded by the Jan 10 run
    (not dropped as 'outside the interval'), and a rerun of Jan 3 does not delete it."""
    _write(tmp_path, "2025-01-03", [_row("R1", "2025-01-03T10:00:00+00:00")])
    _write(tmp_path, "2025-01-10", [_row("R2", "2025-01-10T09:00:00+00:00"),
                                    _row("LATE", "2025-01-03T23:00:00+00:00", score="2"),
                                    _row("R1", "2025-01-03T10:00:00+00:00")])  # re-sent, same content
    nightly = [_load(db_conn, tmp_path, window=_day(d)) for d in range(1, 12)]
    assert sum(r.rows_read for r in nightly) == 4
    assert sum(r.rows_loaded for r in nightly) == 3 and sum(r.duplicates_dropped for r in nightly) == 1
    table = "select response_id, score, responded_at::date from raw.survey_responses order by 1"
    after_nightly = _table(db_conn, table)
    assert [r[0] for r in after_nightly] == ["LATE", "R1", "R2"]
    assert {r.mode for r in nightly} == {"partition"}
    _load(db_conn, tmp_path, window=_day(3))  # rerun of the response's own day
    assert _table(db_conn, table) == after_nightly
    _load(db_conn, tmp_path)  # backfill of the month: the same table
    assert _table(db_conn, table) == after_nightly
    assert _table(db_conn, "select count(*) from raw.quarantine") == [(0,)]


def test_an_unpartitioned_source_quarantines_a_bad_row_once(db_conn, tmp_path):
    """Every run reads an undated export in full: a row whose date cannot be parsed belongs to no
    window and is quarantined by each run, but raw.quarantine keeps one entry for it."""
    path = tmp_path / "export.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows([_row("R1", "2025-01-03T10:00:00+00:00"), _row("R2", "not a date"),
                          _row("R3", "2025-01-04T10:00:00+00:00")])
    from nps import sources as source_config

    src = source_config.parse({"entities": {"survey_responses": {"path": str(path), "partition_date": "none"}}},
                              origin="test").entity("survey_responses")
    for d in (3, 4, 3):
        result = load_entity(db_conn, "survey_responses", *_day(d), run_id=f"d{d}", source=src, now=NOW,
                             settings=config.LoadSettings(max_quarantine_share=0.9))
        assert result.mode == "window"
    assert _table(db_conn, "select response_id from raw.survey_responses order by 1") == [("R1",), ("R3",)]
    assert _table(db_conn, "select payload->>'response_id', rule, source_line from raw.quarantine") == [
        ("R2", "unparseable_responded_at", 3)]
