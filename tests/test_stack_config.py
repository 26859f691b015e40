"""`nps stack` before anything starts: clear errors for a missing broker or a busy port, nothing
left running. (The stack itself runs in tests/test_stack.py, `make test-ops`.)"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from nps import warehouse

REPO = Path(__file__).resolve().parent.parent
NPS = str(Path(sys.executable).with_name("nps"))


def _nps(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([NPS, *args], env={**os.environ, **env}, cwd=REPO, capture_output=True, text=True,
                          timeout=120)


def test_celery_without_redis_is_a_clear_error_and_starts_nothing(tmp_path, db_url):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]
    env = {"NPS_STACK_HOME": str(tmp_path / "stack"), "NPS_CELERY_BROKER_URL": f"redis://127.0.0.1:{dead}/0",
           "NPS_WAREHOUSE_URL": db_url}
    proc = _nps("stack", "start", "--executor", "celery", env=env)
    assert proc.returncode == 2
    assert f"Redis is not reachable at redis://127.0.0.1:{dead}/0" in proc.stderr
    assert "--executor local" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "stack" / "stack.json").exists()
    status = _nps("stack", "status", env=env)
    assert status.returncode == 1 and "not running" in status.stdout


def test_a_busy_port_is_a_clear_error(tmp_path, db_url):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        env = {"NPS_STACK_HOME": str(tmp_path / "stack"), "NPS_STACK_PORT": str(port), "NPS_WAREHOUSE_URL": db_url,
               "NPS_STACK_METADATA_DB": "nps_airflow_busy_port_test"}
        proc = _nps("stack", "start", env=env)
    assert proc.returncode == 2
    assert f"port {port} is in use" in proc.stderr and "NPS_STACK_PORT" in proc.stderr
    server = warehouse.connect(db_url)
    try:
        with server.cursor() as cur:  # nothing was created on the warehouse's server
            cur.execute("select 1 from pg_database where datname = 'nps_airflow_busy_port_test'")
            assert cur.fetchone() is None
    finally:
        server.close()
