"""
### nps_nightly — the nightly NPS feedback loop

One run = one data interval: by default the previous UTC day (runs at 00:00 UTC). Scheduled runs
take their interval from Airflow (`CronDataIntervalTimetable`); `nps run` passes a custom window
as conf `{"interval_start": "2025-01-01", "interval_end": "2025-04-01"}`.

1. **extract_*** (one task per source entity): the entity's source from `sources.yml` (file
   drops, HTTP API or SQL database) for the interval → `raw.*` with COPY, one transaction per
   entity and UTC day, rerunnable (the window is replaced, never duplicated); contract breakers
   go to `raw.quarantine`, a row per load to `raw.load_audit`.
2. **themes**: embed the interval's new comments (cached by text hash), assign them to the theme
   registry, discover new themes → `nlp.*` (a longer window night by night).
3. **dbt_build** (write): staging → intermediate → marts built into the candidate schema
   `marts_candidate`, with all dbt tests, "as of" the interval end (never the wall clock).
4. **validate** (audit): Great Expectations suites on raw data and the candidate marts; a failed
   expectation fails the run, names the suite, expectation and offending values, and leaves
   yesterday's `marts` untouched.
5. **publish**: the validated candidate replaces the rows of `marts.*` in one transaction (tables
   keep their identity, so BI views on them survive).
6. **report**: writes the headline summary to the task log.
7. **report_html**: renders the HTML morning report of the published marts next to the run's
   validation results (`gx/uncommitted/runs/<run_id>/report.html`) and at the stable path
   `data/reports/latest.html`. Like `report`, it runs after publish: if it fails, the task fails
   and the marts stay published.
8. **deliver**: after the report, sends what the published marts ask people to act on, once each
   (`ops.delivery_log`): the report by e-mail / Slack-compatible webhook, a ticket per new theme
   alert (JSON webhook), each detractor past its follow-up SLA to its owner. Channels are Airflow
   connections `nps_smtp`, `nps_slack_webhook`, `nps_ticket_webhook` (none: nothing sent); marts
   older than NPS_DELIVERY_MAX_AGE_DAYS (a backfill of history) deliver nothing. A message that
   still fails after its retries fails this task, never the published marts (docs/delivery.md).

dbt_build, validate and publish hold one lock and check that the candidate is this run's own
build; a run whose candidate another run rebuilt later is skipped (that build holds its data).

### nps_backfill — history, a month per run

The same tasks over calendar months, for Airflow's own backfill:
`airflow backfill create --dag-id nps_backfill --from-date 2025-01-01 --to-date 2025-03-01
--max-active-runs 1 --reprocess-behavior completed --dag-run-conf
'{"backfill_start": "2025-01-01", "backfill_end": "2025-04-01"}'` (or `nps backfill --quarter 2025Q1`).
Each month is loaded day by day and themed night by night, exactly as its nightly runs would
have; only the run that reaches `backfill_end` builds, validates and publishes (the others skip
those tasks). A backfill needs the DAG unpaused (`nps backfill` unpauses it, then pauses it
again); a run the scheduler creates on its own meanwhile skips every task. Logic lives in
`plugins/nps_airflow/stages.py`; this file only wires it.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from airflow.sdk import CronDataIntervalTimetable, Param, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from nps import config, contracts

SCHEDULE = config.schedule()
DEFAULT_ARGS = {
    "owner": "data-platform",
    "retries": config.task_retries(),
    "retry_delay": timedelta(seconds=config.task_retry_delay_seconds()),
    "retry_exponential_backoff": True,
}
ROW_LOSS_PARAM = Param(False, type="boolean",
                       description="accept re-dropped files that hold fewer rows than were loaded before")
# its own queue so a scale-out deployment can send it to GPU workers (docker-compose.yml, nps stack)
THEMES_QUEUE = config.themes_queue()


def _interval() -> tuple[datetime, datetime]:
    from nps_airflow.stages import resolve_interval

    ctx = get_current_context()
    return resolve_interval(ctx["dag_run"].conf, ctx.get("data_interval_start"), ctx.get("data_interval_end"))


def _run_id() -> str:
    return get_current_context()["run_id"]


def _run(call):
    """A stage, with Airflow's meaning for two outcomes: a run whose candidate a later build
    superseded skips; a failure a retry would only repeat (the data or the configuration, see
    stages.fails_again_on_retry) fails at once, without the retries kept for transient ones."""
    from nps_airflow.stages import Superseded, fails_again_on_retry

    try:
        return call()
    except Superseded as exc:
        raise AirflowSkipException(str(exc)) from None
    except Exception as exc:
        if fails_again_on_retry(exc):
            raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc
        raise


def pipeline() -> None:
    """The tasks of one run over `_interval()`, shared by both DAGs."""

    @task
    def prepare_warehouse() -> None:
        from nps_airflow import stages

        ctx = get_current_context()
        if ctx["dag"].dag_id == "nps_backfill" and ctx["dag_run"].run_type == "scheduled":
            # unpausing it for a backfill makes the scheduler add the latest month; that is a
            # nightly's job, not a backfill's
            raise AirflowSkipException("nps_backfill works for backfills only; its scheduled runs do nothing")
        _run(stages.prepare_warehouse)

    @task
    def extract(entity: str) -> dict:
        from nps_airflow import stages

        accept = bool((get_current_context()["dag_run"].conf or {}).get("accept_row_loss"))
        return _run(lambda: stages.extract(entity, *_interval(), _run_id(), accept_row_loss=accept))

    @task(queue=THEMES_QUEUE)
    def themes() -> dict:
        from nps_airflow import stages

        return _run(lambda: stages.build_themes(*_interval(), _run_id()))

    @task
    def dbt_build() -> None:
        from nps_airflow import stages

        start, end = _interval()
        reason = stages.build_skipped_reason(get_current_context()["dag_run"].conf, end)
        if reason:
            raise AirflowSkipException(reason)
        _run(lambda: stages.dbt_build(_run_id(), end, start))

    @task
    def validate() -> dict:
        from nps_airflow import stages

        return _run(lambda: stages.validate(_run_id(), *_interval()))

    @task
    def publish() -> list[dict]:
        from nps_airflow import stages

        return _run(lambda: stages.publish(_run_id(), _interval()[1]))

    @task
    def report() -> str:
        from nps.summary import published_summary

        text = published_summary()
        # in the task log; `nps run` / `nps demo` print it once at the end, not after every window
        logging.getLogger("nps_nightly.report").info("summary of the published marts:\n%s", text)
        return text

    @task
    def report_html() -> dict:
        from nps_airflow import stages

        return _run(lambda: stages.report_html(_run_id()))

    @task
    def deliver(rendered: dict) -> dict:
        from nps_airflow import stages

        return _run(lambda: stages.deliver(_run_id(), rendered, _interval()[0]))

    ready = prepare_warehouse()
    loads = [extract.override(task_id=f"extract_{entity}")(entity) for entity in contracts.ENTITIES]
    ready >> loads
    published = loads >> themes() >> dbt_build() >> validate() >> publish()
    rendered = report_html()
    published >> [report(), rendered]
    deliver(rendered)


@dag(
    dag_id="nps_nightly",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=SCHEDULE.start,
    end_date=SCHEDULE.end,
    catchup=SCHEDULE.catchup,
    max_active_runs=1,
    doc_md=__doc__,
    default_args=DEFAULT_ARGS,
    params={
        "interval_start": Param(None, type=["null", "string"], description="override: window start (ISO)"),
        "interval_end": Param(None, type=["null", "string"], description="override: window end (ISO)"),
        "accept_row_loss": ROW_LOSS_PARAM,
    },
    tags=["nps", "warehouse"],
)
def nps_nightly():
    pipeline()


@dag(
    dag_id="nps_backfill",
    schedule=CronDataIntervalTimetable("0 0 1 * *", timezone="UTC"),
    # any history a team has: months from 2000 on can be backfilled
    start_date=datetime(2000, 1, 1, tzinfo=UTC),
    catchup=False,
    is_paused_upon_creation=True,
    max_active_runs=1,
    doc_md=__doc__,
    default_args=DEFAULT_ARGS,
    params={
        "backfill_start": Param(None, type=["null", "string"], description="first day of the backfill (ISO)"),
        "backfill_end": Param(None, type=["null", "string"], description="day after the last one (ISO)"),
        "accept_row_loss": ROW_LOSS_PARAM,
    },
    tags=["nps", "warehouse", "backfill"],
)
def nps_backfill():
    pipeline()


nps_nightly()
nps_backfill()
