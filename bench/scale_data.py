"""Scale data for bench/bench_scale.py: a three-year history of N responses and one night of M.

    .venv/bin/python bench/scale_data.py base      # build the cached base (bench_scale does it when missing)

**How the history is scaled.** The demo generator (``nps.demo.generator``) simulates its world in
about 6.5 s for 60,000 responses, but its comments repeat templates with varying fillers: 60,000
responses hold 24,800 unique comment texts, so generating 1,000,000 responses directly would mean
encoding and theming a few hundred thousand unique texts before every new history size. So, like
the theme benchmark's scale run, the history replicates one themed world:

* **the base** (built once, cached under ``.bench/scale/base-<key>/``): the generator's own
  simulation over the three years before the night (``GeneratorConfig(quarters=12,
  n_accounts=2000, responses_target=60000)``: the demo preset's density of 2,000 accounts and
  20,000 responses a year, with its churn, new accounts, plan and owner changes, contacts, CSM
  activities, daily usage of every live account and every survey send), written as its file drops
  and loaded by the real loader (``load_entity``: validation, quarantine, PII redaction), then
  themed by real ``ThemeEngine.run_interval`` calls, one batch per quarter (``night_days=None``,
  as bench_themes' history), which encode its unique texts with the real MiniLM model and write
  nlp.embeddings / nlp.themes / nlp.comment_themes / nlp.comment_sentiment. Every table is dumped
  (gzipped CSV) with the generator's files of the night's own day (its CRM, usage, activity and
  send drops).
* **the history** of N responses: ``ceil(N / base responses)`` copies of the base's accounts
  with new ids (every id gets the suffix ``-<copy>``: accounts, contacts, responses, activities,
  sends), the last copy cut to the accounts (in a fixed hashed order, with all their contacts,
  usage, activities and sends) that bring the responses to about N. So accounts, contacts, CRM
  activities, daily usage and survey sends all grow in the base's proportion to the responses
  (per 1,000,000 responses about 33,000 accounts and 33 million usage rows), the comments are the
  generator's (they repeat across copies, as bench_themes' history does; their themes and
  sentiment are those the engine gave the base, and only the base's unique texts are in
  nlp.embeddings). The base is COPYed into an unlogged staging schema and each copy is one
  ``insert ... select`` per table into the real raw / nlp tables (keys, indexes and all); then
  one raw.load_audit row per entity and day (as the nightly loads would have written), and
  ``vacuum analyze``. Each row's ``_loaded_at`` / ``assigned_at`` / ``scored_at`` is the night
  after its day (01:00 / 02:00 UTC), its ``_run_id`` that night's, so dbt's incremental high water
  marks sit where three years of nightly runs would have left them.
* **the night** of M responses (``write_night``): M comments the embedding cache has never seen
  (the generator's comments under other seeds, each with the score the generator gave it, as
  bench_themes' ``new_comments``), given to respondents drawn from the history's last 90 days of
  responses of accounts not churned (their account, contact, survey, trigger, channel and
  language; the response's time of day and send-to-answer delay), a send for each; plus the base's
  accounts, contacts, activities, usage and sends of that day, replicated like the history. All
  written as the day's file drops (``drop_writers``: ``<entity>/<entity>_<date>.csv``).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import math
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
for _p in (str(ROOT), str(ROOT / "plugins"), str(ROOT / "bench")):
    if _p not in sys.path:
        sys.path.insert(0, _p)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from nps import contracts, warehouse  # noqa: E402
from nps.contracts import SPECS  # noqa: E402
from nps.demo.generator import GeneratorConfig  # noqa: E402
from nps.demo.world import add_months  # noqa: E402

log = logging.getLogger("scale_data")

CACHE = ROOT / ".bench" / "scale"
#: the night measured: the history is the three years before it. In the past (the loader
#: quarantines rows dated after now), and fixed, so every run measures the same data.
NIGHT = datetime(2026, 11, 4, tzinfo=UTC)
HISTORY_MONTHS = 36
#: the generator's world: it ends after the night's day, so the night has the base's own CRM,
#: usage, activities and sends of that day
BASE_CONFIG = GeneratorConfig(seed=7, start=add_months(NIGHT.date() + timedelta(days=1), -HISTORY_MONTHS),
                              quarters=HISTORY_MONTHS // 3, n_accounts=2000, responses_target=60000)
#: bump when the base's content changes
BASE_VERSION = 1
ID_COLUMNS = ("account_id", "contact_id", "response_id", "activity_id", "send_id")
RAW_ENTITIES = tuple(contracts.ENTITIES)
NLP_TABLES = ("embeddings", "themes", "comment_themes", "comment_sentiment")
#: respondents of the night are drawn from the history's responses of this many days before it
NIGHT_POOL_DAYS = 90


# ------------------------------------------------------------------------------------------------
# the base: the generator's three years, loaded, themed and dumped once
# ------------------------------------------------------------------------------------------------


def base_key() -> str:
    """The base's cache key: the generator's config, the night, the model and BASE_VERSION. The
    theme engine's config is recorded in base.json, not keyed (bump BASE_VERSION, or delete
    .bench/scale/, to re-theme the base after an engine change)."""
    from nlp.embed import model_key

    blob = json.dumps({"config": asdict(BASE_CONFIG), "night": NIGHT.isoformat(), "version": BASE_VERSION,
                       "model": model_key(os.environ.get("NPS_THEME_MODEL") or None)}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def base_dir() -> Path:
    return CACHE / f"base-{base_key()}"


def base_ready(path: Path | None = None) -> bool:
    return ((path or base_dir()) / "base.json").exists()


def build_base(server_url: str) -> Path:
    """Generate, load, theme and dump the base (see the module docstring); returns its folder."""
    from nlp import ThemeConfig, ThemeEngine
    from nps.demo.generator import generate
    from nps_airflow.load import QuarantineThresholdExceeded, load_entity

    out = base_dir()
    if base_ready(out):
        return out
    shutil.rmtree(out, ignore_errors=True)
    (out / "dump").mkdir(parents=True)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    sources = out / "sources"
    manifest = generate(sources, BASE_CONFIG, progress=True)
    timings["generate_seconds"] = round(time.perf_counter() - t0, 1)
    start = datetime.combine(BASE_CONFIG.start, datetime.min.time(), tzinfo=UTC)
    loads: dict[str, Any] = {}
    with warehouse.scratch_database("nps_bench_scale_base", server_url) as url:
        conn = warehouse.connect(url)
        t0 = time.perf_counter()
        for entity in RAW_ENTITIES:
            try:
                result = load_entity(conn, entity, start, NIGHT, "base", sources_dir=sources)
                loads[entity] = {k: v for k, v in result.as_dict().items()
                                 if k in ("rows_read", "rows_loaded", "rows_quarantined", "source_files")}
            except QuarantineThresholdExceeded as exc:  # the good rows are loaded and committed
                log.warning("base load of %s: %s", entity, exc)
                loads[entity] = {"quarantine_threshold": str(exc)[:300]}
            print(f"base: loaded {entity}: {loads[entity]}", flush=True)
        timings["load_seconds"] = round(time.perf_counter() - t0, 1)
        with conn.cursor() as cur:
            cur.execute("select entity, connector, load_mode, source_location from raw.load_audit")
            audit = {e: {"connector": c, "load_mode": m, "source_location": s} for e, c, m, s in cur.fetchall()}
        t0 = time.perf_counter()
        engine = ThemeEngine(ThemeConfig(night_days=None))
        bounds = [datetime.combine(add_months(BASE_CONFIG.start, 3 * q), datetime.min.time(), tzinfo=UTC)
                  for q in range(BASE_CONFIG.quarters)] + [NIGHT]
        themed: list[dict[str, Any]] = []
        for q, (s, e) in enumerate(zip(bounds, bounds[1:], strict=False)):
            stats = engine.run_interval(conn, s, e, f"base-q{q + 1}")
            conn.commit()
            themed.append({k: stats.get(k) for k in ("new_comments", "embedded", "new_themes", "themes_active")})
            print(f"base: themed quarter {q + 1}/{len(bounds) - 1}: {themed[-1]}", flush=True)
        timings["theme_seconds"] = round(time.perf_counter() - t0, 1)
        counts = {}
        with conn.cursor() as cur:
            for table in [*(SPECS[e].table for e in RAW_ENTITIES), *(f"nlp.{t}" for t in NLP_TABLES)]:
                with gzip.open(out / "dump" / f"{table}.csv.gz", "wb", compresslevel=3) as fh:
                    cur.copy_expert(f"copy (select * from {table}) to stdout with (format csv, header)", fh)
                cur.execute(f"select count(*) from {table}")
                counts[table] = cur.fetchone()[0]
        conn.close()
    # the generator's files of the night's day: its CRM, usage, activities and sends of that day
    day = NIGHT.date().isoformat()
    (out / "night").mkdir()
    for entity in RAW_ENTITIES:
        shutil.copy(sources / entity / f"{entity}_{day}.csv", out / "night" / f"{entity}.csv")
    shutil.rmtree(sources)
    theme = {k: v for k, v in vars(ThemeConfig(night_days=None)).items() if k != "extra"}
    info = {"config": {k: str(v) for k, v in asdict(BASE_CONFIG).items()}, "night": NIGHT.isoformat(),
            "theme_config": theme,
            "generator_counts": manifest["counts"], "loads": loads, "audit": audit, "themed": themed,
            "counts": counts, "timings": timings}
    (out / "base.json").write_text(json.dumps(info, indent=2, default=str) + "\n")
    return out


def load_base_info(path: Path) -> dict[str, Any]:
    return json.loads((path / "base.json").read_text())


# ------------------------------------------------------------------------------------------------
# the history: copies of the base, bulk-loaded into a scratch warehouse
# ------------------------------------------------------------------------------------------------


@dataclass
class Copies:
    """How the base is replicated: `full` whole copies, then one copy of the `kept` accounts."""

    full: int
    kept: list[str]
    base_responses: int

    @property
    def count(self) -> int:
        return self.full + (1 if self.kept else 0)

    def suffix(self, k: int) -> str:
        return f"-{k:02d}"

    def partial(self, k: int) -> bool:
        return k >= self.full


def _columns(cur: Any, schema: str, table: str) -> list[str]:
    cur.execute("select column_name from information_schema.columns where table_schema = %s and table_name = %s"
                " order by ordinal_position", (schema, table))
    return [r[0] for r in cur.fetchall()]


def _suffixed(column: str, suffix: str, alias: str = "b") -> str:
    return (f"case when {alias}.{column} is null or {alias}.{column} = '' then {alias}.{column} "
            f"else {alias}.{column} || '{suffix}' end")


def _night_after(expr: str, hours: int) -> tuple[str, str]:
    """(the timestamp `hours` after the UTC midnight after `expr`'s day, that night's run id)."""
    day = f"date_trunc('day', ({expr})::timestamptz)"
    return (f"{day} + interval '1 day {hours} hours'",
            f"'history__' || to_char({day} + interval '1 day', 'YYYY-MM-DD')")


def build_history(conn: Any, base: Path, rows: int) -> tuple[dict[str, Any], Copies]:
    """Copies of the base into raw.* / nlp.* until about `rows` responses (module docstring)."""
    timings: dict[str, float] = {}
    t_all = time.perf_counter()
    with conn.cursor() as cur:
        cur.execute("set timezone = 'UTC'")
        t0 = time.perf_counter()
        _copy_base(cur, base)
        timings["copy_base_seconds"] = round(time.perf_counter() - t0, 1)
        copies = _choose_copies(cur, rows)
        conn.commit()
        for entity in RAW_ENTITIES:
            t0 = time.perf_counter()
            _insert_raw(cur, entity, copies)
            conn.commit()
            timings[f"insert_{entity}_seconds"] = round(time.perf_counter() - t0, 1)
        t0 = time.perf_counter()
        _insert_nlp(cur, copies)
        conn.commit()
        timings["insert_nlp_seconds"] = round(time.perf_counter() - t0, 1)
        t0 = time.perf_counter()
        info = load_base_info(base)
        for entity in RAW_ENTITIES:
            _audit_rows(cur, entity, info["audit"].get(entity, {}))
        cur.execute("drop schema bench_base cascade")
        conn.commit()
        timings["load_audit_seconds"] = round(time.perf_counter() - t0, 1)
    t0 = time.perf_counter()
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("vacuum analyze")
    conn.autocommit = False
    timings["vacuum_analyze_seconds"] = round(time.perf_counter() - t0, 1)
    out = {"copies": copies.count, "full_copies": copies.full, "partial_copy_accounts": len(copies.kept),
           "base_responses": copies.base_responses, "counts": table_counts(conn), "timings": timings,
           "seconds": round(time.perf_counter() - t_all, 1)}
    return out, copies


def _copy_base(cur: Any, base: Path) -> None:
    """The base's dumps into unlogged tables of the schema bench_base (dropped at the end)."""
    cur.execute("drop schema if exists bench_base cascade")
    cur.execute("create schema bench_base")
    for table in [*(SPECS[e].table for e in RAW_ENTITIES), *(f"nlp.{t}" for t in NLP_TABLES)]:
        name = table.split(".")[1]
        cur.execute(f"create unlogged table bench_base.{name} (like {table} including defaults)")
        with gzip.open(base / "dump" / f"{table}.csv.gz", "rb") as fh:
            cur.copy_expert(f"copy bench_base.{name} from stdin with (format csv, header)", fh)
    cur.execute("analyze")


def _choose_copies(cur: Any, rows: int) -> Copies:
    """Whole copies of the base, then the accounts of one more (in a fixed hashed order) that
    bring the responses up to about `rows`; those go to bench_base.kept."""
    cur.execute("select count(*) from bench_base.survey_responses")
    base_responses = cur.fetchone()[0]
    full, rest = divmod(rows, base_responses)
    kept: list[str] = []
    if rest:
        cur.execute(
            "with a as (select account_id from bench_base.accounts union select account_id"
            "           from bench_base.survey_responses),"
            " n as (select account_id, count(*) as n from bench_base.survey_responses group by 1)"
            " select a.account_id, coalesce(n.n, 0) from a left join n using (account_id)"
            " order by md5(a.account_id)")
        total = 0
        for account, n in cur.fetchall():
            if total + n <= rest:
                total += n
                kept.append(account)
    cur.execute("create unlogged table bench_base.kept (account_id text primary key)")
    if kept:
        from psycopg2.extras import execute_values

        execute_values(cur, "insert into bench_base.kept values %s", [(a,) for a in kept], page_size=5000)
    return Copies(full=full, kept=kept, base_responses=base_responses)


def _insert_raw(cur: Any, entity: str, copies: Copies) -> None:
    """One insert ... select per copy into the entity's raw table (new ids, nightly lineage)."""
    spec = SPECS[entity]
    schema, name = spec.table.split(".")
    columns = _columns(cur, schema, name)
    loaded_at, run_id = _night_after(f"b.{spec.interval_column}", 1)
    for k in range(copies.count):
        exprs = [_suffixed(c, copies.suffix(k)) if c in ID_COLUMNS else loaded_at if c == "_loaded_at"
                 else run_id if c == "_run_id" else f"b.{c}" for c in columns]
        where = " where b.account_id in (select account_id from bench_base.kept)" if copies.partial(k) else ""
        cur.execute(f"insert into {spec.table} ({', '.join(columns)}) select {', '.join(exprs)}"
                    f" from bench_base.{name} b{where}")


def _insert_nlp(cur: Any, copies: Copies) -> None:
    """The registry and the vectors once; assignments and sentiment per copy."""
    for name in ("themes", "embeddings"):
        columns = _columns(cur, "nlp", name)
        cur.execute(f"insert into nlp.{name} ({', '.join(columns)}) select {', '.join(columns)}"
                    f" from bench_base.{name}")
    for name, stamp in (("comment_themes", "assigned_at"), ("comment_sentiment", "scored_at")):
        columns = _columns(cur, "nlp", name)
        at, run_id = _night_after("r.responded_at", 2)
        for k in range(copies.count):
            exprs = [_suffixed(c, copies.suffix(k)) if c == "response_id" else at if c == stamp
                     else run_id if c == "run_id" else f"b.{c}" for c in columns]
            where = " where r.account_id in (select account_id from bench_base.kept)" if copies.partial(k) else ""
            cur.execute(f"insert into nlp.{name} ({', '.join(columns)}) select {', '.join(exprs)}"
                        f" from bench_base.{name} b join bench_base.survey_responses r using (response_id){where}")
    # theme sizes as if counted over the copies
    cur.execute("select (select count(*) from nlp.comment_themes)::float"
                " / greatest(1, (select count(*) from bench_base.comment_themes))")
    cur.execute("update nlp.themes set size = round(size * %s)", (cur.fetchone()[0],))


def _audit_rows(cur: Any, entity: str, template: dict[str, Any]) -> None:
    """One raw.load_audit row per day of the history, as the nightly loads would have written."""
    spec = SPECS[entity]
    day = f"date_trunc('day', {spec.interval_column}::timestamptz)"
    start = datetime.combine(BASE_CONFIG.start, datetime.min.time(), tzinfo=UTC)
    cur.execute(
        "insert into raw.load_audit (run_id, entity, interval_start, interval_end, source_files, rows_read,"
        " rows_loaded, rows_quarantined, duplicates_dropped, rows_replaced, checksum, source_location,"
        " duration_s, loaded_at, connector, load_mode, rows_lost, row_loss_accepted, rows_excluded)"
        " select 'history__' || to_char(d + interval '1 day', 'YYYY-MM-DD'), %s, d, d + interval '1 day', 1,"
        " coalesce(n, 0), coalesce(n, 0), 0, 0, 0, md5(%s || d::text), %s, 0.1, d + interval '1 day 1 hour', %s, %s,"
        " 0, false, 0"
        f" from generate_series(%s::timestamptz, %s::timestamptz - interval '1 day', interval '1 day') as d"
        f" left join (select {day} as day, count(*) as n from {spec.table} group by 1) c on c.day = d",
        (entity, entity, template.get("source_location"), template.get("connector", "file"),
         template.get("load_mode", "partition"), start, NIGHT),
    )


def table_counts(conn: Any) -> dict[str, int]:
    with conn.cursor() as cur:
        out = {}
        for table in [*(SPECS[e].table for e in RAW_ENTITIES), *(f"nlp.{t}" for t in NLP_TABLES)]:
            cur.execute(f"select count(*) from {table}")
            out[table] = cur.fetchone()[0]
    conn.commit()
    return out


# ------------------------------------------------------------------------------------------------
# the night: M new responses and the day's CRM / usage drops
# ------------------------------------------------------------------------------------------------


def unseen_comments(known: set[str], n: int, first_seed: int = 100) -> pd.DataFrame:
    """``n`` comments (with the score the generator gave each) whose prepared text is not in
    ``known`` and not repeated: the generator's comments under other seeds (bench_themes'
    ``new_comments``, keeping the score)."""
    from nlp.text import is_content_free, prepare, text_hash
    from nps.demo.generator import PRESETS, _Sim

    out: dict[str, tuple[str, int]] = {}
    seed = first_seed
    while len(out) < n:
        sim = _Sim(replace(PRESETS["demo"], seed=seed))
        for step in (sim.accounts, sim.contacts, sim.usage, sim.surveys, sim.scores, sim.comments):
            step()
        for comment, score in zip(sim.resp["comment"].fillna(""), sim.resp["score"], strict=True):
            t = prepare(comment)
            h = text_hash(t)
            if not is_content_free(t) and h not in known and h not in out:
                out[h] = (comment, int(score))
                if len(out) == n:
                    break
        seed += 1
    return pd.DataFrame(list(out.values()), columns=["comment", "score"])


def _fmt(ts: pd.Series) -> pd.Series:
    return ts.dt.strftime("%Y-%m-%dT%H:%M:%S+00:00")


def _replicate(frame: pd.DataFrame, copies: Copies) -> pd.DataFrame:
    parts = []
    kept = set(copies.kept)
    for k in range(copies.count):
        part = frame[frame["account_id"].isin(kept)] if copies.partial(k) else frame
        part = part.copy()
        for c in ID_COLUMNS:
            if c in part:
                part[c] = part[c].where(part[c] == "", part[c] + copies.suffix(k))
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def write_night(conn: Any, base: Path, copies: Copies, responses: int, sources_dir: Path,
                seed: int = 11) -> dict[str, Any]:
    """The night's file drops (module docstring) under `sources_dir`; returns counts and the
    comments (as written, before redaction)."""
    from nps_airflow.connectors.file_drops import drop_writers

    t0 = time.perf_counter()
    day = NIGHT.date().isoformat()
    with conn.cursor() as cur:
        cur.execute("select text_hash from nlp.embeddings")
        known = {r[0] for r in cur.fetchall()}
        cur.execute(
            "with latest as (select distinct on (account_id) account_id, churned_at from raw.accounts"
            "                where updated_at < %(night)s order by account_id, updated_at desc)"
            " select r.account_id, coalesce(r.contact_id, ''), r.survey_id, r.survey_type, r.trigger_event,"
            "        r.channel, r.language, extract(epoch from r.responded_at - date_trunc('day', r.responded_at)),"
            "        extract(epoch from r.responded_at - r.sent_at)"
            " from raw.survey_responses r join latest l using (account_id)"
            " where r.responded_at >= %(night)s - make_interval(days => %(days)s) and r.responded_at < %(night)s"
            "   and (l.churned_at is null or l.churned_at > %(night)s)"
            " order by r.response_id", {"night": NIGHT, "days": NIGHT_POOL_DAYS})
        pool = pd.DataFrame(cur.fetchall(), columns=["account_id", "contact_id", "survey_id", "survey_type",
                                                     "trigger_event", "channel", "language", "second_of_day",
                                                     "delay"])
    conn.commit()
    comments = unseen_comments(known, responses)
    t_comments = time.perf_counter() - t0
    rng = np.random.default_rng(seed)
    pick = pool.iloc[rng.choice(len(pool), size=responses, replace=responses > len(pool))].reset_index(drop=True)
    # a response's time of day is the drawn one; seconds past the day's end fold back into it
    second = pick["second_of_day"].astype(float).clip(0, 86399).to_numpy()
    responded = pd.Series(pd.to_datetime(NIGHT.timestamp() + second, unit="s", utc=True).floor("s"))
    delay = pd.to_timedelta(pick["delay"].astype(float).fillna(0).clip(lower=0), unit="s").dt.floor("s")
    sent = responded - delay
    night = pd.DataFrame({
        "response_id": [f"N{NIGHT:%Y%m%d}-{i:06d}" for i in range(responses)],
        "survey_id": pick["survey_id"].fillna(""), "survey_type": pick["survey_type"].fillna(""),
        "trigger_event": pick["trigger_event"].fillna(""), "account_id": pick["account_id"],
        "contact_id": pick["contact_id"], "channel": pick["channel"].fillna(""),
        "sent_at": _fmt(sent), "responded_at": _fmt(responded),
        "score": comments["score"].to_numpy(), "comment": comments["comment"].to_numpy(),
        "language": pick["language"].fillna(""),
    }).sort_values("responded_at", kind="mergesort")

    def base_day(entity: str) -> pd.DataFrame:
        return pd.read_csv(base / "night" / f"{entity}.csv", dtype=str, keep_default_na=False)

    # the generator's own answers of the day are replaced by the night's; links to them are cut
    dropped = set(base_day("survey_responses")["response_id"])
    frames: dict[str, pd.DataFrame] = {"survey_responses": night}
    for entity in RAW_ENTITIES:
        if entity == "survey_responses":
            continue
        frame = base_day(entity)
        if "response_id" in frame:
            frame.loc[frame["response_id"].isin(dropped), "response_id"] = ""
        frames[entity] = _replicate(frame, copies)
    if "survey_sends" in frames:
        sends = pd.DataFrame({
            "send_id": [f"SN{NIGHT:%Y%m%d}-{i:06d}" for i in range(len(night))],
            "survey_id": night["survey_id"].to_numpy(), "survey_type": night["survey_type"].to_numpy(),
            "trigger_event": night["trigger_event"].to_numpy(), "account_id": night["account_id"].to_numpy(),
            "contact_id": night["contact_id"].to_numpy(), "channel": night["channel"].to_numpy(),
            "sent_at": night["sent_at"].to_numpy(),
            # a web link cannot tell which answer it got (the generator's rule)
            "response_id": np.where(night["channel"].to_numpy() == "web", "", night["response_id"].to_numpy()),
        })
        frames["survey_sends"] = pd.concat([frames["survey_sends"], sends], ignore_index=True)
    writers = drop_writers(sources_dir)
    files = {}
    for entity, frame in frames.items():
        columns = list(SPECS[entity].columns)
        files[entity] = str(writers[entity].write(frame[columns], day))
    return {"rows": {e: len(f) for e, f in frames.items()}, "files": files, "pool": len(pool),
            "comments_seconds": round(t_comments, 1), "seconds": round(time.perf_counter() - t0, 1),
            "comments": night["comment"].tolist()}


def copies_for(rows: int, base_responses: int) -> int:
    return math.ceil(rows / base_responses)


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("what", choices=["base"])
    p.add_argument("--server-url", default=os.environ.get(warehouse.URL_ENV)
                   or "postgresql://postgres@127.0.0.1:5432/postgres")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    t0 = time.perf_counter()
    path = build_base(a.server_url)
    print(f"base ready in {path} ({time.perf_counter() - t0:.0f} s): {json.dumps(load_base_info(path)['counts'])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
