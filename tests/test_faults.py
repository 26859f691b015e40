"""Faults with a real SIGKILL of the process doing the work, on the small generated data set:

- a load killed in the middle of its COPY (found in pg_stat_activity),
- `dbt build` killed after it has rebuilt some of the candidate marts (found in dbt's own log),
- publish killed while its one transaction has already replaced most marts and waits for a lock
  on the last one (found in pg_stat_activity as a Lock wait on that table).

Each time a reader in another connection keeps reading (one repeatable-read snapshot per read),
and must only ever see the complete old or the complete new set; a rerun must leave every
raw / nlp / marts table exactly as a clean run that never saw a kill (tests/checksums.py).

The warehouses share one set-up: January loaded, themed, built, validated and published, then
February loaded and themed (a database from make_database); each test works on a copy of it
(CREATE DATABASE ... TEMPLATE), and the clean reference is another copy that runs February's
build, validation and publish without a kill.
"""

from __future__ import annotations

import csv
import os
import re
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from nps import warehouse
from tests.checksums import differences, table_checksums
from tests.conftest import query
from tests.faults import (
    Monitor,
    Reader,
    clone_database,
    drop_databases,
    run_steps_in_process,
    stage_env,
    start_steps,
    state_of,
    table_list,
    tail,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.ops]

JAN = ("2025-01-01", "2025-02-01")
FEB = ("2025-02-01", "2025-03-01")
#: publish replaces the candidate tables in alphabetical order: this one is the last
LATE_MART = "theme_recurrence"
MARTS_MODEL_DONE = re.compile(r"OK created sql \w+ model marts_candidate\.(\w+)")


@dataclass
class Reference:
    clean_url: str  # February built, validated and published, never a kill
    clean: dict  # its table_checksums
    validated_url: str  # a copy taken after February's validate, before its publish
    validated_copy_url: str  # another such copy


@pytest.fixture(scope="module")
def clones(pg_server_url):
    names: list[str] = []
    yield names
    drop_databases(pg_server_url, names)


@pytest.fixture(scope="module")
def template(make_database, small_sources, tmp_path_factory) -> str:
    """January published, February loaded and themed; never written after this fixture."""
    url = make_database("nps_faults_tpl")
    logs = tmp_path_factory.mktemp("faults-template")
    run_steps_in_process(stage_env(url, small_sources[0]), [
        ["prepare"],
        ["extract_all", *JAN, "run-jan"],
        ["themes", *JAN, "run-jan"],
        ["dbt_build", "run-jan", *JAN],
        ["validate", "run-jan", *JAN],
        ["publish", "run-jan", JAN[1]],
        ["extract_all", *FEB, "run-feb"],
        ["themes", *FEB, "run-feb"],
    ], logs / "template.log")
    return url


@pytest.fixture(scope="module")
def reference(template, pg_server_url, clones, small_sources, tmp_path_factory) -> Reference:
    logs = tmp_path_factory.mktemp("faults-reference")
    clean = clone_database(pg_server_url, template, "nps_faults_clean", clones)
    env = stage_env(clean, small_sources[0])
    run_steps_in_process(env, [["prepare"], ["dbt_build", "run-feb", *FEB], ["validate", "run-feb", *FEB]],
                         logs / "build.log")
    validated = clone_database(pg_server_url, clean, "nps_faults_validated", clones)
    validated_copy = clone_database(pg_server_url, clean, "nps_faults_validated", clones)
    run_steps_in_process(env, [["prepare"], ["publish", "run-feb", FEB[1]]], logs / "publish.log")
    return Reference(clean, table_checksums(clean), validated, validated_copy)


def _kill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)


def _wait_reader_after(reader: Reader, t: float) -> None:
    wait_for(lambda: reader.between(t, float("inf")), timeout=60, what="a read after the rerun", interval=0.02)


def _check_reader(reader: Reader, before: tuple, after: tuple, fault: tuple[float, float], rerun_start: float,
                  rerun_end: float, report: dict) -> None:
    """No error; every read is the complete old or the complete new set; until the rerun only the
    old one; after the rerun the new one; several reads during the fault itself."""
    assert before != after, "the rerun changed nothing: the reader could not tell old from new"
    assert not reader.errors, reader.errors[:5]
    states = [state for _, _, state in reader.observations]
    mixed = [s for s in states if s not in (before, after)]
    assert not mixed, f"{len(mixed)} of {len(states)} reads saw neither the old nor the new set: {mixed[0]}"
    assert all(s == before for s in reader.between(0.0, rerun_start)), "a read before the rerun saw new data"
    late = reader.between(rerun_end, float("inf"))
    assert late and all(s == after for s in late)
    during = reader.between(*fault)
    report.update(reads=len(states), reads_during_fault=len(during),
                  max_read_s=round(reader.max_latency(), 3))
    assert len(during) >= 5, report
    print(f"\nreader: {report}")


def _marts_checksums(url: str) -> dict:
    return table_checksums(url, ("marts",))


# ---------------------------------------------------------------- 1. a load killed mid-COPY

BIG_DAY = "2025-03-10"
BIG_ROWS = 300_000
BIG_BAD_EVERY = 5_000  # core_events = -1: quarantined (negative_core_events)


def _big_usage_source(root: Path) -> Path:
    """A usage drop of BIG_ROWS rows for one day and a sources.yml that reads usage from it."""
    folder = root / "usage_daily"
    folder.mkdir(parents=True)
    with (folder / f"usage_daily_{BIG_DAY}.csv").open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["account_id", "usage_date", "active_users", "sessions", "core_events"])
        for i in range(BIG_ROWS):
            out.writerow([f"BIG{i:07d}", BIG_DAY, i % 50, i % 300, -1 if i % BIG_BAD_EVERY == 0 else i % 1000])
    config = root / "sources.yml"
    config.write_text(
        "entities:\n"
        "  usage_daily:\n"
        "    connector: file\n"
        f"    path: {folder}/usage_daily_*.csv\n"
        "    format: csv\n"
        "    partition_date: filename\n"
    )
    return config


def test_load_killed_during_its_copy_leaves_nothing_and_a_rerun_loads_everything(
        template, pg_server_url, clones, small_sources, tmp_path):
    config = _big_usage_source(tmp_path / "big")
    faulted = clone_database(pg_server_url, template, "nps_faults_copy", clones)
    clean = clone_database(pg_server_url, template, "nps_faults_copyclean", clones)
    step = [["prepare"], ["extract", "usage_daily", BIG_DAY, "2025-03-11", "run-big"]]
    app = "nps extract_usage_daily run-big"
    env = stage_env(faulted, small_sources[0], NPS_SOURCES_CONFIG=str(config))
    tables = table_list(faulted, ("marts",)) + ["raw.usage_daily", "raw.quarantine", "raw.load_audit"]
    before_all = table_checksums(faulted)
    before = state_of(faulted, tables)
    monitor = Monitor(faulted)
    reader = Reader(faulted, tables).start()
    log = tmp_path / "extract.log"
    try:
        t_start = time.monotonic()
        proc = start_steps(env, step, log)
        # the COPY is running and has already put rows into the temporary table (PostgreSQL 14+)
        copy = wait_for(
            lambda: monitor.rows(
                "select a.pid, p.tuples_processed, now() - a.query_start as running from pg_stat_activity a "
                "join pg_stat_progress_copy p on p.pid = a.pid where a.datname = current_database() "
                "and a.application_name = %s and a.state = 'active' and a.query ilike 'copy _batch%%' "
                "and p.tuples_processed > 0", (app,)),
            timeout=300, what="the COPY of the load", proc=proc, log_path=log)[0]
        _kill(proc.pid)
        assert 0 < copy["tuples_processed"] < BIG_ROWS - BIG_ROWS // BIG_BAD_EVERY  # mid-COPY
        assert proc.wait(timeout=60) == -signal.SIGKILL
        monitor.wait_gone([copy["pid"]])
        t_fault_end = time.monotonic()
        # the COPY was running (it had not finished, nothing after it ran): the transaction died
        assert "loaded {" not in tail(log)
        assert table_checksums(faulted) == before_all
        counts = query(faulted, "select (select count(*) from raw.usage_daily where _run_id = 'run-big') as rows,"
                                " (select count(*) from raw.quarantine where run_id = 'run-big') as quarantined,"
                                " (select count(*) from raw.load_audit where run_id = 'run-big') as audits")
        assert counts.iloc[0].tolist() == [0, 0, 0]

        t_rerun = time.monotonic()
        run_steps_in_process(env, step, tmp_path / "rerun.log")
        t_rerun_end = time.monotonic()
        _wait_reader_after(reader, t_rerun_end)
    finally:
        reader.stop()
        monitor.close()
    after = state_of(faulted, tables)
    bad = BIG_ROWS // BIG_BAD_EVERY
    counts = query(faulted, "select (select count(*) from raw.usage_daily where _run_id = 'run-big') as rows,"
                            " (select count(*) from raw.quarantine where run_id = 'run-big') as quarantined,"
                            " (select rows_read from raw.load_audit where run_id = 'run-big') as read")
    assert counts.iloc[0].tolist() == [BIG_ROWS - bad, bad, BIG_ROWS]

    run_steps_in_process(stage_env(clean, small_sources[0], NPS_SOURCES_CONFIG=str(config)), step,
                         tmp_path / "clean.log")
    assert differences(table_checksums(faulted), table_checksums(clean)) == {}
    _check_reader(reader, before, after, (t_start, t_fault_end), t_rerun, t_rerun_end,
                  {"copy_rows_at_kill": f"{copy['tuples_processed']} of {BIG_ROWS - BIG_ROWS // BIG_BAD_EVERY}",
                   "copy_running_at_kill": str(copy["running"])})


# ---------------------------------------------------------------- 2. dbt killed mid-build


def _dbt_build_process(pid: int) -> psutil.Process | None:
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return None
    for child in children:
        try:
            cmdline = child.cmdline()
        except psutil.NoSuchProcess:
            continue
        if any(os.path.basename(a) == "dbt" for a in cmdline) and "build" in cmdline and "--target-path" in cmdline:
            return child
    return None


def _marts_models_done(dbt_log: Path) -> list[str]:
    text = dbt_log.read_text(errors="replace") if dbt_log.exists() else ""
    return MARTS_MODEL_DONE.findall(text)


# marts whose rows do not depend on the run's window (which sources are configured, not what they
# hold as of a date): a build killed after rebuilding only these has changed no candidate mart
WINDOW_FREE_MARTS = {"source_coverage"}


def _kill_dbt_mid_build(proc, log: Path) -> tuple[list[str], Path]:
    """SIGKILL the `dbt build` child of the stage process right after its first candidate mart that
    depends on the window was rebuilt (dbt.log: 'OK created sql table model marts_candidate.<name>')."""
    dbt = wait_for(lambda: _dbt_build_process(proc.pid), timeout=120, what="the dbt build process",
                   proc=proc, log_path=log)
    cmdline = dbt.cmdline()
    dbt_log = Path(cmdline[cmdline.index("--target-path") + 1]) / "logs" / "dbt.log"
    wait_for(lambda: set(_marts_models_done(dbt_log)) - WINDOW_FREE_MARTS, timeout=300,
             what="dbt rebuilding a candidate mart",
             proc=proc, log_path=log, interval=0.01)
    _kill(dbt.pid)
    return _marts_models_done(dbt_log), dbt_log


def test_dbt_killed_mid_build_keeps_the_published_marts_and_a_rerun_publishes_a_clean_runs_marts(
        template, reference, pg_server_url, clones, small_sources, tmp_path):
    faulted = clone_database(pg_server_url, template, "nps_faults_dbt", clones)
    env = stage_env(faulted, small_sources[0])
    marts = table_list(faulted, ("marts",))
    published_before = _marts_checksums(faulted)
    before = state_of(faulted, marts)
    monitor = Monitor(faulted)
    reader = Reader(faulted, marts).start()
    log = tmp_path / "dbt_build.log"
    try:
        t_start = time.monotonic()
        proc = start_steps(env, [["prepare"], ["dbt_build", "run-feb", *FEB]], log)
        done, dbt_log = _kill_dbt_mid_build(proc, log)
        assert proc.wait(timeout=120) != 0, tail(log)
        assert "DbtError" in tail(log)
        # dbt's own sessions end once the server sees their client gone
        wait_for(lambda: not monitor.backends("true"), timeout=120, what="dbt's sessions to end", interval=0.05)
        t_fault_end = time.monotonic()
        assert 0 < len(set(done)) < len(marts), f"not killed mid-build: {done} of {len(marts)} marts rebuilt"
        assert _marts_checksums(faulted) == published_before
        assert query(faulted, "select count(*) as n from ops.published_builds where run_id = 'run-feb'")["n"][0] == 0

        t_rerun = time.monotonic()
        run_steps_in_process(env, [["prepare"], ["dbt_build", "run-feb", *FEB], ["validate", "run-feb", *FEB],
                                   ["publish", "run-feb", FEB[1]]], tmp_path / "rerun.log")
        t_rerun_end = time.monotonic()
        _wait_reader_after(reader, t_rerun_end)
    finally:
        reader.stop()
        monitor.close()
    after = state_of(faulted, marts)
    assert differences(table_checksums(faulted), reference.clean) == {}
    _check_reader(reader, before, after, (t_start, t_fault_end), t_rerun, t_rerun_end,
                  {"marts_rebuilt_when_killed": done})


# ---------------------------------------------------------------- 3. publish killed mid-transaction


def test_publish_killed_mid_transaction_changes_nothing_and_a_rerun_publishes(
        reference, small_sources, tmp_path):
    faulted = reference.validated_url  # January published, February built and validated
    env = stage_env(faulted, small_sources[0])
    marts = table_list(faulted, ("marts",))
    assert marts[-1] == f"marts.{LATE_MART}"
    published_before = _marts_checksums(faulted)
    before = state_of(faulted, marts)
    monitor = Monitor(faulted)
    locker = warehouse.connect(faulted, application_name="nps fault locker")
    reader = Reader(faulted, marts).start()
    log = tmp_path / "publish.log"
    try:
        with locker.cursor() as cur:
            cur.execute(f"lock table marts.{LATE_MART} in share mode")  # held until the rollback below
        t_start = time.monotonic()
        proc = start_steps(env, [["prepare"], ["publish", "run-feb", FEB[1]]], log)
        waiting = wait_for(
            lambda: monitor.backends(
                "application_name = 'nps publish run-feb' and wait_event_type = 'Lock' and query ilike %s",
                (f'delete from "marts"."{LATE_MART}"%',)),
            timeout=120, what="publish waiting for the lock", proc=proc, log_path=log)[0]
        # the same transaction has already replaced the other marts (row-exclusive locks it holds)
        replaced = query(faulted, "select c.relname from pg_locks l join pg_class c on c.oid = l.relation "
                                  "join pg_namespace n on n.oid = c.relnamespace where n.nspname = 'marts' "
                                  f"and c.relkind = 'r' and l.mode = 'RowExclusiveLock' and l.granted "
                                  f"and l.pid = {waiting['pid']} order by 1")["relname"].tolist()
        assert replaced == [m.split(".", 1)[1] for m in marts[:-1]]
        t_blocked = time.monotonic()
        time.sleep(1.0)  # readers keep reading while the publish holds its replaced, uncommitted marts
        t_kill = time.monotonic()
        _kill(proc.pid)
        assert proc.wait(timeout=60) == -signal.SIGKILL
        locker.rollback()  # release: the orphaned backend gets the lock, then finds its client gone
        monitor.wait_gone([waiting["pid"]])
        t_fault_end = time.monotonic()
        assert _marts_checksums(faulted) == published_before
        assert query(faulted, "select run_id from ops.published_builds")["run_id"].tolist() == ["run-jan"]

        t_rerun = time.monotonic()
        run_steps_in_process(env, [["prepare"], ["publish", "run-feb", FEB[1]]], tmp_path / "rerun.log")
        t_rerun_end = time.monotonic()
        _wait_reader_after(reader, t_rerun_end)
    finally:
        reader.stop()
        locker.close()
        monitor.close()
    after = state_of(faulted, marts)
    assert query(faulted, "select run_id from ops.published_builds order by publish_id")["run_id"].tolist() == [
        "run-jan", "run-feb"]
    assert differences(table_checksums(faulted), reference.clean) == {}
    held = reader.between(t_blocked, t_kill)
    assert len(held) >= 5 and all(s == before for s in held)
    _check_reader(reader, before, after, (t_start, t_fault_end), t_rerun, t_rerun_end,
                  {"reads_while_publish_held_replaced_marts": len(held)})


# ---------------------------------------------------------------- a killed build is never published


class HalfBuiltCandidatePublished(AssertionError):
    """publish put a candidate into marts that no run built completely or validated."""


def test_a_publish_after_a_killed_build_never_publishes_a_half_built_candidate(
        reference, small_sources, tmp_path):
    """Tonight's run (run-feb) built and validated the candidate; before its publish ran, a backfill
    of January (another DAG, nps_backfill) took the candidate lock and its dbt build was killed after
    rebuilding some candidate marts as of its own 'as of'. run-feb's publish must not publish that."""
    faulted = reference.validated_copy_url
    env = stage_env(faulted, small_sources[0])
    published_before = _marts_checksums(faulted)
    candidate_validated = table_checksums(faulted, ("marts_candidate",))
    monitor = Monitor(faulted)
    log = tmp_path / "backfill_build.log"
    try:
        proc = start_steps(env, [["prepare"], ["dbt_build", "backfill-jan", *JAN]], log)
        done, _ = _kill_dbt_mid_build(proc, log)
        assert proc.wait(timeout=120) != 0, tail(log)
        wait_for(lambda: not monitor.backends("true"), timeout=120, what="dbt's sessions to end", interval=0.05)
    finally:
        monitor.close()
    candidate_now = table_checksums(faulted, ("marts_candidate",))
    changed = sorted(differences(candidate_validated, candidate_now))
    assert changed, f"the killed build changed no candidate mart ({done})"
    provenance = query(faulted, "select run_id, validated_at is not null as validated from ops.candidate_build")
    publish = start_steps(env, [["prepare"], ["publish", "run-feb", FEB[1]]], tmp_path / "publish.log")
    rc = publish.wait(timeout=120)
    published_now = _marts_checksums(faulted)
    assert "never finished" in tail(tmp_path / "publish.log")
    if rc == 0 or published_now != published_before:
        raise HalfBuiltCandidatePublished(
            f"publish run-feb exited {rc} after the backfill's build was killed having rebuilt {changed} "
            f"(ops.candidate_build still {provenance.to_dict('records')}); marts changed: "
            f"{sorted(differences(published_before, published_now))}; differing from the validated candidate: "
            f"{sorted(differences(_as_published(candidate_validated), published_now))}")


def _as_published(candidate: dict) -> dict:
    return {name.replace("marts_candidate.", "marts.", 1): value for name, value in candidate.items()}
