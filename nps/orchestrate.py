"""Run `nps_nightly` through Airflow itself (`dag.test()`, local SQLite metadata DB).

Used by `nps demo` / `nps run` and by the integration tests, so the code path is the DAG's own.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime

from nps import config
from nps.times import parse_when

log = logging.getLogger(__name__)


class _OncePerWait(logging.Filter):
    """dag.test() logs "No tasks to run. unrunnable tasks: {...}" once a second for as long as a
    task waits (for its retry delay, or downstream of a skipped one): 300 identical lines per
    5-minute retry. Each distinct wait is logged once."""

    def __init__(self) -> None:
        super().__init__()
        self.last: str | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if not message.startswith("No tasks to run"):
            return True
        repeated, self.last = message == self.last, message
        return not repeated


_WAIT_FILTER = _OncePerWait()

DAG_ID = "nps_nightly"


class PipelineRunFailed(RuntimeError):
    """A DAG run ended in a state other than success."""


def airflow_env() -> dict[str, str]:
    """Environment that points Airflow at this project's DAGs and a local metadata DB."""
    home = config.airflow_home()
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(config.DAGS_DIR),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(config.PLUGINS_DIR),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": os.environ.get("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING"),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "GX_ANALYTICS_ENABLED": "False",
    }


def setup_airflow() -> None:
    """Export the Airflow environment and create/upgrade the metadata DB (idempotent, ~5 s)."""
    env = airflow_env()
    os.environ.update(env)
    home = config.airflow_home()
    home.mkdir(parents=True, exist_ok=True)
    marker = home / ".migrated"
    if marker.exists():
        return
    airflow = os.path.join(os.path.dirname(sys.executable), "airflow")
    proc = subprocess.run([airflow, "db", "migrate"], env=dict(os.environ), capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    marker.write_text("ok\n")


@dataclass
class RunOutcome:
    start: datetime
    end: datetime
    state: str
    failed_tasks: list[str]
    run_id: str


def _as_utc(day: date | datetime) -> datetime:
    return parse_when(day.isoformat())


class WindowBusy(RuntimeError):
    """Another `nps run` / `nps backfill` is running DAG runs with the same Airflow home."""


@contextlib.contextmanager
def _home_lock(description: str) -> Iterator[None]:
    """One dag.test() run at a time per AIRFLOW_HOME: a second run of the same logical date would
    delete the first's DAG run (dag.test clears it), and the local SQLite metadata DB takes one
    writer at a time. The lock is an flock, so a killed holder releases it; the file names the
    holder for the message the next one prints."""
    import fcntl

    path = config.airflow_home() / "nps-run.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+")  # noqa: SIM115 - held for the whole block
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise WindowBusy(
                f"{holder} is running nps_nightly with the same Airflow home ({config.airflow_home()}). "
                "Wait for it to finish (runs are idempotent: rerunning a window afterwards changes "
                "nothing), or give this run its own AIRFLOW_HOME."
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} ({description}, started {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC)\n")
        handle.flush()
        yield
    finally:
        handle.close()


def run_window(start: date | datetime, end: date | datetime, *, raise_on_failure: bool = True,
               dag_id: str = DAG_ID, conf: dict | None = None, logical_date: datetime | None = None
               ) -> RunOutcome:
    """One run of `dag_id` over [start, end) via dag.test() (conf `interval_start`/`interval_end`,
    plus `conf`), under the Airflow home's run lock."""
    setup_airflow()
    from airflow.dag_processing.dagbag import DagBag
    from sqlalchemy.exc import SQLAlchemyError

    s, e = _as_utc(start), _as_utc(end)
    with _home_lock(f"{dag_id} for [{s:%Y-%m-%d}, {e:%Y-%m-%d})"):
        bag = DagBag(dag_folder=str(config.DAGS_DIR))
        if bag.import_errors:
            raise RuntimeError(f"DAG import errors: {bag.import_errors}")
        dag = bag.get_dag(dag_id)
        waits = logging.getLogger("airflow.sdk.definitions.dag")
        if _WAIT_FILTER not in waits.filters:
            waits.addFilter(_WAIT_FILTER)
        log.info("running %s for [%s, %s)", dag_id, s.isoformat(), e.isoformat())
        try:
            dag_run = dag.test(
                logical_date=logical_date or s,
                run_conf={"interval_start": s.isoformat(), "interval_end": e.isoformat(), **(conf or {})},
            )
        except SQLAlchemyError as exc:  # the metadata DB, not the warehouse
            raise PipelineRunFailed(
                f"{dag_id} run for [{s:%Y-%m-%d}, {e:%Y-%m-%d}) failed in Airflow's metadata database "
                f"({config.airflow_home()}): {type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
            ) from None
        instances = dag_run.get_task_instances()
    failed = [ti.task_id for ti in instances if ti.state not in ("success", "skipped")]
    state = str(dag_run.state)
    if not instances:  # e.g. a logical date before the DAG's start_date: Airflow runs nothing
        state, failed = "failed", ["(no task ran)"]
    outcome = RunOutcome(start=s, end=e, state=state, failed_tasks=failed, run_id=dag_run.run_id)
    if raise_on_failure and state != "success":
        cause = ("no task instance was created: the window is outside the DAG's schedule "
                 f"(start_date {dag.start_date:%Y-%m-%d})" if not instances else "the task log above names the cause")
        raise PipelineRunFailed(
            f"{dag_id} run for [{s:%Y-%m-%d}, {e:%Y-%m-%d}) ended {state}; failed tasks: {failed}; {cause}."
        )
    return outcome


def windows(start: date, end: date, by: str = "quarter") -> Iterable[tuple[date, date]]:
    """Calendar days, months or quarters covering [start, end), clipped to it; ``whole``: one."""
    if end <= start:
        raise ValueError(f"empty range: end {end} is not after start {start}")
    if by == "whole":
        yield start, end
        return
    if by not in ("day", "month", "quarter"):
        raise ValueError(f"unknown window size {by!r}: day, month, quarter or whole")
    step = {"month": 1, "quarter": 3}.get(by, 0)
    cursor = start
    while cursor < end:
        if by == "day":
            nxt = date.fromordinal(cursor.toordinal() + 1)
        else:
            first = ((cursor.month - 1) // step) * step + 1
            nxt = date(cursor.year + (first + step > 12), (first + step - 1) % 12 + 1, 1)
        yield cursor, min(nxt, end)
        cursor = min(nxt, end)


def quarter_windows(start: date, end: date) -> Iterable[tuple[date, date]]:
    """Calendar quarters covering [start, end), clipped to it."""
    return windows(start, end, "quarter")
