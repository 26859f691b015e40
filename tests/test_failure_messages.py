"""Failures say what happened: a killed dbt names its signal, a failing one its exit code, and a
warehouse that goes away mid-transaction (an outage, a restart) is reported as such, with the
database error first, not as the rollback error chained over it. Real processes, a real SIGKILL,
a real server restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from nps import warehouse
from nps_airflow.dbt import BUILD_ARGS, DbtError, build_vars, run_dbt
from tests.checksums import differences, table_checksums

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parent.parent


def _dbt_children() -> list[psutil.Process]:
    return [p for p in psutil.Process().children(recursive=True)
            if "dbt" in " ".join(p.cmdline()) and "build" in p.cmdline()]


def test_a_killed_dbt_names_the_signal(db_url):
    errors: list[BaseException] = []

    def build() -> None:
        try:
            run_dbt(BUILD_ARGS, db_url, vars=build_vars("marts_candidate"))
        except BaseException as exc:  # recorded for the assertion below
            errors.append(exc)

    thread = threading.Thread(target=build)
    thread.start()
    deadline = time.monotonic() + 60
    while not _dbt_children() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(3)  # into the build: parsing done, models running
    children = _dbt_children()
    assert children, "dbt never started"
    for child in children:
        os.kill(child.pid, signal.SIGKILL)
    thread.join(timeout=120)
    assert errors and isinstance(errors[0], DbtError), errors
    assert "dbt was killed by signal SIGKILL (9)" in str(errors[0])


def test_a_failing_dbt_says_its_exit_code(db_url):
    with pytest.raises(DbtError, match=r"failed: exit code 2;"):
        run_dbt(["build", "--no-such-option"], db_url)


def test_a_connection_lost_mid_transaction_reports_the_database_error(db_url):
    """The rollback of a dead connection raises too; it must not hide why the transaction died."""
    with pytest.raises(warehouse.WarehouseError) as caught:
        with warehouse.transaction(db_url, lock="message-test", holder="test lost connection") as conn:
            killer = warehouse.connect(db_url)
            killer.autocommit = True
            with killer.cursor() as cur:
                cur.execute("select pg_terminate_backend(pid) from pg_stat_activity "
                            "where application_name = 'nps test lost connection'")
            killer.close()
            with conn.cursor() as cur:
                cur.execute("select 1")
    message = str(caught.value)
    assert message.startswith("the warehouse connection was lost")
    # libpq: "terminating connection due to administrator command" or "the server terminated abnormally"
    assert "terminat" in message
    assert "already closed" not in message
    assert type(caught.value.__cause__).__name__ == "OperationalError"


def _extract_cmd(start: str, end: str, run_id: str) -> list[str]:
    return [sys.executable, "-c",
            "import sys; from nps_airflow import stages; from nps_airflow.stages import parse_when as p; "
            f"stages.prepare_warehouse(); stages.extract('usage_daily', p('{start}'), p('{end}'), '{run_id}')"]


def test_a_warehouse_restart_mid_load_ends_with_a_clear_message_and_the_rerun_recovers(tmp_path, small_sources):
    """A private server (never the shared one) restarted while a real extract runs."""
    import pgserver

    pgdata = tmp_path / "pgdata"
    server = warehouse.start_embedded(pgdata, keep_running=False)
    urls = {}
    admin = warehouse.connect(server)
    admin.autocommit = True
    with admin.cursor() as cur:
        for name in ("restarted", "clean"):
            cur.execute(f"create database {name}")
            urls[name] = warehouse.database_url(server, name)
    admin.close()
    env = {**os.environ, "NPS_SOURCES_DIR": str(small_sources[0])}
    window = ("2025-01-01", "2025-10-01")  # 273 daily loads: long enough to restart in the middle

    proc = subprocess.Popen(_extract_cmd(*window, "run-restart"), env={**env, warehouse.URL_ENV: urls["restarted"]},
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    probe = warehouse.connect(urls["restarted"])
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # wait until some days are loaded
        with probe.cursor() as cur:
            cur.execute("select to_regclass('raw.load_audit') is not null")
            if cur.fetchone()[0]:
                cur.execute("select count(*) from raw.load_audit")
                if cur.fetchone()[0] >= 10:
                    break
        probe.rollback()
        time.sleep(0.2)
    probe.close()
    user = "pgserver" if os.geteuid() == 0 else None
    pgserver.pg_ctl(["-w", "restart", "-m", "fast"], pgdata=pgdata, user=user)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode != 0, out
    last = out.strip().splitlines()[-1]
    assert last.startswith("nps.warehouse.WarehouseError: the warehouse connection was lost"), out[-3000:]

    rerun = subprocess.run(_extract_cmd(*window, "run-rerun"), env={**env, warehouse.URL_ENV: urls["restarted"]},
                           cwd=REPO, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    clean = subprocess.run(_extract_cmd(*window, "run-clean"), env={**env, warehouse.URL_ENV: urls["clean"]},
                           cwd=REPO, capture_output=True, text=True, timeout=600)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    restarted, reference = table_checksums(urls["restarted"]), table_checksums(urls["clean"])
    # the killed run's committed days were replaced by the rerun; the audit logs every load of both
    assert differences({k: v for k, v in restarted.items() if k != "raw.load_audit"},
                       {k: v for k, v in reference.items() if k != "raw.load_audit"}) == {}
    assert restarted["raw.usage_daily"][0] > 0
