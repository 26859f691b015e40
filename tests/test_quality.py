"""Great Expectations validation (plugins/nps_airflow/quality.py) against a real PostgreSQL.

Each test works in its own scratch schemas (``gxt_<pid>_raw`` / ``gxt_<pid>_marts``): a copy of
``raw.survey_responses`` without its PK and CHECK constraint (so bad rows can be inserted) and
the three mart tables with the columns of docs/contracts.md section 4.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
for _p in (REPO, REPO / "plugins"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

psycopg2 = pytest.importorskip("psycopg2")

from nlp.text import redact_pii  # noqa: E402
from nps_airflow import quality  # noqa: E402
from nps_airflow.quality import DataQualityError  # noqa: E402

DB_URL = ""  # a fresh database on the test server, set by the _database fixture


@pytest.fixture(scope="module", autouse=True)
def _database(make_database) -> None:
    global DB_URL
    DB_URL = make_database("nps_gx")
RAW = f"gxt_{os.getpid()}_raw"
MARTS = f"gxt_{os.getpid()}_marts"

MARTS_DDL = """
create table {s}.nps_by_segment (
    period_grain text, period_start date, segment_type text, segment_value text,
    responses integer, promoters integer, passives integer, detractors integer,
    nps double precision, margin_of_error double precision,
    revenue_weighted_nps double precision, below_min_n boolean
);
create table {s}.detractor_recovery (
    period_grain text, period_start date, follow_up_bucket text, detractors integer,
    with_next_response integer, recovered integer, fully_recovered integer,
    lost_to_churn integer, awaiting_next integer, recovery_rate double precision
);
create table {s}.theme_recurrence (
    theme_id integer, quarter_start date, theme_label text, keywords text, mentions integer,
    detractor_mentions integer, detractor_share double precision, arr_at_risk numeric(14, 2),
    quarters_present integer, current_streak integer, first_seen_quarter date,
    last_seen_quarter date, status text
);
"""

CLEAN_DATA = """
truncate {r}.survey_responses, {m}.nps_by_segment, {m}.detractor_recovery, {m}.theme_recurrence;
insert into {r}.survey_responses
    (response_id, survey_id, survey_type, trigger_event, account_id, contact_id, channel,
     sent_at, responded_at, score, comment, language)
values
    ('r1', 's1', 'relational', 'quarterly', 'a1', 'c1', 'email',
     now() - interval '4 days', now() - interval '3 days', 9, 'Great product, fast support', 'en'),
    ('r2', 's1', 'relational', 'quarterly', 'a2', 'c2', 'email',
     now() - interval '4 days', now() - interval '2 days', 3,
     'Call me at [phone] or write to [email], 2 weeks and $1200 wasted', 'en'),
    ('r3', 's2', 'transactional', 'support_ticket_closed', 'a1', null, 'in_app',
     null, now() - interval '1 day', 7, null, null),
    ('r4', 's2', 'transactional', 'renewal', 'a3', 'c4', 'email',
     null, now() - interval '5 minutes', 0, '', 'de');

insert into {m}.nps_by_segment
select g, date '2025-01-01', t, case when t = 'overall' then 'all' else 'v' || n end,
       10, 5, 3, 2, 30.0, 1.96 * sqrt((0.5 + 0.2 - 0.09) / 10) * 100, -12.5, true
from unnest(array['overall', 'plan', 'arr_band', 'tenure_band', 'industry', 'region',
                  'employee_band', 'usage_band', 'survey_type', 'trigger_event'])
         with ordinality as u(t, n),
     unnest(array['month', 'quarter']) as g;
insert into {m}.nps_by_segment values
    ('quarter', '2025-01-01', 'plan', 'enterprise', 40, 0, 0, 40, -100, 0, null, false),
    ('quarter', '2025-01-01', 'region', 'emea', 3, 3, 0, 0, 100, 0, 100, true);

insert into {m}.detractor_recovery values
    ('quarter', '2025-01-01', 'within_24h', 5, 4, 2, 1, 1, 0, 0.5),
    ('quarter', '2025-01-01', 'within_48h', 3, 0, 0, 0, 1, 2, null),
    ('quarter', '2025-01-01', 'later', 2, 2, 2, 2, 0, 0, 1.0),
    ('quarter', '2025-01-01', 'never', 4, 1, 0, 0, 2, 1, 0.0),
    ('month', '2025-02-01', 'within_24h', 0, 0, 0, 0, 0, 0, null),
    ('month', '2025-02-01', 'within_48h', 1, 1, 1, 0, 0, 0, 1.0),
    ('month', '2025-02-01', 'later', 0, 0, 0, 0, 0, 0, null),
    ('month', '2025-02-01', 'never', 2, 0, 0, 0, 0, 2, null);

insert into {m}.theme_recurrence values
    (1, '2025-01-01', 'slow support', 'slow, support', 5, 2, 0.4, 12000, 1, 1,
     '2025-01-01', '2025-01-01', 'new'),
    (1, '2025-04-01', 'slow support', 'slow, support', 4, 0, 0, 0, 2, 2,
     '2025-01-01', '2025-04-01', 'recurring'),
    (1, '2025-07-01', 'slow support', 'slow, support', 0, 0, null, 0, 2, 0,
     '2025-01-01', '2025-04-01', 'resolved'),
    (2, '2025-07-01', 'pricing', 'price, expensive', 1, 1, 1, 500, 0, 0, null, null, 'absent');
"""


def _exec(sql: str) -> None:
    conn = psycopg2.connect(DB_URL)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


def _query(sql: str, params: tuple = ()) -> list[tuple]:
    conn = psycopg2.connect(DB_URL)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def schemas() -> Iterator[tuple[str, str]]:
    _exec((REPO / "nps" / "sql" / "warehouse.sql").read_text())
    _exec(
        f"drop schema if exists {RAW} cascade; drop schema if exists {MARTS} cascade;"
        f"create schema {RAW}; create schema {MARTS};"
        # LIKE copies NOT NULL but neither the PK nor the CHECK (0-10) constraint
        f"create table {RAW}.survey_responses (like raw.survey_responses including defaults);"
        + MARTS_DDL.format(s=MARTS)
    )
    yield RAW, MARTS
    _exec(f"drop schema if exists {RAW} cascade; drop schema if exists {MARTS} cascade;")


@pytest.fixture()
def clean(schemas: tuple[str, str]) -> tuple[str, str]:
    raw, marts = schemas
    _exec(CLEAN_DATA.format(r=raw, m=marts))
    return raw, marts


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the committed GX project (results/Data Docs land in its uncommitted/)."""
    root = tmp_path_factory.mktemp("gx_project")
    quality.init_project(root)
    return root


def _validate(raw: str, marts: str, project: Path, suites: list[str], **kw) -> quality.ValidationReport:
    return quality.validate(
        DB_URL,
        schema=marts,
        raw_schema=raw,
        suites=suites,
        build_data_docs=False,
        project_root=project,
        **kw,
    )


def _fails(raw: str, marts: str, project: Path, suite: str) -> str:
    with pytest.raises(DataQualityError) as excinfo:
        _validate(raw, marts, project, [suite], run_id=f"bad_{suite}")
    message = str(excinfo.value)
    assert suite in message
    assert excinfo.value.report is not None and not excinfo.value.report.success
    return message


# --------------------------------------------------------------------------------------------
# Committed files and plumbing
# --------------------------------------------------------------------------------------------


def test_committed_gx_project_is_up_to_date() -> None:
    stale = quality.check_project()
    assert stale == [], f"run `python -m nps_airflow.quality --init`; stale: {stale}"
    yml = (quality.default_project_root() / "gx" / "great_expectations.yml").read_text()
    assert "${NPS_GX_RAW_SQLALCHEMY_URL}" in yml and "${NPS_GX_MARTS_SQLALCHEMY_URL}" in yml
    assert "postgresql://" not in yml and "analytics_enabled: false" in yml


def test_module_import_is_light() -> None:
    code = (
        "import sys; sys.path[:0] = [sys.argv[1]]; import nps_airflow.quality; "
        "assert 'great_expectations' not in sys.modules; assert 'sqlalchemy' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code, str(REPO / "plugins")], check=True)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "postgresql://user@127.0.0.1:5432/db",
            "postgresql+psycopg2://user@127.0.0.1:5432/db?options=-csearch_path%3Dmarts",
        ),
        (
            "postgresql://postgres:@/db?host=/tmp/xyz",
            "postgresql+psycopg2://postgres:@/db?host=%2Ftmp%2Fxyz&options=-csearch_path%3Dmarts",
        ),
        (
            "postgres://u:p%40ss@h/db?options=-csearch_path%3Dold",
            "postgresql+psycopg2://u:p%40ss@h/db?options=-csearch_path%3Dmarts",
        ),
    ],
)
def test_sqlalchemy_url(url: str, expected: str) -> None:
    assert quality.sqlalchemy_url(url, search_path="marts") == expected


def test_rejects_bad_schema_and_suite() -> None:
    with pytest.raises(ValueError, match="invalid schema"):
        quality.validate(DB_URL, schema="marts; drop table x")
    with pytest.raises(ValueError, match="unknown suite"):
        quality.validate(DB_URL, suites=["nope"])


# --------------------------------------------------------------------------------------------
# Clean data passes
# --------------------------------------------------------------------------------------------


@pytest.fixture()
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail on any Python-level connection that is not local (GX analytics, version checks,
    CDN downloads). libpq (psycopg2) connects from C and is not affected."""
    import socket

    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address: object) -> object:
        host = address[0] if isinstance(address, tuple) else None
        if host is not None and host not in ("127.0.0.1", "::1", "localhost"):
            raise AssertionError(f"network access attempted: {address!r}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)


def test_clean_data_passes_with_data_docs(clean: tuple[str, str], no_network: None) -> None:
    """The committed project itself: all four suites, checkpoints with Data Docs, offline."""
    raw, marts = clean
    report = quality.validate(
        DB_URL, schema=marts, raw_schema=raw, run_id="scheduled__2025-01-03T00:00:00+00:00"
    )
    assert report.success, report.summary()
    assert set(report.suites) == set(quality.ALL_SUITES)
    assert report.suites["marts_nps_by_segment"].table == f"{marts}.nps_by_segment"
    assert report.suites["raw_survey_responses"].table == f"{raw}.survey_responses"
    for name, result in report.suites.items():
        assert result.evaluated > 5 and result.unsuccessful == 0
        assert result.result_path.is_file()
        assert result.result_path.name == f"{name}.json"
        assert result.result_path.parent == report.run_dir
        payload = json.loads(result.result_path.read_text())
        assert payload["success"] is True
        assert payload["statistics"]["evaluated_expectations"] == result.evaluated
        assert result.gx_result_path is not None and result.gx_result_path.is_file()
    assert report.run_dir.name == "scheduled__2025-01-03T00_00_00_00_00"
    assert (report.run_dir / "report.json").is_file()
    assert report.data_docs_index is not None and report.data_docs_index.is_file()
    assert "marts_nps_by_segment" in report.data_docs_index.read_text()
    assert report.duration_s < 60
    # running must not touch the committed files
    assert quality.check_project() == []


# --------------------------------------------------------------------------------------------
# Injected bad data fails, naming the suite and the offending value
# --------------------------------------------------------------------------------------------


def test_score_out_of_range_fails(clean: tuple[str, str], project: Path) -> None:
    raw, marts = clean
    _exec(f"update {raw}.survey_responses set score = 11 where response_id = 'r1'")
    msg = _fails(raw, marts, project, "raw_survey_responses")
    assert "expect_column_values_to_be_between" in msg and "column=score" in msg
    assert "[11]" in msg


def test_duplicate_response_id_fails(clean: tuple[str, str], project: Path) -> None:
    raw, marts = clean
    _exec(
        f"insert into {raw}.survey_responses (response_id, account_id, responded_at, score) "
        "values ('r2', 'a9', now() - interval '1 day', 8)"
    )
    msg = _fails(raw, marts, project, "raw_survey_responses")
    assert "expect_column_values_to_be_unique" in msg and "column=response_id" in msg
    assert '"r2"' in msg


def test_future_response_and_pii_fail(clean: tuple[str, str], project: Path) -> None:
    raw, marts = clean
    _exec(
        f"update {raw}.survey_responses set responded_at = now() + interval '3 days' "
        "where response_id = 'r3';"
        f"update {raw}.survey_responses set comment = 'mail jane.doe@example.com or 415-555-0132' "
        "where response_id = 'r1';"
    )
    msg = _fails(raw, marts, project, "raw_survey_responses")
    assert "responded_at is not in the future" in msg and '"r3"' in msg
    assert "comment has no e-mail address" in msg and "comment has no phone number" in msg
    assert "jane.doe@example.com" in msg


def test_negative_mart_count_fails(clean: tuple[str, str], project: Path) -> None:
    raw, marts = clean
    _exec(
        f"update {marts}.detractor_recovery set awaiting_next = -2, detractors = 0 "
        "where period_grain = 'quarter' and follow_up_bucket = 'within_48h'"
    )
    msg = _fails(raw, marts, project, "marts_detractor_recovery")
    assert "column=awaiting_next" in msg and "[-2]" in msg


def test_nps_out_of_range_fails(clean: tuple[str, str], project: Path) -> None:
    raw, marts = clean
    _exec(f"update {marts}.nps_by_segment set nps = 150 where segment_value = 'emea'")
    msg = _fails(raw, marts, project, "marts_nps_by_segment")
    assert "column=nps" in msg and "150" in msg
    assert "expect_column_values_to_be_between" in msg


def test_missing_segment_type_fails(clean: tuple[str, str], project: Path) -> None:
    raw, marts = clean
    # a null segment type and a segment type that is absent altogether
    _exec(
        f"update {marts}.nps_by_segment set segment_type = null "
        "where segment_value = 'enterprise';"
        f"delete from {marts}.nps_by_segment where segment_type = 'usage_band';"
    )
    msg = _fails(raw, marts, project, "marts_nps_by_segment")
    assert "expect_column_values_to_not_be_null column=segment_type" in msg
    assert "expect_column_distinct_values_to_contain_set column=segment_type" in msg
    assert '{"missing": ["usage_band"]}' in msg


def test_inconsistent_counts_fail(clean: tuple[str, str], project: Path) -> None:
    raw, marts = clean
    _exec(
        f"update {marts}.nps_by_segment set passives = passives + 1 where segment_value = 'emea';"
        f"update {marts}.detractor_recovery set recovered = 5, recovery_rate = 1.25 "
        "where period_grain = 'quarter' and follow_up_bucket = 'within_24h';"
        f"delete from {marts}.detractor_recovery where period_grain = 'month' "
        "and follow_up_bucket = 'never';"
        f"update {marts}.theme_recurrence set status = 'gone', detractor_share = 1.5 "
        "where theme_id = 2;"
        f"insert into {marts}.theme_recurrence (theme_id, quarter_start, mentions, "
        "detractor_mentions, arr_at_risk, quarters_present, current_streak, status) "
        "values (1, '2025-01-01', 3, 0, 0, 1, 1, 'new');"
    )
    with pytest.raises(DataQualityError) as excinfo:
        _validate(raw, marts, project, list(quality.MART_SUITES))
    msg = str(excinfo.value)
    assert "promoters + passives + detractors = responses" in msg
    assert "recovered <= with_next_response" in msg
    assert "column=recovery_rate" in msg and "1.25" in msg
    assert "every period has all four follow_up_buckets" in msg
    assert "column=status" in msg and '"gone"' in msg
    assert "expect_compound_columns_to_be_unique column=theme_id,quarter_start" in msg
    report = excinfo.value.report
    assert report is not None
    assert {r.suite for r in report.suites.values() if not r.success} == set(quality.MART_SUITES)


def test_missing_table_is_one_clear_error(clean: tuple[str, str], project: Path) -> None:
    raw, _ = clean
    msg = _fails(raw, raw, project, "marts_theme_recurrence")
    assert f"{raw}.theme_recurrence" in msg and "does not exist" in msg


def test_raise_on_failure_false_returns_report(clean: tuple[str, str], project: Path) -> None:
    raw, marts = clean
    _exec(f"update {marts}.nps_by_segment set margin_of_error = -1")
    report = _validate(raw, marts, project, ["marts_nps_by_segment"], raise_on_failure=False)
    assert not report.success
    assert report.statistics["marts_nps_by_segment"]["unsuccessful_expectations"] == 1
    with pytest.raises(DataQualityError, match="margin_of_error"):
        quality.raise_for_failures(report)


# --------------------------------------------------------------------------------------------
# The PII regexes agree with the loader's redaction (nlp.text.redact_pii)
# --------------------------------------------------------------------------------------------

PII = [
    "reach me at john.smith@acme-corp.com please",
    "JANE_DOE+nps@mail.example.co.uk",
    "call (415) 555-0132 tomorrow",
    "my number: 415-555-0132.",
    "415.555.0132",
    "ring 415 555 0132 after 5",
    "+44 20 7946 0958",
    "+1 415 555 0132",
    "+49-30-1234-5678",
]
NOT_PII = [
    "waited 2 weeks, paid $1200, 10x slower, 50% of the time",
    "since 2025-01-03 or 03/01/2025, version 3.2.1",
    "numbers 10 20 30 and 1200 1300 1400",
    "ticket #4155550132",
    "call 1-800-555-0199",
    "order 415-555.0132",
    "user@localhost",
]


def test_pii_regexes_match_what_redaction_removes(schemas: tuple[str, str]) -> None:
    def matches(text: str) -> tuple[bool, bool]:
        row = _query("select %s ~ %s, %s ~ %s", (text, quality.EMAIL_REGEX, text, quality.PHONE_REGEX))
        return row[0][0], row[0][1]

    for text in PII:
        assert any(matches(text)), f"PII not detected: {text!r}"
        redacted = redact_pii(text)
        assert redacted != text, f"redact_pii left {text!r} alone"
        assert matches(redacted) == (False, False), f"flagged after redaction: {redacted!r}"
    for text in NOT_PII:
        # whatever redact_pii leaves behind must never be flagged (no false alarm on clean loads)
        assert matches(redact_pii(text)) == (False, False), f"false positive: {text!r}"


def test_history_is_pruned_to_keep_runs(clean: tuple[str, str], tmp_path: Path) -> None:
    raw, marts = clean
    root = tmp_path / "project"
    quality.init_project(root)
    for i in range(3):
        report = quality.validate(
            DB_URL,
            schema=marts,
            raw_schema=raw,
            suites=["marts_theme_recurrence"],
            run_id=f"run{i}",
            keep_runs=2,
            project_root=root,
        )
        assert report.success and report.data_docs_index is not None
    uncommitted = root / "gx" / "uncommitted"
    assert sorted(p.name for p in (uncommitted / "runs").iterdir()) == ["run1", "run2"]
    stored = uncommitted / "validations" / "marts_theme_recurrence"
    assert sorted(p.name for p in stored.iterdir()) == ["run1", "run2"]
    index = report.data_docs_index.read_text()
    assert "run2" in index and "run0" not in index
