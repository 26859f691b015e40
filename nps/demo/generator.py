"""Deterministic, seeded demo source generator.

Writes the daily CSV drops of docs/contracts.md section 1::

    <out_dir>/<entity>/<entity>_<YYYY-MM-DD>.csv   (one file per entity per day, header always)
    <out_dir>/_truth/comment_themes.csv             (response_id, theme_key, has_pii)
    <out_dir>/_truth/manifest.json

The data is a simulation of a B2B SaaS vendor: accounts with plans/ARR/owners that change over
time and churn, contacts, relational and transactional NPS surveys, CSM follow-up activities with
realistic delays (which drive whether a detractor recovers in the next cycle), daily product
usage, and free-text comments about latent themes (one fixed after the first quarter, one emerging
from the third). Same config => byte-identical files: all randomness comes from
``numpy.random.default_rng(seed)`` (split into independent child streams per concern), no
wall-clock, no hash()-dependent ordering.
"""

from __future__ import annotations

import bisect
import json
import shutil
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
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
    PASSIVE_MIN_SCORE,
    PROMOTER_MIN_SCORE,
    SCORE_MAX,
    SCORE_MIN,
    SPECS,
    SURVEY_TYPES,
)
from nps.demo.comments import (
    DETRACTOR,
    EMERGING_THEME,
    FIXED_THEME,
    PASSIVE,
    PROMOTER,
    THEMES,
    CommentModel,
    active_quarters,
)

# the columns of each entity's file drop, in the contract's order
ENTITY_COLUMNS: dict[str, list[str]] = {name: list(spec.columns) for name, spec in SPECS.items()}
RELATIONAL, TRANSACTIONAL = SURVEY_TYPES

DAY = 86_400
HOUR = 3_600

PLANS = ("starter", "growth", "business", "enterprise")
EMPLOYEE_BANDS = ("1-10", "11-50", "51-200", "201-1000", "1000+")
REGIONS = ("NA", "EMEA", "APAC", "LATAM")
INDUSTRIES = ("Software", "Financial Services", "Healthcare", "Retail & E-commerce", "Manufacturing",
              "Education", "Media & Entertainment", "Logistics", "Professional Services", "Non-profit")
OWNERS = ("Maya Chen", "Lucas Ferreira", "Priya Natarajan", "Tom Becker", "Sofia Rossi", "Jamal Carter")
LEAVING_OWNER = 5  # Jamal Carter leaves mid-range; his book is reassigned in one day
SLOW_OWNER = 3  # Tom Becker follows up more slowly
ROLES = ("Admin", "Champion", "Executive Sponsor", "End User", "Billing Contact", "IT Manager",
         "Team Lead", "Operations Manager")

# Plan mix per employee band (rows follow EMPLOYEE_BANDS, columns PLANS).
_PLAN_GIVEN_BAND = np.array([
    [0.75, 0.22, 0.03, 0.00],
    [0.40, 0.45, 0.13, 0.02],
    [0.10, 0.45, 0.38, 0.07],
    [0.02, 0.20, 0.50, 0.28],
    [0.00, 0.05, 0.35, 0.60],
])
_ARR_RANGE = {"starter": (2_000, 9_600), "growth": (8_000, 52_000), "business": (40_000, 260_000),
              "enterprise": (180_000, 600_000)}
_USAGE_MEDIAN = np.array([3.0, 12.0, 30.0, 75.0, 160.0])  # sessions/day per employee band
_SEAT_CAP = np.array([10, 50, 200, 1000, 5000])
_REGION_OFFSET_H = {"NA": -6, "EMEA": 1, "APAC": 8, "LATAM": -4}  # local business hours -> UTC
_WEEKDAY_FACTOR = np.array([1.0, 1.05, 1.05, 1.0, 0.85, 0.25, 0.2])  # Mon..Sun


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
# helpers
# ------------------------------------------------------------------------------------------------

def add_months(d: date, months: int) -> date:
    m = d.month - 1 + months
    year, month = d.year + m // 12, m % 12 + 1
    days_in_month = (date(year + (month == 12), month % 12 + 1, 1) - timedelta(days=1)).day
    return date(year, month, min(d.day, days_in_month))


def _epoch(d: date) -> int:
    return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp())


def fmt_ts(ts: np.ndarray) -> np.ndarray:
    """int seconds since epoch -> '2025-01-03T14:05:00+00:00'; negative sentinel -> ''."""
    ts = np.asarray(ts, dtype=np.int64)
    out = np.char.add(np.datetime_as_string(ts.astype("datetime64[s]"), unit="s"), "+00:00")
    out = out.astype(object)
    out[ts < 0] = ""
    return out


def fmt_date(ts: np.ndarray) -> np.ndarray:
    as_dt = np.asarray(ts, dtype=np.int64).astype("datetime64[s]")
    return np.datetime_as_string(as_dt, unit="D").astype(object)


def _pick(rng: np.random.Generator, seq: tuple[str, ...] | list[str]) -> str:
    return seq[int(rng.integers(len(seq)))]


def _business_time(rng: np.random.Generator, day_ts: np.ndarray, region_offset_h: np.ndarray) -> np.ndarray:
    """A time during local business hours (8:00-19:00) on the given UTC day, as UTC seconds."""
    local = rng.uniform(8.0, 19.0, size=len(day_ts))
    return (day_ts + ((local - region_offset_h) * HOUR)).astype(np.int64)


_NAME_PREFIX = ("Blue", "North", "Apex", "Bright", "Silver", "Granite", "Nova", "Summit", "Harbor",
                "Cedar", "Vertex", "Lumen", "Iron", "Maple", "Crescent", "Pioneer", "Atlas", "Orbit",
                "Redwood", "Sterling", "Quantum", "Evergreen", "Falcon", "Horizon", "Keystone", "Lakeside",
                "Meridian", "Oak", "Pinnacle", "Riverbend", "Sage", "Tidal", "Union", "Vista", "Willow",
                "Zenith", "Aurora", "Beacon", "Cobalt", "Delta", "Ember", "Fjord", "Golden", "Highland",
                "Indigo", "Juniper", "Kestrel", "Linden", "Mosaic", "Nimbus")
_NAME_CORE = {
    "Software": ("Labs", "Software", "Systems", "Cloud", "Data", "Digital", "Apps"),
    "Financial Services": ("Capital", "Finance", "Partners", "Wealth", "Payments", "Credit"),
    "Healthcare": ("Health", "Clinics", "Care", "Medical", "Diagnostics", "Pharma"),
    "Retail & E-commerce": ("Goods", "Market", "Outfitters", "Store", "Brands", "Supply"),
    "Manufacturing": ("Industries", "Manufacturing", "Works", "Components", "Machines", "Materials"),
    "Education": ("Academy", "Learning", "Schools", "Education", "Institute", "Tutoring"),
    "Media & Entertainment": ("Media", "Studios", "Productions", "Publishing", "Sound", "Games"),
    "Logistics": ("Logistics", "Freight", "Transport", "Shipping", "Fleet", "Cargo"),
    "Professional Services": ("Consulting", "Advisors", "Group", "Associates", "Legal", "Solutions"),
    "Non-profit": ("Foundation", "Alliance", "Trust", "Network", "Initiative", "Society"),
}
_LEGAL = {"NA": ("Inc.", "LLC", "Corp.", ""), "EMEA": ("GmbH", "Ltd", "B.V.", "S.A.", "AB", ""),
          "APAC": ("Pty Ltd", "Pte. Ltd.", "K.K.", "Ltd", ""), "LATAM": ("S.A.", "Ltda.", "S.A. de C.V.", "")}
_TLD = {"NA": (".com", ".io", ".com"), "EMEA": (".de", ".co.uk", ".eu", ".com", ".nl"),
        "APAC": (".com.au", ".sg", ".jp", ".com"), "LATAM": (".com.br", ".mx", ".com", ".cl")}
_FIRST_NAMES = ("James", "Mary", "Robert", "Patricia", "Michael", "Jennifer", "David", "Linda", "Daniel",
                "Sarah", "Ahmed", "Fatima", "Wei", "Mei", "Hiroshi", "Yuki", "Raj", "Priya", "Carlos",
                "Sofia", "Luca", "Giulia", "Hans", "Anna", "Pierre", "Camille", "Olga", "Ivan", "Kwame",
                "Amara", "Diego", "Valentina", "Noah", "Emma", "Liam", "Olivia", "Mateo", "Isabella",
                "Chen", "Aisha", "Jonas", "Lea", "Tomasz", "Zofia", "Sean", "Niamh", "Arjun", "Ananya",
                "Kenji", "Sakura", "Rafael", "Beatriz", "Erik", "Ingrid", "Omar", "Layla", "Samuel", "Grace")
_LAST_NAMES = ("Smith", "Johnson", "Williams", "Brown", "Garcia", "Miller", "Davis", "Martinez", "Lopez",
               "Wilson", "Anderson", "Taylor", "Thomas", "Moore", "Martin", "Lee", "Khan", "Patel", "Singh",
               "Wang", "Li", "Zhang", "Tanaka", "Sato", "Mueller", "Schmidt", "Schneider", "Rossi",
               "Bianchi", "Dubois", "Laurent", "Ivanova", "Novak", "Kowalski", "Silva", "Santos",
               "Oliveira", "Fernandez", "Gonzalez", "Okafor", "Mensah", "Haddad", "Nielsen", "Larsen",
               "O'Brien", "Murphy", "Kim", "Park", "Nguyen", "Tran", "Cohen", "Levi", "Jansen", "de Vries")


def _slug(s: str) -> str:
    return "".join(ch for ch in s.lower() if ch.isalnum())


# ------------------------------------------------------------------------------------------------
# the simulation
# ------------------------------------------------------------------------------------------------

@dataclass
class _SurveySends:
    """The survey sends of a simulation, column by column (contact, account, survey, answer time)."""

    cols: dict[str, list[Any]] = field(default_factory=lambda: {
        k: [] for k in ("c", "a", "survey_id", "type", "trigger", "channel", "sent", "resp")})

    def add(self, c: int, a: int, sid: str, typ: str, trig: str, ch: str, sent: int, resp: int) -> None:
        for k, v in zip(self.cols, (c, a, sid, typ, trig, ch, sent, resp), strict=True):
            self.cols[k].append(v)


class _Sim:
    def __init__(self, cfg: GeneratorConfig) -> None:
        if cfg.quarters < 1 or cfg.n_accounts < 10 or cfg.responses_target < 1:
            raise ValueError(f"unusable generator config: {cfg}")
        self.cfg = cfg
        root = np.random.default_rng(cfg.seed)
        (self.r_acc, self.r_con, self.r_use, self.r_srv, self.r_score, self.r_cmt, self.r_act,
         self.r_misc) = root.spawn(8)
        self.start_ts = _epoch(cfg.start)
        self.end_ts = _epoch(cfg.end)
        self.n_days = (cfg.end - cfg.start).days
        self.quarter_starts = [add_months(cfg.start, 3 * q) for q in range(cfg.quarters)]
        self.quarter_start_ts = np.array([_epoch(d) for d in self.quarter_starts], dtype=np.int64)

    # -- accounts ----------------------------------------------------------------------------------
    def accounts(self) -> None:
        r, n, nd = self.r_acc, self.cfg.n_accounts, self.n_days
        self.n = n
        is_new = np.zeros(n, dtype=bool)
        is_new[r.choice(n, size=round(0.10 * n), replace=False)] = True
        since_day = -(1 + np.floor(1824 * r.random(n) ** 1.35)).astype(np.int64)
        since_day[is_new] = r.integers(0, max(1, nd - 21), size=int(is_new.sum()))
        self.is_new, self.since_day = is_new, since_day
        self.region = r.choice(4, size=n, p=[0.45, 0.32, 0.15, 0.08])
        self.industry = r.choice(len(INDUSTRIES), size=n)
        self.band = r.choice(5, size=n, p=[0.18, 0.30, 0.27, 0.17, 0.08])
        self.plan0 = np.array([r.choice(4, p=_PLAN_GIVEN_BAND[b]) for b in self.band])
        self.health = r.normal(size=n)
        self.industry_effect = r.normal(0, 0.2, size=len(INDUSTRIES))
        self.arr0 = np.array([self._arr_for(PLANS[p], r) for p in self.plan0])
        self.owner0 = r.choice(len(OWNERS), size=n, p=[0.2, 0.18, 0.18, 0.16, 0.14, 0.14])
        self.offset_h = np.array([_REGION_OFFSET_H[REGIONS[g]] for g in self.region], dtype=float)
        self.leave_ts = self.start_ts + int(0.55 * nd) * DAY + 9 * HOUR
        # accounts signed after the leaving CSM's last day go to someone else
        late = (self.owner0 == LEAVING_OWNER) & (self.start_ts + since_day * DAY >= self.leave_ts - DAY)
        others = np.array([o for o in range(len(OWNERS)) if o != LEAVING_OWNER])
        self.owner0[late] = others[r.integers(len(others), size=int(late.sum()))]
        # customer_since 10:00 local on its day; new accounts get their first version then.
        self.since_ts = (self.start_ts + since_day * DAY + ((10 - self.offset_h) * HOUR)).astype(np.int64)

        names: list[str] = []
        domains: list[str] = []
        seen: set[str] = set()
        for i in range(n):
            region = REGIONS[self.region[i]]
            core_pool = _NAME_CORE[INDUSTRIES[self.industry[i]]]
            for attempt in range(50):
                base = f"{_pick(r, _NAME_PREFIX)} {_pick(r, core_pool)}"
                if attempt >= 20:
                    base = f"{base} {_pick(r, ('Group', 'Holdings', 'International', 'Co', 'One'))}"
                if base not in seen:
                    break
            else:
                base = f"{base} {i}"
            seen.add(base)
            legal = _pick(r, _LEGAL[region])
            names.append(f"{base} {legal}".strip() if legal else base)
            domains.append(_slug(base) + _pick(r, _TLD[region]))
        self.names, self.domains = names, domains

        # Churn: ~8 % of accounts, unhealthy and small plans more likely.
        churn_ts = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
        eligible = np.flatnonzero(since_day <= nd - 60)
        wt = np.exp(-0.9 * self.health[eligible]) * np.array([1.6, 1.2, 0.8, 0.5])[self.plan0[eligible]]
        n_churn = min(len(eligible), round(0.08 * n))
        churners = r.choice(eligible, size=n_churn, replace=False, p=wt / wt.sum())
        for a in np.sort(churners):
            lo = max(0, int(since_day[a])) + 45
            day = int(r.integers(min(lo, nd - 2), nd - 1))
            churn_ts[a] = _business_time(r, np.array([self.start_ts + day * DAY]), self.offset_h[[a]])[0]
        self.churn_ts = np.minimum(churn_ts, np.where(churn_ts < np.iinfo(np.int64).max,
                                                      self.end_ts - HOUR, churn_ts))
        self.churned = self.churn_ts < np.iinfo(np.int64).max
        self.active_from = np.maximum(self.since_ts, self.start_ts)
        self.active_to = np.minimum(self.churn_ts, self.end_ts)

        self._account_versions()

    @staticmethod
    def _arr_for(plan: str, r: np.random.Generator) -> float:
        lo, hi = _ARR_RANGE[plan]
        arr = float(np.exp(r.uniform(np.log(lo), np.log(hi))))
        return round(arr / 12) * 12.0  # monthly list price x 12

    def _account_versions(self) -> None:  # noqa: C901, PLR0912, PLR0915 - one seeded simulation step: it draws from its stream in a fixed order, splitting it is a determinism refactor of its own
        r, n = self.r_acc, self.n
        leave_ts = self.leave_ts
        rows: list[dict[str, Any]] = []
        self.ver_ts: list[list[int]] = []
        self.ver_plan: list[list[int]] = []
        self.ver_arr: list[list[float]] = []
        for a in range(n):
            plan, arr = int(self.plan0[a]), float(self.arr0[a])
            owner, band = int(self.owner0[a]), int(self.band[a])
            lo, hi = int(self.active_from[a]) + 30 * DAY, int(self.active_to[a]) - DAY
            events: list[tuple[int, int, str]] = []  # (ts, order, kind)
            if hi > lo:
                u = r.random(4)
                if u[0] < 0.12 and plan < 3:
                    events.append((int(r.integers(lo, hi)), 1, "upgrade"))
                if u[1] < 0.05 + 0.05 * (self.health[a] < -0.8) and plan > 0:
                    events.append((int(r.integers(lo, hi)), 2, "downgrade"))
                if u[2] < 0.08:
                    events.append((int(r.integers(lo, hi)), 3, "owner"))
                if u[3] < 0.03 and band < 4:
                    events.append((int(r.integers(lo, hi)), 4, "band"))
            # Renewal price uplift on the anniversary of customer_since.
            since = self.cfg.start + timedelta(days=int(self.since_day[a]))
            for k in range(1, 8):
                ann = _epoch(add_months(since, 12 * k)) + 11 * HOUR
                if self.active_from[a] + DAY < ann < self.active_to[a] and r.random() < 0.5:
                    events.append((ann, 5, "uplift"))
            if owner == LEAVING_OWNER and self.active_from[a] < leave_ts < self.active_to[a]:
                events.append((leave_ts + int(r.integers(0, 4 * HOUR)), 6, "transfer"))
            if self.churned[a]:
                events.append((int(self.churn_ts[a]), 9, "churn"))
            events.sort()

            first_ts = self.start_ts if not self.is_new[a] else int(self.since_ts[a])
            # the account's current version: plan / owner / band indexes, ARR, churn time (-1: none)
            state: dict[str, Any] = {"plan": plan, "arr": arr, "owner": owner, "band": band, "churned_at": -1}
            vts, vplan, varr = [first_ts], [plan], [arr]
            rows.append(self._account_row(a, state, first_ts))
            last = first_ts
            for ts, _, kind in events:
                ts = max(ts, last + 1)
                if kind == "upgrade" and state["plan"] < 3:
                    state["plan"] += 1
                    state["arr"] = round(max(state["arr"] * r.uniform(1.4, 2.6),
                                             _ARR_RANGE[PLANS[state["plan"]]][0]) / 12) * 12.0
                elif kind == "downgrade" and state["plan"] > 0:
                    state["plan"] -= 1
                    state["arr"] = round(min(state["arr"] * r.uniform(0.4, 0.7),
                                             _ARR_RANGE[PLANS[state["plan"]]][1]) / 12) * 12.0
                elif kind == "uplift":
                    state["arr"] = round(state["arr"] * r.uniform(1.03, 1.08) / 12) * 12.0
                elif kind == "owner" or (kind == "transfer" and state["owner"] == LEAVING_OWNER):
                    choices = [o for o in range(len(OWNERS)) if o not in (state["owner"], LEAVING_OWNER)]
                    state["owner"] = choices[int(r.integers(len(choices)))]
                elif kind == "band" and state["band"] < 4:
                    state["band"] += 1
                elif kind == "churn":
                    state["churned_at"] = ts
                else:
                    continue
                rows.append(self._account_row(a, state, ts))
                vts.append(ts)
                vplan.append(state["plan"])
                varr.append(state["arr"])
                last = ts
            self.ver_ts.append(vts)
            self.ver_plan.append(vplan)
            self.ver_arr.append(varr)
        self.account_rows = rows

    def _account_row(self, a: int, s: dict[str, Any], ts: int) -> dict[str, Any]:
        return {
            "a": a, "ts": ts, "name": self.names[a], "industry": INDUSTRIES[self.industry[a]],
            "region": REGIONS[self.region[a]], "employee_band": EMPLOYEE_BANDS[s["band"]],
            "plan": PLANS[s["plan"]], "arr": f"{s['arr']:.2f}", "currency": "USD",
            "customer_since": (self.cfg.start + timedelta(days=int(self.since_day[a]))).isoformat(),
            "owner": OWNERS[s["owner"]], "churned_at": s["churned_at"],
        }

    def as_of(self, a: int, ts: int) -> tuple[int, float]:
        """(plan index, arr) of account a as of ts (earliest version when none before)."""
        i = max(0, bisect.bisect_right(self.ver_ts[a], ts) - 1)
        return self.ver_plan[a][i], self.ver_arr[a][i]

    # -- contacts ----------------------------------------------------------------------------------
    def contacts(self) -> None:  # noqa: PLR0912, PLR0915 - one seeded simulation step: it draws from its stream in a fixed order, splitting it is a determinism refactor of its own
        r = self.r_con
        n_choices = {0: ([1, 2, 3], [0.5, 0.4, 0.1]), 1: ([1, 2, 3, 4], [0.2, 0.4, 0.3, 0.1]),
                     2: ([2, 3, 4, 5], [0.3, 0.35, 0.2, 0.15]), 3: ([2, 3, 4, 5], [0.15, 0.3, 0.3, 0.25]),
                     4: ([3, 4, 5], [0.3, 0.35, 0.35])}
        acc, created, first, last, role = [], [], [], [], []
        for a in range(self.n):
            vals, p = n_choices[int(self.band[a])]
            k = int(r.choice(vals, p=p))
            extra = k < 5 and r.random() < 0.06 and self.active_to[a] - self.active_from[a] > 60 * DAY
            since = int(self.since_ts[a])
            for j in range(k + int(extra)):
                if j == 0:
                    ts = since + int(r.integers(0, 2 * HOUR))
                elif j == k:  # new hire joins during the range
                    ts = int(r.integers(self.active_from[a] + 20 * DAY, self.active_to[a] - 40 * DAY)) \
                        if self.active_to[a] - self.active_from[a] > 61 * DAY else since + HOUR
                elif self.is_new[a]:
                    ts = since + int(r.integers(5 * 60, 3 * DAY))
                else:
                    ts = int(r.integers(since, self.start_ts - HOUR)) if self.start_ts - HOUR > since \
                        else since
                acc.append(a)
                created.append(min(ts, self.end_ts - DAY))
                role.append(int(r.choice([1, 2, 0, 4])) if j == 0 else int(r.integers(len(ROLES))))
                first.append(_pick(r, _FIRST_NAMES))
                last.append(_pick(r, _LAST_NAMES))
        self.c_acc = np.array(acc, dtype=np.int64)
        self.c_created = np.array(created, dtype=np.int64)
        nc = self.nc = len(acc)
        self.c_first, self.c_last = first, last
        emails = []
        used: set[str] = set()
        for i in range(nc):
            local = _slug(first[i]) + "." + _slug(last[i])
            email = f"{local}@{self.domains[acc[i]]}"
            k = 2
            while email in used:
                email = f"{local}{k}@{self.domains[acc[i]]}"
                k += 1
            used.add(email)
            emails.append(email)
        self.c_email = emails
        # engagement: probability to answer a relational survey; attitude: personal score offset
        m = 0.5
        self.c_engage = r.beta(4 * m, 4 * (1 - m), size=nc)
        self.c_attitude = r.normal(0, 0.9, size=nc)
        langs = np.array(["en"] * nc, dtype=object)
        reg = self.region[self.c_acc]
        u = r.random(nc)
        langs[(reg == 1) & (u < 0.05)] = "de"
        langs[(reg == 1) & (u >= 0.05) & (u < 0.08)] = "fr"
        langs[(reg == 3) & (u < 0.14)] = "es"
        langs[(reg == 3) & (u >= 0.14) & (u < 0.22)] = "pt"
        self.c_lang = langs
        self.contacts_by_account: list[list[int]] = [[] for _ in range(self.n)]
        for i, a in enumerate(acc):
            self.contacts_by_account[a].append(i)

        rows: list[dict[str, Any]] = []
        for i in range(nc):
            a = acc[i]
            state = {"email": emails[i], "role": ROLES[role[i]]}
            ts0 = self.start_ts if self.c_created[i] < self.start_ts else int(self.c_created[i])
            rows.append({"c": i, "ts": ts0, **state})
            lo, hi = max(ts0 + HOUR, int(self.active_from[a]) + DAY), int(self.active_to[a]) - DAY
            if hi <= lo:
                continue
            changes = []
            if r.random() < 0.06:
                changes.append((int(r.integers(lo, hi)), "role"))
            if r.random() < 0.03:
                changes.append((int(r.integers(lo, hi)), "email"))
            last_ts = ts0
            for ts, kind in sorted(changes):
                ts = max(ts, last_ts + 1)
                if kind == "role":
                    state["role"] = _pick(r, [x for x in ROLES if x != state["role"]])
                else:
                    user, dom = state["email"].split("@")
                    state["email"] = (f"{self.c_first[i][0].lower()}{_slug(self.c_last[i])}@{dom}"
                                      if r.random() < 0.5 else f"{user}@mail.{dom}")
                rows.append({"c": i, "ts": ts, **state})
                last_ts = ts
        self.contact_rows = rows

    # -- usage -------------------------------------------------------------------------------------
    WARMUP = 30  # simulated (not written) days before start, for the 30-day usage window

    def usage(self) -> None:
        r, n, nd, w = self.r_use, self.n, self.n_days, self.WARMUP
        days = np.arange(-w, nd)
        level = _USAGE_MEDIAN[self.band] * np.exp(0.55 * r.normal(size=n) + 0.35 * self.health)
        low = r.random(n) < 0.05 + 0.03 * (self.health < -1)
        level[low] = r.uniform(0.0, 0.4, size=int(low.sum()))
        dormant = np.flatnonzero(low)[: max(2, round(0.02 * n))]
        level[dormant] = 0.0
        slope = r.normal(0, 0.3, size=n)
        dates = [self.cfg.start + timedelta(days=int(d)) for d in days]
        weekday = _WEEKDAY_FACTOR[np.array([d.weekday() for d in dates])]
        holiday = np.array([0.45 if (d.month == 12 and d.day >= 24) or (d.month == 1 and d.day == 1)
                            else 1.0 for d in dates])
        lam = level[:, None] * (weekday * holiday)[None, :] * np.exp(slope[:, None] * days[None, :] / 365)
        since_day = self.since_day[:, None]
        age = days[None, :] - since_day
        lam *= np.clip((age + 1) / 30.0, 0.0, 1.0)  # ramp-up after go-live
        churn_day = np.where(self.churned, (self.churn_ts - self.start_ts) // DAY, nd + 10)[:, None]
        to_churn = churn_day - days[None, :]
        lam *= np.clip(0.3 + 0.7 * to_churn / 60.0, 0.3, 1.0)  # decline before churn
        alive = (age >= 0) & (to_churn > 0)
        lam[~alive] = 0.0
        sessions = r.poisson(lam)
        users_p = r.uniform(0.25, 0.6, size=n)[:, None]
        users = np.minimum(r.binomial(sessions, users_p), _SEAT_CAP[self.band][:, None])
        users = np.where(sessions > 0, np.maximum(users, 1), 0)
        events = r.poisson(sessions * r.uniform(2.0, 9.0, size=n)[:, None])
        self.usage_level = level
        self.sessions = sessions  # includes warm-up columns
        cums = np.concatenate([np.zeros((n, 1), dtype=np.int64), np.cumsum(sessions, axis=1)], axis=1)
        self.sessions_cum = cums
        written = alive[:, w:]
        d_idx, a_idx = np.nonzero(written.T)  # day-major order: day, then account
        self.usage_cells = (a_idx, d_idx)
        self.usage_vals = (users[:, w:][a_idx, d_idx], sessions[:, w:][a_idx, d_idx],
                           events[:, w:][a_idx, d_idx])

    def sessions_per_day_before(self, a: int, ts: int) -> float:
        """Mean sessions/day over the 30 days before ts's date (simulated warm-up included)."""
        d = (ts - self.start_ts) // DAY + self.WARMUP
        lo = max(0, d - 30)
        return float(self.sessions_cum[a, d] - self.sessions_cum[a, lo]) / 30.0

    # -- surveys -----------------------------------------------------------------------------------
    def surveys(self) -> None:
        """Survey sends and their answers: relational waves and renewals, then transactional surveys
        (onboarding, feature releases, support tickets) up to the responses target. Each kind draws
        from the one survey stream in this order."""
        sends = _SurveySends()
        self._relational_waves(sends)
        self._renewals(sends)
        self._onboarding(sends)
        remaining = max(0, self.cfg.responses_target - len(sends.cols["c"]))
        n_fr = round(0.35 * remaining)
        self._feature_releases(sends, n_fr)
        self._support_tickets(sends, remaining - n_fr)
        self.resp = self._answered(pd.DataFrame(sends.cols))

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
                if not self._exists(c, sent) or r.random() >= p:
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
                if self._exists(c, sent) and r.random() < 0.5:
                    sd = datetime.fromtimestamp(sent, UTC)
                    sends.add(c, a, f"NPS-REN-{sd:%Y-%m}", RELATIONAL, "renewal", "email", sent,
                              sent + self._delay("email"))

    def _onboarding(self, sends: _SurveySends) -> None:
        """Onboarding: contacts created during the range, ~3-5 weeks after creation."""
        r = self.r_srv
        for created in np.flatnonzero(self.c_created >= self.start_ts):
            c = int(created)
            sent = int(self.c_created[c]) + int(r.integers(21 * DAY, 35 * DAY))
            if self._exists(c, sent) and r.random() < 0.6:
                ch = "email" if r.random() < 0.6 else "in_app"
                sd = datetime.fromtimestamp(sent, UTC)
                sends.add(c, int(self.c_acc[c]), f"NPS-ONB-{sd:%Y-%m}", TRANSACTIONAL, "onboarding", ch, sent,
                          sent + self._delay(ch))

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

    def _owner_at(self, a: int, ts: int) -> int:
        owner = -1
        for row in self._acc_rows_by_account()[a]:
            if row["ts"] <= ts or owner < 0:
                owner = OWNERS.index(row["owner"])
        return owner

    def _acc_rows_by_account(self) -> list[list[dict[str, Any]]]:
        if not hasattr(self, "_rows_by_acc"):
            by: list[list[dict[str, Any]]] = [[] for _ in range(self.n)]
            for row in self.account_rows:
                by[row["a"]].append(row)
            self._rows_by_acc = by
        return self._rows_by_acc

    # -- comments ----------------------------------------------------------------------------------
    def comments(self) -> None:
        df = self.resp
        model = CommentModel(self.r_cmt)
        texts, keys, pii = [], [], []
        langs = []
        for row in df.itertuples(index=False):
            lang = str(self.c_lang[row.c]) if row.c >= 0 else "en"
            cat = (PROMOTER if row.score >= PROMOTER_MIN_SCORE else PASSIVE if row.score >= PASSIVE_MIN_SCORE
                   else DETRACTOR)
            ctx = {"plan": PLANS[row.plan], "trigger_event": row.trigger, "channel": row.channel,
                   "employee_band": EMPLOYEE_BANDS[self.band[row.a]], "tenure_days": row.tenure,
                   "language": lang}
            t, k, p = model.make(cat, int(row.q), ctx)
            texts.append(t)
            keys.append(k)
            pii.append(p)
            langs.append(lang)
        df["comment"] = texts
        df["theme_key"] = keys
        df["has_pii"] = pii
        df["language"] = langs

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
             ("activities", sim.activities)]
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
                          "has_pii": np.where(df["has_pii"], "true", "false")})
    _write_csv(truth, truth_dir / "comment_themes.csv")

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
            "accounts_total": sim.n,
            "accounts_created_in_range": int(sim.is_new.sum()),
            "accounts_churned": int(sim.churned.sum()),
            "contacts_total": sim.nc,
            "detractor_follow_up_plan": {k: int(buckets.get(k, 0))
                                         for k in FOLLOW_UP_BUCKETS},
        },
    }
