"""Broken file drops against a real PostgreSQL: rows cut short or with too many fields, files
nobody can parse, and re-drops that would silently remove rows already loaded. Each case checks
that nothing is lost without a word: a row is loaded or quarantined, an unreadable file is
quarantined or named in the error, and rows already loaded are only removed when told to."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from nps import sources
from nps_airflow.extract import check_sources
from nps_airflow.load import RowLossExceeded, UnreadableFileError, load_entity

COLUMNS = ["response_id", "survey_id", "survey_type", "trigger_event", "account_id", "contact_id",
           "channel", "sent_at", "responded_at", "score", "comment", "language"]
HEADER = ",".join(COLUMNS)
NOW = datetime(2025, 6, 1, tzinfo=UTC)


def _day(d: int) -> tuple[datetime, datetime]:
    return datetime(2025, 1, d, tzinfo=UTC), datetime(2025, 1, d + 1, tzinfo=UTC)


JAN = (datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 2, 1, tzinfo=UTC))


def _fields(rid: str, day: int = 5, comment: str = "fine", language: str = "en") -> list[str]:
    when = f"2025-01-{day:02d}T10:00:00+00:00"
    return [rid, "S1", "relational", "quarterly", "A1", "C1", "email", when, when, "8", comment, language]


def _line(rid: str, day: int = 5, **kw) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(_fields(rid, day, **kw))
    return out.getvalue()


def _drop(root: Path, day: int, text: str | bytes) -> Path:
    folder = root / "survey_responses"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"survey_responses_2025-01-{day:02d}.csv"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def _csv(*lines: str) -> str:
    return "\n".join([HEADER, *lines]) + "\n"


def _source(root: Path, **options) -> sources.EntitySource:
    entity = {"path": f"{root}/survey_responses/survey_responses_*.csv", "max_quarantine_share": 1.0, **options}
    return sources.parse({"entities": {"survey_responses": entity}}, origin="test").entity("survey_responses")


def _load(conn, src, window=JAN, run_id="t1", **kw):
    return load_entity(conn, "survey_responses", *window, run_id=run_id, source=src, now=NOW, **kw)


def _rows(conn, sql: str) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


def _nothing_lost(result) -> None:
    assert result.rows_read == result.rows_loaded + result.rows_quarantined + result.duplicates_dropped


# ---------------------------------------------------------------- rows with the wrong number of fields


def test_a_row_cut_short_is_quarantined_as_short_row(db_conn, tmp_path):
    """The reproduced case: a line truncated inside the comment lost the language field too; it
    used to load with comment 'Workflows and t' and an empty language."""
    full = _line("R2", comment="Workflows and templates save us hours")
    truncated = full[:full.index("Workflows and t") + len("Workflows and t")]
    _drop(tmp_path, 5, _csv(_line("R1"), truncated, _line("R3")))
    result = _load(db_conn, _source(tmp_path))
    assert _rows(db_conn, "select response_id from raw.survey_responses order by 1") == [("R1",), ("R3",)]
    [(rule, detail, line, payload)] = _rows(db_conn, "select rule, detail, source_line, payload from raw.quarantine")
    assert rule == "short_row"
    assert "11 fields" in detail and "12" in detail
    assert line == 3
    assert payload["_raw"] == truncated
    assert payload["response_id"] == "R2" and payload["comment"] == "Workflows and t" and payload["language"] == ""
    _nothing_lost(result)


def test_a_trailing_empty_field_and_quoted_newlines_still_load(db_conn, tmp_path):
    """`a,b,` has three fields: an empty last value is not a short row; a quoted newline (or
    delimiter) inside a comment is part of the value."""
    _drop(tmp_path, 5, _csv(_line("R1", language=""), _line("R2", comment='two\nlines, "quoted"'), _line("R3")))
    result = _load(db_conn, _source(tmp_path))
    assert _rows(db_conn, "select response_id, comment, language from raw.survey_responses order by 1") == [
        ("R1", "fine", None), ("R2", 'two\nlines, "quoted"', "en"), ("R3", "fine", "en")]
    assert _rows(db_conn, "select count(*) from raw.quarantine") == [(0,)]
    assert result.rows_loaded == 3


@pytest.mark.parametrize("short", [False, True])
def test_quarantine_names_the_physical_line_a_record_starts_on(db_conn, tmp_path, short):
    """Header (line 1), R0 (2), a comment with two line breaks (3-5), a blank line (6), then a
    bad row on line 7: reported as line 7, as an editor shows it, not as the third record.
    `short`: a short row follows on line 8, which takes the record-by-record reader; both readers
    agree."""
    bad = _line("R3").replace(",8,", ",11,")  # score out of range
    multiline = _line("R1", comment="one, two\nthree\nfour")
    rows = [_line("R0"), multiline, "", bad, *([_line("R4")[:40]] if short else []), _line("R5")]
    _drop(tmp_path, 5, _csv(*rows))
    _load(db_conn, _source(tmp_path))
    quarantined = _rows(db_conn, "select rule, source_line from raw.quarantine order by source_line")
    assert quarantined == [("score_out_of_range", 7), *([("short_row", 8)] if short else [])]
    assert _rows(db_conn, "select comment from raw.survey_responses where response_id = 'R1'") == [
        ("one, two\nthree\nfour",)]


@pytest.mark.parametrize("position", ["first", "middle"])
def test_a_row_with_more_fields_than_the_header_is_quarantined_as_long_row(db_conn, tmp_path, position):
    """More values than columns used to fail the whole file (pandas' 'Expected 12 fields') or,
    as the first data row, silently shift every column of the file by one (an implied index)."""
    long = _line("RX") + ",surplus"
    lines = [long, _line("R1"), _line("R2")] if position == "first" else [_line("R1"), long, _line("R2")]
    _drop(tmp_path, 5, _csv(*lines))
    result = _load(db_conn, _source(tmp_path))
    assert _rows(db_conn, "select response_id, account_id, score, language from raw.survey_responses order by 1") == [
        ("R1", "A1", 8, "en"), ("R2", "A1", 8, "en")]
    [(rule, detail, payload)] = _rows(db_conn, "select rule, detail, payload from raw.quarantine")
    assert rule == "long_row" and "13 fields" in detail and "12" in detail
    assert payload["_raw"] == long and payload["response_id"] == "RX"
    _nothing_lost(result)


# ---------------------------------------------------------------- files that cannot be read


def test_an_unreadable_file_is_quarantined_and_the_other_files_load(db_conn, tmp_path):
    empty = _drop(tmp_path, 5, b"")
    broken = _drop(tmp_path, 6, _csv(_line("R2", 6), '"R3,S1,relational', _line("R4", 6)))
    _drop(tmp_path, 7, _csv(_line("R1", 7)))
    src = _source(tmp_path, on_unreadable_file="quarantine")
    for _ in range(2):  # a rerun keeps one entry per unreadable file
        result = _load(db_conn, src)
    assert _rows(db_conn, "select response_id from raw.survey_responses") == [("R1",)]
    got = _rows(db_conn, "select source_file, rule, detail, payload->>'_raw' from raw.quarantine order by 1")
    assert [(f, r) for f, r, _, _ in got] == [(str(empty), "unreadable_file"), (str(broken), "unreadable_file")]
    assert "empty" in got[0][2]
    assert "quote" in got[1][2] and "EOF inside string" in got[1][2]  # the parser's own words
    assert got[1][3].startswith(HEADER)
    assert result.unreadable_files == [str(empty), str(broken)]
    assert _rows(db_conn, "select unreadable_files from raw.load_audit order by audit_id desc limit 1") == [
        ([str(empty), str(broken)],)]
    _nothing_lost(result)


def test_unreadable_files_fail_the_load_by_default_after_the_other_files_load(db_conn, tmp_path):
    empty = _drop(tmp_path, 5, b"")
    broken = _drop(tmp_path, 6, _csv(_line("R2", 6), '"R3,S1,relational'))
    _drop(tmp_path, 7, _csv(_line("R1", 7)))
    with pytest.raises(UnreadableFileError) as failure:
        _load(db_conn, _source(tmp_path))
    message = str(failure.value)
    assert str(empty) in message and str(broken) in message
    assert "empty" in message and "EOF inside string" in message
    assert "on_unreadable_file" in message  # how to load around it
    assert _rows(db_conn, "select response_id from raw.survey_responses") == [("R1",)]


@pytest.mark.parametrize("redrop", [b"", (HEADER + "\n" + '"R9,S1\n').encode()], ids=["empty", "open_quote"])
@pytest.mark.parametrize("on_unreadable", ["quarantine", "fail"])
def test_an_unreadable_redrop_keeps_the_rows_loaded_from_that_file(db_conn, tmp_path, redrop, on_unreadable):
    _drop(tmp_path, 5, _csv(_line("R1"), _line("R2"), _line("R3", comment="x" * 6000)))
    src = _source(tmp_path, on_unreadable_file=on_unreadable)
    _load(db_conn, src, window=_day(5))
    before = _rows(db_conn, "select response_id, _run_id from raw.survey_responses order by 1")
    _drop(tmp_path, 5, redrop)
    if on_unreadable == "fail":
        with pytest.raises(UnreadableFileError):
            _load(db_conn, src, window=_day(5), run_id="t2")
    else:
        _load(db_conn, src, window=_day(5), run_id="t2")
    assert _rows(db_conn, "select response_id, _run_id from raw.survey_responses order by 1") == before
    # the row quarantined from the old file stays with its rows, beside the file's new entry
    assert _rows(db_conn, "select rule from raw.quarantine order by 1") == [("comment_too_long",), ("unreadable_file",)]


def test_an_unreadable_undated_file_keeps_its_rows_in_window_mode(db_conn, tmp_path):
    path = tmp_path / "export.csv"
    path.write_text(_csv(_line("R1"), _line("R2", 6)))
    src = sources.parse({"entities": {"survey_responses": {
        "path": str(path), "partition_date": "none", "on_unreadable_file": "quarantine"}}},
        origin="test").entity("survey_responses")
    assert _load(db_conn, src).mode == "window"
    path.write_bytes(b"")
    _load(db_conn, src, run_id="t2")
    assert _rows(db_conn, "select response_id from raw.survey_responses order by 1") == [("R1",), ("R2",)]
    assert _rows(db_conn, "select rule, source_file from raw.quarantine") == [("unreadable_file", str(path))]


def test_a_corrupt_parquet_file_is_unreadable_not_fatal(db_conn, tmp_path):
    folder = tmp_path / "usage"
    folder.mkdir()
    pd.DataFrame([{"account_id": "A1", "usage_date": "2025-01-05", "active_users": "3", "sessions": "4",
                   "core_events": "5"}]).to_parquet(folder / "usage_2025-01-05.parquet", index=False)
    (folder / "usage_2025-01-06.parquet").write_bytes(b"PAR1 this is not parquet")
    src = sources.parse({"entities": {"usage_daily": {"path": f"{folder}/usage_*.parquet",
                                                      "on_unreadable_file": "quarantine"}}},
                        origin="test").entity("usage_daily")
    result = load_entity(db_conn, "usage_daily", *JAN, run_id="t1", source=src, now=NOW)
    assert result.rows_loaded == 1
    assert _rows(db_conn, "select rule, source_file from raw.quarantine") == [
        ("unreadable_file", str(folder / "usage_2025-01-06.parquet"))]


def test_a_header_only_file_is_readable_and_has_no_rows(db_conn, tmp_path):
    _drop(tmp_path, 5, HEADER + "\n")
    _drop(tmp_path, 6, _csv(_line("R1", 6)))
    result = _load(db_conn, _source(tmp_path))
    assert result.rows_loaded == 1 and result.unreadable_files == []
    assert _rows(db_conn, "select count(*) from raw.quarantine") == [(0,)]


def test_on_unreadable_file_must_be_quarantine_or_fail():
    with pytest.raises(sources.SourceConfigError, match="on_unreadable_file"):
        sources.parse({"entities": {"survey_responses": {"path": "x.csv", "on_unreadable_file": "skip"}}})
    with pytest.raises(sources.SourceConfigError, match="max_row_loss_share"):
        sources.parse({"entities": {"survey_responses": {"path": "x.csv", "max_row_loss_share": -1}}})


# ---------------------------------------------------------------- re-drops that remove rows


def _loaded_day(conn, root: Path, n: int = 40, src=None) -> sources.EntitySource:
    src = src or _source(root)
    _drop(root, 5, _csv(*[_line(f"R{i:03d}") for i in range(n)]))
    assert _load(conn, src, window=_day(5)).rows_loaded == n
    return src


def test_a_header_only_redrop_fails_the_load_and_writes_nothing(db_conn, tmp_path):
    """The reproduced case: a header-only re-drop of a day deleted its responses and the run
    published; a 4 % loss in a quarter is inside the marts' row-count tolerance."""
    src = _loaded_day(db_conn, tmp_path)
    before = _rows(db_conn, "select * from raw.survey_responses order by 1")
    path = _drop(tmp_path, 5, HEADER + "\n")
    with pytest.raises(RowLossExceeded) as failure:
        _load(db_conn, src, window=_day(5), run_id="t2")
    message = str(failure.value)
    assert str(path) in message and "40 rows" in message and "0" in message
    assert "accept_row_loss" in message and "NPS_ACCEPT_ROW_LOSS" in message
    assert _rows(db_conn, "select * from raw.survey_responses order by 1") == before
    assert _rows(db_conn, "select run_id from raw.load_audit") == [("t1",)]


def test_a_redrop_whose_rows_now_all_quarantine_loses_them_too(db_conn, tmp_path):
    src = _loaded_day(db_conn, tmp_path)
    _drop(tmp_path, 5, _csv(*[_line(f"R{i:03d}").replace(",8,", ",eight,") for i in range(40)]))
    with pytest.raises(RowLossExceeded, match="40 rows"):
        _load(db_conn, src, window=_day(5), run_id="t2")
    assert _rows(db_conn, "select count(*) from raw.survey_responses") == [(40,)]
    assert _rows(db_conn, "select count(*) from raw.quarantine") == [(0,)]


def test_a_small_loss_within_max_row_loss_share_loads_and_is_audited(db_conn, tmp_path):
    src = _loaded_day(db_conn, tmp_path)
    _drop(tmp_path, 5, _csv(*[_line(f"R{i:03d}") for i in range(2, 40)]))  # 2 of 40 removed: 5 %
    result = _load(db_conn, src, window=_day(5), run_id="t2")
    assert result.rows_loaded == 38 and result.rows_lost == 2 and not result.row_loss_accepted
    assert _rows(db_conn, "select rows_lost, row_loss_accepted from raw.load_audit where run_id = 't2'") == [
        (2, False)]


@pytest.mark.parametrize("how", ["argument", "environment", "source"])
def test_a_row_loss_can_be_accepted(db_conn, tmp_path, monkeypatch, how):
    src = _loaded_day(db_conn, tmp_path, src=_source(tmp_path, accept_row_loss=True) if how == "source" else None)
    _drop(tmp_path, 5, _csv(_line("R001")))
    monkeypatch.delenv("NPS_ACCEPT_ROW_LOSS", raising=False)
    if how == "environment":
        monkeypatch.setenv("NPS_ACCEPT_ROW_LOSS", "1")
    told = {"accept_row_loss": True} if how == "argument" else {}
    result = _load(db_conn, src, window=_day(5), run_id="t2", **told)
    assert result.rows_loaded == 1 and result.rows_lost == 39 and result.row_loss_accepted
    assert _rows(db_conn, "select response_id from raw.survey_responses") == [("R001",)]
    assert _rows(db_conn, "select rows_lost, row_loss_accepted from raw.load_audit where run_id = 't2'") == [
        (39, True)]


def test_max_row_loss_share_is_per_source_and_per_file(db_conn, tmp_path):
    src = _source(tmp_path, max_row_loss_share=0.5)
    _drop(tmp_path, 5, _csv(*[_line(f"A{i}") for i in range(10)]))
    _drop(tmp_path, 6, _csv(*[_line(f"B{i}", 6) for i in range(10)]))
    _load(db_conn, src)
    _drop(tmp_path, 5, _csv(*[_line(f"A{i}") for i in range(6)]))  # 40 % of this file: accepted
    _drop(tmp_path, 6, _csv(*[_line(f"B{i}", 6) for i in range(4)]))  # 60 % of this one: not
    with pytest.raises(RowLossExceeded) as failure:
        _load(db_conn, src, run_id="t2")
    assert "survey_responses_2025-01-06.csv: 10 rows" in str(failure.value)
    assert "2025-01-05.csv" not in str(failure.value)
    assert _rows(db_conn, "select count(*) from raw.survey_responses") == [(20,)]


def test_window_mode_compares_the_window(db_conn, tmp_path):
    path = tmp_path / "export.csv"
    path.write_text(_csv(*[_line(f"R{i}") for i in range(10)], _line("OTHER", 6)))
    src = sources.parse({"entities": {"survey_responses": {"path": str(path), "partition_date": "none"}}},
                        origin="test").entity("survey_responses")
    _load(db_conn, src, window=_day(5))
    path.write_text(_csv(_line("R0"), _line("OTHER", 6)))
    with pytest.raises(RowLossExceeded, match="10 rows"):
        _load(db_conn, src, window=_day(5), run_id="t2")
    assert _rows(db_conn, "select count(*) from raw.survey_responses") == [(10,)]


def test_incremental_loads_only_replace_rows_and_are_not_checked(db_conn, tmp_path):
    src = _source(tmp_path, watermark_column="responded_at")
    _drop(tmp_path, 5, _csv(*[_line(f"R{i}") for i in range(10)]))
    _load(db_conn, src, window=_day(5))
    _drop(tmp_path, 5, HEADER + "\n")
    result = _load(db_conn, src, window=_day(5), run_id="t2")
    assert result.mode == "incremental" and result.rows_lost == 0
    assert _rows(db_conn, "select count(*) from raw.survey_responses") == [(10,)]


# ---------------------------------------------------------------- nps sources check


def test_sources_check_reports_the_new_rules_and_unreadable_files(tmp_path, monkeypatch):
    empty = _drop(tmp_path, 5, b"")
    _drop(tmp_path, 6, _csv(_line("R1", 6), _line("R2", 6)[:-3], _line("R3", 6) + ",x"))
    config = tmp_path / "sources.yml"
    for mode in ("quarantine", "fail"):
        config.write_text(
            "entities:\n"
            f"  survey_responses: {{path: '{tmp_path}/survey_responses/survey_responses_*.csv',"
            f" max_quarantine_share: 1, on_unreadable_file: {mode}}}\n"
        )
        monkeypatch.setenv("NPS_SOURCES_CONFIG", str(config))
        [row] = check_sources(*JAN, ["survey_responses"], now=NOW)
        assert row["rules"] == {"short_row": 1, "long_row": 1, "unreadable_file": 1}
        assert row["rows_read"] == 3 and row["rows_to_load"] == 1
        assert [u["file"] for u in row["unreadable_files"]] == [str(empty)]
        if mode == "fail":
            assert not row["ok"] and str(empty) in row["error"] and "empty" in row["error"]
        else:
            assert row["ok"] and "error" not in row
