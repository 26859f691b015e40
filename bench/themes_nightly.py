"""The nightly path next to ``nps themes fit`` on the same labelled comments.

``fit_transform`` themes a whole file at once; the pipeline themes night by night
(``run_interval``: a 30-day warm start on an empty registry, then one night at a time, each night
seeing only its own comments, the recent noise and some context). On real French verbatims the two
once disagreed badly (34 % noise nightly, 1 % with themes fit). Here every labelled set gets
synthetic response times spread evenly over ``days`` days, goes into a scratch warehouse (its
MiniLM vectors preloaded, so the figures are theming, not encoding), and is themed both ways; the
table says how far apart the two paths are, in unassigned share and NMI at both levels.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import themes_data as td

from nlp.config import ThemeConfig
from nlp.embed import Embedder, to_bytes
from nlp.pipeline import ThemeEngine
from nlp.text import text_hash
from nps import warehouse

START = datetime(2025, 1, 1, tzinfo=UTC)


def _score(labels: list[str], pred: np.ndarray) -> float:
    from sklearn.metrics import normalized_mutual_info_score

    return round(float(normalized_mutual_info_score(labels, pred)), 4)


def compare(name: str, embedder: Embedder, days: int, limit: int, config: ThemeConfig | None = None
            ) -> dict[str, Any]:
    ds = td.SETS[name]()
    rng = np.random.default_rng(5)
    idx = np.sort(rng.permutation(len(ds.texts))[:limit])
    texts = [ds.texts[i] for i in idx]
    E, _ = td.embeddings(ds.texts, embedder, name)
    E = E[idx]
    cfg = config or ThemeConfig(progress=False)
    levels = [(lab, "theme" if len(set(lab)) <= 25 else "subtheme") for lab in (ds.labels, ds.parents) if lab]

    t0 = time.perf_counter()
    fit = ThemeEngine(cfg, embedder=embedder).fit_transform(texts, embeddings=E)
    fit_s = time.perf_counter() - t0
    fit_pred = {"subtheme": fit["theme_id"].fillna(-1).astype(int).to_numpy(),
                "theme": fit["parent_theme_id"].fillna(-1).astype(int).to_numpy()}

    at = START + pd.to_timedelta(np.sort(rng.uniform(0, days * 86400, len(texts))), unit="s")
    frame = pd.DataFrame({"response_id": [f"B{i:06d}" for i in range(len(texts))], "responded_at": at,
                          "score": rng.integers(0, 11, len(texts)), "comment": texts})
    with warehouse.scratch_database("nps_bench_nightly") as url:
        conn = warehouse.connect(url)
        with conn.cursor() as cur:
            from psycopg2.extras import execute_values

            execute_values(cur, "insert into raw.survey_responses (response_id, account_id, responded_at, score, "
                                "comment) values %s",
                           [(r, "A", t.to_pydatetime(), int(s), c) for r, t, s, c in frame.itertuples(index=False)],
                           page_size=2000)
            uniq = {text_hash(ThemeEngine.prepare(t)): v for t, v in zip(texts, E, strict=True)}
            execute_values(cur, "insert into nlp.embeddings (text_hash, model, dim, embedding) values %s "
                                "on conflict do nothing",
                           [(h, embedder.key, E.shape[1], to_bytes(v)) for h, v in uniq.items()], page_size=2000)
        conn.commit()
        t0 = time.perf_counter()
        stats = ThemeEngine(cfg, embedder=embedder).run_interval(conn, START, START + timedelta(days=days), "bench")
        conn.commit()
        nightly_s = time.perf_counter() - t0
        with conn.cursor() as cur:
            cur.execute("select ct.response_id, ct.theme_id, t.parent_theme_id, ct.method from nlp.comment_themes ct "
                        "left join nlp.themes t on t.theme_id = ct.theme_id")
            got = {r: (s, p, m) for r, s, p, m in cur.fetchall()}
        conn.close()
    ids = frame["response_id"].tolist()
    nightly_pred = {"subtheme": np.array([got.get(r, (None,))[0] or -1 for r in ids]),
                    "theme": np.array([(got.get(r, (None, None))[1] or -1) for r in ids])}
    content = np.array([got.get(r, (None, None, "empty"))[2] not in ("empty", "no_feedback") for r in ids])
    out: dict[str, Any] = {
        "set": name, "comments": len(texts), "days": days, "nights": stats.get("nights"),
        "fit": {"unassigned": round(float((fit_pred["subtheme"][content] < 0).mean()), 4),
                "subthemes": int(len(set(fit_pred["subtheme"][fit_pred["subtheme"] >= 0]))),
                "seconds": round(fit_s, 1)},
        "nightly": {"unassigned": round(float((nightly_pred["subtheme"][content] < 0).mean()), 4),
                    "subthemes": int(len(set(nightly_pred["subtheme"][nightly_pred["subtheme"] >= 0]))),
                    "seconds": round(nightly_s, 1)},
        "levels": [],
    }
    for labels, level in levels:
        lab = [labels[i] for i in idx]
        out["levels"].append({"labels": len(set(lab)), "level": level, "fit_nmi": _score(lab, fit_pred[level]),
                              "nightly_nmi": _score(lab, nightly_pred[level])})
    print(json.dumps(out), flush=True)
    return out


def print_table(rows: list[dict[str, Any]]) -> None:
    print("\n| set | comments over days | label level | NMI themes fit | NMI nightly | unassigned themes fit | "
          "unassigned nightly | sub-themes fit / nightly | seconds fit / nightly |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        for lv in r["levels"]:
            print(f"| {r['set']} | {r['comments']:,} over {r['days']} | {lv['labels']} ({lv['level']}s) | "
                  f"{lv['fit_nmi']:.3f} | {lv['nightly_nmi']:.3f} | {r['fit']['unassigned']:.1%} | "
                  f"{r['nightly']['unassigned']:.1%} | {r['fit']['subthemes']} / {r['nightly']['subthemes']} | "
                  f"{r['fit']['seconds']} / {r['nightly']['seconds']} |")
