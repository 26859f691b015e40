"""Run dbt against the warehouse: `dbt build` as a subprocess of the project's own dbt."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from nps import config, contracts, warehouse

if TYPE_CHECKING:
    from psycopg2.extensions import connection as PgConnection

log = logging.getLogger(__name__)

#: the nightly build: models, snapshots, seeds and every data test, stopping at the first failure.
#: Unit tests (fixed inputs, they check the SQL, not the data) run in the test suite instead, as
#: dbt recommends for production runs (tests/test_dbt_project.py).
BUILD_ARGS = ["build", "--fail-fast", "--exclude-resource-type", "unit_test"]


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
    # Sessions in UTC: "+ interval '14 days'" on a timestamptz counts calendar days in the session
    # time zone, and the metric definitions count 24-hour days. JIT off: the models are small
    # analytic queries; on a table without fresh statistics the planner overestimates them and JIT
    # compiles for longer than they run (1.1 s of JIT for a 10 ms query, EXPLAIN ANALYZE of
    # int_detractors_followed_up before the analyze post-hooks). Appended to the caller's
    # PGOPTIONS (the later -c wins).
    env["PGOPTIONS"] = " ".join(filter(None, [os.environ.get("PGOPTIONS", ""), "-c timezone=UTC -c jit=off"]))
    return env


def failed_nodes(target_dir: Path) -> list[str]:
    """Failing models/tests from dbt's run_results.json, with their messages."""
    path = target_dir / "run_results.json"
    if not path.exists():
        return []
    results = json.loads(path.read_text())["results"]
    return [
        f"{r['unique_id']}: {r['status']}: {(r.get('message') or '').strip()[:300]}"
        for r in results
        if r["status"] in ("error", "fail", "runtime error")
    ]


def exit_description(returncode: int) -> str:
    """'exit code 2', or 'dbt was killed by signal SIGKILL (9)' for a process that did not exit."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = "an unknown signal"
        return f"dbt was killed by signal {name} ({-returncode})"
    return f"exit code {returncode}"


PARTIAL_PARSE_FILE = "partial_parse.msgpack"


def parse_cache_path(project_dir: Path) -> Path:
    """Where dbt's partial-parse state of a project is kept between calls (under the data dir)."""
    key = hashlib.sha256(str(Path(project_dir).resolve()).encode()).hexdigest()[:12]
    return config.data_dir() / "dbt-parse" / f"{key}-{PARTIAL_PARSE_FILE}"


def _keep_parse_state(written: Path, cache: Path) -> None:
    """Save the state a dbt call wrote (atomically: concurrent calls each leave a whole file; dbt
    checks the project's files, vars and profile against it and parses in full on any mismatch)."""
    if not written.exists():
        return
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        partial = cache.with_name(f".{cache.name}.{os.getpid()}")
        shutil.copyfile(written, partial)
        os.replace(partial, cache)
    except OSError as exc:  # a read-only data dir costs a full parse next time, nothing else
        log.warning("could not keep dbt's parse state in %s: %s", cache, exc)


def run_dbt(args: list[str], url: str, *, vars: dict | None = None,
            project_dir: Path = config.DBT_PROJECT_DIR, target_dir: Path | None = None) -> str:
    """Run `dbt <args>` and return its output; raise DbtError naming failing nodes on failure.

    Each call gets its own target and log folder (a temporary one unless `target_dir` is given),
    so concurrent builds never overwrite each other's manifest or run results. dbt's partial-parse
    state is carried from call to call (`parse_cache_path`): with the same project files, vars and
    profile, dbt re-parses only what changed instead of the whole project. A failed call keeps its
    folder and names it.
    """
    own_dir = target_dir is None
    target = Path(target_dir) if target_dir is not None else Path(tempfile.mkdtemp(prefix="nps-dbt-"))
    cache = parse_cache_path(project_dir)
    if cache.exists() and not (target / PARTIAL_PARSE_FILE).exists():
        target.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cache, target / PARTIAL_PARSE_FILE)
    cmd = [dbt_executable(), *args, "--project-dir", str(project_dir),
           "--profiles-dir", str(project_dir), "--target-path", str(target),
           "--log-path", str(target / "logs")]
    if vars:
        cmd += ["--vars", json.dumps(vars, default=str)]
    log.info("running %s", " ".join(cmd))
    proc = subprocess.run(cmd, env=dbt_env(url), capture_output=True, text=True, check=False)
    _keep_parse_state(target / PARTIAL_PARSE_FILE, cache)
    output = warehouse.redact_secrets(proc.stdout + proc.stderr, url)
    log.info("dbt output:\n%s", output[-20000:])
    if proc.returncode != 0:
        failures = failed_nodes(target) or [output.strip()[-2000:]]
        raise DbtError(f"dbt {' '.join(args)} failed: {exit_description(proc.returncode)}; {len(failures)} "
                       f"failing node(s) or output lines below; compiled SQL and logs in {target}:\n"
                       + warehouse.redact_secrets("\n".join(failures), url))
    if own_dir:
        shutil.rmtree(target, ignore_errors=True)
    return output


def build_as_of(conn: PgConnection, interval_end: datetime | None) -> datetime | None:
    """The reference time ("as of") of a build: the run's data interval end, or the "as of" of the
    marts already published (ops.published_builds) when that is later.

    Time-dependent marts (today's detractor queue, days since the last response, survey
    eligibility) then never depend on the wall clock: a rerun of an interval, a backfill of quarter
    after quarter, or the nightly runs give the same marts. Re-running an *old* interval (a backfill
    after a source fix) keeps the marts at the newest published data instead of publishing them as
    they were back then. Only published builds count: a run that loaded a window and then failed
    leaves raw rows and load-audit rows, never a new "as of". None (no interval, nothing
    published) lets dbt fall back to the UTC midnight after the latest response.
    """
    with conn.cursor() as cur:
        cur.execute("select max(as_of) from ops.published_builds")
        published = cur.fetchone()[0]
    candidates = [t.astimezone(UTC) for t in (interval_end, published) if t is not None]
    return max(candidates) if candidates else None


def build_vars(marts_schema: str) -> dict[str, str | list[str] | None]:
    """The --vars of the pipeline's `dbt build`: the marts schema and the contract's segment types
    (`nps.contracts` is their one home; the `segment_types` var in dbt_project.yml is the default of
    a bare `dbt build` and is kept equal to it by tests/test_contracts.py). The same every night,
    so dbt parses only what changed: the build's as_of is not a var but the row `dbt_build` writes
    into ops.candidate_build before dbt starts, which int_as_of_resolved reads."""
    return {"marts_schema": marts_schema, "segment_types": list(contracts.SEGMENT_TYPES)}
