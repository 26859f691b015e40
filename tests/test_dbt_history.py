"""History in dbt against a real PostgreSQL and a real dbt build:

- the incremental models (responses, theme assignments) after late rows, reloads, deletions and a
  theme merge equal a full refresh of the same sources;
- the SCD2 CRM history (snapshot of every account version) is the same whether the versions
  arrive night by night or in one quarter-sized backfill, and a source fix closes the old content.
"""

from __future__ import annotations

from nps import warehouse
from nps_airflow.dbt import run_dbt
from tests.conftest import query

INCREMENTAL = ["int_responses_categorised", "int_theme_assignments_collected"]
AS_OF = "2025-07-01T00:00:00+00"
# computed by whichever build last touched the row (an account's fingerprint holds its responses'
# built_at): not part of the comparison
BOOKKEEPING = {"built_at", "built_as_of", "enriched_at", "account_fingerprint", "collected_at"}


def _exec(url: str, sql: str) -> None:
    conn = warehouse.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
        conn.commit()
    finally:
        conn.close()


def _build(url: str, select: list[str], **vars: object) -> None:
    """dbt build of the selected models with their data tests (not the tests of unselected ones)."""
    args = ["build", "--select", *select, "--indirect-selection", "cautious",
            "--exclude-resource-type", "unit_test"]
    run_dbt(args, url, vars={"as_of": AS_OF, **vars})


def _full_refresh(url: str, select: list[str], **vars: object) -> None:
    """The selected models rebuilt from nothing into intermediate_full_refresh, to compare with the
    incremental build just before (`run`: the data tests already ran on that build's inputs)."""
    run_dbt(["run", "--select", *select, "--full-refresh"], url,
            vars={"as_of": AS_OF, **vars, "intermediate_schema": "intermediate_full_refresh"})


def _rows(url: str, table: str, order: str) -> list[tuple]:
    rows = query(url, f"select * from {table} order by {order}")
    # nulls as None: pandas reads a null of a numeric column as NaN, and NaN != NaN
    return [tuple(r) for r in rows.astype(object).where(rows.notna(), None).itertuples(index=False)]


def _comparable(url: str, table: str) -> list[tuple]:
    columns = [c for c in query(url, f"select * from {table} limit 0").columns if c not in BOOKKEEPING]
    order = {"int_responses_segmented": "response_id, segment_type",
             "int_survey_sends_answered": "send_id",
             "int_survey_sends_rated": "period_grain, period_start, segment_type, segment_value",
             "int_segment_strata_collapsed": "period_grain, period_start, segment_type, segment_value, stratum_level, "
                                             "stratum_key",
             "int_account_outcomes_counted": "account_id, horizon_days, segment_type, segment_value, "
                                             "nps_category",
             "int_theme_mentions_resolved": "response_id, theme_level"}.get(table.split(".")[1], "response_id")
    return _rows(url, f"(select {', '.join(columns)} from {table}) as t", order)


# ------------------------------------------------------------------ incremental == full refresh


RESPONSES = """
insert into raw.survey_responses (response_id, survey_type, account_id, contact_id, responded_at, score,
                                  comment, _run_id, _loaded_at)
values
    ('R1', 'relational', 'A1', 'C1', '2025-03-01 10:00+00', 9, 'love it', 'load-1', '2025-03-02 00:00+00'),
    ('R2', 'relational', 'A1', 'C2', '2025-03-02 10:00+00', 4, 'slow', 'load-1', '2025-03-03 00:00+00'),
    ('R3', 'transactional', 'A2', null, '2025-03-03 10:00+00', 7, 'ok', 'load-1', '2025-03-04 00:00+00'),
    ('R4', 'relational', 'A2', 'C3', '2025-03-10 10:00+00', 2, 'broken sync', 'load-1', '2025-03-11 00:00+00');
insert into nlp.comment_themes (response_id, text_hash, theme_id, confidence, method, model, assigned_at, run_id)
values
    ('R1', 'h1', 1, 0.9, 'discovered', 'm', '2025-03-04 01:00+00', 'themes-1'),
    ('R2', 'h2', 2, 0.8, 'discovered', 'm', '2025-03-04 01:00+00', 'themes-1'),
    ('R3', 'h3', 2, 0.7, 'assigned', 'm', '2025-03-04 01:00+00', 'themes-1'),
    ('R4', 'h4', null, null, 'noise', 'm', '2025-03-11 01:00+00', 'themes-1');
"""

# What a later night brings: a response answered in January that arrives only now, a reload that
# corrects R2, a source fix that removes R3; the theme engine re-themes R4 (new assigned_at) and
# merges theme 2 into 1, repointing R2 without touching its assigned_at (only the run id changes):
# assigned a week before the newest assignment, R2 is outside the assigned_at lookback.
CHANGES = """
insert into raw.survey_responses (response_id, survey_type, account_id, contact_id, responded_at, score,
                                  comment, _run_id, _loaded_at)
values ('R0', 'relational', 'A3', 'C9', '2025-01-15 10:00+00', 10, 'late but great', 'load-2', now());
update raw.survey_responses set score = 6, _run_id = 'load-2', _loaded_at = now() where response_id = 'R2';
delete from raw.survey_responses where response_id = 'R3';
delete from nlp.comment_themes where response_id = 'R3';
insert into nlp.comment_themes (response_id, text_hash, theme_id, confidence, method, model, assigned_at, run_id)
values ('R0', 'h0', 1, 0.95, 'assigned', 'm', now(), 'themes-2');
update nlp.comment_themes set theme_id = 3, method = 'assigned', confidence = 0.6, assigned_at = now(),
    run_id = 'themes-2' where response_id = 'R4';
update nlp.comment_themes set theme_id = 1, run_id = 'themes-2' where theme_id = 2;
"""


def test_incremental_history_equals_a_full_refresh(db_url: str) -> None:
    select = ["stg_survey__responses", "stg_nlp__comment_themes", *INCREMENTAL]
    _exec(db_url, RESPONSES)
    _build(db_url, select)
    _exec(db_url, CHANGES)
    _build(db_url, select)  # incremental: only what changed since the first build is re-read
    _full_refresh(db_url, select)

    responses = query(db_url, "select response_id, score from intermediate.int_responses_categorised "
                              "order by response_id")
    assert responses.values.tolist() == [["R0", 10], ["R1", 9], ["R2", 6], ["R4", 2]]
    themes = query(db_url, "select response_id, theme_id from intermediate.int_theme_assignments_collected "
                           "order by response_id")
    assert themes.values.tolist() == [["R0", 1], ["R1", 1], ["R2", 1], ["R4", 3]]
    for model in INCREMENTAL:
        incremental = _comparable(db_url, f"intermediate.{model}")
        full = _comparable(db_url, f"intermediate_full_refresh.{model}")
        assert incremental == full, model


# ------------------------------------------------------------------ SCD2 history: nightly == backfill


NIGHT_1 = """
insert into raw.accounts (account_id, name, plan, arr, owner, updated_at, _loaded_at) values
    ('A1', 'Acme', 'starter', 9000, 'maya', '2025-01-01 00:00+00', '2025-01-02 00:00+00'),
    ('A2', 'Beta', 'growth', 20000, 'tom', '2025-01-01 00:00+00', '2025-01-02 00:00+00');
"""
NIGHT_2 = """
insert into raw.accounts (account_id, name, plan, arr, owner, updated_at, _loaded_at) values
    ('A1', 'Acme', 'growth', 24000, 'maya', '2025-02-10 09:00+00', '2025-02-11 00:00+00'),
    ('A1', 'Acme', 'growth', 24000, 'priya', '2025-03-05 12:00+00', '2025-03-06 00:00+00'),
    ('A2', 'Beta', 'growth', 21000, 'tom', '2025-03-20 08:00+00', '2025-03-21 00:00+00'),
    ('A1', 'Acme', 'business', 60000, 'priya', '2025-06-30 23:00+00', '2025-07-01 00:00+00'),
    ('A2', 'Beta', 'growth', 99999, 'tom', '2025-07-01 00:00+00', '2025-07-02 00:00+00');
"""
# a source fix: the A2 March version had the wrong ARR, the A1 February version never existed
FIX = """
update raw.accounts set arr = 22000, _loaded_at = now() where account_id = 'A2' and updated_at = '2025-03-20 08:00+00';
delete from raw.accounts where account_id = 'A1' and updated_at = '2025-02-10 09:00+00';
"""
HISTORY = ["stg_survey__responses", "int_as_of_resolved", "stg_crm__account_versions", "snap_crm__account_versions",
           "int_account_versions_windowed"]
WINDOWS = ("set time zone 'UTC'; select account_id, updated_at::text, version_number::text, plan, arr::text, "
           "account_owner, valid_from::text, valid_to::text, is_latest_version::text "
           "from intermediate.int_account_versions_windowed order by account_id, updated_at")


def _windows(url: str) -> list[list]:
    return query(url, WINDOWS).values.tolist()


def test_crm_history_is_the_same_nightly_or_backfilled(make_database) -> None:
    nightly, backfill = make_database("nps_scd2_nightly"), make_database("nps_scd2_backfill")
    for night in (NIGHT_1, NIGHT_2):  # one snapshot per night, versions trickling in
        _exec(nightly, night)
        _build(nightly, HISTORY)
    _exec(backfill, NIGHT_1 + NIGHT_2)  # a quarter backfill: all versions in one run
    _build(backfill, HISTORY)

    expected = [
        # account, version (updated_at), #, plan, arr, owner, valid from, valid to, latest
        ["A1", "2025-01-01 00:00:00+00", "1", "starter", "9000.00", "maya", "-infinity",
         "2025-02-10 09:00:00+00", "false"],
        ["A1", "2025-02-10 09:00:00+00", "2", "growth", "24000.00", "maya", "2025-02-10 09:00:00+00",
         "2025-03-05 12:00:00+00", "false"],
        ["A1", "2025-03-05 12:00:00+00", "3", "growth", "24000.00", "priya", "2025-03-05 12:00:00+00",
         "2025-06-30 23:00:00+00", "false"],
        ["A1", "2025-06-30 23:00:00+00", "4", "business", "60000.00", "priya", "2025-06-30 23:00:00+00",
         "infinity", "true"],
        # the A2 version at exactly as_of (2025-07-01 00:00) is not known yet
        ["A2", "2025-01-01 00:00:00+00", "1", "growth", "20000.00", "tom", "-infinity",
         "2025-03-20 08:00:00+00", "false"],
        ["A2", "2025-03-20 08:00:00+00", "2", "growth", "21000.00", "tom", "2025-03-20 08:00:00+00",
         "infinity", "true"],
    ]  # fmt: skip
    assert _windows(nightly) == expected
    assert _windows(backfill) == expected

    _exec(nightly, FIX)
    _build(nightly, HISTORY)
    fixed = [expected[0][:7] + ["2025-03-05 12:00:00+00", "false"],
             [*expected[2][:2], "2", *expected[2][3:]],
             [*expected[3][:2], "3", *expected[3][3:]],
             expected[4],
             [*expected[5][:4], "22000.00", *expected[5][5:]]]  # fmt: skip
    assert _windows(nightly) == fixed
    # the snapshot keeps what was believed before the fix: the old A2 content and the removed A1
    # version are closed (dbt_valid_to), not lost
    closed = query(nightly, "set time zone 'UTC'; select account_id, updated_at::text as v, arr::text as arr from "
                            "snapshots.snap_crm__account_versions where dbt_valid_to is not null order by 1, 2")
    assert closed.values.tolist() == [["A1", "2025-02-10 09:00:00+00", "24000.00"],
                                      ["A2", "2025-03-20 08:00:00+00", "21000.00"]]
    current = query(nightly, "select count(*) as n from snapshots.snap_crm__account_versions "
                             "where dbt_valid_to is null")
    assert int(current["n"][0]) == int(query(nightly, "select count(*) as n from raw.accounts")["n"][0])


# ------------------------------------------------------------------ enriched responses: incremental == full refresh

ENRICHED = ["int_responses_enriched", "int_responses_segmented", "int_survey_sends_answered",
            "int_segment_strata_collapsed", "int_survey_sends_rated", "int_account_outcomes_counted",
            "int_theme_mentions_resolved"]
ENRICHED_UPSTREAM = ["+int_segment_strata_collapsed", "+int_survey_sends_rated", "+int_account_outcomes_counted",
                     "+int_theme_mentions_resolved"]

ENRICHED_NIGHT_1 = """
insert into raw.survey_responses (response_id, survey_id, survey_type, account_id, contact_id, responded_at, score,
                                  comment, _run_id, _loaded_at)
values
    ('R1', 'Q1', 'relational', 'A1', 'C1', '2025-03-01 10:00+00', 9, 'love it', 'load-1', '2025-04-01 00:00+00'),
    ('R2', 'Q1', 'relational', 'A1', 'C2', '2025-03-20 10:00+00', 4, 'slow', 'load-1', '2025-04-01 00:00+00'),
    ('R3', 'Q1', 'transactional', 'A2', null, '2025-03-10 10:00+00', 7, 'ok', 'load-1', '2025-04-01 00:00+00'),
    ('R4', 'Q1', 'relational', 'A2', 'C3', '2025-03-31 23:00+00', 2, 'broken sync', 'load-1', '2025-04-01 00:00+00'),
    ('R5', 'Q1', 'relational', 'A1', 'C1', '2025-04-02 09:00+00', 8, 'fine', 'load-1', '2025-04-01 00:00+00'),
    ('R7', 'Q1', 'relational', 'A3', 'C7', '2025-03-15 09:00+00', 10, 'great', 'load-0', '2025-03-16 00:00+00');
insert into raw.accounts (account_id, name, plan, arr, owner, customer_since, updated_at, _loaded_at) values
    ('A1', 'Acme', 'starter', 9000, 'maya', '2024-01-01', '2025-01-01 00:00+00', '2025-04-01 00:00+00'),
    ('A2', 'Beta', 'growth', 20000, 'tom', '2024-06-01', '2025-01-01 00:00+00', '2025-04-01 00:00+00'),
    ('A2', 'Beta', 'growth', 60000, 'tom', '2024-06-01', '2025-03-15 00:00+00', '2025-04-01 00:00+00'),
    ('A3', 'Cato', 'business', 300000, 'ann', '2023-01-01', '2025-01-01 00:00+00', '2025-04-01 00:00+00');
insert into raw.usage_daily (account_id, usage_date, sessions, _loaded_at)
select account_id, day::date, sessions, '2025-04-01 00:00+00'
from (values ('A1', 5), ('A2', 20), ('A3', 60)) as accounts (account_id, sessions)
cross join generate_series('2025-01-01'::date, '2025-04-14'::date, interval '1 day') as day;
insert into raw.load_audit (entity, interval_start, interval_end, rows_loaded, loaded_at)
values ('usage_daily', '2025-01-01', '2025-04-15', 315, '2025-04-01 00:00+00');
insert into raw.survey_sends (send_id, survey_id, survey_type, account_id, contact_id, sent_at, response_id,
                              _loaded_at)
values
    ('S1', 'Q1', 'relational', 'A1', 'C1', '2025-02-28 10:00+00', 'R1', '2025-04-01 00:00+00'),
    ('S2', 'Q1', 'relational', 'A1', 'C2', '2025-03-15 10:00+00', null, '2025-04-01 00:00+00'),
    ('S3', 'Q1', 'relational', 'A2', 'C3', '2025-03-25 10:00+00', null, '2025-04-01 00:00+00'),
    ('S7', 'Q1', 'relational', 'A3', 'C7', '2025-03-10 10:00+00', null, '2025-03-16 00:00+00');
insert into nlp.themes (theme_id, label, status, merged_into, model, level, parent_theme_id) values
    (1, 'speed', 'active', null, 'm', 'subtheme', 10), (2, 'sync', 'active', null, 'm', 'subtheme', 10),
    (3, 'praise', 'active', null, 'm', 'subtheme', 11), (10, 'product', 'active', null, 'm', 'theme', null),
    (11, 'people', 'active', null, 'm', 'theme', null);
insert into nlp.comment_themes (response_id, text_hash, theme_id, confidence, method, model, assigned_at, run_id)
values
    ('R1', 'h1', 3, 0.9, 'discovered', 'm', '2025-04-01 01:00+00', 'themes-1'),
    ('R2', 'h2', 1, 0.8, 'discovered', 'm', '2025-04-01 01:00+00', 'themes-1'),
    ('R3', 'h3', 2, 0.7, 'assigned', 'm', '2025-04-01 01:00+00', 'themes-1'),
    ('R4', 'h4', 2, 0.6, 'assigned', 'm', '2025-04-01 01:00+00', 'themes-1'),
    ('R5', 'h5', 1, 0.6, 'assigned', 'm', '2025-04-02 01:00+00', 'themes-1'),
    ('R7', 'h7', 3, 0.9, 'discovered', 'm', '2025-03-16 01:00+00', 'themes-0');
insert into nlp.comment_sentiment (response_id, text_hash, sentiment, sentiment_score, method, model, scored_at)
values
    ('R1', 'h1', 'positive', 0.8, 'anchors', 'm', '2025-04-01 01:00+00'),
    ('R2', 'h2', 'negative', -0.5, 'anchors', 'm', '2025-04-01 01:00+00'),
    ('R4', 'h4', 'negative', -0.9, 'anchors', 'm', '2025-04-01 01:00+00'),
    ('R7', 'h7', 'positive', 0.9, 'anchors', 'm', '2025-03-16 01:00+00');
"""

# A later night: a late January answer, a reload that corrects R2, a deletion (R3), a new answer; a
# backdated CRM version for A1 (R2 moves to growth) and A1's churn (every A1 row's latest_churned_at);
# a corrected usage day of A2 inside R4's 30-day window. R5 (answered after the first as_of) comes
# into view with the new as_of. A later send S4 to C3 takes R4's answer from S3 (a response answers the
# latest send before it). The theme engine empties R1's comment (no theme, no sentiment), merges sub-theme
# 2 into 1 (R4 now counts for 1: only its theme's resolution changed), retires theme 11 (R7's sub-theme 3
# keeps its subtheme row, loses its theme row) and rescores R4's sentiment. A3 changes nothing else: its
# R7 and S7 must not be recomputed by the event models.
ENRICHED_NIGHT_2 = """
insert into raw.survey_responses (response_id, survey_id, survey_type, account_id, contact_id, responded_at, score,
                                  comment, _run_id, _loaded_at)
values ('R0', 'Q1', 'relational', 'A2', 'C9', '2025-01-20 10:00+00', 10, 'late but great', 'load-2', now()),
       ('R6', 'Q1', 'relational', 'A2', 'C3', '2025-04-10 10:00+00', 3, 'still broken', 'load-2', now());
update raw.survey_responses set score = 6, _run_id = 'load-2', _loaded_at = now() where response_id = 'R2';
delete from raw.survey_responses where response_id = 'R3';
insert into raw.accounts (account_id, name, plan, arr, owner, customer_since, churned_at, updated_at, _loaded_at) values
    ('A1', 'Acme', 'growth', 30000, 'maya', '2024-01-01', null, '2025-03-10 00:00+00', now()),
    ('A1', 'Acme', 'growth', 30000, 'maya', '2025-01-01', '2025-04-09 00:00+00', '2025-04-09 00:00+00', now());
update raw.usage_daily set sessions = 900, _loaded_at = now() where account_id = 'A2' and usage_date = '2025-03-05';
insert into raw.load_audit (entity, interval_start, interval_end, rows_loaded, loaded_at)
values ('usage_daily', '2025-03-05', '2025-03-06', 1, now());
insert into raw.survey_sends (send_id, survey_id, survey_type, account_id, contact_id, sent_at, response_id,
                              _loaded_at)
values ('S4', 'Q1', 'relational', 'A2', 'C3', '2025-03-28 10:00+00', null, now());
update nlp.comment_themes set theme_id = null, method = 'empty', confidence = null, assigned_at = now(),
    run_id = 'themes-2' where response_id = 'R1';
delete from nlp.comment_sentiment where response_id = 'R1';
update nlp.themes set status = 'merged', merged_into = 1 where theme_id = 2;
update nlp.themes set status = 'merged' where theme_id = 11;
update nlp.comment_sentiment set sentiment = 'neutral', sentiment_score = 0, scored_at = now() where response_id = 'R4';
"""

# R4 is deleted at the source: S4 is answered by R6 instead, S3 still by nothing
ENRICHED_NIGHT_3 = """
delete from raw.survey_responses where response_id = 'R4';
"""

# A source fix that removes usage rows (the loader records rows_lost): every row is recomputed
ENRICHED_NIGHT_4 = """
delete from raw.usage_daily where account_id = 'A3' and usage_date between '2025-02-20' and '2025-03-10';
insert into raw.load_audit (entity, interval_start, interval_end, rows_loaded, rows_lost, loaded_at)
values ('usage_daily', '2025-02-20', '2025-03-11', 0, 19, now());
"""


def _answers(url: str) -> dict[str, str | None]:
    rows = query(url, "select send_id, answered_by_response_id from intermediate.int_survey_sends_answered")
    return {send: response if isinstance(response, str) else None for send, response in rows.itertuples(index=False)}


def _assert_incremental_equals_full_refresh(url: str, as_of: str, **vars: object) -> None:
    _full_refresh(url, ENRICHED_UPSTREAM, as_of=as_of, **vars)
    for model in ENRICHED:
        incremental = _comparable(url, f"intermediate.{model}")
        full = _comparable(url, f"intermediate_full_refresh.{model}")
        assert incremental == full, model


def test_enriched_responses_incremental_equals_a_full_refresh(db_url: str) -> None:
    # no lookback: only the change rules themselves pick what to recompute; short outcome horizons, so
    # that responses mature (and some not yet) within these weeks
    strict: dict[str, object] = {"incremental_lookback_days": "0", "outcome_horizons_days": [10, 30]}
    _exec(db_url, ENRICHED_NIGHT_1)
    _build(db_url, ENRICHED_UPSTREAM, as_of="2025-04-01T00:00:00+00", **strict)
    stamped = dict(query(db_url, "select response_id, built_at from intermediate.int_responses_enriched")
                   .itertuples(index=False))
    assert sorted(stamped) == ["R1", "R2", "R3", "R4", "R7"]  # R5 comes after as_of
    assert _answers(db_url) == {"S1": "R1", "S2": "R2", "S3": "R4", "S7": "R7"}
    sends_stamped = dict(query(db_url, "select send_id, built_at from intermediate.int_survey_sends_answered")
                         .itertuples(index=False))

    _exec(db_url, ENRICHED_NIGHT_2)
    _build(db_url, ENRICHED_UPSTREAM, as_of="2025-04-15T00:00:00+00", **strict)
    _assert_incremental_equals_full_refresh(db_url, "2025-04-15T00:00:00+00", **strict)
    rows = query(db_url, "select response_id, plan, score, latest_churned_at is not null as churned, "
                         "sessions_per_day, built_at from intermediate.int_responses_enriched "
                         "order by response_id").set_index("response_id")
    assert list(rows.index) == ["R0", "R1", "R2", "R4", "R5", "R6", "R7"]
    assert rows.loc["R2", "plan"] == "growth" and rows.loc["R2", "score"] == 6
    assert rows.loc[["R1", "R2", "R5"], "churned"].all()
    assert rows.loc["R4", "sessions_per_day"] == (29 * 20 + 900) / 30
    recomputed = {r for r in rows.index if r not in stamped or rows.loc[r, "built_at"] != stamped[r]}
    assert recomputed == {"R0", "R1", "R2", "R4", "R5", "R6"}  # not R7: nothing about it changed
    segments = query(db_url, "select count(*) as n from intermediate.int_responses_segmented")
    assert int(segments["n"][0]) == 7 * len(query(db_url, "select * from intermediate.int_responses_segmented "
                                                          "where response_id = 'R7'"))
    assert _answers(db_url) == {"S1": "R1", "S2": "R2", "S3": None, "S4": "R4", "S7": "R7"}
    sends = query(db_url, "select send_id, built_at from intermediate.int_survey_sends_answered")
    assert sends.set_index("send_id").loc["S7", "built_at"] == sends_stamped["S7"]
    mentions = query(db_url, "select response_id, theme_level, theme_id, coalesce(sentiment, 'none') "
                             "from intermediate.int_theme_mentions_resolved order by response_id, theme_level")
    assert [tuple(r) for r in mentions.itertuples(index=False)] == [
        ("R2", "subtheme", 1, "negative"), ("R2", "theme", 10, "negative"),
        ("R4", "subtheme", 1, "neutral"), ("R4", "theme", 10, "neutral"),
        ("R5", "subtheme", 1, "none"), ("R5", "theme", 10, "none"), ("R7", "subtheme", 3, "positive")]
    # responses matured by 2025-04-15 per account at 10 and 30 days (R5 of 04-02 at 10 days, R6 not)
    matured = query(db_url, "select account_id, horizon_days, sum(responses) as n "
                            "from intermediate.int_account_outcomes_counted where segment_type = 'overall' "
                            "group by 1, 2 order by 1, 2")
    assert [tuple(r) for r in matured.itertuples(index=False)] == [
        ("A1", 10, 3), ("A1", 30, 1), ("A2", 10, 2), ("A2", 30, 1), ("A3", 10, 1), ("A3", 30, 1)]

    _exec(db_url, ENRICHED_NIGHT_3)
    _build(db_url, ENRICHED_UPSTREAM, as_of="2025-04-15T00:00:00+00", **strict)
    _assert_incremental_equals_full_refresh(db_url, "2025-04-15T00:00:00+00", **strict)
    assert _answers(db_url) == {"S1": "R1", "S2": "R2", "S3": None, "S4": "R6", "S7": "R7"}
    # R4's assignment is still there (the theme engine has not run), its response is not
    assert "R4" not in set(query(db_url, "select response_id from intermediate.int_theme_mentions_resolved")
                           ["response_id"])

    _exec(db_url, ENRICHED_NIGHT_4)
    _build(db_url, ENRICHED_UPSTREAM, as_of="2025-04-15T00:00:00+00", **strict)
    _assert_incremental_equals_full_refresh(db_url, "2025-04-15T00:00:00+00", **strict)
    assert query(db_url, "select sessions_per_day from intermediate.int_responses_enriched "
                         "where response_id = 'R7'")["sessions_per_day"][0] < 60

    # as_of moves back (a rerun of an older interval without the published guard): R5 and R6 go
    _build(db_url, ENRICHED_UPSTREAM, as_of="2025-04-05T00:00:00+00", **strict)
    _assert_incremental_equals_full_refresh(db_url, "2025-04-05T00:00:00+00", **strict)
    assert "R6" not in set(query(db_url, "select response_id from intermediate.int_responses_segmented")
                           ["response_id"])
    assert _answers(db_url)["S4"] is None

    # a settings change recomputes everything
    _build(db_url, ENRICHED_UPSTREAM, as_of="2025-04-15T00:00:00+00", usage_lookback_days="10", **strict)
    _assert_incremental_equals_full_refresh(db_url, "2025-04-15T00:00:00+00", usage_lookback_days="10", **strict)
