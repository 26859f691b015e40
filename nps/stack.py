"""`nps stack`: the production-shaped Airflow deployment as local processes (no Docker needed).

The same services as docker-compose.yml: Airflow 3's api-server, scheduler, dag-processor and
triggerer, with a PostgreSQL metadata database, under a project-local AIRFLOW_HOME
(`data/stack/airflow`); with `--executor celery`, the CeleryExecutor on Redis and two workers,
one serving only the `themes` queue. Settings shared with docker-compose.yml come from
`deploy/airflow.env`; the values that differ per host (database and broker URLs, folders, ports,
secrets) are computed here.

- metadata database: `nps_airflow` (NPS_STACK_METADATA_DB) on the warehouse's server when
  NPS_WAREHOUSE_URL or NPS_WAREHOUSE_CONN_ID is set (a database of its own, never the
  warehouse's), else a second embedded PostgreSQL in `data/stack/metadata-db` (stopped by `nps
  stack stop`) — never SQLite;
- the warehouse: as for every other command (NPS_WAREHOUSE_URL, NPS_WAREHOUSE_CONN_ID or the
  embedded server), exported to every process so all tasks write to the same one;
- state in `data/stack/stack.json` (pids, executor, port), process logs in `data/stack/logs/`,
  task logs in `data/stack/airflow/logs/`.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from nps import config, warehouse

SETTINGS_FILE = config.PROJECT_ROOT / "deploy" / "airflow.env"
PORT_ENV = config.STACK_PORT_ENV
BROKER_ENV = config.CELERY_BROKER_ENV
DEFAULT_BROKER = config.DEFAULT_CELERY_BROKER
#: the metadata database's name on the warehouse's server (NPS_STACK_METADATA_DB)
METADATA_DB_ENV = config.STACK_METADATA_DB_ENV
EXECUTORS = {"local": "LocalExecutor", "celery": "CeleryExecutor"}
ADMIN = "admin"
WORKER_HOSTNAME = "nps_airflow.workers.hostname"


class StackError(RuntimeError):
    """The stack cannot start, or is not running."""


def home() -> Path:
    """Everything the stack keeps: its AIRFLOW_HOME, state, secrets and process logs."""
    return config.stack_home()


def airflow_home() -> Path:
    return home() / "airflow"


def port() -> int:
    value = config.stack_port()
    if not value.isdigit():
        raise StackError(f"{PORT_ENV} must be a port number, got {value!r}")
    return int(value)


def base_url() -> str:
    return f"http://127.0.0.1:{port()}"


def read_settings(path: Path = SETTINGS_FILE) -> dict[str, str]:
    """KEY=VALUE lines of deploy/airflow.env (comments and blank lines skipped), as compose reads them."""
    settings: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise StackError(f"{path}:{number}: expected KEY=VALUE, got {line!r}")
        settings[key.strip()] = value.strip()
    return settings


# ---------------------------------------------------------------- the environment of each process


def _secret(name: str) -> str:
    """A random secret kept in the stack home (0600), the same for every process and restart."""
    path = home() / f".{name}"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


def metadata_url(server: str | None) -> str:
    """The SQLAlchemy URL of Airflow's metadata database (created if missing): a database on
    `server` (the configured warehouse's), else a second embedded server of the stack's own, so
    that the embedded warehouse holds only warehouse data."""
    name = config.stack_metadata_db()
    if server:
        url = warehouse.database_url(server, name)
        admin = warehouse.connect(server)
        admin.autocommit = True
        try:
            with admin.cursor() as cur:
                cur.execute("select 1 from pg_database where datname = %s", (name,))
                if cur.fetchone() is None:
                    cur.execute(f'create database "{name}"')
        finally:
            admin.close()
    else:
        url = warehouse.start_embedded(home() / "metadata-db")
    # psycopg2's driver name, in database_url's normal form (user, socket or host, port)
    return warehouse.with_driver(warehouse.database_url(url, warehouse.parse_url(url).dbname))


def broker_url() -> str:
    url = config.celery_broker_url()
    parsed = urlparse(url)
    if parsed.scheme not in ("redis", "rediss"):
        raise StackError(f"{BROKER_ENV} must be a redis:// URL, got {warehouse.redact(url)}")
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 6379), timeout=3) as sock:
            sock.sendall(b"PING\r\n")
            reply = sock.recv(64)
    except OSError as exc:
        raise StackError(
            f"Redis is not reachable at {warehouse.redact(url)} ({exc}): the CeleryExecutor needs it as its "
            f"broker. Start Redis, or set {BROKER_ENV}, or use --executor local."
        ) from None
    if not reply.startswith((b"+PONG", b"-NOAUTH")):
        raise StackError(f"{warehouse.redact(url)} did not answer like Redis: {reply[:40]!r}")
    return url


def stack_env(executor: str, *, warehouse_url: str, metadata: str, broker: str | None = None) -> dict[str, str]:
    """The environment every stack process gets: deploy/airflow.env, then this host's values;
    variables already set in the environment win over the file (as with compose's env_file)."""
    env = {**read_settings(), **os.environ}
    env.update({
        "AIRFLOW_HOME": str(airflow_home()),
        "AIRFLOW__CORE__EXECUTOR": EXECUTORS[executor],
        "AIRFLOW__CORE__DAGS_FOLDER": str(config.DAGS_DIR),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(config.PLUGINS_DIR),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base_url()}/execution/",
        "AIRFLOW__API__BASE_URL": base_url(),
        "AIRFLOW__API_AUTH__JWT_SECRET": _secret("jwt_secret"),
        "AIRFLOW__CORE__FERNET_KEY": env.get("AIRFLOW__CORE__FERNET_KEY") or _fernet_key(),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords_file()),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(port() + 713),  # 8793 beside 8080
        warehouse.URL_ENV: warehouse_url,
        "NPS_DATA_DIR": str(config.data_dir()),
    })
    env.pop(warehouse.CONN_ID_ENV, None)  # resolved once, here: every task sees the same URL
    if broker:
        env["AIRFLOW__CELERY__BROKER_URL"] = broker
        env["AIRFLOW__CELERY__RESULT_BACKEND"] = "db+" + metadata
    return env


def _fernet_key() -> str:
    path = home() / ".fernet_key"
    if not path.exists():
        from cryptography.fernet import Fernet

        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(Fernet.generate_key().decode())
        path.chmod(0o600)
    return path.read_text().strip()


def passwords_file() -> Path:
    """Airflow's simple auth manager reads the users' passwords here; generated once per stack."""
    return home() / "passwords.json"


def admin_password() -> str:
    path = passwords_file()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({ADMIN: secrets.token_urlsafe(16)}))
        path.chmod(0o600)
    return json.loads(path.read_text())[ADMIN]


# ---------------------------------------------------------------- processes


@dataclass(frozen=True)
class Service:
    name: str
    args: list[str]
    env: dict[str, str]


def services(executor: str, workers_env: dict[str, str]) -> list[Service]:
    """The processes of the stack, in start order."""
    airflow = str(Path(sys.executable).with_name("airflow"))
    out = [
        Service("api-server", [airflow, "api-server", "--host", "127.0.0.1", "--port", str(port()),
                               "--workers", "1"], {}),
        Service("scheduler", [airflow, "scheduler"], {}),
        Service("dag-processor", [airflow, "dag-processor"], {}),
        Service("triggerer", [airflow, "triggerer", "--skip-serve-logs"], {}),
    ]
    if executor == "celery":
        themes_queue = workers_env.get("NPS_THEMES_QUEUE", "themes")
        # each worker has its own hostname in the task instances it runs (both are on this host)
        out += [
            Service("worker", [airflow, "celery", "worker", "--queues", "default", "--celery-hostname",
                               "default@%h", "--skip-serve-logs"],
                    {"NPS_WORKER_NAME": "default", "AIRFLOW__CORE__HOSTNAME_CALLABLE": WORKER_HOSTNAME}),
            Service("worker-themes", [airflow, "celery", "worker", "--queues", themes_queue, "--concurrency",
                                      "1", "--celery-hostname", "themes@%h", "--skip-serve-logs"],
                    {"NPS_WORKER_NAME": "themes", "AIRFLOW__CORE__HOSTNAME_CALLABLE": WORKER_HOSTNAME}),
        ]
    return out


def state_file() -> Path:
    return home() / "stack.json"


def read_state() -> dict[str, Any] | None:
    path = state_file()
    return json.loads(path.read_text()) if path.exists() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped) is not alive
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return True


def running() -> dict[str, bool]:
    """Service name -> whether its process is alive (empty when the stack was never started)."""
    state = read_state() or {}
    return {name: _alive(pid) for name, pid in state.get("pids", {}).items()}


def health(timeout: float = 3.0) -> dict[str, Any] | None:
    """The api-server's /api/v2/monitor/health, or None when it does not answer."""
    try:
        with urllib.request.urlopen(f"{base_url()}/api/v2/monitor/health", timeout=timeout) as resp:
            return json.loads(resp.read())
    except (OSError, ValueError):
        return None


def _healthy(report: dict[str, Any] | None, names: tuple[str, ...]) -> bool:
    if not report:
        return False
    return all((report.get(n) or {}).get("status") == "healthy" for n in names)


def _migrate(env: dict[str, str], logs: Path) -> None:
    airflow = str(Path(sys.executable).with_name("airflow"))
    with open(logs / "db-migrate.log", "w") as out:
        proc = subprocess.run([airflow, "db", "migrate"], env=env, stdout=out, stderr=subprocess.STDOUT,
                              check=False)
    if proc.returncode != 0:
        tail = (logs / "db-migrate.log").read_text()[-2000:]
        raise StackError(f"airflow db migrate failed (exit code {proc.returncode}); see {logs / 'db-migrate.log'}:\n"
                         f"{warehouse.redact_text(tail)}")


def start(executor: str = "local", *, timeout: float = 180.0, echo=print) -> dict[str, Any]:
    """Start the stack (idempotent: services already running are left alone) and wait until the
    api-server reports the metadata database, scheduler, dag-processor and triggerer healthy."""
    if executor not in EXECUTORS:
        raise StackError(f"unknown executor {executor!r}: local or celery")
    state = read_state() or {}
    alive = {name: pid for name, pid in state.get("pids", {}).items() if _alive(pid)}
    if alive and state.get("executor") != executor:
        raise StackError(f"the stack is running with --executor {state.get('executor')}; "
                         "stop it first (nps stack stop)")
    logs = home() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    airflow_home().mkdir(parents=True, exist_ok=True)
    broker = broker_url() if executor == "celery" else None
    if not alive and _port_in_use(port()):  # before anything is created
        raise StackError(f"port {port()} is in use by another program: set {PORT_ENV} to a free port")
    configured = config.warehouse_configured()
    warehouse_url = warehouse.resolve_url()
    admin_password()
    env = stack_env(executor, warehouse_url=warehouse_url, metadata=metadata_url(warehouse_url if configured else None),
                    broker=broker)
    if not alive:
        echo("migrating Airflow's metadata database "
             f"({warehouse.redact(env['AIRFLOW__DATABASE__SQL_ALCHEMY_CONN'])}) ...")
        _migrate(env, logs)
    pids = dict(alive)
    for service in services(executor, env):
        if service.name in alive:
            continue
        log_path = logs / f"{service.name}.log"
        with open(log_path, "ab") as out:
            proc = subprocess.Popen(service.args, env={**env, **service.env}, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, cwd=str(config.PROJECT_ROOT), start_new_session=True)
        pids[service.name] = proc.pid
        echo(f"started {service.name} (pid {proc.pid}), log {log_path}")
    state = {"executor": executor, "port": port(), "pids": pids, "started_at": time.time(),
             "airflow_home": str(airflow_home()), "warehouse": warehouse.redact(warehouse_url)}
    state_file().write_text(json.dumps(state, indent=2))
    deadline = time.monotonic() + timeout
    report = None
    while time.monotonic() < deadline:
        dead = [name for name, pid in pids.items() if not _alive(pid)]
        if dead:
            raise StackError(f"{', '.join(dead)} exited during start; see {logs}/<name>.log:\n"
                             + "\n".join(_tail(logs / f"{name}.log") for name in dead))
        report = health()
        if _healthy(report, ("metadatabase", "scheduler", "dag_processor", "triggerer")):
            return {**state, "health": report}
        time.sleep(1.0)
    raise StackError(f"the stack did not become healthy within {timeout:.0f} s; last health report: {report}; "
                     f"logs in {logs}")


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return f"({path} missing)"
    return f"--- {path.name}:\n" + warehouse.redact_text("\n".join(text))


def _port_in_use(number: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", number)) == 0


def stop(*, timeout: float = 30.0, echo=print) -> list[str]:
    """SIGTERM every service's process group, SIGKILL what is left after `timeout`."""
    state = read_state()
    if not state:
        return []
    pids = {name: pid for name, pid in state.get("pids", {}).items() if _alive(pid)}
    for name, pid in pids.items():
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        echo(f"stopping {name} (pid {pid})")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_alive(p) for p in pids.values()):
        time.sleep(0.5)
    for name, pid in pids.items():
        if _alive(pid):
            echo(f"{name} (pid {pid}) did not stop in {timeout:.0f} s: killing it")
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    state["pids"] = {}
    state_file().write_text(json.dumps(state, indent=2))
    if warehouse.stop_embedded(home() / "metadata-db"):  # the stack's own; the warehouse stays up
        echo(f"stopped the metadata database ({home() / 'metadata-db'})")
    return list(pids)


def status() -> dict[str, Any]:
    state = read_state() or {}
    return {"executor": state.get("executor"), "port": state.get("port"), "services": running(),
            "health": health(), "airflow_home": state.get("airflow_home"), "warehouse": state.get("warehouse")}


# ---------------------------------------------------------------- the REST API


class AirflowAPI:
    """A small client of the stack's REST API (/api/v2), authenticated as the stack's admin."""

    def __init__(self, url: str | None = None, *, timeout: float = 30.0) -> None:
        self.url = (url or base_url()).rstrip("/")
        self.timeout = timeout
        self._password = admin_password() if passwords_file().exists() else None
        self._token: str | None = None

    def _request(self, method: str, path: str, body: dict | None = None, *, auth: bool = True) -> Any:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self.token()}"
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:500]
            raise StackError(f"Airflow API {method} {path}: HTTP {exc.code}: {detail}") from None
        except OSError as exc:
            raise StackError(f"Airflow API at {self.url} is not reachable ({exc}): is the stack running? "
                             "(nps stack status)") from None
        return json.loads(raw) if raw else None

    def token(self) -> str:
        if self._token is None:
            if self._password is None:
                raise StackError(f"no admin password in {passwords_file()}: was this stack started by nps stack start?")
            reply = self._request("POST", "/auth/token", {"username": ADMIN, "password": self._password},
                                  auth=False)
            self._token = reply["access_token"]
        return self._token

    def get(self, path: str) -> Any:
        return self._request("GET", path)

    def post(self, path: str, body: dict) -> Any:
        return self._request("POST", path, body)

    def patch(self, path: str, body: dict) -> Any:
        return self._request("PATCH", path, body)

    def put(self, path: str, body: dict | None = None) -> Any:
        return self._request("PUT", path, body)

    def wait_for_dag(self, dag_id: str, timeout: float = 120.0) -> dict[str, Any]:
        """The DAG once the dag-processor has parsed it (a fresh stack parses within seconds)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.get(f"/api/v2/dags/{dag_id}")
            except StackError as exc:
                if "HTTP 404" not in str(exc) or time.monotonic() > deadline:
                    raise
            time.sleep(2.0)
