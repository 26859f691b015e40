"""Theme engine benchmark: quality against human labels next to BERTopic, nightly stability, scale.

    make bench-themes                                   # quality + stability (about 20 minutes)
    make bench-themes-scale                             # 10,000 new comments over a 1,000,000 history
    .venv/bin/python bench/bench_themes.py --scale      # all three in one run (the BENCHMARKS.md table)
    .venv/bin/python bench/bench_themes.py --sets banking77 --skip-stability

1. **Quality** (``--sets``, default banking77, airline, demo, demo-small; bench/themes_data.py says
   what each set is). MiniLM embeddings are computed once per set (cached under .bench/themes/)
   and fed to both engines: ``ThemeEngine.fit_transform(texts, embeddings=E)`` with the default
   ThemeConfig, and ``BERTopic(embedding_model=<the same MiniLM>).fit_transform(texts, E)`` with
   BERTopic's defaults (UMAP 5-d, HDBSCAN min_cluster_size=10, no random_state). NMI / ARI
   (sklearn) against the human labels count the unassigned comments (our noise, BERTopic's -1
   outliers) as one extra cluster, so leaving comments out is penalised, not hidden.
2. **Stability** (``--stability demo``, the year; ``small`` for a quick check): the generator's
   responses go into a scratch warehouse and ``run_interval`` runs night by night
   (``--night-days``). For every night: the share of comments that had a theme before the night
   and still have the same theme_id after it. Then a re-fit: nlp.comment_themes is deleted and
   the whole period is themed again in one run against the kept registry: the share of theme ids
   that still hold comments, and of comments that got their old theme_id back.
3. **Scale** (``--scale``): a history of ``--scale-history`` responses (real generator comments,
   so texts repeat: the embedding cache holds their unique texts only) bulk-copied into
   raw.survey_responses / nlp.comment_themes / nlp.embeddings with real MiniLM vectors and the
   themes of a real ``run_interval`` over the demo year; cached under .bench/themes/history-*
   (rebuilt when missing). Then ``--scale-new`` new comments whose texts are not in the cache
   (generator, another seed) are themed by one ``run_interval``, and the same texts are encoded by
   a bare ``SentenceTransformer.encode`` in the same run: the ratio is the figure.

Runs on a scratch database of NPS_WAREHOUSE_URL's server (created and dropped here), else on a
throw-away embedded PostgreSQL. Writes the figures to .bench/themes/results-<date>.json.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import platform
import sys
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "plugins"), str(ROOT / "bench")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import themes_data as td  # noqa: E402

from nlp.embed import Embedder, to_bytes  # noqa: E402
from nlp.pipeline import ThemeConfig, ThemeEngine  # noqa: E402
from nlp.text import is_content_free, text_hash  # noqa: E402
from nps import warehouse  # noqa: E402

log = logging.getLogger("bench_themes")


def score(labels: list[str], pred: np.ndarray) -> dict[str, Any]:
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    pred = np.asarray(pred)
    return {
        "nmi": round(float(normalized_mutual_info_score(labels, pred)), 4),
        "ari": round(float(adjusted_rand_score(labels, pred)), 4),
        "unassigned": round(float((pred < 0).mean()), 4),
        "themes": int(len(set(pred[pred >= 0].tolist()))),
    }


# ------------------------------------------------------------------------------------------------
# 1. quality
# ------------------------------------------------------------------------------------------------


def quality(names: list[str], embedder: Embedder, bertopic: bool, grid: dict[str, list[Any]] | None) -> dict[str, Any]:
    import themes_quality

    return themes_quality.run(names, embedder, grid, bertopic)


# ------------------------------------------------------------------------------------------------
# warehouse helpers
# ------------------------------------------------------------------------------------------------


def copy_rows(conn: Any, table: str, columns: list[str], frame: pd.DataFrame) -> None:
    buf = io.StringIO()
    frame[columns].to_csv(buf, index=False, header=False)
    buf.seek(0)
    with conn.cursor() as cur:
        cur.copy_expert(f"copy {table} ({', '.join(columns)}) from stdin with (format csv)", buf)


def load_responses(conn: Any, df: pd.DataFrame) -> None:
    frame = pd.DataFrame({
        "response_id": df["response_id"], "account_id": "A",
        "responded_at": df["responded_at"].dt.strftime("%Y-%m-%d %H:%M:%S+00"),
        "score": df["score"].astype(int), "comment": df["comment"].fillna(""),
    })
    copy_rows(conn, "raw.survey_responses", list(frame.columns), frame)


def preload_embeddings(conn: Any, comments: list[str], embedder: Embedder, tag: str) -> int:
    """Real MiniLM vectors of the comments' prepared texts into nlp.embeddings (computed once,
    cached on disk), so the nightly runs measure theming, not re-encoding the benchmark."""
    texts = [ThemeEngine.prepare(c) for c in comments]
    texts = list(dict.fromkeys(t for t in texts if not is_content_free(t)))
    E, _ = td.embeddings(texts, embedder, tag)
    from psycopg2.extras import execute_values

    with conn.cursor() as cur:
        execute_values(
            cur, "insert into nlp.embeddings (text_hash, model, dim, embedding) values %s on conflict do nothing",
            [(text_hash(t), embedder.key, E.shape[1], to_bytes(v)) for t, v in zip(texts, E, strict=True)],
            page_size=2000,
        )
    conn.commit()
    return len(texts)


def assignments(conn: Any) -> dict[str, int]:
    with conn.cursor() as cur:
        cur.execute("select response_id, theme_id from nlp.comment_themes where theme_id is not null")
        return dict(cur.fetchall())


def parents(conn: Any) -> dict[str, int]:
    """response_id -> the parent theme of its sub-theme."""
    with conn.cursor() as cur:
        cur.execute("select ct.response_id, t.parent_theme_id from nlp.comment_themes ct "
                    "join nlp.themes t on t.theme_id = ct.theme_id where t.parent_theme_id is not null")
        return dict(cur.fetchall())


# ------------------------------------------------------------------------------------------------
# 2. stability
# ------------------------------------------------------------------------------------------------


def stability(preset: str, embedder: Embedder, night_days: int, config: ThemeConfig | None = None) -> dict[str, Any]:
    df = td.demo_frame(preset)
    truth = df.set_index("response_id")["theme_key"]
    start = df["responded_at"].min().normalize().to_pydatetime()
    end = df["responded_at"].max().normalize().to_pydatetime() + timedelta(days=1)
    engine = ThemeEngine(config or ThemeConfig(), embedder=embedder)
    with warehouse.scratch_database("nps_bench_themes") as url:
        conn = warehouse.connect(url)
        load_responses(conn, df)
        conn.commit()
        preload_embeddings(conn, df["comment"].fillna("").tolist(), embedder, f"{preset}-all")
        nights, kept, had, worst = 0, 0, 0, 1.0
        parent_kept, parent_had, parent_worst = 0, 0, 1.0
        seconds = []
        t = start
        while t < end:
            before, before_parent = assignments(conn), parents(conn)
            t0 = time.perf_counter()
            engine.run_interval(conn, t, t + timedelta(days=night_days), f"night-{nights}")
            conn.commit()
            seconds.append(time.perf_counter() - t0)
            after, after_parent = assignments(conn), parents(conn)
            same = sum(1 for r, tid in before.items() if after.get(r) == tid)
            kept, had = kept + same, had + len(before)
            same_parent = sum(1 for r, tid in before_parent.items() if after_parent.get(r) == tid)
            parent_kept, parent_had = parent_kept + same_parent, parent_had + len(before_parent)
            if before:
                worst = min(worst, same / len(before))
            if before_parent:
                parent_worst = min(parent_worst, same_parent / len(before_parent))
            nights += 1
            t += timedelta(days=night_days)
        final = assignments(conn)
        labelled = truth[truth != ""]
        pred = np.array([final.get(r, -1) for r in labelled.index])
        nightly = score(labelled.tolist(), pred)
        if os.environ.get("BENCH_DIAG"):
            print(pd.crosstab(labelled.to_numpy(), pred).to_string())
        with conn.cursor() as cur:
            cur.execute("select count(*) from nlp.themes where status = 'active'")
            active = cur.fetchone()[0]
            cur.execute("select count(*) from nlp.themes where status = 'merged'")
            merged = cur.fetchone()[0]
        ids_before = {tid for tid in final.values()}

        # re-fit: forget every assignment, keep the registry, theme the whole period in one run
        with conn.cursor() as cur:
            cur.execute("delete from nlp.comment_themes")
        conn.commit()
        t0 = time.perf_counter()
        # a re-fit is one batch over the whole period (run_interval would otherwise step by day)
        batch = ThemeEngine(replace(engine.config, night_days=None), embedder=embedder)
        s = batch.run_interval(conn, start, end, "refit")
        conn.commit()
        refit_s = time.perf_counter() - t0
        refit = assignments(conn)
        ids_after = set(refit.values())
        same_theme = sum(1 for r, tid in final.items() if refit.get(r) == tid)
        pred = np.array([refit.get(r, -1) for r in labelled.index])
        conn.close()
    out = {
        "preset": preset, "night_days": night_days, "nights": nights, "responses": len(df),
        "labelled_comments": len(labelled), "kept_share": round(kept / had, 5) if had else None,
        "worst_night_kept_share": round(worst, 5), "assigned_comment_nights": had,
        "parent_kept_share": round(parent_kept / parent_had, 5) if parent_had else None,
        "parent_worst_night_kept_share": round(parent_worst, 5),
        "nightly_quality": nightly, "themes_active": active, "themes_merged": merged,
        "night_seconds_median": round(float(np.median(seconds)), 2),
        "night_seconds_max": round(float(np.max(seconds)), 2),
        "refit_theme_ids_survive": round(len(ids_before & ids_after) / len(ids_before), 4) if ids_before else None,
        "refit_comments_same_theme": round(same_theme / len(final), 4) if final else None,
        "refit_new_themes": s["new_themes"], "refit_quality": score(labelled.tolist(), pred),
        "refit_seconds": round(refit_s, 1),
    }
    print(json.dumps(out), flush=True)
    return out


# ------------------------------------------------------------------------------------------------
# 3. scale
# ------------------------------------------------------------------------------------------------


NIGHT = datetime(2028, 1, 1, tzinfo=UTC)  # the night measured; the history spans the 3 years before it
HISTORY_YEARS = 3


def history_base(embedder: Embedder) -> dict[str, Any]:
    """The demo year themed by real ``run_interval`` calls (one per quarter): the registry and one
    assignment per response. Cached under .bench/themes/ (keyed by the engine's config)."""
    import pickle

    # one batch per quarter (night_days=None), as the figures in BENCHMARKS.md were measured
    base = ThemeConfig(night_days=None)
    config = {k: v for k, v in vars(base).items() if k != "extra"}
    key = text_hash(json.dumps(config, sort_keys=True, default=str) + embedder.key)[:12]
    path = td.CACHE / f"history-base-{key}.pkl"
    if path.exists():
        return pickle.loads(path.read_bytes())
    df = td.demo_frame("demo")
    engine = ThemeEngine(base, embedder=embedder)
    with warehouse.scratch_database("nps_bench_themes") as url:
        conn = warehouse.connect(url)
        load_responses(conn, df)
        conn.commit()
        preload_embeddings(conn, df["comment"].fillna("").tolist(), embedder, "demo-all")
        bounds = [datetime(2025, m, 1, tzinfo=UTC) for m in (1, 4, 7, 10)] + [datetime(2026, 1, 1, tzinfo=UTC)]
        for q, (s, e) in enumerate(zip(bounds, bounds[1:], strict=False)):
            engine.run_interval(conn, s, e, f"base-q{q + 1}")
            conn.commit()
        with conn.cursor() as cur:
            cur.execute("select * from nlp.themes")
            columns = [d.name for d in cur.description if d.name not in ("created_at", "updated_at")]
            cur.execute(f"select {', '.join(columns)} from nlp.themes")
            themes = (columns, [tuple(bytes(v) if isinstance(v, memoryview) else v for v in r) for r in cur.fetchall()])
            cur.execute("select response_id, text_hash, theme_id, confidence, method, model from nlp.comment_themes")
            ct = pd.DataFrame(cur.fetchall(), columns=[d.name for d in cur.description])
            cur.execute("select text_hash, model, dim, embedding from nlp.embeddings")
            emb = [(h, m, d, bytes(e)) for h, m, d, e in cur.fetchall()]
        conn.close()
    base = {"responses": df[["response_id", "responded_at", "score", "comment"]], "themes": themes,
            "comment_themes": ct, "embeddings": emb}
    td.CACHE.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(base))
    return base


def build_history(conn: Any, base: dict[str, Any], rows: int) -> dict[str, Any]:
    """``rows`` responses over the HISTORY_YEARS before NIGHT: copies of the themed demo year
    (texts repeat, as real comments do; their themes are those the engine gave them), bulk-copied
    with the registry and the real cached vectors of their unique texts."""
    t0 = time.perf_counter()
    responses, ct = base["responses"], base["comment_themes"].set_index("response_id")
    copies = -(-rows // len(responses))
    rng = np.random.default_rng(7)
    span = HISTORY_YEARS * 365 * 86400
    reps = []
    for k in range(copies):
        part = responses.assign(response_id=responses["response_id"] + f"-h{k:03d}")
        part["responded_at"] = pd.to_datetime(NIGHT.timestamp() - span + rng.uniform(0, span, len(part)), unit="s",
                                              utc=True)
        part["orig"] = responses["response_id"].to_numpy()
        reps.append(part)
    hist = pd.concat(reps, ignore_index=True).iloc[:rows]
    load_responses(conn, hist)
    joined = hist[["response_id", "orig"]].join(ct, on="orig", how="inner")
    joined["theme_id"] = joined["theme_id"].astype("Int64")
    joined["run_id"] = "history"
    copy_rows(conn, "nlp.comment_themes", ["response_id", "text_hash", "theme_id", "confidence", "method", "model",
                                           "run_id"], joined)
    from psycopg2.extras import execute_values

    columns, themes = base["themes"]
    with conn.cursor() as cur:
        execute_values(cur, f"insert into nlp.themes ({', '.join(columns)}) values %s", themes)
        execute_values(cur, "insert into nlp.embeddings (text_hash, model, dim, embedding) values %s",
                       base["embeddings"], page_size=2000)
    conn.commit()
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("vacuum analyze")
    conn.autocommit = False
    active = sum(1 for r in themes if r[columns.index("status")] == "active")
    return {"history_rows": len(hist), "history_comment_themes": len(joined),
            "history_unique_texts": len(base["embeddings"]), "history_themes": active,
            "history_build_seconds": round(time.perf_counter() - t0, 1)}


def new_comments(known: set[str], n: int) -> list[str]:
    """``n`` comments the cache has never seen: the generator's comments under other seeds."""
    from dataclasses import replace

    from nps.demo.generator import PRESETS, _Sim

    out: dict[str, str] = {}
    seed = 100
    while len(out) < n:
        sim = _Sim(replace(PRESETS["demo"], seed=seed))
        for step in (sim.accounts, sim.contacts, sim.usage, sim.surveys, sim.scores, sim.comments):
            step()
        for comment in sim.resp["comment"].fillna(""):
            t = ThemeEngine.prepare(comment)
            h = text_hash(t)
            if not is_content_free(t) and h not in known and h not in out:
                out[h] = comment
                if len(out) == n:
                    break
        seed += 1
    return list(out.values())


def scale(embedder: Embedder, history: int, new: int) -> dict[str, Any]:
    """One night's theme step for ``new`` unseen comments over a ``history``-response warehouse,
    next to a bare ``SentenceTransformer.encode`` of the same texts (before and after it)."""
    base = history_base(embedder)
    comments = new_comments({h for h, *_ in base["embeddings"]}, new)
    texts = [ThemeEngine.prepare(c) for c in comments]
    model = embedder._load()

    def bare() -> float:
        t0 = time.perf_counter()
        model.encode(texts, batch_size=embedder.batch_size, normalize_embeddings=True, convert_to_numpy=True,
                     show_progress_bar=False)
        return time.perf_counter() - t0

    with warehouse.scratch_database("nps_bench_themes") as url:
        conn = warehouse.connect(url)
        out = build_history(conn, base, history)
        rng = np.random.default_rng(11)
        night = pd.DataFrame({"response_id": [f"N{i:05d}" for i in range(len(comments))],
                              "responded_at": pd.to_datetime(NIGHT.timestamp() + rng.uniform(0, 86400, len(comments)),
                                                             unit="s", utc=True),
                              "score": rng.integers(0, 11, len(comments)), "comment": comments})
        load_responses(conn, night)
        conn.commit()
        encode_before = bare() if not os.environ.get("BENCH_SKIP_BARE") else float("nan")
        engine = ThemeEngine(ThemeConfig(), embedder=embedder)
        t0 = time.perf_counter()
        stats = engine.run_interval(conn, NIGHT, NIGHT + timedelta(days=1), "scale-night")
        conn.commit()
        night_s = time.perf_counter() - t0
        encode_after = bare() if not os.environ.get("BENCH_SKIP_BARE") else float("nan")
        conn.close()
    encode_s = (encode_before + encode_after) / 2
    out.update({
        "new_comments": len(comments), "encode_seconds_before": round(encode_before, 2),
        "encode_seconds_after": round(encode_after, 2), "night_seconds": round(night_s, 2),
        "ratio": round(night_s / encode_s, 3), "night_stats": {k: v for k, v in stats.items()
                                                               if isinstance(v, (int, float, str, dict))},
    })
    print(json.dumps(out, default=str), flush=True)
    return out


# ------------------------------------------------------------------------------------------------


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sets", default="banking77,airline,clinc150,demo,demo-small")
    p.add_argument("--grid", default=None,
                   help="held-out grid as JSON {knob: [values]} (default: themes_quality.GRID; {} = no grid)")
    p.add_argument("--skip-bertopic", action="store_true")
    p.add_argument("--skip-quality", action="store_true")
    p.add_argument("--stability", default="demo", help="generator preset for the nightly runs (demo | small)")
    p.add_argument("--night-days", type=int, default=1)
    p.add_argument("--skip-stability", action="store_true")
    p.add_argument("--nightly", default="banking77,airline,clinc150,demo",
                   help="sets themed both night by night and by fit_transform ('' = skip)")
    p.add_argument("--nightly-days", type=int, default=90)
    p.add_argument("--nightly-limit", type=int, default=6000, help="comments per set for the nightly comparison")
    p.add_argument("--scale", action="store_true")
    p.add_argument("--scale-history", type=int, default=1_000_000)
    p.add_argument("--scale-new", type=int, default=10_000)
    p.add_argument("--config", default="{}", help="ThemeConfig overrides as JSON (exploration)")
    a = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    embedder = Embedder()
    embedder.encode(["warm up"])
    results: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "python": platform.python_version(), "config": {k: v for k, v in vars(ThemeConfig()).items() if k != "extra"},
    }
    if not a.skip_quality:
        grid = None if a.grid is None else json.loads(a.grid)
        results["quality"] = quality(td.available([s for s in a.sets.split(",") if s]), embedder,
                                     not a.skip_bertopic, grid)
    if a.nightly:
        import themes_nightly

        results["nightly"] = [themes_nightly.compare(name, embedder, a.nightly_days, a.nightly_limit)
                              for name in td.available([n for n in a.nightly.split(",") if n])]
    if not a.skip_stability:
        results["stability"] = stability(a.stability, embedder, a.night_days, ThemeConfig(**json.loads(a.config)))
    if a.scale:
        results["scale"] = scale(embedder, a.scale_history, a.scale_new)
    td.CACHE.mkdir(parents=True, exist_ok=True)
    path = td.CACHE / f"results-{results['date']}-{uuid.uuid4().hex[:6]}.json"
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print_tables(results)
    print(f"\nfigures: {path}")
    return 0


def print_tables(r: dict[str, Any]) -> None:
    if "quality" in r:
        import themes_quality

        themes_quality.print_tables(r["quality"])
    if "nightly" in r:
        import themes_nightly

        themes_nightly.print_table(r["nightly"])
    if "stability" in r:
        s = r["stability"]
        print(f"\nstability ({s['preset']}, {s['nights']} runs of {s['night_days']} day(s)): "
              f"{s['kept_share']:.2%} of assigned comments kept their sub-theme (worst night "
              f"{s['worst_night_kept_share']:.2%}), {s['parent_kept_share']:.2%} their parent theme (worst night "
              f"{s['parent_worst_night_kept_share']:.2%}); nightly NMI {s['nightly_quality']['nmi']:.3f}, "
              f"{s['nightly_quality']['unassigned']:.1%} unassigned, {s['themes_active']} active themes; "
              f"re-fit: {s['refit_theme_ids_survive']:.1%} of theme ids survive, "
              f"{s['refit_comments_same_theme']:.1%} of comments get the same theme, "
              f"{s['refit_new_themes']} new themes")
    if "scale" in r:
        print(f"\nscale: {json.dumps(r['scale'])}")


if __name__ == "__main__":
    raise SystemExit(main())
