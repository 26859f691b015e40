"""The pipeline as teams deploy it: `nps stack` (Airflow's api-server, scheduler, dag-processor and
triggerer as processes, a PostgreSQL metadata database; CeleryExecutor with Redis and two workers),
scheduled runs made by the real scheduler, Airflow's own backfill, a worker SIGKILLed mid-task,
and concurrent runs. Slow: `make test-ops` runs them (marker `ops`).

Every scenario starts from one warmed-up warehouse (30 days run by nps_nightly), cloned, and runs
the same three nights; each must leave every raw / nlp / marts table equal (tests/checksums.py)
to three dag.test() nightly runs of those nights."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta

import pytest

from nps import config, contracts, orchestrate, warehouse
from tests.checksums import differences, table_checksums
from tests.conftest import query
from tests.stack_helpers import MartReader, clone_database, drop_database, running_stack

pytestmark = [pytest.mark.integration, pytest.mark.ops]

PREFIX = (date(2025, 2, 8), date(2025, 3, 10))  # 30 days: the registry's first themes
NIGHTS = [date(2025, 3, 10), date(2025, 3, 11), date(2025, 3, 12)]
END = NIGHTS[-1] + timedelta(days=1)
SCHEDULE_ENV = {"NPS_DAG_START_DATE": NIGHTS[0].isoformat(), "NPS_DAG_END_DATE": NIGHTS[-1].isoformat(),
                "NPS_DAG_CATCHUP": "true"}
RUN_TIMEOUT = 20 * 60


@contextmanager
def pointed_at(url: str, sources) -> Iterator[None]:
    with config.environment({warehouse.URL_ENV: url, "NPS_SOURCES_DIR": str(sources)}):
        yield


@pytest.fixture(scope="module")
def prefix_url(make_database, small_sources) -> str:
    url = make_database("nps_prefix")
    with pointed_at(url, small_sources[0]):
        orchestrate.run_window(*PREFIX)
    return url


@pytest.fixture(scope="module")
def clone(prefix_url, pg_server_url):
    made: list[str] = []

    def make(prefix: str) -> str:
        made.append(clone_database(pg_server_url, prefix_url, prefix))
        return made[-1]

    yield make
    for url in made:
        drop_database(pg_server_url, url)


@pytest.fixture(scope="module")
def nightly_reference(clone, small_sources) -> dict:
    """Three nights as three dag.test() runs: what every other way of running them must equal."""
    url = clone("nps_nights")
    with pointed_at(url, small_sources[0]):
        for night in NIGHTS:
            orchestrate.run_window(night, night + timedelta(days=1))
    return table_checksums(url)


def _assert_same(url: str, reference: dict, *, ignore: tuple[str, ...] = ()) -> None:
    actual = {k: v for k, v in table_checksums(url).items() if k not in ignore}
    expected = {k: v for k, v in reference.items() if k not in ignore}
    assert differences(actual, expected) == {}
    assert actual["marts.nps_by_segment"][0] > 0


def test_the_scheduler_runs_the_nightly_schedule_as_dag_test_does(clone, nightly_reference, small_sources,
                                                                  tmp_path, pg_server_url):
    url = clone("nps_sched")
    with running_stack(tmp_path, warehouse_url=url, server_url=pg_server_url, sources=small_sources[0],
                       extra_env=SCHEDULE_ENV) as stack:
        health = stack.nps("stack", "status").stdout
        assert "scheduler healthy" in health and "dag_processor healthy" in health
        api = stack.api()
        api.wait_for_dag("nps_nightly")
        with MartReader(url) as reader:
            api.patch("/api/v2/dags/nps_nightly", {"is_paused": False})
            runs = stack.wait_for_runs("nps_nightly", len(NIGHTS), RUN_TIMEOUT)
        reader.assert_consistent()
        assert len(reader.reads) > 10
        assert [(r["run_type"], r["state"], r["data_interval_start"][:10]) for r in runs] == [
            ("scheduled", "success", night.isoformat()) for night in NIGHTS]
        assert all(not r["conf"] for r in runs)  # the interval came from Airflow, not from a conf
        _assert_same(url, nightly_reference)

        # a manual trigger with no logical date and no conf has no data interval: it fails, saying so
        run = api.post("/api/v2/dags/nps_nightly/dagRuns", {"logical_date": None})
        deadline = time.monotonic() + 300
        while api.get(f"/api/v2/dags/nps_nightly/dagRuns/{run['dag_run_id']}")["state"] not in ("failed", "success"):
            assert time.monotonic() < deadline, "the run without a data interval did not end"
            time.sleep(3)
        assert api.get(f"/api/v2/dags/nps_nightly/dagRuns/{run['dag_run_id']}")["state"] == "failed"
        failed = [t for t in stack.task_instances("nps_nightly", run["dag_run_id"]) if t["state"] == "failed"]
        assert failed
        logs = "\n".join(p.read_text(errors="replace") for p in (stack.home / "airflow" / "logs").rglob("*.log")
                         if run["dag_run_id"] in str(p))
        assert "this run has no data interval" in logs
        _assert_same(url, nightly_reference)


def _wait_for_task(stack, dag_id: str, run_index: int, task_id: str, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = stack.runs(dag_id)
        if len(runs) > run_index:
            for ti in stack.task_instances(dag_id, runs[run_index]["dag_run_id"]):
                if ti["task_id"] == task_id and ti["state"] == "running" and ti.get("pid"):
                    return ti
        time.sleep(1)
    raise AssertionError(f"{task_id} of run {run_index} never ran\n{stack.logs_tail()}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return open(f"/proc/{pid}/stat").read().split(") ", 1)[1][0] != "Z"
    except (ProcessLookupError, FileNotFoundError):
        return False


def test_celery_runs_themes_on_their_own_worker_and_survives_a_killed_worker(
        clone, nightly_reference, small_sources, tmp_path, pg_server_url):
    url = clone("nps_celery")
    with running_stack(tmp_path, warehouse_url=url, server_url=pg_server_url, sources=small_sources[0],
                       executor="celery", extra_env=SCHEDULE_ENV) as stack:
        api = stack.api()
        api.wait_for_dag("nps_nightly")
        with MartReader(url) as reader:
            api.patch("/api/v2/dags/nps_nightly", {"is_paused": False})
            # the second night's dbt build is running on the default worker: SIGKILL the whole worker
            # (Celery's main process, its pool, the task supervisor and the task)
            ti = _wait_for_task(stack, "nps_nightly", 1, "dbt_build", RUN_TIMEOUT)
            worker = stack.state()["pids"]["worker"]
            os.killpg(worker, signal.SIGKILL)
            deadline = time.monotonic() + 30
            while (_alive(worker) or _alive(ti["pid"])) and time.monotonic() < deadline:
                time.sleep(0.5)
            assert not _alive(worker) and not _alive(ti["pid"]), "the worker or its task survived SIGKILL"
            restarted = stack.start()  # starts what is not running: the lost worker
            assert "started worker " in restarted.stdout and "started scheduler" not in restarted.stdout
            runs = stack.wait_for_runs("nps_nightly", len(NIGHTS), RUN_TIMEOUT)
        reader.assert_consistent()
        assert [r["state"] for r in runs] == ["success"] * len(NIGHTS)
        killed = [t for t in stack.task_instances("nps_nightly", runs[1]["dag_run_id"]) if t["task_id"] == "dbt_build"]
        assert killed[0]["try_number"] >= 2, "the killed task was not retried by Airflow"
        _assert_same(url, nightly_reference)

        for run in runs:
            for t in stack.task_instances("nps_nightly", run["dag_run_id"]):
                worker_name = "themes" if t["task_id"] == "themes" else "default"
                assert t["queue"] == worker_name, (t["task_id"], t["queue"])
                assert t["hostname"].endswith(f"-{worker_name}"), (t["task_id"], t["hostname"])


def test_an_airflow_backfill_equals_the_nightly_runs_and_reruns_change_nothing(
        clone, nightly_reference, small_sources, tmp_path, pg_server_url):
    url = clone("nps_bf")
    with running_stack(tmp_path, warehouse_url=url, server_url=pg_server_url, sources=small_sources[0]) as stack:
        out = stack.nps("backfill", "--start", NIGHTS[0].isoformat(), "--end", END.isoformat(),
                        timeout=RUN_TIMEOUT).stdout
        assert "through the Airflow stack" in out and "[1/1]" in out and "done" in out
        backfills = stack.api().get("/api/v2/backfills?dag_id=nps_backfill")["backfills"]
        assert len(backfills) == 1 and backfills[0]["completed_at"]
        assert backfills[0]["reprocess_behavior"] == "completed"
        runs = stack.runs("nps_backfill")
        assert [r["run_type"] for r in runs if r["state"] == "success" and r["run_type"] == "backfill"] == ["backfill"]
        _assert_same(url, nightly_reference)

        # a second backfill of the same range, over loaded unchanged history, changes nothing
        again = stack.nps("backfill", "--start", NIGHTS[0].isoformat(), "--end", END.isoformat(),
                          timeout=RUN_TIMEOUT).stdout
        assert "done" in again
        _assert_same(url, nightly_reference, ignore=("raw.load_audit",))  # which logs every load
        audit = query(url, "select count(*) as n from raw.load_audit where interval_start >= '2025-03-10'")
        assert audit["n"][0] == 2 * len(contracts.ENTITIES) * len(NIGHTS)  # the loads of both backfills
        assert query(url, "select count(*) as n from ops.published_builds")["n"][0] == 3  # prefix + 2 backfills

        # two backfills of one DAG at once: Airflow refuses the second, which names the first
        first = subprocess.Popen(
            [os.path.join(os.path.dirname(sys.executable), "nps"), "backfill", "--start",
             NIGHTS[0].isoformat(), "--end", END.isoformat()],
            env=stack.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 60
        while not [b for b in stack.api().get("/api/v2/backfills?dag_id=nps_backfill")["backfills"]
                   if not b["completed_at"]] and time.monotonic() < deadline:
            time.sleep(1)
        second = stack.nps("backfill", "--start", NIGHTS[0].isoformat(), "--end", END.isoformat(), check=False)
        assert second.returncode == 1
        assert "is still running" in second.stderr and "backfill 3" in second.stderr
        assert first.wait(timeout=RUN_TIMEOUT) == 0, first.stdout.read()
        _assert_same(url, nightly_reference, ignore=("raw.load_audit",))


def test_a_backfill_without_a_stack_equals_the_nightly_runs(clone, nightly_reference, small_sources, tmp_path):
    url = clone("nps_bf_local")
    env = {**os.environ, warehouse.URL_ENV: url, "NPS_SOURCES_DIR": str(small_sources[0]),
           "NPS_STACK_PORT": "1", "AIRFLOW_HOME": str(tmp_path / "airflow"), "NPS_DATA_DIR": str(tmp_path)}
    nps = os.path.join(os.path.dirname(sys.executable), "nps")
    proc = subprocess.run([nps, "backfill", "--start", NIGHTS[0].isoformat(), "--end", END.isoformat()],
                          env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "through dag.test()" in proc.stdout and "[1/1]" in proc.stdout
    _assert_same(url, nightly_reference)
    # rerunning one of the nights changes nothing either
    rerun = subprocess.run([nps, "run", "--start", NIGHTS[1].isoformat(), "--end", NIGHTS[2].isoformat(),
                            "--by", "day"], env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    _assert_same(url, nightly_reference, ignore=("raw.load_audit",))
    audit = query(url, "select count(*) as n from raw.load_audit where interval_start = '2025-03-11'")
    # the backfill's loads of that day and the rerun's, every entity
    assert audit["n"][0] == 2 * len(contracts.ENTITIES)


def test_a_backfill_and_the_nightly_schedule_at_once(clone, nightly_reference, small_sources, tmp_path,
                                                     pg_server_url):
    """The nightly runs and a backfill of the same nights run at the same time: they wait for each
    other's locks, and the warehouse ends as if the nights had run once (the load audit lists
    every load of both)."""
    url = clone("nps_both")
    with running_stack(tmp_path, warehouse_url=url, server_url=pg_server_url, sources=small_sources[0],
                       extra_env={**SCHEDULE_ENV, "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "6"}) as stack:
        api = stack.api()
        api.wait_for_dag("nps_nightly")
        with MartReader(url) as reader:
            api.patch("/api/v2/dags/nps_nightly", {"is_paused": False})
            backfill = stack.nps("backfill", "--start", NIGHTS[0].isoformat(), "--end", END.isoformat(),
                                 timeout=RUN_TIMEOUT, check=False)
            runs = stack.wait_for_runs("nps_nightly", len(NIGHTS), RUN_TIMEOUT)
            backfills = 1
            if backfill.returncode != 0:
                # a nightly run rebuilt the candidate between the backfill's build and its
                # validation: the backfill stops, naming that run; rerunning it is safe
                assert "scheduled__" in backfill.stderr and "rerun" in backfill.stderr, backfill.stderr
                backfill = stack.nps("backfill", "--start", NIGHTS[0].isoformat(), "--end", END.isoformat(),
                                     timeout=RUN_TIMEOUT)
                backfills = 2  # the first one loaded its nights too
        reader.assert_consistent()
        assert "done" in backfill.stdout and [r["state"] for r in runs] == ["success"] * len(NIGHTS)
        _assert_same(url, nightly_reference, ignore=("raw.load_audit",))
        audit = query(url, "select count(*) as n from raw.load_audit where interval_start >= '2025-03-10'")
        # every load of the nightly runs and backfills
        assert audit["n"][0] == (1 + backfills) * len(contracts.ENTITIES) * len(NIGHTS)


def test_without_a_configured_warehouse_the_metadata_lives_in_the_stack_s_own_server(tmp_path):
    """No NPS_WAREHOUSE_URL: the warehouse is the embedded one and Airflow's metadata a second
    embedded PostgreSQL under the stack's home (never SQLite, never the warehouse), which `stop`
    stops; the warehouse keeps running for BI tools until `nps warehouse stop`."""
    from tests.stack_helpers import NPS, REPO, free_port

    env = {k: v for k, v in os.environ.items()
           if not k.startswith("AIRFLOW") and k not in (warehouse.URL_ENV, warehouse.CONN_ID_ENV)}
    env.update({"NPS_DATA_DIR": str(tmp_path / "data"), "NPS_STACK_PORT": str(free_port())})
    env.pop("NPS_STACK_HOME", None)

    def nps(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([NPS, *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=300)

    metadata_pid = tmp_path / "data" / "stack" / "metadata-db" / "postmaster.pid"
    try:
        started = nps("stack", "start")
        assert started.returncode == 0, started.stdout + started.stderr
        assert f"host={tmp_path / 'data' / 'stack' / 'metadata-db'}" in started.stdout  # the migrate line
        assert metadata_pid.exists() and (tmp_path / "data" / "warehouse" / "postmaster.pid").exists()
        status = nps("stack", "status")
        assert status.returncode == 0 and "metadatabase healthy, scheduler healthy" in status.stdout, status.stdout
    finally:
        stopped = nps("stack", "stop")
        nps("warehouse", "stop")
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert not metadata_pid.exists()
