"""A mapping that leaves out a required contract column is a mistake in sources.yml, not bad rows:
it is said before any row is validated, naming the column and the source columns that look like
it, instead of quarantining every row as missing_<column> (13,944 rows once). Real files, a real
PostgreSQL."""

from __future__ import annotations

import pytest

from nps_airflow.extract import SourceContractError
from tests.test_file_faults import _csv, _drop, _line, _load, _rows, _source


def _nothing_written(conn) -> None:
    assert _rows(conn, "select count(*) from raw.survey_responses") == [(0,)]
    assert _rows(conn, "select count(*) from raw.quarantine") == [(0,)]


def test_a_renamed_required_column_is_named_with_the_columns_that_look_like_it(db_conn, tmp_path):
    _drop(tmp_path, 5, _csv(_line("R1"), _line("R2")).replace("account_id", "AccountID", 1))
    with pytest.raises(SourceContractError, match=r"required column account_id .*look alike: AccountID"):
        _load(db_conn, _source(tmp_path))
    _nothing_written(db_conn)


def test_a_required_column_mapped_to_nothing_fails_before_any_row(db_conn, tmp_path):
    """`strict: false` (or null) says the source may not have it: fine for optional columns, but
    without a required one every row would be quarantined."""
    text = _csv(_line("R1"), _line("R2")).replace("account_id", "Account Number", 1)
    _drop(tmp_path, 5, text)
    for rule in ({"source": ["acct"], "strict": False}, None):
        with pytest.raises(SourceContractError, match=r"required column account_id .*Account Number"):
            _load(db_conn, _source(tmp_path, mapping={"account_id": rule}))
        _nothing_written(db_conn)


def test_an_optional_column_mapped_to_nothing_still_loads(db_conn, tmp_path):
    _drop(tmp_path, 5, _csv(_line("R1")).replace("language", "lang", 1))
    result = _load(db_conn, _source(tmp_path, mapping={"language": {"source": ["language"], "strict": False}}))
    assert result.rows_loaded == 1
    assert _rows(db_conn, "select language from raw.survey_responses") == [(None,)]


def test_no_look_alike_lists_the_file_s_columns(db_conn, tmp_path):
    _drop(tmp_path, 5, _csv(_line("R1")).replace("account_id", "zzz", 1))
    with pytest.raises(SourceContractError, match=r"No source column looks alike; the file has: response_id, "):
        _load(db_conn, _source(tmp_path, mapping={"account_id": None}))
