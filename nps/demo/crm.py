"""The CRM side of the demo simulation: accounts and their versions (plan, ARR, owner, churn),
contacts, and daily product usage, as a mixin of ``nps.demo.generator._Sim``. Each step draws from
its own random stream in a fixed order."""

from __future__ import annotations

import bisect
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

from nps.demo.world import (
    _ARR_RANGE,
    _FIRST_NAMES,
    _LAST_NAMES,
    _LEGAL,
    _NAME_CORE,
    _NAME_PREFIX,
    _PLAN_GIVEN_BAND,
    _REGION_OFFSET_H,
    _SEAT_CAP,
    _TLD,
    _USAGE_MEDIAN,
    _WEEKDAY_FACTOR,
    DAY,
    EMPLOYEE_BANDS,
    HOUR,
    INDUSTRIES,
    LEAVING_OWNER,
    OWNERS,
    PLANS,
    REGIONS,
    ROLES,
    _business_time,
    _epoch,
    _pick,
    _slug,
    add_months,
)

if TYPE_CHECKING:
    from nps.demo.generator import GeneratorConfig


class CrmSteps:
    """The accounts, contacts and usage steps, and the lookups over what they build (an account's
    plan/ARR, owner and recent usage as of a time)."""

    # set by _Sim.__init__
    cfg: GeneratorConfig
    r_acc: np.random.Generator
    r_con: np.random.Generator
    r_use: np.random.Generator
    start_ts: int
    end_ts: int
    n_days: int

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
