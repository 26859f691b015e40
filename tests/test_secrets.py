"""No password is ever written: not to the CLI's output, an Airflow task log, a dbt log or target
file, a GX result or Data Docs page, or an error message. A canary password (the test servers use
trust auth, so it is accepted and ignored) goes in through an Airflow connection, the way a
deployment passes it; every file the run writes is then searched for it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest

from nps import config, warehouse
from nps_airflow.dbt import DbtError, run_dbt

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parent.parent
CANARY = "Canary-pw/7f3a:91@x"  # characters that need quoting in a URL
CANARY_FORMS = [CANARY, quote(CANARY, safe=""), quote(CANARY)]


def _with_password(url: str, password: str) -> str:
    p = warehouse.parse_url(url)
    auth = f"{quote(p.user, safe='')}:{quote(password, safe='')}"
    if p.is_socket:
        return f"postgresql://{auth}@/{p.dbname}?host={p.host}&port={p.port}"
    return f"postgresql://{auth}@{p.host}:{p.port}/{p.dbname}"


def _leaks(text: str) -> list[str]:
    return [form for form in CANARY_FORMS if form in text]


def _files_with_canary(root: Path, since: float = 0.0) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if not path.is_file() or path.stat().st_mtime < since:
            continue
        data = path.read_bytes()
        if any(form.encode() in data for form in CANARY_FORMS):
            found.append(str(path))
    return found


def test_the_password_of_a_connection_reaches_no_output_log_or_result(tmp_path, make_database, small_sources):
    started = time.time()
    p = warehouse.parse_url(make_database("nps_secrets"))
    connection = {"conn_type": "postgres", "host": p.host, "port": p.port, "login": p.user,
                  "password": CANARY, "schema": p.dbname}
    data_dir, airflow_home = tmp_path / "data", tmp_path / "airflow"
    env = {k: v for k, v in os.environ.items() if k not in (warehouse.URL_ENV, "AIRFLOW_HOME", "NPS_DATA_DIR")}
    env.update({"AIRFLOW_CONN_NPS_SECRETS_TEST": json.dumps(connection),
                warehouse.CONN_ID_ENV: "nps_secrets_test", "NPS_DATA_DIR": str(data_dir),
                "AIRFLOW_HOME": str(airflow_home), "NPS_SOURCES_DIR": str(small_sources[0]),
                # the most verbose logs are the likeliest to print a connection
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "DEBUG"})
    nps = [sys.executable, "-m", "nps.cli"]

    run = subprocess.run([*nps, "run", "--start", "2025-01-01", "--end", "2025-01-04", "--by", "whole"],
                         env=env, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    outputs = {"nps run": run.stdout + run.stderr}
    check = ["sources", "check", "--start", "2025-01-01", "--end", "2025-01-02"]
    for command in (["summary"], ["warehouse", "url"], check):
        done = subprocess.run([*nps, *command], env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        outputs["nps " + " ".join(command)] = done.stdout + done.stderr
    assert {name: _leaks(text) for name, text in outputs.items() if _leaks(text)} == {}

    # dag.test() writes the task logs to the console: the DEBUG logs of every task were searched
    assert all(f"task_id={task}" in outputs["nps run"] or task in outputs["nps run"]
               for task in ("extract_survey_responses", "themes", "dbt_build", "validate", "publish"))
    assert _files_with_canary(tmp_path) == []  # Airflow home, its logs and metadata DB, the data dir
    gx_uncommitted = config.gx_project_root() / "gx" / "uncommitted"  # the session's copy (tests/conftest.py)
    assert _files_with_canary(gx_uncommitted, since=started) == []  # this run's results and Data Docs


def test_a_failing_dbt_build_keeps_its_target_and_logs_free_of_the_password(tmp_path, db_url):
    url = _with_password(db_url, CANARY)
    with pytest.raises(DbtError) as caught:
        run_dbt(["build", "--select", "int_as_of_resolved"], url, vars={"as_of": "not a date"},
                target_dir=tmp_path / "target")
    assert _leaks(str(caught.value)) == []
    assert any((tmp_path / "target").rglob("*.log"))  # dbt did write its logs
    assert _files_with_canary(tmp_path) == []


def test_a_refused_connection_names_the_server_not_the_password():
    url = f"postgresql://nps:{quote(CANARY, safe='')}@127.0.0.1:1/analytics"  # nothing listens on port 1
    with pytest.raises(warehouse.WarehouseError) as caught:
        warehouse.connect(url)
    assert "127.0.0.1" in str(caught.value)
    assert _leaks(str(caught.value)) == []
