"""The audit gate (plugins/nps_airflow/quality/, suites in expectations/gx/) against a real PostgreSQL.

Each test works in its own scratch schemas (``gxt_<pid>_raw`` / ``gxt_<pid>_marts``): a copy of
``raw.survey_responses`` without its PK and CHECK constraint (so bad rows can be inserted) and
the mart tables with the columns of docs/contracts.md section 4. GX audits the build as a whole
(freshness, future dates, PII, segment coverage, row counts); the rules about one row or one
model are the marts' dbt tests, run here on the same scratch tables (test_rules_dbt_owns_...).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
for _p in (REPO, REPO / "plugins"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

psycopg2 = pytest.importorskip("psycopg2")

from nlp.text import redact_pii  # noqa: E402
from nps import contracts, warehouse  # noqa: E402
from nps_airflow import quality  # noqa: E402
from nps_airflow.dbt import DbtError, build_vars, run_dbt  # noqa: E402
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
    revenue_weighted_nps double precision, below_min_n boolean, previous_period_start date,
    previous_responses integer, previous_nps double precision, nps_change double precision,
    change_margin_of_error double precision, change_exceeds_margin_of_error boolean
);
create table {s}.detractor_recovery (
    period_grain text, period_start date, segment_type text, segment_value text,
    follow_up_bucket text, detractors integer,
    with_next_response integer, recovered integer, fully_recovered integer,
    lost_to_churn integer, awaiting_next integer, recovery_rate double precision,
    full_recovery_rate double precision, median_hours_to_first_follow_up double precision,
    segment_median_hours_to_first_follow_up double precision, sla_24h_attainment double precision,
    sla_48h_attainment double precision
);
create table {s}.theme_recurrence (
    theme_id integer, quarter_start date, theme_label text, keywords text, is_actionable boolean,
    actionability_source text, mentions integer, promoter_mentions integer, passive_mentions integer,
    detractor_mentions integer, detractor_share double precision,
    promoter_mention_share double precision, detractor_mention_share double precision,
    arr_at_risk numeric(14, 2), quarters_present integer, current_streak integer,
    first_seen_quarter date, last_seen_quarter date, status text
);
create table {s}.detractor_queue (
    response_id text, account_id text, contact_id text, queue_position bigint, priority_quadrant text,
    priority_rank integer, account_name text, plan text, account_arr numeric(14, 2),
    is_high_value boolean, account_owner text, score integer, survey_type text, trigger_event text,
    comment text, responded_at timestamptz, theme_id integer, theme_label text,
    theme_is_actionable boolean, is_actionable boolean, actionability_source text,
    follow_up_due_at timestamptz, is_sla_breached boolean, hours_open double precision,
    as_of timestamptz
);
create table {s}.theme_alerts (
    theme_id integer, month_start date, theme_label text, keywords text, is_actionable boolean,
    actionability_source text, mentions bigint, detractor_mentions bigint,
    detractor_share double precision, alert_threshold integer,
    previous_month_detractor_mentions bigint, is_new_alert boolean, first_alert_month date,
    accounts_affected bigint, arr_at_risk numeric(18, 2), first_detractor_mention_at timestamptz,
    last_detractor_mention_at timestamptz, sample_comments text[], sample_response_ids text[]
);
create table {s}.account_nps_trajectory (
    account_id text, account_name text, plan text, arr numeric(14, 2), account_owner text,
    is_churned boolean, responses bigint, first_response_at timestamptz,
    last_response_at timestamptz, days_since_last_response integer, last_score integer,
    last_nps_category text, previous_score integer, previous_nps_category text,
    score_change integer, trend text, last_scores integer[], trajectory text, as_of timestamptz
);
create table {s}.nps_outcomes (
    horizon_days integer, segment_type text, segment_value text, nps_category text,
    responses bigint, distinct_accounts bigint, churned bigint, churn_rate double precision,
    expanded bigint, expansion_rate double precision, contracted bigint,
    contraction_rate double precision, arr_at_response numeric(18, 2),
    arr_retained numeric(18, 2), net_revenue_retention double precision, below_min_n boolean
);
create table {s}.survey_eligibility (
    contact_id text, account_id text, contact_role text, account_name text, plan text,
    account_owner text, last_relational_survey_at timestamptz,
    last_transactional_survey_at timestamptz, is_relational_fatigued boolean,
    is_transactional_fatigued boolean, is_account_churned boolean, is_eligible boolean,
    eligible_from timestamptz, as_of timestamptz
);
create table {s}.theme_impact (
    theme_id integer, theme_level text, quarter_start date, segment_type text, segment_value text,
    mentioners bigint, nps_points_at_stake double precision
);
create table {s}.passive_movement (
    period_grain text, period_start date, segment_type text, segment_value text, passives bigint,
    converted bigint, slipped bigint
);
create table {s}.promoter_queue (
    response_id text, account_id text, queue_position bigint, score integer, comment text, as_of timestamptz
);
alter table {s}.theme_recurrence add column theme_level text, add column is_no_feedback boolean,
    add column negative_share double precision, add column positive_share double precision;
alter table {s}.theme_alerts add column theme_level text;
alter table {s}.nps_by_segment add column change_p_value double precision, add column change_is_significant boolean,
    add column representative_nps double precision, add column representative_margin_of_error double precision,
    add column representative_design_effect double precision, add column representative_responses bigint,
    add column population_accounts bigint, add column representative_population text,
    add column representative_weighting text, add column sends bigint, add column responses_to_sends bigint,
    add column response_rate double precision;
"""

CLEAN_DATA = """
truncate {r}.survey_responses, {m}.nps_by_segment, {m}.detractor_recovery, {m}.theme_recurrence,
    {m}.detractor_queue, {m}.theme_alerts, {m}.account_nps_trajectory, {m}.nps_outcomes,
    {m}.survey_eligibility, {m}.theme_impact, {m}.passive_movement, {m}.promoter_queue;
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
       10, 5, 3, 2, 30.0, 1.96 * sqrt((0.5 + 0.2 - 0.09) / 10) * 100, -12.5, true,
       date '2024-10-01', null, null, null, null, null
from unnest(array['overall', 'plan', 'arr_band', 'tenure_band', 'industry', 'region',
                  'employee_band', 'usage_band', 'survey_type', 'trigger_event', 'account_owner'])
         with ordinality as u(t, n),
     unnest(array['month', 'quarter']) as g;
insert into {m}.nps_by_segment values
    ('quarter', '2025-01-01', 'plan', 'enterprise', 40, 0, 0, 40, -100, 0, null, false,
     '2024-10-01', 40, -50, -50, 20, true),
    ('quarter', '2025-01-01', 'region', 'emea', 3, 3, 0, 0, 100, 0, 100, true,
     '2024-10-01', 3, 100, 0, 0, false);

insert into {m}.detractor_recovery values
    ('quarter', '2025-01-01', 'overall', 'all', 'within_24h', 5, 4, 2, 1, 1, 0, 0.5, 0.25, 3, 20, 0.36, 0.57),
    ('quarter', '2025-01-01', 'overall', 'all', 'within_48h', 3, 0, 0, 0, 1, 2, null, null, 30, 20, 0.36, 0.57),
    ('quarter', '2025-01-01', 'overall', 'all', 'later', 2, 2, 2, 2, 0, 0, 1.0, 1.0, 70, 20, 0.36, 0.57),
    ('quarter', '2025-01-01', 'overall', 'all', 'never', 4, 1, 0, 0, 2, 1, 0.0, 0.0, null, 20, 0.36, 0.57),
    ('month', '2025-02-01', 'overall', 'all', 'within_24h', 0, 0, 0, 0, 0, 0, null, null, null, 40, 0, 1),
    ('month', '2025-02-01', 'overall', 'all', 'within_48h', 1, 1, 1, 0, 0, 0, 1.0, 0, 40, 40, 0, 1),
    ('month', '2025-02-01', 'overall', 'all', 'later', 0, 0, 0, 0, 0, 0, null, null, null, 40, 0, 1),
    ('month', '2025-02-01', 'overall', 'all', 'never', 2, 0, 0, 0, 0, 2, null, null, null, 40, 0, 1);

insert into {m}.theme_recurrence values
    (1, '2025-01-01', 'slow support', 'slow, support', true, 'heuristic', 5, 2, 1, 2, 0.4, 0.1, 0.2,
     12000, 1, 1, '2025-01-01', '2025-01-01', 'new'),
    (1, '2025-04-01', 'slow support', 'slow, support', true, 'heuristic', 4, 3, 1, 0, 0, 0.3, 0,
     0, 2, 2, '2025-01-01', '2025-04-01', 'recurring'),
    (1, '2025-07-01', 'slow support', 'slow, support', true, 'heuristic', 0, 0, 0, 0, null, 0, 0,
     0, 2, 0, '2025-01-01', '2025-04-01', 'resolved'),
    (2, '2025-07-01', 'pricing', 'price, expensive', false, 'human', 1, 0, 0, 1, 1, 0, 0.05,
     500, 0, 0, null, null, 'absent');

insert into {m}.detractor_queue values
    ('q1', 'a1', 'c1', 1, 'high_value_high_actionability', 1, 'Acme', 'pro', 90000, true, 'maya', 2,
     'relational', 'quarterly', 'invoice wrong, call [phone]', '2025-01-02 10:00+00', 7, 'billing',
     null, true, 'heuristic', '2025-01-03 10:00+00', true, 38, '2025-01-04 00:00+00'),
    ('q2', 'a2', null, 2, 'low_value_low_actionability', 4, 'Beta', 'starter', 900, false, 'tom', 6,
     'transactional', 'renewal', null, '2025-01-03 20:00+00', null, null, null, false, 'no_theme',
     '2025-01-04 20:00+00', false, 4, '2025-01-04 00:00+00');

insert into {m}.theme_alerts values
    (7, '2025-01-01', 'billing', 'invoice, vat', true, 'heuristic', 14, 11, 11.0 / 14, 10, 3, true,
     '2025-01-01', 9, 120000, '2025-01-02 10:00+00', '2025-01-30 10:00+00',
     array['invoice wrong, call [phone]', 'VAT missing'], array['r1', 'r2']);

insert into {m}.account_nps_trajectory values
    ('a1', 'Acme', 'pro', 90000, 'maya', false, 3, '2024-10-01 10:00+00', '2025-01-02 10:00+00', 1,
     2, 'detractor', 8, 'passive', -6, 'declining', array[9, 8, 2], 'promoter -> passive -> detractor',
     '2025-01-04 00:00+00'),
    ('a2', 'Beta', 'starter', 900, 'tom', false, 1, '2025-01-03 20:00+00', '2025-01-03 20:00+00', 0,
     6, 'detractor', null, null, null, 'first_response', array[6], 'detractor', '2025-01-04 00:00+00');

insert into {m}.nps_outcomes values
    (90, 'overall', 'all', 'detractor', 40, 30, 4, 0.1, 5, 0.125, 2, 0.05, 400000, 380000, 0.95, false),
    (90, 'plan', 'pro', 'promoter', 10, 8, 0, 0, 3, 0.3, 0, 0, 100000, 130000, 1.3, true);

insert into {m}.theme_impact values
    (7, 'subtheme', '2025-01-01', 'overall', 'all', 12, 3.5), (7, 'subtheme', '2025-01-01', 'plan', 'pro', 5, 4.0);

insert into {m}.passive_movement values ('quarter', '2025-01-01', 'overall', 'all', 9, 3, 2);

insert into {m}.promoter_queue values
    ('p1', 'a1', 1, 10, 'Love it, tell [email] we said so', '2025-01-04 00:00+00'),
    ('p2', 'a2', 2, 9, null, '2025-01-04 00:00+00');

insert into {m}.survey_eligibility values
    ('c1', 'a1', 'Admin', 'Acme', 'pro', 'maya', '2024-12-01 10:00+00', null, true, false, false, false,
     '2025-03-01 10:00+00', '2025-01-04 00:00+00'),
    ('c2', 'a2', 'Champion', 'Beta', 'starter', 'tom', '2024-06-01 10:00+00', null, false, false, false, true,
     '2025-01-04 00:00+00', '2025-01-04 00:00+00');
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


def _copy_project(root: Path) -> Path:
    """A private copy of the committed GX project (results/Data Docs land in its uncommitted/)."""
    shutil.copytree(quality.default_project_root() / "gx", root / "gx", ignore=shutil.ignore_patterns("uncommitted"))
    return root


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _copy_project(tmp_path_factory.mktemp("gx_project"))


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


def _fails(raw: str, marts: str, project: Path, suite: str, **kw) -> str:
    with pytest.raises(DataQualityError) as excinfo:
        _validate(raw, marts, project, [suite], run_id=f"bad_{suite}", **kw)
    message = str(excinfo.value)
    assert suite in message
    assert excinfo.value.report is not None and not excinfo.value.report.success
    return message


# --------------------------------------------------------------------------------------------
# Committed files and plumbing
# --------------------------------------------------------------------------------------------


def test_committed_gx_project_is_consistent() -> None:
    """The hand-edited files agree with each other, load in GX and say what the contract says."""
    problems = quality.check_project()
    assert problems == [], "\n".join(problems)
    yml = (quality.default_project_root() / "gx" / "great_expectations.yml").read_text()
    assert "${NPS_GX_RAW_SQLALCHEMY_URL}" in yml and "${NPS_GX_MARTS_SQLALCHEMY_URL}" in yml
    assert "postgresql://" not in yml and "analytics_enabled: false" in yml
    marts = {p.stem for p in (REPO / "dbt_project" / "models" / "marts").glob("*.sql")} - {"source_coverage"}
    # raw first, then one suite per mart (source_coverage describes the sources; nothing to audit)
    assert quality.suite_names()[0] == "raw_survey_responses"
    assert set(quality.suite_names()) == {"raw_survey_responses", *(f"marts_{m}" for m in marts)}


def test_a_suite_that_disagrees_with_the_contract_fails_the_check(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    root = _copy_project(tmp_path)
    raw = root / "gx" / "expectations" / "raw_survey_responses.json"
    raw.write_text(raw.read_text().replace("24 hours", "1 hour"))
    by_segment = root / "gx" / "expectations" / "marts_nps_by_segment.json"
    by_segment.write_text(by_segment.read_text().replace('"usage_band",', ""))
    queue = root / "gx" / "expectations" / "marts_detractor_queue.json"
    queue.write_text(queue.read_text().replace("{2,24}", "{2,6}"))
    problems = "\n".join(quality.check_project(root, load_with_gx=False))
    assert "raw_survey_responses.json: the future-date check" in problems and "24 hours" in problems
    assert "marts_nps_by_segment.json: the segment coverage check" in problems
    assert "marts_detractor_queue.json: the email regex differs" in problems
    # ... and the committed files fail the same way when the contract changes without them
    monkeypatch.setattr(contracts, "SEGMENT_TYPES", (*contracts.SEGMENT_TYPES, "contract_probe"))
    monkeypatch.setattr(contracts, "FUTURE_TOLERANCE_HOURS", 2.0)
    problems = "\n".join(quality.check_project(load_with_gx=False))
    assert "'2 hours'" in problems and "contract_probe" in problems


def test_a_broken_checkpoint_fails_the_check(tmp_path: Path) -> None:
    root = _copy_project(tmp_path)
    (root / "gx" / "validation_definitions" / "marts_theme_alerts.json").unlink()
    suite = root / "gx" / "expectations" / "marts_nps_outcomes.json"
    suite.write_text(suite.read_text().replace('"min_rows"', '"min_row"'))
    problems = "\n".join(quality.check_project(root))
    assert "gx/checkpoints/marts_theme_alerts.json: must run the one validation definition" in problems
    assert "marts_nps_outcomes.json: unknown $PARAMETER ['min_row']" in problems


def test_module_import_is_light() -> None:
    code = (
        "import sys; sys.path[:0] = [sys.argv[1]]; import nps_airflow.quality, nps_airflow.stages; "
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
    assert warehouse.sqlalchemy_url(url, search_path="marts") == expected


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


def _committed_files() -> dict[str, bytes]:
    gx = quality.default_project_root() / "gx"
    return {str(p.relative_to(gx)): p.read_bytes() for p in gx.rglob("*")
            if p.is_file() and "uncommitted" not in p.relative_to(gx).parts}


def test_clean_data_passes_with_data_docs(clean: tuple[str, str], no_network: None) -> None:
    """The committed project itself: all four suites, checkpoints with Data Docs, offline."""
    raw, marts = clean
    before = _committed_files()
    report = quality.validate(
        DB_URL, schema=marts, raw_schema=raw, run_id="scheduled__2025-01-03T00:00:00+00:00"
    )
    assert report.success, report.summary()
    assert list(report.suites) == quality.suite_names()
    assert report.suites["marts_nps_by_segment"].table == f"{marts}.nps_by_segment"
    assert report.suites["raw_survey_responses"].table == f"{raw}.survey_responses"
    for name, result in report.suites.items():
        assert result.evaluated >= 1 and result.unsuccessful == 0
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
    assert _committed_files() == before


# --------------------------------------------------------------------------------------------
# Injected bad data fails, naming the suite and the offending value
# --------------------------------------------------------------------------------------------


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


def test_pii_in_the_marts_fails(clean: tuple[str, str], project: Path) -> None:
    """The comments BI shows (the call list, an alert's samples) are audited too."""
    raw, marts = clean
    _exec(
        f"update {marts}.detractor_queue set comment = 'call me: (415) 555-0132' where response_id = 'q2';"
        f"update {marts}.theme_alerts set sample_comments = array['VAT missing', 'write to ops@acme-corp.com'];"
    )
    with pytest.raises(DataQualityError) as excinfo:
        _validate(raw, marts, project, ["marts_detractor_queue", "marts_theme_alerts"])
    msg = str(excinfo.value)
    assert "[marts_detractor_queue] expect_column_values_to_not_match_regex column=comment" in msg
    assert "(415) 555-0132" in msg
    assert "[marts_theme_alerts] unexpected_rows_expectation" in msg and "ops@acme-corp.com" in msg


def test_missing_segment_type_fails(clean: tuple[str, str], project: Path) -> None:
    raw, marts = clean
    _exec(f"delete from {marts}.nps_by_segment where segment_type = 'usage_band';")
    msg = _fails(raw, marts, project, "marts_nps_by_segment")
    assert "expect_column_distinct_values_to_contain_set column=segment_type" in msg
    assert '{"missing": ["usage_band"]}' in msg


def test_run_dependent_bounds_fail(clean: tuple[str, str], project: Path) -> None:
    """Freshness against the interval end, and row counts against the published marts
    (suite_parameters reads them; here the scratch marts play the published ones)."""
    raw, marts = clean
    conn = psycopg2.connect(DB_URL)
    try:
        end = datetime.now(UTC) + timedelta(days=10)
        parameters = quality.suite_parameters(conn, interval_end=end, published_schema=marts,
                                              freshness_lag=timedelta(days=3), row_count_tolerance=0.1)
    finally:
        conn.close()
    assert parameters["raw_survey_responses"] == {"freshest_min": end - timedelta(days=3)}
    assert parameters["marts_nps_by_segment"] == {"min_rows": int(24 * 0.9)}
    assert parameters["marts_detractor_queue"] == {}  # today's queue may shrink: no bound
    report = _validate(raw, marts, project, list(parameters), parameters=parameters, raise_on_failure=False)
    assert {name for name, r in report.suites.items() if not r.success} == {"raw_survey_responses"}
    _exec(f"delete from {marts}.nps_by_segment where period_grain = 'month'")
    msg = _fails(raw, marts, project, "marts_nps_by_segment", parameters=parameters)
    assert "expect_table_row_count_to_be_between" in msg and "observed 13" in msg and "between 21" in msg


def test_missing_table_is_one_clear_error(clean: tuple[str, str], project: Path) -> None:
    raw, _ = clean
    msg = _fails(raw, raw, project, "marts_theme_recurrence")
    assert f"{raw}.theme_recurrence" in msg and "does not exist" in msg


def test_raise_on_failure_false_returns_report(clean: tuple[str, str], project: Path) -> None:
    raw, marts = clean
    _exec(f"update {marts}.nps_by_segment set segment_type = 'plan' where segment_type = 'region'")
    report = _validate(raw, marts, project, ["marts_nps_by_segment"], raise_on_failure=False)
    assert not report.success
    assert report.statistics["marts_nps_by_segment"]["unsuccessful_expectations"] == 1
    with pytest.raises(DataQualityError, match="region"):
        quality.raise_for_failures(report)


# --------------------------------------------------------------------------------------------
# The rules about one row or one model are dbt's: the faults the gate no longer audits fail the
# marts' data tests, which dbt_build runs on the candidate before validate (BUILD_ARGS)
# --------------------------------------------------------------------------------------------

MART_MODELS = ("nps_by_segment", "detractor_recovery", "theme_recurrence", "detractor_queue", "theme_alerts",
               "account_nps_trajectory", "nps_outcomes", "survey_eligibility")


def _dbt_test_marts(marts: str) -> str:
    """The marts' generic data tests on the scratch tables (singular tests and relationships read
    models the scratch database does not have; the pipeline tests run them)."""
    args = ["test", "--select", *MART_MODELS, "--exclude", "test_type:unit", "test_type:singular",
            "test_name:relationships"]
    return run_dbt(args, DB_URL, vars=build_vars(marts))


def test_rules_dbt_owns_fail_the_marts_dbt_tests(clean: tuple[str, str], project: Path) -> None:
    raw, marts = clean
    _dbt_test_marts(marts)  # the clean data passes
    _exec(
        f"update {marts}.nps_by_segment set nps = 150, passives = passives + 1 where segment_value = 'emea';"
        f"update {marts}.nps_by_segment set margin_of_error = -1 where segment_value = 'enterprise';"
        f"update {marts}.nps_by_segment set change_p_value = 0.2, change_is_significant = true, "
        "representative_responses = 41 where segment_value = 'enterprise';"
        f"update {marts}.detractor_recovery set awaiting_next = -2, detractors = 0 "
        "where period_grain = 'quarter' and follow_up_bucket = 'within_48h';"
        f"update {marts}.detractor_recovery set recovered = 5, recovery_rate = 1.25 "
        "where period_grain = 'quarter' and follow_up_bucket = 'within_24h';"
        f"update {marts}.theme_recurrence set status = 'gone', detractor_share = 1.5 where theme_id = 2;"
        f"insert into {marts}.theme_recurrence (theme_id, quarter_start, mentions, promoter_mentions, "
        "passive_mentions, detractor_mentions, arr_at_risk, quarters_present, current_streak, status) "
        "values (1, '2025-01-01', 3, 3, 0, 0, 0, 1, 1, 'new');"
        f"update {marts}.detractor_queue set priority_rank = 3 where response_id = 'q1';"
        f"update {marts}.theme_alerts set detractor_mentions = 9;"
        f"update {marts}.account_nps_trajectory set trend = 'improving' where account_id = 'a1';"
        f"update {marts}.nps_outcomes set churn_rate = 1.5 where segment_type = 'plan';"
        f"update {marts}.survey_eligibility set is_eligible = true where contact_id = 'c1';"
    )
    # the gate does not repeat them
    report = _validate(raw, marts, project, ["marts_nps_by_segment", "marts_detractor_recovery"],
                       raise_on_failure=False)
    assert report.success, report.summary()
    with pytest.raises(DbtError) as excinfo:
        _dbt_test_marts(marts)
    msg = str(excinfo.value)
    for test in (
        "nps_in_range_nps_by_segment_nps",  # NPS within [-100, 100]
        "counts_add_up_nps_by_segment_promoters__passives__detractors__responses",
        "nps_by_segment_nps_follows_the_counts",
        "within_range_nps_by_segment_margin_of_error",
        "nps_by_segment_significant_changes_pass_the_fdr",  # BH never flags a p-value above the FDR
        "not_greater_than_nps_by_segment_representative_responses__responses",
        "within_range_detractor_recovery_awaiting_next",  # a negative count
        "not_greater_than_detractor_recovery_recovered",  # recovered <= with_next_response
        "within_range_detractor_recovery_recovery_rate",
        "accepted_values_theme_recurrence_status",
        "within_range_theme_recurrence_detractor_share",
        "unique_combination_theme_recurrence_theme_id__quarter_start",  # the grain
        "detractor_queue_priority_follows_value_and_actionability",
        "account_nps_trajectory_category_and_trend_follow_the_scores",
        "within_range_nps_outcomes_churn_rate",
        "nps_outcomes_rates_follow_the_counts",
    ):
        assert f"test.nps.{test}" in msg, test
    # the unnamed expression tests of theme_alerts (threshold) and survey_eligibility (is_eligible)
    assert "expression_is_true_theme_alerts_detractor_mentions_alert_threshold" in msg
    assert "expression_is_true_survey_eligibility_is_eligible_not_is_relational_fatigued" in msg


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
    """The raw suite's patterns (every other PII check uses the same ones: check_project)."""
    patterns = quality.pii_patterns()
    def matches(text: str) -> tuple[bool, bool]:
        row = _query("select %s ~ %s, %s ~ %s", (text, patterns["email"], text, patterns["phone"]))
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
    root = _copy_project(tmp_path / "project")
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
