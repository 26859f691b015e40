"""
### nps_nightly — the nightly NPS feedback loop

One run = one data interval: by default the previous UTC day (runs at 00:00 UTC).

1. **extract_*** (one task per source entity): the entity's source from `sources.yml` (file
   drops, HTTP API or SQL database) for the interval → `raw.*` with COPY; one transaction per
   entity, rerunnable (the window is replaced, never duplicated); contract breakers go to
   `raw.quarantine`, a row per load to `raw.load_audit`.
2. **themes**: embed the interval's new comments (cached by text hash), assign them to the theme
   registry, discover new themes → `nlp.*`.
3. **dbt_build** (write): staging → intermediate → marts built into the candidate schema
   `marts_candidate`, with all dbt tests, "as of" the interval end (never the wall clock).
4. **validate** (audit): Great Expectations suites on raw data and the candidate marts; a failed
   expectation fails the run, names the suite, expectation and offending values, and leaves
   yesterday's `marts` untouched.
5. **publish**: the validated candidate replaces the rows of `marts.*` in one transaction (tables
   keep their identity, so BI views on them survive).
6. **report**: logs the headline summary.

A backfill of a whole quarter in one run: trigger with conf
`{"interval_start": "2025-01-01", "interval_end": "2025-04-01"}`. Logic lives in
`plugins/nps_airflow/stages.py`; this file only wires it.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.sdk import CronDataIntervalTimetable, Param, dag, get_current_context, task

from nps.config import ENTITIES


def _interval() -> tuple[datetime, datetime]:
    from nps_airflow.stages import resolve_interval

    ctx = get_current_context()
    return resolve_interval(ctx["dag_run"].conf, ctx.get("data_interval_start"), ctx.get("data_interval_end"))


@dag(
    dag_id="nps_nightly",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    default_args={
        "owner": "data-platform",
        "retries": int(os.environ.get("NPS_TASK_RETRIES", "2")),
        "retry_delay": timedelta(minutes=5),
        "retry_exponential_backoff": True,
    },
    params={
        "interval_start": Param(None, type=["null", "string"], description="override: window start (ISO)"),
        "interval_end": Param(None, type=["null", "string"], description="override: window end (ISO)"),
    },
    tags=["nps", "warehouse"],
)
def nps_nightly():
    @task
    def prepare_warehouse() -> None:
        from nps_airflow import stages

        stages.prepare_warehouse()

    @task
    def extract(entity: str) -> dict:
        from nps_airflow import stages

        start, end = _interval()
        return stages.extract(entity, start, end, get_current_context()["run_id"])

    # its own queue so a scale-out deployment can send it to GPU workers (docker-compose.yml)
    @task(queue=os.environ.get("NPS_THEMES_QUEUE", "default"))
    def themes() -> dict:
        from nps_airflow import stages

        start, end = _interval()
        return stages.build_themes(start, end, get_current_context()["run_id"])

    @task
    def dbt_build() -> None:
        from nps_airflow import stages

        stages.dbt_build(get_current_context()["run_id"], _interval()[1])

    @task
    def validate() -> dict:
        from nps_airflow import stages

        start, end = _interval()
        return stages.validate(get_current_context()["run_id"], start, end)

    @task
    def publish() -> list[dict]:
        from nps_airflow import stages

        return stages.publish()

    @task
    def report() -> str:
        from nps_airflow import stages

        text = stages.summary()
        print(text)
        return text

    ready = prepare_warehouse()
    loads = [extract.override(task_id=f"extract_{entity}")(entity) for entity in ENTITIES]
    theme_step = themes()
    ready >> loads
    loads >> theme_step >> dbt_build() >> validate() >> publish() >> report()


nps_nightly()
