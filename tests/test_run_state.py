"""Run state across runs: a scheduled run's interval, what "as of" follows, whose candidate a run
may validate and publish, and two runs sharing one Airflow home. Each test reproduces a failure
found by running the pipeline the way Airflow runs it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime

import pytest

from nps import warehouse
from nps_airflow import stages
from nps_airflow.dbt import build_as_of
from tests.conftest import query

pytestmark = pytest.mark.integration

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _env(url: str, sources) -> dict[str, str]:
    return {warehouse.URL_ENV: url, "NPS_SOURCES_DIR": str(sources)}


@pytest.fixture
def pipeline_env(monkeypatch, make_database, small_sources):
    url = make_database("nps_runstate")
    for key, value in _env(url, small_sources[0]).items():
        monkeypatch.setenv(key, value)
    return url


def test_a_scheduled_run_takes_airflow_s_data_interval_and_passes_validation(pipeline_env):
    """No conf: the interval is Airflow's own (a pendulum DateTime). The freshness bound built
    from it used to reach GX as a naive timestamp, so every scheduled run failed validation."""
    from airflow.dag_processing.dagbag import DagBag

    from nps import config, orchestrate

    orchestrate.setup_airflow()
    dag = DagBag(dag_folder=str(config.DAGS_DIR)).get_dag("nps_nightly")
    run = dag.test(logical_date=datetime(2025, 3, 11, tzinfo=UTC))  # run_after: the interval ends here
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert str(run.state) == "success", states
    audit = query(pipeline_env, "select distinct interval_start, interval_end from raw.load_audit")
    assert audit.values.tolist() == [[datetime(2025, 3, 10, tzinfo=UTC), datetime(2025, 3, 11, tzinfo=UTC)]]
    published = query(pipeline_env, "select as_of from ops.published_builds")
    assert published["as_of"].tolist() == [datetime(2025, 3, 11, tzinfo=UTC)]


def test_a_failed_run_does_not_move_as_of(db_conn):
    """A run that loaded today's window and then failed leaves raw and load-audit rows; the next
    clean run of an earlier window must build as of that window (or the marts already published),
    not as of the failed run's day."""
    with db_conn.cursor() as cur:
        cur.execute("insert into ops.published_builds (run_id, as_of) values ('nightly', '2025-12-01')")
        cur.execute(
            "insert into raw.load_audit (run_id, entity, interval_start, interval_end) values "
            "('failed-today', 'survey_responses', '2026-12-02', '2026-12-03')"
        )
    db_conn.commit()
    december = datetime(2026, 1, 1, tzinfo=UTC)
    assert build_as_of(db_conn, december) == december
    # an old window rerun keeps the published "as of"
    assert build_as_of(db_conn, datetime(2025, 4, 1, tzinfo=UTC)) == datetime(2025, 12, 1, tzinfo=UTC)


def _candidate(conn, run_id: str, as_of: str, validated: bool, finished: bool = True) -> None:
    with conn.cursor() as cur:
        cur.execute(
            "insert into ops.candidate_build (candidate_schema, run_id, as_of, validated_at, finished_at) values "
            "('marts_candidate', %s, %s, case when %s then now() end, case when %s then now() end) "
            "on conflict (candidate_schema) do update set run_id = excluded.run_id, as_of = excluded.as_of, "
            "validated_at = excluded.validated_at, finished_at = excluded.finished_at",
            (run_id, as_of, validated, finished),
        )
    conn.commit()


def test_validate_and_publish_never_take_another_runs_candidate(db_url, db_conn, monkeypatch):
    """validate and publish hold the candidate lock and check the candidate is this run's build:
    a later build by another run supersedes this one (it holds this run's data), an older-dated
    one is refused naming the run; an unvalidated candidate is never published."""
    monkeypatch.setenv(warehouse.URL_ENV, db_url)
    end = datetime(2025, 3, 2, tzinfo=UTC)
    _candidate(db_conn, "backfill-later", "2025-03-02", validated=False)
    with pytest.raises(stages.Superseded, match="backfill-later"):
        stages.validate("nightly-0301", end=end)
    with pytest.raises(stages.Superseded, match="backfill-later"):
        stages.publish("nightly-0301", end)
    _candidate(db_conn, "backfill-older", "2025-02-01", validated=True)
    with pytest.raises(stages.CandidateNotOurs, match="backfill-older.*Nothing was published"):
        stages.publish("nightly-0301", end)
    _candidate(db_conn, "nightly-0301", "2025-03-02", validated=False)
    with pytest.raises(stages.CandidateNotOurs, match="did not validate"):
        stages.publish("nightly-0301", end)
    # a build that died half way (dbt commits model by model) is nobody's candidate
    _candidate(db_conn, "backfill-killed", "2025-03-02", validated=False, finished=False)
    for stage in (lambda: stages.validate("nightly-0301", end=end), lambda: stages.publish("nightly-0301", end)):
        with pytest.raises(stages.CandidateNotOurs, match="backfill-killed.*never finished"):
            stage()
    assert query(db_url, "select count(*) as n from ops.published_builds")["n"][0] == 0
    assert query(db_url, "select to_regclass('marts.nps_by_segment') as t")["t"][0] is None


def test_two_runs_with_one_airflow_home_do_not_break_each_other(pipeline_env, small_sources, tmp_path):
    """The second `nps run` of a window used to delete the first's DAG run (same logical date), and
    the first died with a raw IntegrityError. Now the second stops at once, naming the first."""
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "airflow"), "NPS_DATA_DIR": str(tmp_path)}
    cmd = [os.path.join(os.path.dirname(sys.executable), "nps"), "run", "--start", "2025-01-06",
           "--end", "2025-01-07", "--by", "day"]
    first = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lock = tmp_path / "airflow" / "nps-run.lock"
    deadline = time.monotonic() + 120
    while not (lock.exists() and f"pid {first.pid}" in lock.read_text()) and time.monotonic() < deadline:
        time.sleep(0.5)
    second = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    out, _ = first.communicate(timeout=600)
    assert second.returncode == 1, second.stdout + second.stderr
    assert f"pid {first.pid}" in second.stderr and "Traceback" not in second.stderr
    assert first.returncode == 0, out
    assert "IntegrityError" not in out


def test_a_window_before_the_dag_start_date_fails_naming_the_cause(monkeypatch, db_url, small_sources):
    """Airflow creates no task instance for a logical date before the DAG's start_date; such a run
    used to print "done" and exit 0 having done nothing."""
    from nps import orchestrate

    monkeypatch.setenv(warehouse.URL_ENV, db_url)
    monkeypatch.setenv("NPS_SOURCES_DIR", str(small_sources[0]))
    monkeypatch.setenv("NPS_DAG_START_DATE", "2025-06-01")
    with pytest.raises(orchestrate.PipelineRunFailed, match=r"no task instance was created.*start_date 2025-06-01"):
        orchestrate.run_window(datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 2, tzinfo=UTC))
    assert query(db_url, "select count(*) as n from raw.load_audit")["n"][0] == 0


def test_a_failure_a_retry_would_repeat_fails_at_once(monkeypatch, db_url, small_sources, tmp_path):
    """An unreadable file fails the same way on every retry: the task fails at once instead of
    waiting out the retries (which once kept `nps run` busy for 27 minutes before it said so).
    Retries stay on (2, ten minutes apart) for transient failures."""
    import shutil

    from nps import orchestrate

    sources = tmp_path / "sources"
    shutil.copytree(small_sources[0], sources, ignore=shutil.ignore_patterns("_truth"))
    (sources / "survey_responses" / "survey_responses_2025-01-02.csv").write_bytes(b"")  # an empty file
    monkeypatch.setenv(warehouse.URL_ENV, db_url)
    monkeypatch.setenv("NPS_SOURCES_DIR", str(sources))
    monkeypatch.setenv("NPS_TASK_RETRIES", "2")
    monkeypatch.setenv("NPS_TASK_RETRY_DELAY_SECONDS", "600")
    started = time.monotonic()
    outcome = orchestrate.run_window(datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 4, tzinfo=UTC),
                                     raise_on_failure=False)
    assert time.monotonic() - started < 300  # a retry would have waited 600 s first
    assert outcome.state == "failed" and "extract_survey_responses" in outcome.failed_tasks
    assert not [t for t in outcome.failed_tasks if t.startswith("extract_") and t != "extract_survey_responses"]
    audit = query(db_url, "select entity, count(*) as n from raw.load_audit where rows_loaded > 0 group by entity")
    loads = dict(zip(audit["entity"], audit["n"], strict=True))
    assert loads["survey_responses"] == 2 and loads["usage_daily"] == 3  # the other days and entities loaded


def test_dag_test_s_once_a_second_wait_message_is_logged_once_per_wait():
    import logging

    from nps import orchestrate

    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    logger = logging.getLogger("nps.test.waits")
    logger.propagate, logger.level = False, logging.INFO
    logger.addHandler(Keep())
    logger.addFilter(orchestrate._OncePerWait())
    for _ in range(300):  # five minutes of a retry delay
        logger.warning("No tasks to run. unrunnable tasks: %s", {"extract_accounts"})
    logger.warning("No tasks to run. unrunnable tasks: %s", {"report"})
    logger.warning("loaded 12 rows")
    logger.warning("loaded 12 rows")
    assert seen == ["No tasks to run. unrunnable tasks: {'extract_accounts'}",
                    "No tasks to run. unrunnable tasks: {'report'}", "loaded 12 rows", "loaded 12 rows"]


def test_freshness_is_the_nightly_lag_unless_the_window_is_historical(monkeypatch):
    from datetime import timedelta

    monkeypatch.setenv("NPS_FRESHNESS_LAG_DAYS", "3")
    now = datetime(2026, 12, 4, 6, tzinfo=UTC)
    night = (datetime(2026, 12, 3, tzinfo=UTC), datetime(2026, 12, 4, tzinfo=UTC))
    assert stages.freshness_lag(*night, now=now) == timedelta(days=3)  # tonight's run: a stale source fails
    old_month = (datetime(2025, 9, 1, tzinfo=UTC), datetime(2025, 10, 1, tzinfo=UTC))
    assert stages.freshness_lag(*old_month, now=now) == timedelta(days=30)  # any response in the window
    old_day = (datetime(2025, 9, 1, tzinfo=UTC), datetime(2025, 9, 2, tzinfo=UTC))
    assert stages.freshness_lag(*old_day, now=now) == timedelta(days=3)
    assert stages.freshness_lag(None, night[1], now=now) == timedelta(days=3)


def test_history_from_2023_loads_and_publishes_even_past_its_last_answer(monkeypatch, make_database,
                                                                         tmp_path_factory):
    """Teams backfill years of history: a window in 2023 runs every task (the DAG starts in 2000;
    a window before its start date fails loudly, see above) and publishes its marts. The export's
    last answer is on 2023-03-31 and the window ends on 2023-04-08: a one-off import like this used
    to fail the freshness check, which belongs to the nightly run."""
    from dataclasses import replace
    from datetime import date

    from nps import orchestrate
    from nps.demo.generator import PRESETS, generate

    sources = tmp_path_factory.mktemp("sources_2023")
    generate(sources, replace(PRESETS["small"], start=date(2023, 1, 1), quarters=1), progress=False)
    url = make_database("nps_2023")
    monkeypatch.setenv(warehouse.URL_ENV, url)
    monkeypatch.setenv("NPS_SOURCES_DIR", str(sources))
    outcome = orchestrate.run_window(datetime(2023, 3, 1, tzinfo=UTC), datetime(2023, 4, 8, tzinfo=UTC),
                                     raise_on_failure=False)
    assert outcome.state == "success", outcome.failed_tasks
    loaded = query(url, "select min(responded_at) as lo, max(responded_at) as hi, count(*) as n"
                        " from raw.survey_responses").iloc[0]
    assert loaded.n > 0
    assert datetime(2023, 3, 1, tzinfo=UTC) <= loaded.lo <= loaded.hi < datetime(2023, 4, 1, tzinfo=UTC)
    published = query(url, "select as_of from ops.published_builds")["as_of"].tolist()
    assert published == [datetime(2023, 4, 8, tzinfo=UTC)]
