"""Deterministic, seeded demo source generator.

Writes the daily CSV drops of docs/contracts.md section 1::

    <out_dir>/<entity>/<entity>_<YYYY-MM-DD>.csv   (one file per entity per day, header always)
    <out_dir>/_truth/comment_themes.csv             (response_id, theme_key, has_pii, sentiment)
    <out_dir>/_truth/survey_sends.csv               (send_id, response_id: the answer each send got)
    <out_dir>/_truth/manifest.json

The data is a simulation of a B2B SaaS vendor: accounts with plans/ARR/owners that change over
time and churn, contacts, relational and transactional NPS surveys (every send, answered or not,
in survey_sends), CSM follow-up activities with
realistic delays (which drive whether a detractor recovers in the next cycle), daily product
usage, and free-text comments about latent themes (one fixed after the first quarter, one emerging
from the third). Same config => byte-identical files: all randomness comes from
``numpy.random.default_rng(seed)`` (split into independent child streams per concern), no
wall-clock, no hash()-dependent ordering.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from nps.contracts import (
    ACTIVITY_TYPES,
    DETRACTOR_MAX_SCORE,
    ENTITIES,
    FOLLOW_UP_BUCKETS,
    PROMOTER_MIN_SCORE,
    SPECS,
)
from nps.demo.comments import EMERGING_THEME, FIXED_THEME, THEMES, active_quarters
from nps.demo.crm import CrmSteps
from nps.demo.surveys import SurveySteps
from nps.demo.world import DAY, HOUR, _epoch, _pick, add_months, fmt_date, fmt_ts

# the columns of each entity's file drop, in the contract's order
ENTITY_COLUMNS: dict[str, list[str]] = {name: list(spec.columns) for name, spec in SPECS.items()}


@dataclass(frozen=True)
class GeneratorConfig:
    seed: int = 7
    start: date = date(2025, 1, 1)
    quarters: int = 4
    n_accounts: int = 2000
    responses_target: int = 20000

    @property
    def end(self) -> date:
        """Exclusive end date: start + 3 x quarters months."""
        return add_months(self.start, 3 * self.quarters)


PRESETS: dict[str, GeneratorConfig] = {
    "demo": GeneratorConfig(seed=7, start=date(2025, 1, 1), quarters=4, n_accounts=2000,
                            responses_target=20000),
    "small": GeneratorConfig(seed=11, start=date(2025, 1, 1), quarters=3, n_accounts=150,
                             responses_target=2200),
}


# ------------------------------------------------------------------------------------------------
# the simulation
# ------------------------------------------------------------------------------------------------

class _Sim(CrmSteps, SurveySteps):
    """The seeded simulation: the CRM steps (``nps.demo.crm``), the survey steps
    (``nps.demo.surveys``), then the CSM activities and the output frames."""

    def __init__(self, cfg: GeneratorConfig) -> None:
        if cfg.quarters < 1 or cfg.n_accounts < 10 or cfg.responses_target < 1:
            raise ValueError(f"unusable generator config: {cfg}")
        self.cfg = cfg
        root = np.random.default_rng(cfg.seed)
        (self.r_acc, self.r_con, self.r_use, self.r_srv, self.r_score, self.r_cmt, self.r_act,
         self.r_misc) = root.spawn(8)
        # spawned after the others, so adding the survey sends changed none of their streams
        (self.r_send,) = root.spawn(1)
        self.start_ts = _epoch(cfg.start)
        self.end_ts = _epoch(cfg.end)
        self.n_days = (cfg.end - cfg.start).days
        self.quarter_starts = [add_months(cfg.start, 3 * q) for q in range(cfg.quarters)]
        self.quarter_start_ts = np.array([_epoch(d) for d in self.quarter_starts], dtype=np.int64)

    # -- activities --------------------------------------------------------------------------------
    _OUTCOMES = {
        "call": ("reached", "reached", "left_voicemail", "no_answer", "meeting_booked"),
        "email": ("sent", "replied", "replied", "no_reply"),
        "meeting": ("held", "held", "rescheduled", "escalated"),
        "ticket": ("resolved", "escalated", "opened", "resolved"),
    }

    def activities(self) -> None:
        r, df = self.r_act, self.resp
        # (ts, account, contact, response_id, type, outcome, kind)
        rows: list[tuple[int, int, int, str, str, str, int]] = []
        types = ACTIVITY_TYPES
        a_arr, c_arr, ts_arr, score = (df[k].to_numpy() for k in ("a", "c", "resp", "score"))
        rid = df["response_id"].to_numpy()
        windows: list[list[tuple[int, int]]] = [[] for _ in range(self.n)]
        for i in range(len(df)):
            a, c, t0 = int(a_arr[i]), int(c_arr[i]), int(ts_arr[i])
            limit = min(self.end_ts, int(self.churn_ts[a]))
            if score[i] <= DETRACTOR_MAX_SCORE:
                windows[a].append((t0, t0 + 15 * DAY))
                if self.fu_ts[i] >= 0:
                    typ = types[int(r.choice(4, p=[0.45, 0.35, 0.12, 0.08]))]
                    linked = r.random() < 0.8
                    rows.append((int(self.fu_ts[i]), a, c, rid[i] if linked else "", typ,
                                 _pick(r, self._OUTCOMES[typ]), 0))
                    if r.random() < 0.25:
                        t2 = int(self.fu_ts[i]) + int(r.integers(DAY, 6 * DAY))
                        if t2 < limit:
                            typ2 = "meeting" if r.random() < 0.6 else "ticket"
                            rows.append((t2, a, c, rid[i], typ2, _pick(r, self._OUTCOMES[typ2]), 1))
            elif score[i] < PROMOTER_MIN_SCORE and r.random() < 0.06:
                t = t0 + int(r.integers(DAY, 7 * DAY))
                if t < limit:
                    rows.append((t, a, c, rid[i], "email", _pick(r, ("sent", "replied", "no_reply")), 2))
            elif score[i] >= PROMOTER_MIN_SCORE and r.random() < 0.03:
                t = t0 + int(r.integers(HOUR, 5 * DAY))
                if t < limit:
                    rows.append((t, a, c, rid[i], "email", "referral_requested", 3))
        # Background CSM work (QBRs, check-ins, tickets), kept out of detractor follow-up windows.
        rate = np.array([0.15, 0.35, 0.7, 1.2])[self.plan0]  # per 30 days
        for a in range(self.n):
            span = int(self.active_to[a] - self.active_from[a])
            if span <= DAY:
                continue
            k = int(r.poisson(rate[a] * span / (30 * DAY)))
            for t in np.sort(r.integers(self.active_from[a], self.active_to[a], size=k)):
                t = int(t)
                if any(lo <= t < hi for lo, hi in windows[a]):
                    continue
                typ = types[int(r.choice(4, p=[0.35, 0.2, 0.3, 0.15]))]
                outcome = {"call": ("check_in", "reached", "left_voicemail"),
                           "email": ("sent", "newsletter", "replied"),
                           "meeting": ("qbr_held", "renewal_discussed", "training_held"),
                           "ticket": ("resolved", "opened", "escalated")}[typ]
                cs = [c for c in self.contacts_by_account[a] if self.c_created[c] <= t]
                c = cs[int(r.integers(len(cs)))] if cs and r.random() < 0.7 else -1
                rows.append((t, a, c, "", typ, _pick(r, outcome), 4))
        rows.sort(key=lambda x: (x[0], x[1], x[6], x[3]))
        act = pd.DataFrame(rows, columns=["ts", "a", "c", "response_id", "activity_type", "outcome", "kind"])
        act["activity_id"] = [f"ACT{i + 1:07d}" for i in range(len(act))]
        self.act = act

    # -- output frames -----------------------------------------------------------------------------
    def _aid(self, a: np.ndarray) -> np.ndarray:
        return np.array([f"A{x + 1:05d}" for x in range(self.n)], dtype=object)[a]

    def _cid(self, c: np.ndarray) -> np.ndarray:
        ids = np.array([f"C{x + 1:06d}" for x in range(self.nc)] + [""], dtype=object)
        return ids[np.where(c >= 0, c, self.nc)]

    def _send_ids(self) -> np.ndarray:
        return np.array([f"SND{i + 1:07d}" for i in range(len(self.sends))], dtype=object)

    def frames(self) -> dict[str, pd.DataFrame]:
        out: dict[str, pd.DataFrame] = {}
        df = self.resp
        out["survey_responses"] = pd.DataFrame({
            "response_id": df["response_id"], "survey_id": df["survey_id"], "survey_type": df["type"],
            "trigger_event": df["trigger"], "account_id": self._aid(df["a"].to_numpy()),
            "contact_id": self._cid(df["c"].to_numpy()), "channel": df["channel"],
            "sent_at": fmt_ts(df["sent"].to_numpy()), "responded_at": fmt_ts(df["resp"].to_numpy()),
            "score": df["score"], "comment": df["comment"], "language": df["language"],
            "_day": fmt_date(df["resp"].to_numpy()),
        })
        acc = pd.DataFrame(self.account_rows).sort_values(["ts", "a"], kind="mergesort")
        out["accounts"] = pd.DataFrame({
            "account_id": self._aid(acc["a"].to_numpy()), "name": acc["name"], "industry": acc["industry"],
            "region": acc["region"], "employee_band": acc["employee_band"], "plan": acc["plan"],
            "arr": acc["arr"], "currency": acc["currency"], "customer_since": acc["customer_since"],
            "owner": acc["owner"], "churned_at": fmt_ts(acc["churned_at"].to_numpy()),
            "updated_at": fmt_ts(acc["ts"].to_numpy()), "_day": fmt_date(acc["ts"].to_numpy()),
        })
        con = pd.DataFrame(self.contact_rows).sort_values(["ts", "c"], kind="mergesort")
        ci = con["c"].to_numpy()
        out["contacts"] = pd.DataFrame({
            "contact_id": self._cid(ci), "account_id": self._aid(self.c_acc[ci]), "email": con["email"],
            "full_name": [f"{self.c_first[i]} {self.c_last[i]}" for i in ci], "role": con["role"],
            "created_at": fmt_ts(self.c_created[ci]), "updated_at": fmt_ts(con["ts"].to_numpy()),
            "_day": fmt_date(con["ts"].to_numpy()),
        })
        act = self.act
        out["activities"] = pd.DataFrame({
            "activity_id": act["activity_id"], "account_id": self._aid(act["a"].to_numpy()),
            "contact_id": self._cid(act["c"].to_numpy()), "response_id": act["response_id"],
            "activity_type": act["activity_type"], "created_at": fmt_ts(act["ts"].to_numpy()),
            "outcome": act["outcome"], "_day": fmt_date(act["ts"].to_numpy()),
        })
        a_idx, d_idx = self.usage_cells
        day_str = np.array([(self.cfg.start + timedelta(days=d)).isoformat() for d in range(self.n_days)],
                           dtype=object)
        users, sessions, events = self.usage_vals
        out["usage_daily"] = pd.DataFrame({
            "account_id": self._aid(a_idx), "usage_date": day_str[d_idx], "active_users": users,
            "sessions": sessions, "core_events": events, "_day": day_str[d_idx],
        })
        snd = self.sends
        out["survey_sends"] = pd.DataFrame({
            "send_id": self._send_ids(), "survey_id": snd["survey_id"], "survey_type": snd["type"],
            "trigger_event": snd["trigger"], "account_id": self._aid(snd["a"].to_numpy()),
            "contact_id": self._cid(snd["c"].to_numpy()), "channel": snd["channel"],
            "sent_at": fmt_ts(snd["sent"].to_numpy()), "response_id": snd["response_id"],
            "_day": fmt_date(snd["sent"].to_numpy()),
        })
        for name, frame in out.items():
            out[name] = frame.reset_index(drop=True)
            assert list(frame.columns[:-1]) == ENTITY_COLUMNS[name], name
        return out


# ------------------------------------------------------------------------------------------------
# public API
# ------------------------------------------------------------------------------------------------

def _clear(out_dir: Path) -> None:
    """Remove what a previous run wrote (entity folders and _truth); other files are left alone."""
    if out_dir.exists() and not out_dir.is_dir():
        raise NotADirectoryError(out_dir)
    for sub in (*ENTITIES, "_truth"):
        if (out_dir / sub).exists():
            shutil.rmtree(out_dir / sub)


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    frame.to_csv(path, index=False, lineterminator="\n", encoding="utf-8")


def generate(out_dir: Path, cfg: GeneratorConfig, progress: bool = True) -> dict[str, Any]:
    """Generate the demo sources into out_dir (rewriting earlier output) and return the manifest."""
    out_dir = Path(out_dir)
    sim = _Sim(cfg)
    steps = [("accounts", sim.accounts), ("contacts", sim.contacts), ("usage", sim.usage),
             ("surveys", sim.surveys), ("scores", sim.scores), ("comments", sim.comments),
             ("activities", sim.activities), ("survey sends", sim.survey_sends)]
    days = [(cfg.start + timedelta(days=d)).isoformat() for d in range(sim.n_days)]
    bar = tqdm(total=len(steps) + len(days), desc="nps demo", unit="step", disable=not progress)
    for name, step in steps:
        bar.set_postfix_str(name)
        step()
        bar.update(1)
    frames = sim.frames()

    # The drops are written by the file connector of the repository's sources.yml, so the demo
    # reads back exactly what that configuration (paths, format, encoding) says.
    from nps_airflow.connectors.file_drops import drop_writers

    _clear(out_dir)
    writers = drop_writers(out_dir)
    missing = set(ENTITIES) - set(writers)
    if missing:
        raise ValueError(f"sources.yml has no file source for {', '.join(sorted(missing))}: the demo writes file drops")
    groups = {e: {k: g.drop(columns="_day") for k, g in f.groupby("_day", sort=True)}
              for e, f in frames.items()}
    empty = {e: f.drop(columns="_day").iloc[0:0] for e, f in frames.items()}
    bar.set_postfix_str("writing")
    for day in days:
        for entity in ENTITIES:
            writers[entity].write(groups[entity].get(day, empty[entity]), day)
        bar.update(1)
    stray = {e: sorted(set(groups[e]) - set(days)) for e in ENTITIES}
    if any(stray.values()):
        raise AssertionError(f"rows outside [start, end): {stray}")

    df = sim.resp
    truth_dir = out_dir / "_truth"
    truth_dir.mkdir(parents=True, exist_ok=True)
    truth = pd.DataFrame({"response_id": df["response_id"], "theme_key": df["theme_key"],
                          "has_pii": np.where(df["has_pii"], "true", "false"), "sentiment": df["sentiment"]})
    _write_csv(truth, truth_dir / "comment_themes.csv")
    # which response each send really got (web links included, which the drops leave unlinked)
    _write_csv(pd.DataFrame({"send_id": sim._send_ids(), "response_id": sim.sends["true_response_id"]}),
               truth_dir / "survey_sends.csv")

    manifest = _manifest(sim, frames)
    (truth_dir / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n",
                                             encoding="utf-8")
    bar.close()
    return manifest


def _manifest(sim: _Sim, frames: dict[str, pd.DataFrame]) -> dict[str, Any]:
    cfg, df = sim.cfg, sim.resp
    s = df["score"].to_numpy()
    n = len(s)
    prom, det = int((s >= PROMOTER_MIN_SCORE).sum()), int((s <= DETRACTOR_MAX_SCORE).sum())
    q_dates = [d.isoformat() for d in sim.quarter_starts]
    themes: dict[str, Any] = {}
    for t in THEMES:
        status = "fixed" if t.key == FIXED_THEME else "emerging" if t.key == EMERGING_THEME else "recurring"
        mentions = [int(((df["theme_key"] == t.key) & (df["q"] == q)).sum()) for q in range(cfg.quarters)]
        themes[t.key] = {"lean": t.lean, "status": status,
                         "active_quarters": [q_dates[q] for q in active_quarters(t.key, cfg.quarters)],
                         "mentions_per_quarter": mentions}
    buckets = pd.Series(sim.fu_bucket[s <= DETRACTOR_MAX_SCORE]).replace("", "never").value_counts()
    comments = df["comment"].to_numpy()
    return {
        "generator": "nps.demo.generator",
        "version": 1,
        "seed": cfg.seed,
        "start": cfg.start.isoformat(),
        "end": cfg.end.isoformat(),
        "config": {k: (v.isoformat() if isinstance(v, date) else v) for k, v in asdict(cfg).items()},
        "quarters": [{"index": q, "start": q_dates[q],
                      "end": (add_months(cfg.start, 3 * (q + 1))).isoformat()} for q in range(cfg.quarters)],
        "counts": {e: int(len(f)) for e, f in frames.items()},
        "files_per_entity": sim.n_days,
        "fixed_theme": FIXED_THEME,
        "emerging_theme": EMERGING_THEME,
        "themes": themes,
        "stats": {
            "responses": n,
            "promoters": prom,
            "passives": n - prom - det,
            "detractors": det,
            "nps": round(100.0 * (prom - det) / n, 2) if n else None,
            "comments_non_empty": int(sum(1 for x in comments if x)),
            "comments_themed": int((df["theme_key"] != "").sum()),
            "comments_with_pii": int(df["has_pii"].sum()),
            "responses_without_contact": int((df["c"] < 0).sum()),
            "survey_sends": int(len(sim.sends)),
            "survey_sends_answered": int((sim.sends["true_response_id"] != "").sum()),
            "survey_sends_linked": int((sim.sends["response_id"] != "").sum()),
            "accounts_total": sim.n,
            "accounts_created_in_range": int(sim.is_new.sum()),
            "accounts_churned": int(sim.churned.sum()),
            "contacts_total": sim.nc,
            "detractor_follow_up_plan": {k: int(buckets.get(k, 0))
                                         for k in FOLLOW_UP_BUCKETS},
        },
    }
