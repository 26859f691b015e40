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


def _exec(url: str, sql: str) -> None:
    conn = warehouse.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
        conn.commit()
    finally:
        conn.close()


def _build(url: str, select: list[str], *, full_refresh: bool = False, **vars: str) -> None:
    """dbt build of the selected models with their data tests (not the tests of unselected ones)."""
    args = ["build", "--select", *select, "--indirect-selection", "cautious",
            "--exclude-resource-type", "unit_test"]
    run_dbt(args + (["--full-refresh"] if full_refresh else []), url, vars={"as_of": AS_OF, **vars})


def _rows(url: str, table: str, order: str) -> list[tuple]:
    return [tuple(r) for r in query(url, f"select * from {table} order by {order}").itertuples(index=False)]


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
    _build(db_url, select, full_refresh=True, intermediate_schema="intermediate_full_refresh")

    responses = query(db_url, "select response_id, score from intermediate.int_responses_categorised "
                              "order by response_id")
    assert responses.values.tolist() == [["R0", 10], ["R1", 9], ["R2", 6], ["R4", 2]]
    themes = query(db_url, "select response_id, theme_id from intermediate.int_theme_assignments_collected "
                           "order by response_id")
    assert themes.values.tolist() == [["R0", 1], ["R1", 1], ["R2", 1], ["R4", 3]]
    for model in INCREMENTAL:
        incremental = _rows(db_url, f"intermediate.{model}", "response_id")
        full = _rows(db_url, f"intermediate_full_refresh.{model}", "response_id")
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
