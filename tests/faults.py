"""Helpers for tests/test_faults.py: stages run in a separate Python process (so a real SIGKILL
can hit them), cloned databases, pg_stat_activity probes and a reader that keeps querying the
warehouse in its own connection while a fault happens.

`python -m tests.faults '<json list of steps>'` runs pipeline stages in order, e.g.
`[["extract_all", "2025-01-01", "2025-02-01", "run-jan"], ["themes", ...], ["dbt_build", run_id,
start, end], ["validate", run_id, start, end], ["publish", run_id, end]]`, with the warehouse and
sources taken from the environment (NPS_WAREHOUSE_URL, NPS_SOURCES_DIR / NPS_SOURCES_CONFIG).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nps import warehouse

REPO = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------- stages in another process


def run_steps(steps: list[list[str]]) -> None:
    from nps import contracts
    from nps_airflow import stages

    when = stages.parse_when
    for name, *args in steps:
        if name == "prepare":
            stages.prepare_warehouse()
        elif name == "extract_all":
            start, end, run_id = args
            for entity in contracts.ENTITIES:
                stages.extract(entity, when(start), when(end), run_id)
        elif name == "extract":
            entity, start, end, run_id = args
            stages.extract(entity, when(start), when(end), run_id)
        elif name == "themes":
            start, end, run_id = args
            stages.build_themes(when(start), when(end), run_id)
        elif name == "dbt_build":
            run_id, start, end = args
            stages.dbt_build(run_id, when(end), when(start))
        elif name == "validate":
            run_id, start, end = args
            stages.validate(run_id, when(start), when(end))
        elif name == "publish":
            run_id, end = args
            stages.publish(run_id, when(end))
        else:
            raise ValueError(f"unknown step {name!r}")


def stage_env(url: str, sources_dir: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({warehouse.URL_ENV: url, "NPS_SOURCES_DIR": str(sources_dir), "PYTHONUNBUFFERED": "1"})
    env.pop(warehouse.CONN_ID_ENV, None)
    env.update(extra)
    return env


def start_steps(env: dict[str, str], steps: list[list[str]], log_path: Path) -> subprocess.Popen:
    """The steps in a new Python process (its output in `log_path`)."""
    log = log_path.open("ab")
    try:
        return subprocess.Popen([sys.executable, "-m", "tests.faults", json.dumps(steps)], env=env, cwd=REPO,
                                stdout=log, stderr=subprocess.STDOUT)
    finally:
        log.close()


def run_steps_in_process(env: dict[str, str], steps: list[list[str]], log_path: Path,
                         timeout: float = 600) -> None:
    proc = start_steps(env, steps, log_path)
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise
    if rc != 0:
        raise AssertionError(f"steps {steps} exited {rc}:\n{tail(log_path)}")


def tail(path: Path, chars: int = 6000) -> str:
    text = path.read_text(errors="replace") if path.exists() else ""
    return text[-chars:]


# ---------------------------------------------------------------- databases


def _admin(server_url: str):
    conn = warehouse.connect(server_url)
    conn.autocommit = True
    return conn


def clone_database(server_url: str, template_url: str, prefix: str, created: list[str]) -> str:
    """A new database copied from `template_url`'s (CREATE DATABASE ... TEMPLATE: a file-level copy;
    the template must have no open session, so a session that is still closing is waited for)."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    template = warehouse.parse_url(template_url).dbname
    admin = _admin(server_url)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with admin.cursor() as cur:
                    cur.execute(f'create database "{name}" template "{template}"')
                break
            except Exception as exc:  # "source database ... is being accessed by other users"
                if "being accessed" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    finally:
        admin.close()
    created.append(name)
    return warehouse.database_url(server_url, name)


def drop_databases(server_url: str, names: list[str]) -> None:
    admin = _admin(server_url)
    try:
        with admin.cursor() as cur:
            for name in names:
                cur.execute(f'drop database if exists "{name}" with (force)')
    finally:
        admin.close()


def dbname(url: str) -> str:
    return warehouse.parse_url(url).dbname


class Monitor:
    """One autocommit connection that polls pg_stat_activity (cheap enough for a 5 ms loop)."""

    def __init__(self, url: str) -> None:
        self.conn = warehouse.connect(url, application_name="nps fault monitor")
        self.conn.autocommit = True

    def rows(self, sql: str, params: tuple = ()) -> list[dict[str, Any]]:
        with self.conn.cursor() as cur:
            cur.execute(sql, params)
            names = [d.name for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def backends(self, where: str, params: tuple = ()) -> list[dict[str, Any]]:
        """Other sessions of this database (not the reader's) matching `where`."""
        return self.rows(
            "select pid, application_name, state, wait_event_type, wait_event, query, query_start, "
            "xact_start, now() as seen_at from pg_stat_activity where datname = current_database() "
            f"and pid <> pg_backend_pid() and application_name <> 'nps fault reader' and ({where})",
            params,
        )

    def wait_gone(self, pids: list[int], timeout: float = 120) -> float:
        """Wait until none of these server backends is left; returns the seconds it took."""
        t0 = time.monotonic()
        while self.backends("pid = any(%s)", (list(pids),)):
            if time.monotonic() - t0 > timeout:
                raise AssertionError(f"backends {pids} still alive after {timeout} s")
            time.sleep(0.05)
        return time.monotonic() - t0

    def close(self) -> None:
        self.conn.close()


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.005,
             proc: subprocess.Popen | None = None, log_path: Path | None = None) -> Any:
    """Poll until `predicate()` is truthy (returns it); fail when `proc` exits first or on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the process exited ({proc.returncode}) before {what}:\n"
                                 f"{tail(log_path) if log_path else ''}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}:\n"
                                 f"{tail(log_path) if log_path else ''}")
        time.sleep(interval)


# ---------------------------------------------------------------- a reader during the fault


def table_list(url: str, schemas: tuple[str, ...]) -> list[str]:
    conn = warehouse.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("select table_schema || '.' || table_name from information_schema.tables "
                        "where table_schema = any(%s) and table_type = 'BASE TABLE' order by 1", (list(schemas),))
            return [r[0] for r in cur.fetchall()]
    finally:
        conn.close()


def state_sql(tables: list[str]) -> str:
    """One statement: per table, count(*) and an order-independent checksum of the whole rows."""
    parts = []
    for name in tables:
        schema, table = name.split(".", 1)
        parts.append(f"select '{name}'::text, count(*), coalesce(sum(hashtextextended(t::text, 0)), 0)::text "
                     f'from "{schema}"."{table}" t')
    return " union all ".join(parts)


def read_state(conn, tables: list[str]) -> tuple:
    """The tables' (name, rows, checksum) in ONE read-only repeatable-read transaction (one snapshot)."""
    with conn.cursor() as cur:
        cur.execute(state_sql(tables))
        rows = cur.fetchall()
    conn.commit()
    return tuple(rows)


def state_of(url: str, tables: list[str]) -> tuple:
    conn = warehouse.connect(url, application_name="nps fault reader")
    conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
    try:
        return read_state(conn, tables)
    finally:
        conn.close()


@dataclass
class Reader:
    """A thread that reads `tables` every `interval` seconds in its own connection, each read one
    read-only repeatable-read transaction; records every observation and every error."""

    url: str
    tables: list[str]
    interval: float = 0.05
    observations: list[tuple[float, float, tuple]] = field(default_factory=list)
    errors: list[tuple[float, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="marts-reader", daemon=True)
        self._conn = warehouse.connect(self.url, application_name="nps fault reader")
        self._conn.set_session(isolation_level="REPEATABLE READ", readonly=True)

    def start(self) -> Reader:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            t0 = time.monotonic()
            try:
                state = read_state(self._conn, self.tables)
                self.observations.append((t0, time.monotonic(), state))
            except Exception as exc:  # recorded: the test asserts there is none
                self.errors.append((t0, repr(exc)))
                try:
                    self._conn.rollback()
                except Exception:
                    self._conn = warehouse.connect(self.url, application_name="nps fault reader")
                    self._conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
            self._stop.wait(self.interval)

    def stop(self) -> Reader:
        self._stop.set()
        self._thread.join(timeout=120)
        self._conn.close()
        return self

    def between(self, t_from: float, t_to: float) -> list[tuple]:
        """Observations whose read started at or after t_from and ended at or before t_to."""
        return [state for start, end, state in self.observations if start >= t_from and end <= t_to]

    def max_latency(self) -> float:
        return max((end - start for start, end, _ in self.observations), default=0.0)


def describe_state(state: tuple) -> str:
    return ", ".join(f"{name}={rows}" for name, rows, _ in state)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    run_steps(json.loads(sys.argv[1]))
