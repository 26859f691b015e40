"""Write-audit-publish: only a validated candidate reaches `marts`, atomically, and BI views survive."""

from __future__ import annotations

from datetime import date

import pytest

from nps import orchestrate, warehouse
from nps_airflow import stages
from nps_airflow.dbt import DbtError, build_vars, run_dbt
from nps_airflow.publish import CANDIDATE_SCHEMA, PublishError, publish
from nps_airflow.quality import DataQualityError
from tests.conftest import query

# ---------------------------------------------------------------- publish() on its own


def _exec(conn, sql: str) -> None:
    with conn.cursor() as cur:
        cur.execute(sql)
    conn.commit()


def _rows(conn, sql: str) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


def test_first_publish_creates_tables_with_indexes(db_conn):
    _exec(db_conn, """
        create schema marts_candidate;
        create table marts_candidate.scores (k text not null, v int);
        create unique index on marts_candidate.scores (k);
        insert into marts_candidate.scores values ('a', 1), ('b', 2);
    """)
    [result] = publish(db_conn)
    assert (result.table, result.rows, result.created) == ("scores", 2, True)
    assert _rows(db_conn, "select k, v from marts.scores order by k") == [("a", 1), ("b", 2)]
    indexes = "select count(*) from pg_indexes where schemaname = 'marts' and tablename = 'scores'"
    assert _rows(db_conn, indexes) == [(1,)]


def test_publish_moves_only_the_rows_that_changed(db_conn):
    _exec(db_conn, """
        create schema marts_candidate;
        create table marts_candidate.scores (k text not null, v double precision, tags text[]);
        create unique index on marts_candidate.scores (k);
        insert into marts_candidate.scores
        select 'k' || i, i / 3.0, array['t' || (i % 7)] from generate_series(1, 1000) as i;
        insert into marts_candidate.scores values ('null-v', null, null);
    """)
    [first] = publish(db_conn)
    assert (first.rows, first.created, first.inserted) == (1001, True, 1001)
    before = dict(_rows(db_conn, "select k, ctid::text from marts.scores"))
    # tomorrow's build: one row changed, one gone, one new; the rest (nulls and floats included) equal
    _exec(db_conn, """
        update marts_candidate.scores set v = -1 where k = 'k10';
        delete from marts_candidate.scores where k = 'k20';
        insert into marts_candidate.scores values ('k1001', 1, null);
    """)
    [second] = publish(db_conn)
    assert (second.rows, second.deleted, second.inserted, second.created) == (1001, 2, 2, False)
    after = dict(_rows(db_conn, "select k, ctid::text from marts.scores"))
    moved = {k for k in before.keys() & after.keys() if before[k] != after[k]}
    assert moved == {"k10"} and "k20" not in after and "k1001" in after
    assert _rows(db_conn, "select v from marts.scores where k = 'k10'") == [(-1.0,)]
    assert _rows(db_conn, "select count(*) from (select * from marts.scores except "
                          "select * from marts_candidate.scores) as d") == [(0,)]
    [third] = publish(db_conn)
    assert (third.deleted, third.inserted) == (0, 0)


def test_publish_replaces_rows_keeps_table_identity_and_views(db_conn):
    _exec(db_conn, """
        create schema marts_candidate;
        create table marts_candidate.scores (k text, v int);
        insert into marts_candidate.scores values ('a', 1);
    """)
    publish(db_conn)
    _exec(db_conn, """
        create schema bi;
        create view bi.big_scores as select k, v from marts.scores where v > 0;
        create view marts.score_list as select k from marts.scores;
    """)
    oid_before = _rows(db_conn, "select 'marts.scores'::regclass::oid")
    # tomorrow's build: different rows and one new column
    _exec(db_conn, """
        drop table marts_candidate.scores;
        create table marts_candidate.scores (k text, v int, w text);
        insert into marts_candidate.scores values ('x', 5, 'new'), ('y', 6, 'new');
    """)
    [result] = publish(db_conn)
    assert result.added_columns == ("w",)
    assert _rows(db_conn, "select 'marts.scores'::regclass::oid") == oid_before
    assert _rows(db_conn, "select k, v from bi.big_scores order by k") == [("x", 5), ("y", 6)]
    assert _rows(db_conn, "select k from marts.score_list order by k") == [("x",), ("y",)]
    assert _rows(db_conn, "select w from marts.scores limit 1") == [("new",)]


def test_a_retyped_column_under_a_view_stops_publish_and_changes_nothing(db_conn):
    _exec(db_conn, """
        create schema marts_candidate;
        create table marts_candidate.scores (k text, v int);
        insert into marts_candidate.scores values ('a', 1);
        create table marts_candidate.other (n int);
        insert into marts_candidate.other values (1);
    """)
    publish(db_conn)
    _exec(db_conn, "create view public.v as select v from marts.scores")
    _exec(db_conn, """
        drop table marts_candidate.scores;
        create table marts_candidate.scores (k text, v text);
        insert into marts_candidate.scores values ('b', 'two');
        insert into marts_candidate.other values (2);
    """)
    with pytest.raises(PublishError, match=r"column\(s\) v .*public\.v"):
        publish(db_conn)
    db_conn.rollback()
    assert _rows(db_conn, "select k, v from marts.scores") == [("a", 1)]
    assert _rows(db_conn, "select n from marts.other") == [(1,)]  # all or nothing
    # without the view the table is rebuilt
    _exec(db_conn, "drop view public.v")
    results = {r.table: r for r in publish(db_conn)}
    assert results["scores"].rebuilt
    assert _rows(db_conn, "select k, v from marts.scores") == [("b", "two")]


def test_empty_candidate_is_an_error(db_conn):
    _exec(db_conn, "create schema marts_candidate")
    with pytest.raises(PublishError, match="nothing to publish"):
        publish(db_conn)


# ---------------------------------------------------------------- the gate inside nps_nightly

MARTS = ("nps_by_segment", "detractor_recovery", "theme_recurrence")
ONE_DAY = (date(2025, 8, 14), date(2025, 8, 15))


def _fingerprint(url: str) -> dict[str, str]:
    return {
        name: query(url, f"select md5(coalesce(string_agg(t::text, '|' order by t::text), '')) as h "
                         f"from marts.{name} t")["h"][0]
        for name in MARTS
    }


def test_bad_raw_data_fails_the_run_and_keeps_published_marts(pipeline):
    """A score of 11 and a duplicated response that slipped into raw (constraints bypassed, as
    from a manual fix): the run fails at dbt_build, in the source's and the staging model's data
    tests (the raw table's own constraints, which the gate no longer repeats), before publish, and
    BI keeps yesterday's marts."""
    url = pipeline[0]
    before = _fingerprint(url)
    conn = warehouse.connect(url)
    try:
        _exec(conn, """
            alter table raw.survey_responses drop constraint survey_responses_score_check;
            alter table raw.survey_responses drop constraint survey_responses_pkey cascade;
            insert into raw.survey_responses (response_id, account_id, responded_at, score, comment)
            values ('BAD-11', 'A00001', '2025-02-03 10:00+00', 11, 'injected');
            insert into raw.survey_responses
            select * from raw.survey_responses where response_id = (
                select min(response_id) from raw.survey_responses where responded_at < '2025-02-01');
        """)
        outcome = orchestrate.run_window(*ONE_DAY, raise_on_failure=False)
        assert outcome.state == "failed"
        assert {"dbt_build", "validate", "publish", "report"} <= set(outcome.failed_tasks)  # dbt_build failed
        assert _fingerprint(url) == before
        # the tests that stop it: the duplicate first (the source's test runs before the staging model) ...
        with pytest.raises(DbtError, match=r"test\.nps\.source_unique_survey_survey_responses_response_id"):
            stages.dbt_build("test-bad-raw")
        # ... then the score
        _exec(conn, """
            delete from raw.survey_responses a using raw.survey_responses b
            where a.response_id = b.response_id and a.ctid > b.ctid;
        """)
        with pytest.raises(DbtError, match=r"test\.nps\.within_range_stg_survey__responses_score"):
            stages.dbt_build("test-bad-raw")
        assert _fingerprint(url) == before
    finally:
        conn.rollback()
        _exec(conn, """
            delete from raw.survey_responses where response_id = 'BAD-11';
            delete from raw.survey_responses a using raw.survey_responses b
            where a.response_id = b.response_id and a.ctid > b.ctid;
            alter table raw.survey_responses add constraint survey_responses_pkey primary key (response_id);
            alter table raw.survey_responses add constraint survey_responses_score_check
                check (score between 0 and 10);
            alter table raw.survey_responses_original add constraint survey_responses_original_response_id_fkey
                foreign key (response_id) references raw.survey_responses (response_id) on delete cascade;
        """)
        conn.close()


def test_pii_that_slipped_into_raw_fails_validation_and_the_result_is_kept(pipeline):
    """dbt has nothing against an e-mail address in a comment; the GX raw suite does. The run
    fails at validate, publish never runs, and the JSON result names the expectation and value."""
    import json

    from nps_airflow.quality import result_dir

    url = pipeline[0]
    before = _fingerprint(url)
    conn = warehouse.connect(url)
    try:
        _exec(conn, """
            insert into raw.survey_responses (response_id, account_id, responded_at, score, comment)
            values ('PII-1', 'A00001', '2025-02-03 10:00+00', 3, 'mail me at leak.canary@example.com');
        """)
        outcome = orchestrate.run_window(*ONE_DAY, raise_on_failure=False)
        assert outcome.state == "failed"
        assert {"validate", "publish", "report"} <= set(outcome.failed_tasks)
        assert "dbt_build" not in outcome.failed_tasks
        assert _fingerprint(url) == before
        result = json.loads((result_dir(outcome.run_id) / "raw_survey_responses.json").read_text())
        assert result["success"] is False
        assert "leak.canary@example.com" in json.dumps(result)
    finally:
        _exec(conn, "delete from raw.survey_responses where response_id = 'PII-1'")
        conn.close()


def test_a_broken_candidate_mart_fails_its_dbt_tests(pipeline):
    """A negative count and a missing follow-up bucket in the candidate (what a bad model change
    would produce): the mart's dbt data tests name them. dbt_build runs them right after building
    the model (BUILD_ARGS: every data test), so neither validate nor publish is reached; the gate
    does not repeat them."""
    url = pipeline[0]
    before = _fingerprint(url)
    stages.dbt_build("test-broken-candidate")
    conn = warehouse.connect(url)
    try:
        _exec(conn, """
            update marts_candidate.detractor_recovery set detractors = -5
            where ctid = (select min(ctid) from marts_candidate.detractor_recovery where period_grain = 'quarter');
            delete from marts_candidate.detractor_recovery
            where period_grain = 'month' and segment_type = 'overall' and follow_up_bucket = 'never';
        """)
    finally:
        conn.close()
    with pytest.raises(DbtError) as excinfo:
        run_dbt(["test", "--select", "detractor_recovery", "--exclude", "test_type:unit"], url,
                vars=build_vars(CANDIDATE_SCHEMA))
    assert "test.nps.within_range_detractor_recovery_detractors" in str(excinfo.value)
    assert "test.nps.assert_detractor_recovery_reconciles" in str(excinfo.value)  # every bucket, every detractor
    assert _fingerprint(url) == before


def test_a_clean_run_publishes_and_bi_views_survive(pipeline):
    url = pipeline[0]
    conn = warehouse.connect(url)
    try:
        _exec(conn, """
            create schema if not exists bi;
            create or replace view bi.plan_nps as
                select period_start, segment_value as plan, nps from marts.nps_by_segment
                where period_grain = 'quarter' and segment_type = 'plan';
        """)
        oid_before = _rows(conn, "select 'marts.nps_by_segment'::regclass::oid")
    finally:
        conn.close()
    outcome = orchestrate.run_window(*ONE_DAY)
    assert outcome.state == "success"
    via_view = query(url, "select * from bi.plan_nps order by 1, 2")
    direct = query(url, "select period_start, segment_value as plan, nps from marts.nps_by_segment "
                        "where period_grain = 'quarter' and segment_type = 'plan' order by 1, 2")
    assert len(via_view) > 0 and via_view.equals(direct)
    assert query(url, "select 'marts.nps_by_segment'::regclass::oid as o")["o"][0] == oid_before[0][0]


def test_a_candidate_that_lost_rows_fails_the_row_count_check(pipeline):
    url = pipeline[0]
    stages.dbt_build("test-lost-rows")
    conn = warehouse.connect(url)
    try:
        _exec(conn, "delete from marts_candidate.nps_by_segment where period_grain = 'month'")
    finally:
        conn.close()
    with pytest.raises(DataQualityError, match=r"marts_nps_by_segment.*expect_table_row_count_to_be_between"):
        stages.validate("test-lost-rows")


def test_stale_raw_data_fails_the_freshness_check(pipeline):
    from datetime import UTC, datetime, timedelta

    url, _, manifest = pipeline
    stages.dbt_build("test-stale")
    data_end = datetime.fromisoformat(manifest["end"]).replace(tzinfo=UTC)
    # a run for a month after the data stops: the newest response is a month old
    with pytest.raises(DataQualityError, match=r"raw_survey_responses.*expect_column_max_to_be_between"):
        stages.validate("test-stale", end=data_end + timedelta(days=31))
    # the same data is fresh for its own interval
    stages.validate("test-stale", end=data_end)
