"""Helpers for the tests that run the production-shaped stack (`nps stack`) and its backfills: a
warmed-up warehouse to clone, a started stack with its own home, port and metadata database, and
a reader that watches marts.* from another connection while runs publish."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from nps import warehouse

REPO = Path(__file__).resolve().parent.parent
NPS = str(Path(sys.executable).with_name("nps"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def admin(server_url: str):
    conn = warehouse.connect(server_url)
    conn.autocommit = True
    return conn


def clone_database(server_url: str, template_url: str, prefix: str) -> str:
    """A new database copied from `template_url`'s (CREATE DATABASE ... TEMPLATE: a file copy, so
    every scenario starts from the same warehouse without rerunning the pipeline)."""
    template = warehouse.parse_url(template_url).dbname
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    conn = admin(server_url)
    try:
        with conn.cursor() as cur:
            cur.execute("select pg_terminate_backend(pid) from pg_stat_activity where datname = %s", (template,))
            cur.execute(f'create database "{name}" template "{template}"')
    finally:
        conn.close()
    return warehouse.database_url(server_url, name)


def drop_database(server_url: str, url: str) -> None:
    conn = admin(server_url)
    try:
        with conn.cursor() as cur:
            cur.execute(f'drop database if exists "{warehouse.parse_url(url).dbname}" with (force)')
    finally:
        conn.close()


@dataclass
class Stack:
    """`nps stack` started by the test, as a user starts it (the CLI, in a subprocess)."""

    home: Path
    env: dict[str, str]
    executor: str = "local"

    def nps(self, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run([NPS, *args], env=self.env, cwd=REPO, capture_output=True, text=True,
                              timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"nps {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        return proc

    def start(self) -> subprocess.CompletedProcess:
        return self.nps("stack", "start", "--executor", self.executor, timeout=300)

    def api(self):
        from nps import config, stack

        with config.environment({k: self.env[k] for k in ("NPS_STACK_HOME", "NPS_STACK_PORT")}):
            return stack.AirflowAPI()

    def state(self) -> dict:
        import json

        return json.loads((self.home / "stack.json").read_text())

    def runs(self, dag_id: str) -> list[dict]:
        return self.api().get(f"/api/v2/dags/{dag_id}/dagRuns?limit=100&order_by=logical_date")["dag_runs"]

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        return self.api().get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]

    def wait_for_runs(self, dag_id: str, count: int, timeout: float, *, states=("success", "failed")) -> list[dict]:
        deadline = time.monotonic() + timeout
        while True:
            runs = self.runs(dag_id)
            done = [r for r in runs if r["state"] in states]
            if len(done) >= count:
                return runs
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(done)} of {count} {dag_id} runs ended within {timeout:.0f} s: "
                                     + ", ".join(f"{r['dag_run_id']}={r['state']}" for r in runs)
                                     + "\n" + self.logs_tail())
            time.sleep(3)

    def logs_tail(self, lines: int = 30) -> str:
        out = []
        for path in sorted((self.home / "logs").glob("*.log")):
            text = path.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {path.name}\n" + "\n".join(text))
        return "\n".join(out)


@contextmanager
def running_stack(tmp_path: Path, *, warehouse_url: str, server_url: str, sources: Path,
                  executor: str = "local", extra_env: dict[str, str] | None = None) -> Iterator[Stack]:
    """A stack with its own home, port and metadata database; stopped and dropped afterwards."""
    home = tmp_path / "stack"
    metadata_db = f"nps_airflow_{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update({
        "NPS_STACK_HOME": str(home), "NPS_STACK_PORT": str(free_port()), "NPS_STACK_METADATA_DB": metadata_db,
        "NPS_DATA_DIR": str(tmp_path / "data"), warehouse.URL_ENV: warehouse_url, "NPS_SOURCES_DIR": str(sources),
        "NPS_TASK_RETRIES": "2", "NPS_TASK_RETRY_DELAY_SECONDS": "5",
        **(extra_env or {}),
    })
    env.pop(warehouse.CONN_ID_ENV, None)
    stack = Stack(home=home, env=env, executor=executor)
    try:
        stack.start()
        yield stack
    finally:
        stack.nps("stack", "stop", check=False, timeout=120)
        drop_database(server_url, warehouse.database_url(server_url, metadata_db))


@dataclass
class MartReader:
    """Reads every marts.* table in one repeatable-read snapshot, in a loop, from its own
    connection, while runs publish; records errors and what each snapshot saw."""

    url: str
    interval: float = 0.05
    reads: list[tuple[int | None, tuple]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _snapshot(self, cur) -> tuple[int | None, tuple]:
        cur.execute("select table_name from information_schema.tables where table_schema = 'marts' "
                    "and table_type = 'BASE TABLE' order by 1")
        tables = [t for (t,) in cur.fetchall()]
        sums = []
        for table in tables:
            cur.execute(f'select count(*), md5(coalesce(string_agg(t::text, \'|\' order by t::text), \'\')) '
                        f'from marts."{table}" t')
            sums.append((table, *cur.fetchone()))
        cur.execute("select max(publish_id) from ops.published_builds")
        return cur.fetchone()[0], tuple(sums)

    def _loop(self) -> None:
        conn = warehouse.connect(self.url, application_name="nps test reader")
        conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
        try:
            while not self._stop.is_set():
                try:
                    with conn.cursor() as cur:
                        self.reads.append(self._snapshot(cur))
                    conn.rollback()
                except Exception as exc:  # recorded, not raised: the test asserts there were none
                    self.errors.append(f"{type(exc).__name__}: {exc}")
                    conn.rollback()
                self._stop.wait(self.interval)
        finally:
            conn.close()

    def __enter__(self) -> MartReader:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=60)

    def assert_consistent(self) -> None:
        """No read failed, and all reads of one publish saw the same rows: a snapshot never shows
        a mix of two publishes (publish records itself in the same transaction as the rows)."""
        assert not self.errors, self.errors[:5]
        seen: dict[int | None, tuple] = {}
        for publish_id, sums in self.reads:
            if publish_id in seen:
                assert seen[publish_id] == sums, f"two different mart sets under publish {publish_id}"
            seen[publish_id] = sums
