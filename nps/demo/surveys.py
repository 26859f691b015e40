"""The survey side of the demo simulation: survey sends (relational waves, renewals, onboarding,
feature releases, support tickets) and their answers, the scores (with CSM follow-ups of
detractors), and the comments, as a mixin of ``nps.demo.generator._Sim``. The steps run on the CRM
world of ``nps.demo.crm`` and draw from their own random streams in a fixed order."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from nps.contracts import (
    DETRACTOR_MAX_SCORE,
    FOLLOW_UP_BUCKETS,
    PASSIVE_MIN_SCORE,
    PROMOTER_MIN_SCORE,
    SCORE_MAX,
    SCORE_MIN,
    SURVEY_TYPES,
)
from nps.demo.comments import DETRACTOR, PASSIVE, PROMOTER, CommentModel
from nps.demo.world import DAY, EMPLOYEE_BANDS, HOUR, PLANS, SLOW_OWNER, _epoch, add_months

if TYPE_CHECKING:
    from nps.demo.generator import GeneratorConfig

RELATIONAL, TRANSACTIONAL = SURVEY_TYPES
#: the share of the contacts who do not answer a relational wave that were invited at all (a wave
#: goes to a sample; so some contacts are eligible again at the end of a quarter)
WAVE_SAMPLE_SHARE = 0.5


@dataclass
class _SurveySends:
    """The survey sends of a simulation, column by column (contact, account, survey, answer time)."""

    cols: dict[str, list[Any]] = field(default_factory=lambda: {
        k: [] for k in ("c", "a", "survey_id", "type", "trigger", "channel", "sent", "resp")})

    def add(self, c: int, a: int, sid: str, typ: str, trig: str, ch: str, sent: int, resp: int) -> None:
        for k, v in zip(self.cols, (c, a, sid, typ, trig, ch, sent, resp), strict=True):
            self.cols[k].append(v)


@dataclass
class _Unanswered:
    """Survey sends nobody answered, as the steps meet them: contact, account, survey, type,
    trigger, send time and channel ("" when the step draws none for an unanswered send). Recording
    them draws nothing from the survey stream, so the answers come out as before."""

    rows: list[tuple[int, int, str, str, str, int, str]] = field(default_factory=list)

    def add(self, c: int, a: int, sid: str, typ: str, trig: str, sent: int, ch: str = "") -> None:
        self.rows.append((c, a, sid, typ, trig, sent, ch))


class SurveySteps:
    """The surveys, scores, comments and survey-sends steps; they set resp (one row per answered
    send), fu_ts and fu_bucket (each response's CSM follow-up), and sends (one row per send,
    answered or not)."""

    # set by _Sim.__init__
    cfg: GeneratorConfig
    r_srv: np.random.Generator
    r_score: np.random.Generator
    r_cmt: np.random.Generator
    r_send: np.random.Generator
    start_ts: int
    end_ts: int
    n_days: int
    quarter_starts: list[date]
    quarter_start_ts: np.ndarray
    # set by the CRM steps (nps.demo.crm.CrmSteps)
    n: int
    band: np.ndarray
    industry: np.ndarray
    health: np.ndarray
    industry_effect: np.ndarray
    since_day: np.ndarray
    since_ts: np.ndarray
    churn_ts: np.ndarray
    active_from: np.ndarray
    active_to: np.ndarray
    nc: int
    c_acc: np.ndarray
    c_created: np.ndarray
    c_engage: np.ndarray
    c_attitude: np.ndarray
    c_lang: np.ndarray
    contacts_by_account: list[list[int]]
    usage_level: np.ndarray
    as_of: Callable[[int, int], tuple[int, float]]
    sessions_per_day_before: Callable[[int, int], float]
    _owner_at: Callable[[int, int], int]

    # -- surveys -----------------------------------------------------------------------------------
    def surveys(self) -> None:
        """Survey sends and their answers: relational waves and renewals, then transactional surveys
        (onboarding, feature releases, support tickets) up to the responses target. Each kind draws
        from the one survey stream in this order."""
        sends = _SurveySends()
        self.unanswered = _Unanswered()
        self._relational_waves(sends)
        self._renewals(sends)
        self._onboarding(sends)
        remaining = max(0, self.cfg.responses_target - len(sends.cols["c"]))
        n_fr = round(0.35 * remaining)
        self._feature_releases(sends, n_fr)
        self._support_tickets(sends, remaining - n_fr)
        frame = pd.DataFrame(sends.cols)
        frame["send_no"] = np.arange(len(frame))  # which send a response answers (survey_sends)
        self.answered_sends = frame.copy()  # before anonymous web answers lose their contact
        self.resp = self._answered(frame)

    def _delay(self, ch: str) -> int:
        """Seconds from send to answer on a channel."""
        r = self.r_srv
        if ch == "in_app":
            return int(r.integers(15, 900))
        return int(min(14 * DAY, max(120, np.exp(r.normal(np.log(5 * HOUR), 1.5)))))

    def _exists(self, c: int, ts: int) -> bool:
        """The contact and its account exist at ts."""
        a = int(self.c_acc[c])
        return bool(self.c_created[c] <= ts and self.active_from[a] <= ts < self.active_to[a])

    def _relational_waves(self, sends: _SurveySends) -> None:
        """Relational quarterly waves: every contact, roughly once per quarter."""
        r, cfg = self.r_srv, self.cfg
        rel_scale = min(0.95, 0.55 * cfg.responses_target / max(1.0, self.nc * cfg.quarters * 0.5))
        for q, qd in enumerate(self.quarter_starts):
            label = f"{qd.year}Q{(qd.month - 1) // 3 + 1}"
            wave_day_ts = int(self.quarter_start_ts[q]) + 10 * DAY
            for c in range(self.nc):
                a = int(self.c_acc[c])
                sent = wave_day_ts + int(r.integers(0, 3)) * DAY + int(r.integers(13 * HOUR, 16 * HOUR))
                p = min(0.97, self.c_engage[c] * rel_scale * (0.6 if self.usage_level[a] < 0.5 else 1.0))
                if not self._exists(c, sent):
                    continue
                if r.random() >= p:
                    self.unanswered.add(c, a, f"NPS-REL-{label}", RELATIONAL, "quarterly", sent)
                    continue
                ch = str(r.choice(["email", "in_app", "web"], p=[0.75, 0.15, 0.10]))
                sends.add(c, a, f"NPS-REL-{label}", RELATIONAL, "quarterly", ch, sent, sent + self._delay(ch))

    def _renewals(self, sends: _SurveySends) -> None:
        """Renewal: decision maker, 30 days before the anniversary of customer_since."""
        r, cfg = self.r_srv, self.cfg
        for a in range(self.n):
            since = cfg.start + timedelta(days=int(self.since_day[a]))
            cs = self.contacts_by_account[a]
            for k in range(1, 8):
                sent = _epoch(add_months(since, 12 * k) - timedelta(days=30)) + 15 * HOUR
                if not self.start_ts <= sent < self.end_ts:
                    continue
                c = cs[0]
                if not self._exists(c, sent):
                    continue
                sd = datetime.fromtimestamp(sent, UTC)
                if r.random() < 0.5:
                    sends.add(c, a, f"NPS-REN-{sd:%Y-%m}", RELATIONAL, "renewal", "email", sent,
                              sent + self._delay("email"))
                else:
                    self.unanswered.add(c, a, f"NPS-REN-{sd:%Y-%m}", RELATIONAL, "renewal", sent, "email")

    def _onboarding(self, sends: _SurveySends) -> None:
        """Onboarding: contacts created during the range, ~3-5 weeks after creation."""
        r = self.r_srv
        for created in np.flatnonzero(self.c_created >= self.start_ts):
            c = int(created)
            sent = int(self.c_created[c]) + int(r.integers(21 * DAY, 35 * DAY))
            if not self._exists(c, sent):
                continue
            sd = datetime.fromtimestamp(sent, UTC)
            if r.random() < 0.6:
                ch = "email" if r.random() < 0.6 else "in_app"
                sends.add(c, int(self.c_acc[c]), f"NPS-ONB-{sd:%Y-%m}", TRANSACTIONAL, "onboarding", ch, sent,
                          sent + self._delay(ch))
            else:
                self.unanswered.add(c, int(self.c_acc[c]), f"NPS-ONB-{sd:%Y-%m}", TRANSACTIONAL, "onboarding", sent)

    def _feature_releases(self, sends: _SurveySends, n_fr: int) -> None:
        """Feature releases every six weeks: in-app survey to active users (n_fr in all)."""
        r = self.r_srv
        releases = [self.start_ts + d * DAY + 16 * HOUR for d in range(20, self.n_days - 7, 42)]
        for i, rel in enumerate(releases):
            n_this = n_fr // len(releases) + (1 if i < n_fr % len(releases) else 0)
            elig = np.array([c for c in range(self.nc) if self._exists(c, rel)
                             and self.usage_level[self.c_acc[c]] > 0.5], dtype=np.int64)
            if len(elig) == 0 or n_this == 0:
                continue
            p = self.c_engage[elig] / self.c_engage[elig].sum()
            chosen = np.sort(r.choice(elig, size=min(n_this, len(elig)), replace=False, p=p))
            rd = datetime.fromtimestamp(rel, UTC)
            for pick in chosen:
                c = int(pick)
                sent = rel + int(r.integers(HOUR, 7 * DAY))
                ch = "in_app" if r.random() < 0.85 else "email"
                sends.add(c, int(self.c_acc[c]), f"NPS-FR-{rd:%Y-%m-%d}", TRANSACTIONAL, "feature_release", ch,
                          sent, sent + self._delay(ch))

    def _support_tickets(self, sends: _SurveySends, n_sup: int) -> None:
        """Support tickets closed: bigger and unhappier accounts open more tickets (n_sup in all)."""
        r = self.r_srv
        span = np.maximum(0, self.active_to - self.active_from - 2 * DAY).astype(float)
        wt = np.array([0.5, 0.8, 1.2, 1.8, 2.5])[self.band] * (1 + 0.6 * (self.health < -0.5)) * span
        if n_sup <= 0 or wt.sum() <= 0:
            return
        accs = np.sort(r.choice(self.n, size=n_sup, p=wt / wt.sum()))
        for pick in accs:
            a = int(pick)
            closed = int(r.integers(self.active_from[a], self.active_from[a] + max(1, int(span[a]))))
            cs = [c for c in self.contacts_by_account[a] if self.c_created[c] <= closed]
            sent = closed + int(r.integers(HOUR, 6 * HOUR))
            ch = "email" if r.random() < 0.65 else "web"
            c = cs[int(r.integers(len(cs)))] if cs else -1
            sd = datetime.fromtimestamp(sent, UTC)
            sends.add(c, a, f"NPS-TKT-{sd:%Y-%m}", TRANSACTIONAL, "support_ticket_closed", ch, sent,
                      sent + self._delay(ch))

    def _answered(self, df: pd.DataFrame) -> pd.DataFrame:
        """The sends answered within the range, while the account was a customer, in answer order;
        a few anonymous web links only know the account."""
        r = self.r_srv
        anon = (df["channel"] == "web").to_numpy() & (r.random(len(df)) < 0.15)
        df.loc[anon, "c"] = -1
        a = df["a"].to_numpy()
        keep = (df["resp"].to_numpy() < self.end_ts) & (df["resp"].to_numpy() < self.churn_ts[a]) \
            & (df["sent"].to_numpy() >= self.active_from[a])
        return df[keep].sort_values(["resp", "a", "c", "survey_id"], kind="mergesort").reset_index(drop=True)

    # -- survey sends (their own random stream: the other entities come out as before) -------------
    def survey_sends(self) -> None:
        """One row per survey send, answered or not (after scores: answers have their response_id).
        The answered sends link their response, except web links (a generic link: the export cannot
        tell which answer it got, docs/contracts.md matches them); a send answered after the range
        or after its account churned is unanswered; the sends the steps saw go unanswered (for a
        relational wave, the invited half of those contacts); and the unanswered sends of the
        sampled surveys (feature releases, support tickets), drawn here.
        Sets sends (c, a, survey_id, type, trigger, channel, sent, response_id, true_response_id)."""
        r = self.r_send
        log = self.answered_sends
        answer = log["send_no"].map(self.resp.set_index("send_no")["response_id"]).fillna("").to_numpy()
        rows = [(int(c), int(a), sid, typ, trig, ch, int(sent), rid if ch != "web" else "", rid)
                for c, a, sid, typ, trig, ch, sent, rid in zip(
                    log["c"], log["a"], log["survey_id"], log["type"], log["trigger"], log["channel"], log["sent"],
                    answer, strict=True)]
        for c, a, sid, typ, trig, sent, ch in self.unanswered.rows:
            if trig == "quarterly" and r.random() >= WAVE_SAMPLE_SHARE:
                continue  # a wave is sent to a sample: this contact was not invited this quarter
            if not ch:
                ch = (str(r.choice(["email", "in_app", "web"], p=[0.75, 0.15, 0.10])) if trig == "quarterly"
                      else "email" if r.random() < 0.6 else "in_app")
            rows.append((c, a, sid, typ, trig, ch, sent, "", ""))
        rows += self._unanswered_feature_releases(log)
        rows += self._unanswered_support_tickets(int((log["trigger"] == "support_ticket_closed").sum()))
        df = pd.DataFrame(rows, columns=["c", "a", "survey_id", "type", "trigger", "channel", "sent",
                                         "response_id", "true_response_id"])
        a = df["a"].to_numpy()
        sent = df["sent"].to_numpy()
        sent_to_customer = (sent >= self.start_ts) & (sent < self.end_ts) & (sent >= self.active_from[a]) \
            & (sent < self.churn_ts[a])
        self.sends = df[sent_to_customer].sort_values(["sent", "a", "c", "survey_id"], kind="mergesort") \
            .reset_index(drop=True)

    def _unanswered_feature_releases(self, log: pd.DataFrame) -> list[tuple]:
        """The in-app release surveys shown to other active users, who did not answer: about 1.5
        per answer, among the eligible contacts not already asked in that release."""
        r = self.r_send
        rows: list[tuple] = []
        for rel in [self.start_ts + d * DAY + 16 * HOUR for d in range(20, self.n_days - 7, 42)]:
            sid = f"NPS-FR-{datetime.fromtimestamp(rel, UTC):%Y-%m-%d}"
            asked = set(log.loc[log["survey_id"] == sid, "c"].tolist())
            pool = np.array([c for c in range(self.nc) if c not in asked and self._exists(c, rel)
                             and self.usage_level[self.c_acc[c]] > 0.5], dtype=np.int64)
            n_un = min(len(pool), round(1.5 * len(asked)))
            for pick in np.sort(r.choice(pool, size=n_un, replace=False)) if n_un else []:
                c = int(pick)
                sent = rel + int(r.integers(HOUR, 7 * DAY))
                ch = "in_app" if r.random() < 0.85 else "email"
                rows.append((c, int(self.c_acc[c]), sid, TRANSACTIONAL, "feature_release", ch, sent, "", ""))
        return rows

    def _unanswered_support_tickets(self, n_answered: int) -> list[tuple]:
        """Surveys after other closed tickets, which nobody answered: about 1.2 per answer, drawn
        like the answered ones (bigger and unhappier accounts open more tickets)."""
        r = self.r_send
        span = np.maximum(0, self.active_to - self.active_from - 2 * DAY).astype(float)
        wt = np.array([0.5, 0.8, 1.2, 1.8, 2.5])[self.band] * (1 + 0.6 * (self.health < -0.5)) * span
        n_un = round(1.2 * n_answered)
        if n_un <= 0 or wt.sum() <= 0:
            return []
        rows: list[tuple] = []
        for pick in np.sort(r.choice(self.n, size=n_un, p=wt / wt.sum())):
            a = int(pick)
            closed = int(r.integers(self.active_from[a], self.active_from[a] + max(1, int(span[a]))))
            cs = [c for c in self.contacts_by_account[a] if self.c_created[c] <= closed]
            sent = closed + int(r.integers(HOUR, 6 * HOUR))
            ch = "email" if r.random() < 0.65 else "web"
            c = cs[int(r.integers(len(cs)))] if cs else -1
            sid = f"NPS-TKT-{datetime.fromtimestamp(sent, UTC):%Y-%m}"
            rows.append((c, a, sid, TRANSACTIONAL, "support_ticket_closed", ch, sent, "", ""))
        return rows

    # -- scores (sequential per respondent: follow-ups change the next answer) ----------------------
    def scores(self) -> None:  # noqa: PLR0915 - one seeded simulation step: it draws from its stream in a fixed order, splitting it is a determinism refactor of its own
        r, df = self.r_score, self.resp
        m = len(df)
        a = df["a"].to_numpy()
        c = df["c"].to_numpy()
        ts = df["resp"].to_numpy()
        q = np.searchsorted(self.quarter_start_ts, ts, side="right") - 1
        plan = np.empty(m, dtype=np.int64)
        arr = np.empty(m)
        spd = np.empty(m)
        for i in range(m):
            plan[i], arr[i] = self.as_of(int(a[i]), int(ts[i]))
            spd[i] = self.sessions_per_day_before(int(a[i]), int(ts[i]))
        tenure = (ts - self.since_ts[a]) / DAY
        usage_eff = np.select([spd == 0, spd < 10, spd < 50], [-1.1, -0.3, 0.15], 0.4)
        tenure_eff = np.select([tenure < 183, tenure < 365, tenure < 730], [0.15, -0.35, 0.0], 0.3)
        plan_eff = np.array([-0.2, 0.0, 0.2, 0.05])[plan]
        trig_eff = df["trigger"].map({"quarterly": 0.0, "renewal": -0.1, "onboarding": 0.3,
                                      "support_ticket_closed": -0.45, "feature_release": 0.3}).to_numpy()
        q_eff = np.array([-0.2, 0.0, 0.1] + [0.2] * max(0, self.cfg.quarters - 3))[q]
        price_eff = np.where((q >= 2) & (plan <= 1), -0.3, 0.0)
        churn_soon = (self.churn_ts[a] - ts) < 150 * DAY
        attitude = np.where(c >= 0, self.c_attitude[np.maximum(c, 0)], r.normal(0, 0.9, size=m))
        base = (8.05 + 1.0 * self.health[a] + attitude + usage_eff + tenure_eff + plan_eff + trig_eff + q_eff
                + price_eff + self.industry_effect[self.industry[a]] - 0.9 * churn_soon)

        respondent = np.where(c >= 0, c, self.nc + a)
        order = np.lexsort((np.arange(m), ts, respondent))
        score = np.zeros(m, dtype=np.int64)
        fu_ts = np.full(m, -1, dtype=np.int64)  # first follow-up time, -1 = none
        fu_bucket = np.full(m, "", dtype=object)
        eps_new = r.normal(size=m)
        u_out = r.random(m)
        u_fu = r.random(m)
        fu_frac = r.random(m)
        boost = {"within_24h": 2.4, "within_48h": 1.6, "later": 0.8}
        prev_resp, prev_eps = -1, 0.0
        for k in range(m):
            i = int(order[k])
            same = prev_resp >= 0 and respondent[prev_resp] == respondent[i]
            eps = 0.5 * prev_eps + 0.87 * eps_new[i] if same else eps_new[i]
            latent = base[i] + 1.55 * eps
            if same and score[prev_resp] <= DETRACTOR_MAX_SCORE:
                if 0 <= fu_ts[prev_resp] < ts[i]:
                    latent += boost[fu_bucket[prev_resp]]
                else:
                    latent -= 0.3
            s = int(np.clip(np.rint(latent), SCORE_MIN, SCORE_MAX))
            if u_out[i] < 0.015:
                s = int(u_out[i] / 0.015 * 4)  # furious 0-3 outliers
            score[i] = s
            # CSM follow-up policy
            if s <= DETRACTOR_MAX_SCORE:
                p = np.array([0.40, 0.20, 0.16, 0.24])
                if arr[i] >= 50_000:
                    p = np.array([0.50, 0.20, 0.12, 0.18])
                elif arr[i] < 10_000:
                    p = np.array([0.32, 0.20, 0.18, 0.30])
                owner_slow = self._owner_at(int(a[i]), int(ts[i])) == SLOW_OWNER
                if owner_slow:
                    p = np.array([0.25, 0.22, 0.25, 0.28])
                bucket = FOLLOW_UP_BUCKETS[
                    min(3, int(np.searchsorted(np.cumsum(p), u_fu[i])))]
                if bucket != "never":
                    lo, hi = {"within_24h": (0.3 * HOUR, 23.5 * HOUR),
                              "within_48h": (24.5 * HOUR, 47.5 * HOUR),
                              "later": (2.5 * DAY, 10 * DAY)}[bucket]
                    t = int(ts[i] + lo + fu_frac[i] * (hi - lo))
                    if t < min(self.end_ts, int(self.churn_ts[a[i]])):
                        fu_ts[i], fu_bucket[i] = t, bucket
            prev_resp, prev_eps = i, eps
        df["score"] = score
        df["q"] = q
        df["plan"] = plan
        df["arr"] = arr
        df["tenure"] = tenure
        self.fu_ts, self.fu_bucket = fu_ts, fu_bucket
        df["response_id"] = [f"R{i + 1:07d}" for i in range(m)]

    # -- comments ----------------------------------------------------------------------------------
    def comments(self) -> None:
        df = self.resp
        model = CommentModel(self.r_cmt)
        texts, keys, pii, sentiments = [], [], [], []
        langs = []
        for row in df.itertuples(index=False):
            lang = str(self.c_lang[row.c]) if row.c >= 0 else "en"
            cat = (PROMOTER if row.score >= PROMOTER_MIN_SCORE else PASSIVE if row.score >= PASSIVE_MIN_SCORE
                   else DETRACTOR)
            ctx = {"plan": PLANS[row.plan], "trigger_event": row.trigger, "channel": row.channel,
                   "employee_band": EMPLOYEE_BANDS[self.band[row.a]], "tenure_days": row.tenure,
                   "language": lang}
            t, k, p, s = model.make(cat, int(row.q), ctx)
            texts.append(t)
            keys.append(k)
            pii.append(p)
            sentiments.append(s)
            langs.append(lang)
        df["comment"] = texts
        df["theme_key"] = keys
        df["has_pii"] = pii
        df["sentiment"] = sentiments
        df["language"] = langs
