"""Run dbt against the warehouse: `dbt build` as a subprocess of the project's own dbt."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

from nps import config, warehouse

log = logging.getLogger(__name__)


class DbtError(RuntimeError):
    """dbt failed; the message names the failing nodes."""


def dbt_executable() -> str:
    candidate = Path(sys.executable).with_name("dbt")
    return str(candidate) if candidate.exists() else (shutil.which("dbt") or "dbt")


def dbt_env(url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(warehouse.libpq_env(url))
    env.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    env.setdefault("DBT_PROFILES_DIR", str(config.DBT_PROJECT_DIR))
    return env


def failed_nodes(project_dir: Path) -> list[str]:
    """Failing models/tests from dbt's run_results.json, with their messages."""
    path = project_dir / "target" / "run_results.json"
    if not path.exists():
        return []
    results = json.loads(path.read_text())["results"]
    return [
        f"{r['unique_id']}: {r['status']}: {(r.get('message') or '').strip()[:300]}"
        for r in results
        if r["status"] in ("error", "fail", "runtime error")
    ]


def run_dbt(args: list[str], url: str, *, vars: dict | None = None,
            project_dir: Path = config.DBT_PROJECT_DIR) -> str:
    """Run `dbt <args>` and return its output; raise DbtError naming failing nodes on failure."""
    cmd = [dbt_executable(), *args, "--project-dir", str(project_dir),
           "--profiles-dir", str(project_dir)]
    if vars:
        cmd += ["--vars", json.dumps(vars)]
    log.info("running %s", " ".join(cmd))
    proc = subprocess.run(cmd, env=dbt_env(url), capture_output=True, text=True, check=False)
    output = proc.stdout + proc.stderr
    log.info("dbt output:\n%s", output[-20000:])
    if proc.returncode != 0:
        failures = failed_nodes(project_dir) or [output.strip()[-2000:]]
        raise DbtError(f"dbt {' '.join(args)} failed ({len(failures)} node(s)):\n" + "\n".join(failures))
    return output
