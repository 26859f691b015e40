"""Independent pandas implementation of the marts (docs/contracts.md section 4).

The integration tests compare the dbt marts against these frames. Everything here is computed
from the generated *source files* (the CSV drops of contracts.md section 1), never from the
warehouse; only the theme assignments (``nlp.comment_themes`` / ``nlp.themes``) are passed in,
because they are the output of the theme engine and not a source.

Usage::

    src = load_sources(sources_dir, start, end)
    nps_by_segment(src, Params())
    detractor_recovery(src, Params())
    theme_recurrence(src, comment_themes_df, themes_df, Params())
    compare_frames(actual_df, expected_df, keys=[...])

Choices where the contract leaves room (kept in one place so they are easy to revisit):

- "within N days" is inclusive: the next response counts when ``next - this <= 200 days``; an
  unlinked activity counts when ``created_at <= responded_at + 14 days``.
- Ties in ``responded_at`` are broken by ``response_id`` in code-point order (PostgreSQL "C"
  collation); ids from the demo generator sort the same under any collation.
- Rows that break the contract are rejected as the loader quarantines them (blank required
  value, unparseable timestamp/date/number, non-integer or negative count, score outside 0-10,
  timestamp more than 24 h in the future, comment over 5,000 characters). Identical duplicate rows
  collapse; rows sharing a primary key with different content are all rejected when they have the
  same interval value (one load batch), otherwise the earliest interval's row wins (the id loaded
  first). Rejected rows are listed in ``Sources.rejected`` (entity, key, reason).
- Every file is read, whatever its file date (the loader only looks at files dated within a day
  of its window, so a row dropped far from its date would be missing from the warehouse).
- ``arr`` is rounded to 2 decimals (``numeric(14, 2)`` in ``raw.accounts``).
- ``keywords`` are joined with ``Params.keywords_separator`` (", ").
"""

from __future__ import annotations

import datetime as dt
import io
import numbers
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

# --------------------------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Params:
    min_n: int = 30
    next_response_window_days: int = 200
    follow_up_window_days: int = 14
    theme_presence_min_mentions: int = 3
    usage_lookback_days: int = 30
    # arr_band: under_10k < 10k <= 10k_50k < 50k <= 50k_250k < 250k <= 250k_plus
    arr_band_bounds: tuple[float, float, float] = (10_000, 50_000, 250_000)
    # tenure_band on days since customer_since: 0_6m < 183 <= 6_12m < 365 <= 1_2y < 730 <= 2y_plus
    tenure_band_days: tuple[int, int, int] = (183, 365, 730)
    # usage_band on sessions per day: none == 0, low < 10, medium < 50, high >= 50
    usage_band_bounds: tuple[float, float] = (10, 50)
    keywords_separator: str = ", "


SEGMENT_TYPES = [
    "overall",
    "plan",
    "arr_band",
    "tenure_band",
    "industry",
    "region",
    "employee_band",
    "usage_band",
    "survey_type",
    "trigger_event",
]
FOLLOW_UP_BUCKETS = ["within_24h", "within_48h", "later", "never"]

NPS_COLUMNS = [
    "period_grain",
    "period_start",
    "segment_type",
    "segment_value",
    "responses",
    "promoters",
    "passives",
    "detractors",
    "nps",
    "margin_of_error",
    "revenue_weighted_nps",
    "below_min_n",
]
RECOVERY_COLUMNS = [
    "period_grain",
    "period_start",
    "follow_up_bucket",
    "detractors",
    "with_next_response",
    "recovered",
    "fully_recovered",
    "awaiting_next",
    "lost_to_churn",
    "recovery_rate",
]
THEME_COLUMNS = [
    "theme_id",
    "theme_label",
    "keywords",
    "quarter_start",
    "mentions",
    "detractor_mentions",
    "detractor_share",
    "arr_at_risk",
    "quarters_present",
    "current_streak",
    "first_seen_quarter",
    "last_seen_quarter",
    "status",
]

# --------------------------------------------------------------------------------------------
# Loading the source files
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Spec:
    attr: str
    columns: tuple[str, ...]
    interval: str
    key: tuple[str, ...]
    required: tuple[str, ...]
    timestamps: tuple[str, ...] = ()
    dates: tuple[str, ...] = ()
    ints: tuple[str, ...] = ()
    decimals: tuple[str, ...] = ()


SPECS: dict[str, _Spec] = {
    "survey_responses": _Spec(
        attr="responses",
        columns=(
            "response_id",
            "survey_id",
            "survey_type",
            "trigger_event",
            "account_id",
            "contact_id",
            "channel",
            "sent_at",
            "responded_at",
            "score",
            "comment",
            "language",
        ),
        interval="responded_at",
        key=("response_id",),
        required=("response_id", "account_id", "responded_at", "score"),
        timestamps=("sent_at", "responded_at"),
        ints=("score",),
    ),
    "accounts": _Spec(
        attr="accounts",
        columns=(
            "account_id",
            "name",
            "industry",
            "region",
            "employee_band",
            "plan",
            "arr",
            "currency",
            "customer_since",
            "owner",
            "churned_at",
            "updated_at",
        ),
        interval="updated_at",
        key=("account_id", "updated_at"),
        required=("account_id", "updated_at"),
        timestamps=("churned_at", "updated_at"),
        dates=("customer_since",),
        decimals=("arr",),
    ),
    "contacts": _Spec(
        attr="contacts",
        columns=("contact_id", "account_id", "email", "full_name", "role", "created_at", "updated_at"),
        interval="updated_at",
        key=("contact_id", "updated_at"),
        required=("contact_id", "account_id", "updated_at"),
        timestamps=("created_at", "updated_at"),
    ),
    "activities": _Spec(
        attr="activities",
        columns=(
            "activity_id",
            "account_id",
            "contact_id",
            "response_id",
            "activity_type",
            "created_at",
            "outcome",
        ),
        interval="created_at",
        key=("activity_id",),
        required=("activity_id", "account_id", "created_at"),
        timestamps=("created_at",),
    ),
    "usage_daily": _Spec(
        attr="usage",
        columns=("account_id", "usage_date", "active_users", "sessions", "core_events"),
        interval="usage_date",
        key=("account_id", "usage_date"),
        required=("account_id", "usage_date"),
        dates=("usage_date",),
        ints=("active_users", "sessions", "core_events"),
    ),
}

TS_DTYPE = "datetime64[us, UTC]"
DATE_DTYPE = "datetime64[us]"  # dates are kept as naive midnight timestamps


@dataclass
class Sources:
    """The typed, validated source rows. Timestamps are UTC; dates are naive midnight."""

    responses: pd.DataFrame
    accounts: pd.DataFrame
    contacts: pd.DataFrame
    activities: pd.DataFrame
    usage: pd.DataFrame
    rejected: pd.DataFrame = field(default_factory=pd.DataFrame)

    def __getitem__(self, name: str) -> pd.DataFrame:
        if name in SPECS:
            name = SPECS[name].attr
        return getattr(self, name)

    def keys(self) -> list[str]:
        return [spec.attr for spec in SPECS.values()]

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def items(self) -> list[tuple[str, pd.DataFrame]]:
        return [(k, self[k]) for k in self.keys()]


def _utc(value: dt.datetime | dt.date | str | pd.Timestamp) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _read_entity(sources_dir: Path, entity: str, spec: _Spec) -> pd.DataFrame:
    """All files of an entity as strings (null for empty fields). Files with the same header are
    concatenated and parsed once: thousands of small daily files parse much faster that way."""
    bodies: dict[str, list[str]] = {}
    for path in sorted((sources_dir / entity).glob(f"{entity}_*.csv")):
        text = path.read_text(encoding="utf-8-sig")
        header, _, body = text.partition("\n")
        if not header.strip():
            continue  # empty file
        if body and not body.endswith("\n"):
            body += "\n"
        bodies.setdefault(header.rstrip("\r"), []).append(body)
    frames = [
        pd.read_csv(
            io.StringIO(header + "\n" + "".join(parts)), dtype=str, keep_default_na=False, na_values=[""]
        )
        for header, parts in bodies.items()
    ]
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    for col in spec.columns:
        if col not in df.columns:
            df[col] = pd.Series(np.nan, index=df.index, dtype=str)
    return df


def _key_text(df: pd.DataFrame, spec: _Spec) -> list[str]:
    rows = df[list(spec.key)].itertuples(index=False)
    return ["|".join("" if pd.isna(v) else str(v) for v in row) for row in rows]


def _type_and_validate(
    df: pd.DataFrame, entity: str, spec: _Spec, now: pd.Timestamp, max_comment_chars: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Convert columns to their types; return (good rows, rejected rows with a reason).

    Rejected, as the loader quarantines them: blank required value, unparseable timestamp / date
    / number, non-integer or negative count, score outside 0-10, timestamp later than now + 24 h
    (date later than tomorrow), comment longer than ``max_comment_chars``."""
    reason = pd.Series(pd.NA, index=df.index, dtype="object")

    def flag(mask: pd.Series, why: str) -> None:
        reason[mask & reason.isna()] = why

    out = pd.DataFrame(index=df.index)
    for col in spec.columns:
        raw = df[col]
        typed = col in spec.timestamps + spec.dates + spec.ints + spec.decimals
        blank = raw.isna() | (raw.str.strip() == "")
        if col in spec.required:
            flag(blank, f"missing_{col}")
        if col in spec.timestamps:
            val = pd.to_datetime(raw.where(~blank), utc=True, format="ISO8601", errors="coerce").astype(
                TS_DTYPE
            )
            flag(val > now + pd.Timedelta(hours=24), f"future_{col}")
        elif col in spec.dates:
            val = pd.to_datetime(raw.where(~blank), format="%Y-%m-%d", errors="coerce").astype(DATE_DTYPE)
            flag(val > now.tz_convert(None).normalize() + pd.Timedelta(days=1), f"future_{col}")
        elif col in spec.ints:
            num = pd.to_numeric(raw.where(~blank), errors="coerce")
            flag(num.notna() & (num != np.floor(num)), f"non_integer_{col}")
            if col == "score":
                flag(num.notna() & ((num < 0) | (num > 10)), "score_out_of_range")
            else:
                flag(num < 0, f"negative_{col}")
            val = num.round().astype("Int64")
        elif col in spec.decimals:
            val = pd.to_numeric(raw.where(~blank), errors="coerce").round(2).astype("float64")
        else:
            val = raw.astype("object").where(raw.notna(), None)
            if col == "comment":
                flag(raw.str.len() > max_comment_chars, "comment_too_long")
        if typed:
            flag(~blank & val.isna(), f"unparseable_{col}")
        out[col] = val

    bad = reason.notna()
    rejected = pd.DataFrame({"entity": entity}, index=df.index[bad])
    rejected["key"] = _key_text(df.loc[bad], spec)
    rejected["reason"] = reason[bad]
    return out.loc[~bad].reset_index(drop=True), rejected


def _dedupe(df: pd.DataFrame, entity: str, spec: _Spec) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Collapse identical rows. Rows sharing a key with different content: those at the key's
    earliest interval value are all rejected when they still disagree (same load batch, nothing
    says which is right), else that one row is kept; rows at a later interval value are rejected
    (the loader keeps the id loaded first and quarantines the other interval's row)."""
    df = df.drop_duplicates(subset=list(spec.columns), keep="first").reset_index(drop=True)
    key = list(spec.key)
    conflict = df.duplicated(subset=key, keep=False)
    first_at = df.groupby(key, dropna=False)[spec.interval].transform("min")
    at_first = df[spec.interval] == first_at
    ambiguous = (
        conflict
        & at_first
        & df[at_first].duplicated(subset=key, keep=False).reindex(df.index, fill_value=False)
    )
    later = conflict & ~at_first
    drop = ambiguous | later
    rejected = pd.DataFrame({"entity": entity}, index=df.index[drop])
    rejected["key"] = _key_text(df.loc[drop], spec)
    rejected["reason"] = np.where(
        ambiguous[drop], "duplicate_id_different_content", "duplicate_id_other_interval"
    )
    return df.loc[~drop].reset_index(drop=True), rejected


def load_sources(
    sources_dir: Path | str,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    *,
    now: dt.datetime | None = None,
    max_comment_chars: int = 5000,
) -> Sources:
    """Read every ``<entity>/<entity>_*.csv`` below ``sources_dir`` into typed frames.

    With ``start``/``end`` only rows whose interval column is in ``[start, end)`` are kept
    (naive datetimes are taken as UTC; dates compare as midnight UTC). ``now`` (default: the
    current time) is the reference for the loader's "future timestamp" rule.
    """
    sources_dir = Path(sources_dir)
    now = _utc(now if now is not None else dt.datetime.now(dt.UTC))
    frames: dict[str, pd.DataFrame] = {}
    rejected = []
    for entity, spec in SPECS.items():
        raw = _read_entity(sources_dir, entity, spec)
        df, rej1 = _type_and_validate(raw, entity, spec, now, max_comment_chars)
        interval = df[spec.interval]
        if spec.interval in spec.dates:
            interval = interval.dt.tz_localize("UTC")
        keep = pd.Series(True, index=df.index)
        if start is not None:
            keep &= interval >= _utc(start)
        if end is not None:
            keep &= interval < _utc(end)
        df, rej2 = _dedupe(df.loc[keep].reset_index(drop=True), entity, spec)
        frames[spec.attr] = df
        rejected += [rej1, rej2]
    return Sources(**frames, rejected=pd.concat(rejected, ignore_index=True)[["entity", "key", "reason"]])


# --------------------------------------------------------------------------------------------
# Shared building blocks
# --------------------------------------------------------------------------------------------


def _month_start(ts: pd.Series) -> pd.Series:
    return ts.dt.tz_convert("UTC").dt.tz_localize(None).dt.to_period("M").dt.start_time.dt.date


def _quarter_start(ts: pd.Series) -> pd.Series:
    return ts.dt.tz_convert("UTC").dt.tz_localize(None).dt.to_period("Q").dt.start_time.dt.date


def _category(score: pd.Series) -> pd.Series:
    return pd.Series(
        np.select([score >= 9, score >= 7], ["promoter", "passive"], default="detractor"),
        index=score.index,
    )


def _account_attributes_as_of(responses: pd.DataFrame, accounts: pd.DataFrame) -> pd.DataFrame:
    """Per response (same index), the account version with the greatest updated_at <= responded_at,
    else the account's earliest version; all null when the account has no version at all."""
    attrs = ["industry", "region", "employee_band", "plan", "arr", "customer_since"]
    acc = accounts.sort_values(["updated_at", "account_id"], kind="stable")[
        ["account_id", "updated_at", *attrs]
    ]
    left = pd.DataFrame(
        {
            "_i": responses.index,
            "account_id": responses["account_id"],
            "responded_at": responses["responded_at"],
        }
    ).sort_values("responded_at", kind="stable")
    asof = pd.merge_asof(
        left, acc, left_on="responded_at", right_on="updated_at", by="account_id", direction="backward"
    ).set_index("_i")
    earliest = acc.groupby("account_id", sort=False).head(1).set_index("account_id")
    missing = asof["updated_at"].isna()
    fill = earliest.reindex(asof.loc[missing, "account_id"])
    fill.index = asof.index[missing]
    asof.loc[missing, attrs] = fill[attrs]
    return asof.loc[responses.index, attrs]


def _latest_account_version(accounts: pd.DataFrame) -> pd.DataFrame:
    return (
        accounts.sort_values("updated_at", kind="stable")
        .groupby("account_id")
        .tail(1)
        .set_index("account_id")
    )


def _band(values: pd.Series, bounds: tuple, labels: list[str]) -> pd.Series:
    """labels[i] for value < bounds[i] (first match), labels[-1] otherwise, 'unknown' for null."""
    conds = [values < b for b in bounds]
    out = pd.Series(np.select(conds, labels[:-1], default=labels[-1]), index=values.index, dtype=object)
    out[values.isna()] = "unknown"
    return out


def _usage_sessions_before(responses: pd.DataFrame, usage: pd.DataFrame, days: int) -> pd.Series:
    """Sum of sessions with usage_date in [d - days, d - 1], d = responded_at's UTC date.

    Uses a per-account cumulative sum and two as-of look-ups (sum up to d-1 minus sum up to
    d-days-1), so it is vectorised over responses."""
    u = usage.groupby(["account_id", "usage_date"], as_index=False)["sessions"].sum()
    u["sessions"] = u["sessions"].astype("float64")
    u = u.sort_values("usage_date", kind="stable")
    u["cum"] = u.groupby("account_id")["sessions"].cumsum()
    u = u[["account_id", "usage_date", "cum"]].astype({"account_id": object})
    day = (
        responses["responded_at"].dt.tz_convert("UTC").dt.tz_localize(None).dt.normalize().astype(DATE_DTYPE)
    )

    def cum_through(dates: pd.Series) -> pd.Series:
        q = pd.DataFrame({"_i": responses.index, "account_id": responses["account_id"], "usage_date": dates})
        q = q.sort_values("usage_date", kind="stable")
        m = pd.merge_asof(q, u, on="usage_date", by="account_id", direction="backward")
        return m.set_index("_i")["cum"].reindex(responses.index).fillna(0.0)

    return cum_through(day - pd.Timedelta(days=1)) - cum_through(day - pd.Timedelta(days=days + 1))


def enrich_responses(src: Sources, params: Params = Params()) -> pd.DataFrame:
    """Responses with category, periods and every segment attribute as of the response."""
    r = src.responses.reset_index(drop=True).copy()
    r["category"] = _category(r["score"])
    r["month_start"] = _month_start(r["responded_at"])
    r["quarter_start"] = _quarter_start(r["responded_at"])
    attrs = _account_attributes_as_of(r, src.accounts)
    for col in attrs.columns:
        r[col] = attrs[col]
    r["arr"] = pd.to_numeric(r["arr"]).astype("float64")

    r["arr_band"] = _band(r["arr"], params.arr_band_bounds, ["under_10k", "10k_50k", "50k_250k", "250k_plus"])
    resp_day = r["responded_at"].dt.tz_convert("UTC").dt.tz_localize(None).dt.normalize()
    since = pd.to_datetime(r["customer_since"])
    tenure_days = (resp_day - since).dt.days
    r["tenure_band"] = _band(tenure_days, params.tenure_band_days, ["0_6m", "6_12m", "1_2y", "2y_plus"])

    n = params.usage_lookback_days
    sessions = _usage_sessions_before(r, src.usage, n)
    low, medium = params.usage_band_bounds
    # compare the n-day sum with bound * n: same as sessions/day < bound, without float division
    r["usage_sessions_sum"] = sessions
    r["usage_band"] = np.select(
        [sessions == 0, sessions < low * n, sessions < medium * n], ["none", "low", "medium"], default="high"
    )
    for col in ["plan", "industry", "region", "employee_band", "survey_type", "trigger_event"]:
        r[col] = r[col].astype(object).where(r[col].notna(), "unknown")
    r["overall"] = "all"
    return r


# --------------------------------------------------------------------------------------------
# marts.nps_by_segment
# --------------------------------------------------------------------------------------------


def nps_by_segment(src: Sources, params: Params = Params()) -> pd.DataFrame:
    r = enrich_responses(src, params)
    r["is_p"] = (r["category"] == "promoter").astype(int)
    r["is_pa"] = (r["category"] == "passive").astype(int)
    r["is_d"] = (r["category"] == "detractor").astype(int)
    r["w"] = r["arr"].fillna(0.0)
    r["w_net"] = r["w"] * (r["is_p"] - r["is_d"])

    parts = []
    for grain, period_col in (("month", "month_start"), ("quarter", "quarter_start")):
        for seg in SEGMENT_TYPES:
            g = (
                r.groupby([period_col, seg], sort=True)
                .agg(
                    responses=("response_id", "size"),
                    promoters=("is_p", "sum"),
                    passives=("is_pa", "sum"),
                    detractors=("is_d", "sum"),
                    w=("w", "sum"),
                    w_net=("w_net", "sum"),
                )
                .reset_index()
                .rename(columns={period_col: "period_start", seg: "segment_value"})
            )
            g.insert(0, "period_grain", grain)
            g.insert(2, "segment_type", seg)
            parts.append(g)
    out = pd.concat(parts, ignore_index=True)
    n = out["responses"].astype(float)
    p = out["promoters"] / n
    d = out["detractors"] / n
    out["nps"] = 100.0 * (out["promoters"] - out["detractors"]) / n
    out["margin_of_error"] = 1.96 * np.sqrt(np.maximum(p + d - (p - d) ** 2, 0.0) / n) * 100.0
    out["revenue_weighted_nps"] = np.where(
        out["w"] != 0, 100.0 * out["w_net"] / out["w"].where(out["w"] != 0), np.nan
    )
    out["below_min_n"] = out["responses"] < params.min_n
    for c in ["responses", "promoters", "passives", "detractors"]:
        out[c] = out[c].astype("int64")
    out["segment_value"] = out["segment_value"].astype(object)
    return (
        out[NPS_COLUMNS]
        .sort_values(["period_grain", "period_start", "segment_type", "segment_value"])
        .reset_index(drop=True)
    )


# --------------------------------------------------------------------------------------------
# marts.detractor_recovery
# --------------------------------------------------------------------------------------------


def detractor_outcomes(src: Sources, params: Params = Params()) -> pd.DataFrame:
    """One row per detractor response with next response, first follow-up and outcome flags."""
    r = src.responses.reset_index(drop=True).copy()
    r["respondent"] = r["contact_id"].where(r["contact_id"].notna(), r["account_id"])
    r = r.sort_values(["respondent", "responded_at", "response_id"], kind="stable").reset_index(drop=True)
    by = r.groupby("respondent", sort=False)
    r["next_at"] = by["responded_at"].shift(-1)
    r["next_score"] = by["score"].shift(-1)
    r["next_response_id"] = by["response_id"].shift(-1)

    det = r[r["score"] <= 6].copy().reset_index(drop=True)
    window = pd.Timedelta(days=params.next_response_window_days)
    det["has_next"] = det["next_at"].notna() & ((det["next_at"] - det["responded_at"]) <= window)

    # First follow-up: linked to the response, or same account within the window, created_at >= responded_at
    acts = src.activities[["activity_id", "account_id", "response_id", "created_at"]]
    linked = det[["response_id", "responded_at"]].merge(acts[["response_id", "created_at"]], on="response_id")
    linked = linked[linked["created_at"] >= linked["responded_at"]].groupby("response_id")["created_at"].min()

    q = det[["response_id", "account_id", "responded_at"]].sort_values("responded_at", kind="stable")
    a = acts[["account_id", "created_at"]].sort_values("created_at", kind="stable")
    same = pd.merge_asof(
        q, a, left_on="responded_at", right_on="created_at", by="account_id", direction="forward"
    )
    fw = pd.Timedelta(days=params.follow_up_window_days)
    same = same[same["created_at"].notna() & (same["created_at"] <= same["responded_at"] + fw)]
    same = same.set_index("response_id")["created_at"]

    first = pd.concat([linked, same]).groupby(level=0).min()
    det["first_follow_up_at"] = det["response_id"].map(first).astype(TS_DTYPE)
    det["follow_up_hours"] = (det["first_follow_up_at"] - det["responded_at"]) / pd.Timedelta(hours=1)
    h = det["follow_up_hours"]
    det["follow_up_bucket"] = np.select(
        [h.isna(), h <= 24, h <= 48], ["never", "within_24h", "within_48h"], default="later"
    )

    churned = _latest_account_version(src.accounts)["churned_at"]
    det["churned_at"] = det["account_id"].map(churned).astype(TS_DTYPE)
    det["recovered"] = det["has_next"] & (det["next_score"] >= 7)
    det["fully_recovered"] = det["has_next"] & (det["next_score"] >= 9)
    det["lost_to_churn"] = (
        ~det["has_next"] & det["churned_at"].notna() & (det["churned_at"] >= det["responded_at"])
    )
    det["awaiting_next"] = ~det["has_next"] & ~det["lost_to_churn"]
    det["month_start"] = _month_start(det["responded_at"])
    det["quarter_start"] = _quarter_start(det["responded_at"])
    for c in ["recovered", "fully_recovered", "lost_to_churn", "awaiting_next", "has_next"]:
        det[c] = det[c].fillna(False).astype(bool)
    return det


def detractor_recovery(src: Sources, params: Params = Params()) -> pd.DataFrame:
    det = detractor_outcomes(src, params)
    parts = []
    for grain, period_col in (("month", "month_start"), ("quarter", "quarter_start")):
        g = det.groupby([period_col, "follow_up_bucket"]).agg(
            detractors=("response_id", "size"),
            with_next_response=("has_next", "sum"),
            recovered=("recovered", "sum"),
            fully_recovered=("fully_recovered", "sum"),
            awaiting_next=("awaiting_next", "sum"),
            lost_to_churn=("lost_to_churn", "sum"),
        )
        full = pd.MultiIndex.from_product(
            [sorted(det[period_col].unique()), FOLLOW_UP_BUCKETS], names=[period_col, "follow_up_bucket"]
        )
        g = g.reindex(full, fill_value=0).reset_index().rename(columns={period_col: "period_start"})
        g.insert(0, "period_grain", grain)
        parts.append(g)
    cols = [
        "detractors",
        "with_next_response",
        "recovered",
        "fully_recovered",
        "awaiting_next",
        "lost_to_churn",
    ]
    if not parts or det.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in RECOVERY_COLUMNS})
    out = pd.concat(parts, ignore_index=True)
    for c in cols:
        out[c] = out[c].astype("int64")
    wn = out["with_next_response"]
    out["recovery_rate"] = (out["recovered"] / wn.where(wn > 0)).astype("float64")
    return (
        out[RECOVERY_COLUMNS]
        .sort_values(["period_grain", "period_start", "follow_up_bucket"])
        .reset_index(drop=True)
    )


# --------------------------------------------------------------------------------------------
# marts.theme_recurrence
# --------------------------------------------------------------------------------------------


def _keywords_text(value: object, sep: str) -> object:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("{") and text.endswith("}"):  # PostgreSQL array literal
            return sep.join(p.strip().strip('"') for p in text[1:-1].split(",") if p.strip())
        return text
    return sep.join(str(v) for v in value)  # list / tuple / ndarray


def theme_recurrence(
    src: Sources,
    comment_themes: pd.DataFrame,
    themes: pd.DataFrame,
    params: Params = Params(),
) -> pd.DataFrame:
    r = src.responses.reset_index(drop=True).copy()
    r["quarter_start"] = _quarter_start(r["responded_at"])
    r["arr"] = pd.to_numeric(_account_attributes_as_of(r, src.accounts)["arr"]).astype("float64")

    active = themes[themes["status"] == "active"].copy()
    active["theme_id"] = active["theme_id"].astype("int64")
    ct = comment_themes[["response_id", "theme_id"]].dropna(subset=["theme_id"]).copy()
    ct["theme_id"] = ct["theme_id"].astype("int64")
    ct["response_id"] = ct["response_id"].astype(str)
    m = ct.merge(
        r[["response_id", "account_id", "responded_at", "score", "arr", "quarter_start"]], on="response_id"
    )
    m = m[m["theme_id"].isin(active["theme_id"])]
    m["is_d"] = m["score"] <= 6

    empty = pd.DataFrame({c: pd.Series(dtype=object) for c in THEME_COLUMNS})
    if m.empty:
        return empty
    latest_q = pd.Period(max(r["quarter_start"]), freq="Q")

    counts = m.groupby(["theme_id", "quarter_start"]).agg(
        mentions=("response_id", "size"), detractor_mentions=("is_d", "sum")
    )
    d = m[m["is_d"]].sort_values(["responded_at", "response_id"], kind="stable")
    last_per_account = d.groupby(["theme_id", "quarter_start", "account_id"]).tail(1)
    arr_risk = (
        last_per_account["arr"]
        .fillna(0.0)
        .groupby([last_per_account["theme_id"], last_per_account["quarter_start"]])
        .sum()
    )

    rows = []
    k = params.theme_presence_min_mentions
    labels = active.set_index("theme_id")
    for theme_id, first_q in m.groupby("theme_id")["quarter_start"].min().items():
        present_before = 0
        prev_present = False
        streak = 0
        first_seen = last_seen = None
        for period in pd.period_range(pd.Period(first_q, freq="Q"), latest_q, freq="Q"):
            q = period.start_time.date()
            mentions = int(counts["mentions"].get((theme_id, q), 0))
            det_mentions = int(counts["detractor_mentions"].get((theme_id, q), 0))
            present = mentions >= k
            if present:
                status = "new" if present_before == 0 else ("recurring" if prev_present else "re-emerged")
                streak += 1
                present_before += 1
                first_seen = first_seen or q
                last_seen = q
            else:
                status = "resolved" if prev_present else "absent"
                streak = 0
            rows.append(
                {
                    "theme_id": int(theme_id),
                    "theme_label": labels.at[theme_id, "label"],
                    "keywords": _keywords_text(labels.at[theme_id, "keywords"], params.keywords_separator),
                    "quarter_start": q,
                    "mentions": mentions,
                    "detractor_mentions": det_mentions,
                    "detractor_share": det_mentions / mentions if mentions else np.nan,
                    "arr_at_risk": float(arr_risk.get((theme_id, q), 0.0)),
                    "quarters_present": present_before,
                    "current_streak": streak,
                    "first_seen_quarter": first_seen,
                    "last_seen_quarter": last_seen,
                    "status": status,
                }
            )
            prev_present = present
    out = pd.DataFrame(rows, columns=THEME_COLUMNS)
    for c in ["theme_id", "mentions", "detractor_mentions", "quarters_present", "current_streak"]:
        out[c] = out[c].astype("int64")
    for c in ["detractor_share", "arr_at_risk"]:
        out[c] = out[c].astype("float64")
    return out.sort_values(["theme_id", "quarter_start"]).reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# Comparing frames
# --------------------------------------------------------------------------------------------


def _is_null(v: object) -> bool:
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    try:
        return bool(isinstance(v, float | np.floating) and np.isnan(v))
    except TypeError:
        return False


def _norm(v: object) -> object:
    """Normalise a value so that equal values from pandas and from a DB driver compare equal."""
    if _is_null(v):
        return None
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, pd.Timestamp):
        v = v.to_pydatetime()
    if isinstance(v, dt.datetime) and v.tzinfo is not None and v.utcoffset() == dt.timedelta(0):
        v = v.replace(tzinfo=None)  # periods are UTC: 2025-01-01 00:00+00 is the date 2025-01-01
    if isinstance(v, dt.datetime) and v.tzinfo is None and v.time() == dt.time(0):
        return v.date()
    if isinstance(v, bool):
        return v
    if isinstance(v, numbers.Integral):
        return int(v)
    if isinstance(v, numbers.Real) and float(v).is_integer():
        return int(v)
    if isinstance(v, list | tuple | np.ndarray):
        return tuple(_norm(x) for x in v)
    return v


def _numeric_column(s: pd.Series) -> bool:
    if s.dtype.kind in "iuf":
        return True
    vals = [v for v in s if not _is_null(v)]
    return bool(vals) and all(isinstance(v, numbers.Number) and not isinstance(v, bool) for v in vals)


def compare_frames(
    actual: pd.DataFrame,
    expected: pd.DataFrame,
    keys: list[str],
    rtol: float = 1e-9,
    atol: float = 1e-6,
    max_report: int = 10,
) -> None:
    """Assert ``actual`` equals ``expected`` row by row, aligned on ``keys``.

    Same set of key tuples and same columns; numeric columns compare with tolerance
    (null == null), the rest exactly after normalising (numpy scalars, midnight timestamps vs
    dates, NaN/None/NaT). Raises AssertionError with a readable report."""
    problems: list[str] = []
    missing_cols = [c for c in expected.columns if c not in actual.columns]
    extra_cols = [c for c in actual.columns if c not in expected.columns]
    if missing_cols or extra_cols:
        problems.append(f"columns differ: missing in actual {missing_cols}, extra in actual {extra_cols}")

    def keyed(df: pd.DataFrame, name: str) -> pd.DataFrame:
        k = pd.Series(
            [tuple(_norm(v) for v in row) for row in df[keys].itertuples(index=False)], index=df.index
        )
        dup = k[k.duplicated()]
        if len(dup):
            problems.append(f"{name} has {len(dup)} duplicate key(s), e.g. {list(dup.head(max_report))}")
        out = df.copy()
        out.index = pd.Index(k, tupleize_cols=False)
        return out[~out.index.duplicated()]

    a = keyed(actual, "actual")
    e = keyed(expected, "expected")
    a_keys, e_keys = set(a.index), set(e.index)
    missing = sorted(e_keys - a_keys, key=repr)
    extra = sorted(a_keys - e_keys, key=repr)
    if missing:
        problems.append(f"{len(missing)} key(s) {keys} missing in actual: {missing[:max_report]}")
    if extra:
        problems.append(f"{len(extra)} key(s) {keys} extra in actual: {extra[:max_report]}")

    common = [k for k in e.index if k in a_keys]
    mismatches: list[str] = []
    n_mismatch = 0
    for col in [c for c in expected.columns if c in actual.columns and c not in keys]:
        ev = e.loc[common, col]
        av = a.loc[common, col]
        if (
            _numeric_column(ev)
            and _numeric_column(av)
            or ((_numeric_column(ev) or _numeric_column(av)) and (ev.isna().all() or av.isna().all()))
        ):
            ef = pd.to_numeric(
                ev.astype(object).map(lambda v: None if _is_null(v) else float(v)), errors="coerce"
            )
            af = pd.to_numeric(
                av.astype(object).map(lambda v: None if _is_null(v) else float(v)), errors="coerce"
            )
            ef, af = ef.to_numpy(dtype=float), af.to_numpy(dtype=float)
            both_nan = np.isnan(ef) & np.isnan(af)
            close = np.isclose(af, ef, rtol=rtol, atol=atol) | both_nan
            bad = np.flatnonzero(~close)
        else:
            bad = np.flatnonzero([_norm(x) != _norm(y) for x, y in zip(av, ev, strict=True)])
        n_mismatch += len(bad)
        for i in bad[: max(0, max_report - len(mismatches))]:
            mismatches.append(
                f"  key={common[i]!r} column={col!r}: actual={av.iloc[i]!r} expected={ev.iloc[i]!r}"
            )
    if n_mismatch:
        problems.append(
            f"{n_mismatch} value mismatch(es); first {len(mismatches)}:\n" + "\n".join(mismatches)
        )
    if problems:
        raise AssertionError(
            f"frames differ (actual {len(actual)} rows, expected {len(expected)} rows):\n"
            + "\n".join(problems)
        )
