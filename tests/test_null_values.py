"""Null tokens: what exports write for "no value" (R's NA, a spreadsheet's N/A or -, a SQL dump's
null) is read as no value before validation and theming, not stored as the text "NA" (an R
export once left 9,810 comments reading "NA", which the theme engine then clustered). Per source
`null_values`; `[]` keeps them as text. Real files, a real PostgreSQL."""

from __future__ import annotations

import pytest

from nps import sources
from tests.test_file_faults import _csv, _drop, _line, _load, _nothing_lost, _rows, _source


def _comments(conn) -> dict[str, str | None]:
    return dict(_rows(conn, "select response_id, comment from raw.survey_responses"))


def test_null_tokens_are_no_value_by_default(db_conn, tmp_path):
    _drop(tmp_path, 5, _csv(_line("R1", comment="NA"), _line("R2", comment=" n/a "), _line("R3", comment="-"),
                            _line("R4", comment="NULL"), _line("R5", comment="NAB card was declined"),
                            _line("R6", comment="Great support", language="NA")))
    result = _load(db_conn, _source(tmp_path))
    _nothing_lost(result)
    assert result.rows_loaded == 6
    comments = _comments(db_conn)
    assert {rid: comments[rid] for rid in ("R1", "R2", "R3", "R4")} == dict.fromkeys(("R1", "R2", "R3", "R4"))
    assert comments["R5"] == "NAB card was declined" and comments["R6"] == "Great support"
    # codes and ids keep their text: "NA" is a code there (North America as a region, a language)
    assert _rows(db_conn, "select language from raw.survey_responses where response_id = 'R6'") == [("NA",)]


def test_a_null_token_in_a_typed_column_is_a_missing_value(db_conn, tmp_path):
    no_score = _line("R1").replace(",8,", ",NA,")
    no_sent_at = _line("R3").replace("email,2025-01-05T10:00:00+00:00,", "email,N/A,")
    _drop(tmp_path, 5, _csv(no_score, _line("R2"), no_sent_at))
    result = _load(db_conn, _source(tmp_path))
    _nothing_lost(result)
    assert result.rows_loaded == 2  # an optional timestamp of "N/A" is no value, not an unparseable one
    assert _rows(db_conn, "select rule from raw.quarantine") == [("missing_score",)]
    assert _rows(db_conn, "select sent_at from raw.survey_responses where response_id = 'R3'") == [(None,)]


def test_null_values_per_source(db_conn, tmp_path):
    _drop(tmp_path, 5, _csv(_line("R1", comment="NA"), _line("R2", comment="(none)")))
    _load(db_conn, _source(tmp_path, null_values=[]))
    assert _comments(db_conn) == {"R1": "NA", "R2": "(none)"}  # [] keeps them as text
    _load(db_conn, _source(tmp_path, null_values=["(none)"]), run_id="t2")
    assert _comments(db_conn) == {"R1": "NA", "R2": None}


def test_null_values_must_be_a_list(tmp_path):
    with pytest.raises(sources.SourceConfigError, match="null_values must be a list of strings"):
        _source(tmp_path, null_values={"NA": True})
    assert _source(tmp_path, null_values="n.a.").null_values == ("n.a.",)
    assert _source(tmp_path).null_values == sources.DEFAULT_NULL_VALUES
