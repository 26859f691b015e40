"""Independent pandas implementation of the marts (docs/contracts.md section 4).

The integration tests compare the dbt marts against these frames. Everything here is computed
from the generated *source files* (the CSV drops of contracts.md section 1), never from the
warehouse; only the theme assignments (``nlp.comment_themes`` / ``nlp.themes``) are passed in,
because they are the output of the theme engine and not a source; the engine's sentiment per comment
(``nlp.comment_sentiment``) rides along as a ``sentiment`` column of the comment_themes frame.

Usage::

    src = load_sources(sources_dir, start, end)
    nps_by_segment(src, Params(), as_of=...)
    detractor_recovery(src, Params(), as_of=...)
    theme_recurrence(src, comment_themes_df, themes_df, Params(), as_of=...)
    theme_alerts(src, comment_themes_df, themes_df, Params(), as_of=...)
    detractor_queue(src, comment_themes_df, themes_df, Params(), as_of=...)
    account_nps_trajectory(src, Params(), as_of=...)
    nps_outcomes(src, Params(), as_of=...)
    survey_eligibility(src, Params(), as_of=...)
    compare_frames(actual_df, expected_df, keys=MART_KEYS[name])

Every mart describes what is known at ``as_of`` (default: the UTC midnight after the latest
response): responses, account / contact versions and activities with their timestamp before it.

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
- Comments shown in a mart (queue, alert samples) are PII-redacted as the loader stores them.
- A theme's mentions include the comments of themes merged into it (``merged_into`` chains); the
  label shown is a person's ``human_label`` when there is one.
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

from nps import contracts

# --------------------------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Params:
    min_n: int = 30
    next_response_window_days: int = 200
    follow_up_window_days: int = 14
    follow_up_fast_hours: float = 24
    follow_up_slow_hours: float = 48
    theme_presence_min_mentions: int = 3
    usage_lookback_days: int = 30
    # arr_band: under_10k < 10k <= 10k_50k < 50k <= 50k_250k < 250k <= 250k_plus
    arr_band_bounds: tuple[float, float, float] = (10_000, 50_000, 250_000)
    # tenure_band on days since customer_since: 0_6m < 183 <= 6_12m < 365 <= 1_2y < 730 <= 2y_plus
    tenure_band_days: tuple[int, int, int] = (183, 365, 730)
    # usage_band on sessions per day: none == 0, low < 10, medium < 50, high >= 50
    usage_band_bounds: tuple[float, float] = (10, 50)
    keywords_separator: str = ", "
    # a theme nobody decided about is actionable when this share of its mentions are detractors
    theme_actionable_min_detractor_share: float = 0.3
    theme_alert_min_detractor_mentions: int = 10
    theme_alert_sample_comments: int = 3
    queue_max_age_days: int = 14
    queue_high_value_arr: float = 50_000
    theme_impact_segment_types: tuple[str, ...] = ("overall", "plan", "arr_band")
    promoter_queue_max_age_days: int = 30
    promoter_ask_cooldown_days: int = 90
    promoter_ask_outcomes: tuple[str, ...] = ("referral_requested", "review_requested", "case_study_requested")
    #: None: an ask may be any activity type
    promoter_ask_activity_types: tuple[str, ...] | None = None
    trajectory_last_scores: int = 3
    outcome_horizons_days: tuple[int, ...] = (90, 180)
    fatigue_relational_days: int = 90
    fatigue_transactional_days: int = 60
    # survey sends: an unlinked send is answered by a response of its survey and contact within this
    send_response_window_days: int = 30
    # nps_by_segment: representative (post-stratified) NPS and the significance of changes
    representative_strata: tuple[str, ...] = ("plan", "region")
    representative_weighting: str = "accounts"  # or "arr"
    representative_min_stratum_responses: int = 5
    nps_change_fdr: float = 0.05


# the contract's vocabularies (nps/contracts.py): the metrics below are computed independently of
# the SQL, the names they are reported under are the contract's
SEGMENT_TYPES = list(contracts.SEGMENT_TYPES)
FOLLOW_UP_BUCKETS = list(contracts.FOLLOW_UP_BUCKETS)

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
    "previous_period_start",
    "previous_responses",
    "previous_nps",
    "nps_change",
    "change_margin_of_error",
    "change_exceeds_margin_of_error",
    "change_p_value",
    "change_is_significant",
    "representative_nps",
    "representative_margin_of_error",
    "representative_design_effect",
    "representative_responses",
    "population_accounts",
    "representative_population",
    "representative_weighting",
    "sends",
    "responses_to_sends",
    "response_rate",
]
#: segment types that are account attributes: their representative NPS is weighted to the active
#: accounts in the segment; the others (overall, usage_band, survey_type, trigger_event) to all
ACCOUNT_SEGMENT_TYPES = ("plan", "arr_band", "tenure_band", "industry", "region", "employee_band", "account_owner")
RECOVERY_COLUMNS = [
    "period_grain",
    "period_start",
    "segment_type",
    "segment_value",
    "follow_up_bucket",
    "detractors",
    "with_next_response",
    "recovered",
    "fully_recovered",
    "awaiting_next",
    "lost_to_churn",
    "recovery_rate",
    "full_recovery_rate",
    "median_hours_to_first_follow_up",
    "segment_median_hours_to_first_follow_up",
    "sla_24h_attainment",
    "sla_48h_attainment",
]
THEME_COLUMNS = [
    "theme_id",
    "theme_level",
    "parent_theme_id",
    "parent_theme_label",
    "is_no_feedback",
    "theme_label",
    "keywords",
    "is_actionable",
    "actionability_source",
    "quarter_start",
    "mentions",
    "promoter_mentions",
    "passive_mentions",
    "detractor_mentions",
    "detractor_share",
    "promoter_mention_share",
    "detractor_mention_share",
    "negative_share",
    "positive_share",
    "arr_at_risk",
    "quarters_present",
    "current_streak",
    "first_seen_quarter",
    "last_seen_quarter",
    "status",
]
IMPACT_COLUMNS = [
    "theme_id",
    "theme_level",
    "quarter_start",
    "segment_type",
    "segment_value",
    "theme_label",
    "is_no_feedback",
    "respondents",
    "mentioners",
    "promoter_mentioners",
    "detractor_mentioners",
    "mention_share",
    "segment_nps",
    "nps_mentioners",
    "mentioners_margin_of_error",
    "nps_non_mentioners",
    "non_mentioners_margin_of_error",
    "nps_difference",
    "difference_margin_of_error",
    "difference_exceeds_margin_of_error",
    "nps_points_at_stake",
    "detractor_arr",
    "negative_share",
    "positive_share",
    "priority_quadrant",
    "priority_rank",
]
PASSIVE_COLUMNS = [
    "period_grain",
    "period_start",
    "segment_type",
    "segment_value",
    "passives",
    "with_next_response",
    "converted",
    "still_passive",
    "slipped",
    "awaiting_next",
    "lost_to_churn",
    "conversion_rate",
    "slip_rate",
]
PROMOTER_QUEUE_COLUMNS = [
    "response_id",
    "account_id",
    "contact_id",
    "queue_position",
    "account_name",
    "plan",
    "account_arr",
    "account_owner",
    "score",
    "survey_type",
    "trigger_event",
    "comment",
    "responded_at",
    "days_since_response",
    "theme_id",
    "theme_label",
    "last_asked_at",
    "as_of",
]
QUEUE_COLUMNS = [
    "response_id",
    "account_id",
    "contact_id",
    "queue_position",
    "priority_quadrant",
    "priority_rank",
    "account_name",
    "plan",
    "account_arr",
    "is_high_value",
    "account_owner",
    "score",
    "survey_type",
    "trigger_event",
    "comment",
    "responded_at",
    "theme_id",
    "theme_label",
    "theme_is_actionable",
    "is_actionable",
    "actionability_source",
    "follow_up_due_at",
    "is_sla_breached",
    "hours_open",
    "as_of",
]
ALERT_COLUMNS = [
    "theme_id",
    "month_start",
    "theme_level",
    "parent_theme_id",
    "parent_theme_label",
    "theme_label",
    "keywords",
    "is_actionable",
    "actionability_source",
    "mentions",
    "detractor_mentions",
    "detractor_share",
    "alert_threshold",
    "previous_month_detractor_mentions",
    "is_new_alert",
    "first_alert_month",
    "accounts_affected",
    "arr_at_risk",
    "first_detractor_mention_at",
    "last_detractor_mention_at",
    "sample_comments",
    "sample_response_ids",
]
TRAJECTORY_COLUMNS = [
    "account_id",
    "account_name",
    "plan",
    "arr",
    "account_owner",
    "is_churned",
    "responses",
    "first_response_at",
    "last_response_at",
    "days_since_last_response",
    "last_score",
    "last_nps_category",
    "previous_score",
    "previous_nps_category",
    "score_change",
    "trend",
    "last_scores",
    "trajectory",
    "as_of",
]
OUTCOME_COLUMNS = [
    "horizon_days",
    "segment_type",
    "segment_value",
    "nps_category",
    "responses",
    "distinct_accounts",
    "churned",
    "churn_rate",
    "expanded",
    "expansion_rate",
    "contracted",
    "contraction_rate",
    "arr_at_response",
    "arr_retained",
    "net_revenue_retention",
    "below_min_n",
]
ELIGIBILITY_COLUMNS = [
    "contact_id",
    "account_id",
    "contact_role",
    "account_name",
    "plan",
    "account_owner",
    "last_relational_survey_at",
    "last_transactional_survey_at",
    "is_relational_fatigued",
    "is_transactional_fatigued",
    "is_account_churned",
    "is_eligible",
    "eligible_from",
    "as_of",
]
#: mart name -> its grain (the keys compare_frames aligns on)
MART_KEYS: dict[str, list[str]] = {
    "nps_by_segment": ["period_grain", "period_start", "segment_type", "segment_value"],
    "detractor_recovery": ["period_grain", "period_start", "segment_type", "segment_value", "follow_up_bucket"],
    "theme_recurrence": ["theme_id", "quarter_start"],
    "theme_impact": ["theme_id", "quarter_start", "segment_type", "segment_value"],
    "detractor_queue": ["response_id"],
    "passive_movement": ["period_grain", "period_start", "segment_type", "segment_value"],
    "promoter_queue": ["response_id"],
    "theme_alerts": ["theme_id", "month_start"],
    "account_nps_trajectory": ["account_id"],
    "nps_outcomes": ["horizon_days", "segment_type", "segment_value", "nps_category"],
    "survey_eligibility": ["contact_id"],
}

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
    #: code columns whose other values are rejected as invalid_<column> (a blank value is allowed)
    enums: dict[str, tuple[str, ...]] = field(default_factory=dict)


# Where the typed frames go on Sources; the columns, kinds, keys and required columns are the
# contract's (nps/contracts.py), validated here by an independent pandas implementation.
_ATTRS = {"survey_responses": "responses", "accounts": "accounts", "contacts": "contacts",
          "activities": "activities", "usage_daily": "usage", "survey_sends": "sends"}
#: optional entities whose folder may be missing: then not available (None), as a source left out of
#: sources.yml and never loaded (the other optional entities read as empty frames, as before)
_OPTIONAL_FOLDERS = ("survey_sends",)


def _spec(entity: str, contract: contracts.EntitySpec) -> _Spec:
    def of(*kinds: str) -> tuple[str, ...]:
        return tuple(c for c, kind in contract.columns.items() if kind in kinds)

    return _Spec(
        attr=_ATTRS[entity], columns=tuple(contract.columns), interval=contract.interval_column,
        key=contract.key, required=tuple(c for c in contract.columns if c in contract.required),
        timestamps=of(contracts.TIMESTAMP), dates=of(contracts.DATE), ints=of(contracts.SCORE, contracts.INT),
        decimals=of(contracts.NUMERIC),
        enums={c: contract.enums[c] for c in sorted(contract.enforced_enums)},
    )


SPECS: dict[str, _Spec] = {entity: _spec(entity, spec) for entity, spec in contracts.SPECS.items()}

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
    #: survey sends (optional): None when the source dir has no survey_sends folder (not available)
    sends: pd.DataFrame | None = None

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


NULL_TOKENS = frozenset({"na", "n/a", "null", "-"})


def _type_and_validate(
    df: pd.DataFrame, entity: str, spec: _Spec, now: pd.Timestamp, max_comment_chars: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Convert columns to their types; return (good rows, rejected rows with a reason).

    Rejected, as the loader quarantines them: blank required value, unparseable timestamp / date
    / number, non-integer or negative count, score outside 0-10, timestamp later than now + the
    contract's tolerance (24 h; a date later than tomorrow), comment longer than ``max_comment_chars``."""
    reason = pd.Series(pd.NA, index=df.index, dtype="object")

    def flag(mask: pd.Series, why: str) -> None:
        reason[mask & reason.isna()] = why

    out = pd.DataFrame(index=df.index)
    for col in spec.columns:
        raw = df[col]
        typed = col in spec.timestamps + spec.dates + spec.ints + spec.decimals
        if typed or col == "comment":  # the contract's null tokens: no value in typed and free-text columns
            raw = raw.where(~raw.str.strip().str.casefold().isin(NULL_TOKENS), "")
        blank = raw.isna() | (raw.str.strip() == "")
        if col in spec.required:
            flag(blank, f"missing_{col}")
        if col in spec.enums:
            raw = raw.str.strip()
            flag(~blank & ~raw.isin(spec.enums[col]), f"invalid_{col}")
        if col in spec.timestamps:
            val = pd.to_datetime(raw.where(~blank), utc=True, format="ISO8601", errors="coerce").astype(
                TS_DTYPE
            )
            flag(val > now + pd.Timedelta(hours=contracts.FUTURE_TOLERANCE_HOURS), f"future_{col}")
        elif col in spec.dates:
            val = pd.to_datetime(raw.where(~blank), format="%Y-%m-%d", errors="coerce").astype(DATE_DTYPE)
            flag(val > now.tz_convert(None).normalize() + pd.Timedelta(days=contracts.FUTURE_DATE_TOLERANCE_DAYS),
                 f"future_{col}")
        elif col in spec.ints:
            num = pd.to_numeric(raw.where(~blank), errors="coerce")
            flag(num.notna() & (num != np.floor(num)), f"non_integer_{col}")
            if col == "score":
                flag(num.notna() & ((num < contracts.SCORE_MIN) | (num > contracts.SCORE_MAX)), "score_out_of_range")
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
    max_comment_chars: int = contracts.MAX_COMMENT_CHARS,
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
        if entity in _OPTIONAL_FOLDERS and not (sources_dir / entity).is_dir():
            continue  # not available: frames[spec.attr] stays None
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
# "As of": what the warehouse knows at the reference time of a build
# --------------------------------------------------------------------------------------------


def default_as_of(src: Sources) -> pd.Timestamp | None:
    """The UTC midnight after the latest response (dbt's default when var as_of is unset)."""
    if src.responses.empty:
        return None
    return src.responses["responded_at"].max().floor("D") + pd.Timedelta(days=1)


def known_at(src: Sources, as_of: dt.datetime | pd.Timestamp | str) -> Sources:
    """The rows known before ``as_of``: responses by responded_at, account and contact versions by
    updated_at, activities by created_at, survey sends by sent_at (usage is only read for days
    before a response or a send)."""
    t = _utc(as_of)
    return Sources(
        responses=src.responses[src.responses["responded_at"] < t].reset_index(drop=True),
        accounts=src.accounts[src.accounts["updated_at"] < t].reset_index(drop=True),
        contacts=src.contacts[src.contacts["updated_at"] < t].reset_index(drop=True),
        activities=src.activities[src.activities["created_at"] < t].reset_index(drop=True),
        usage=src.usage,
        rejected=src.rejected,
        sends=None if src.sends is None else src.sends[src.sends["sent_at"] < t].reset_index(drop=True),
    )


def _resolve_as_of(src: Sources, as_of: object) -> tuple[Sources, pd.Timestamp]:
    t = default_as_of(src) if as_of is None else _utc(as_of)
    return known_at(src, t), t


# --------------------------------------------------------------------------------------------
# Shared building blocks
# --------------------------------------------------------------------------------------------


def _as_loaded(comments: pd.Series) -> pd.Series:
    """Comments as the loader stores them: e-mail addresses and phone numbers replaced by the
    loader's own scrubber (its behaviour is tested in tests/test_extract.py; here it is part of
    the raw contract, not of a mart's logic)."""
    from nlp.text import redact_pii

    return comments.map(lambda c: redact_pii(c) if isinstance(c, str) else c)


def _month_start(ts: pd.Series) -> pd.Series:
    return ts.dt.tz_convert("UTC").dt.tz_localize(None).dt.to_period("M").dt.start_time.dt.date


def _quarter_start(ts: pd.Series) -> pd.Series:
    return ts.dt.tz_convert("UTC").dt.tz_localize(None).dt.to_period("Q").dt.start_time.dt.date


def _category(score: pd.Series) -> pd.Series:
    return pd.Series(
        np.select([score >= 9, score >= 7], ["promoter", "passive"], default="detractor"),
        index=score.index,
    )


ACCOUNT_ATTRIBUTES = ["name", "industry", "region", "employee_band", "plan", "arr", "customer_since", "owner"]


def _account_as_of(account_id: pd.Series, at: pd.Series, accounts: pd.DataFrame) -> pd.DataFrame:
    """Per row (same index), the account version with the greatest updated_at <= at, else the
    account's earliest version; all null when the account has no version at all."""
    attrs = ACCOUNT_ATTRIBUTES
    acc = accounts.sort_values(["updated_at", "account_id"], kind="stable")[["account_id", "updated_at", *attrs]]
    left = pd.DataFrame({"_i": account_id.index, "account_id": account_id, "at": at}).sort_values(
        "at", kind="stable"
    )
    asof = pd.merge_asof(
        left, acc, left_on="at", right_on="updated_at", by="account_id", direction="backward"
    ).set_index("_i")
    earliest = acc.groupby("account_id", sort=False).head(1).set_index("account_id")
    missing = asof["updated_at"].isna()
    fill = earliest.reindex(asof.loc[missing, "account_id"])
    fill.index = asof.index[missing]
    asof.loc[missing, attrs] = fill[attrs]
    out = asof.loc[account_id.index, attrs]
    out["arr"] = pd.to_numeric(out["arr"]).astype("float64")
    return out


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


def enrich_responses(src: Sources, params: Params = Params(), as_of: object = None) -> pd.DataFrame:
    """Responses known at as_of with category, periods and every segment attribute as of the response."""
    src, as_of = _resolve_as_of(src, as_of)
    r = src.responses.reset_index(drop=True).copy()
    r["category"] = _category(r["score"])
    r["respondent"] = r["contact_id"].where(r["contact_id"].notna(), r["account_id"])
    r["surveyed_at"] = r["sent_at"].where(r["sent_at"].notna(), r["responded_at"])
    r["month_start"] = _month_start(r["responded_at"])
    r["quarter_start"] = _quarter_start(r["responded_at"])
    attrs = _account_as_of(r["account_id"], r["responded_at"], src.accounts)
    for col in attrs.columns:
        r["account_name" if col == "name" else "account_owner" if col == "owner" else col] = attrs[col]

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
    for col in ["plan", "industry", "region", "employee_band", "survey_type", "trigger_event", "account_owner"]:
        r[col] = r[col].astype(object).where(r[col].notna(), "unknown")
    r["overall"] = "all"
    return r


def _nps_variance(p: object, d: object, n: object) -> object:
    """Variance of the NPS estimate in proportions (of the +1 / 0 / -1 score's mean): the one formula
    behind every margin of error, z-test and design effect here."""
    return np.maximum(p + d - (p - d) ** 2, 0.0) / n  # type: ignore[operator]


def _segment_rows(r: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """One row per response and segment type (segment_type, segment_value) with ``columns``."""
    return r.melt(id_vars=columns, value_vars=SEGMENT_TYPES, var_name="segment_type", value_name="segment_value")


def _shift_period(starts: pd.Series, grains: pd.Series, sign: int = -1) -> pd.Series:
    """The calendar period before (sign -1) each period start: a month or a quarter earlier."""
    return pd.Series(
        [
            (pd.Timestamp(s) + pd.DateOffset(months=sign * (1 if g == "month" else 3))).date()
            for s, g in zip(starts, grains, strict=True)
        ],
        index=starts.index,
        dtype=object,
    )


# --------------------------------------------------------------------------------------------
# marts.nps_by_segment
# --------------------------------------------------------------------------------------------


def nps_by_segment(src: Sources, params: Params = Params(), as_of: object = None) -> pd.DataFrame:
    src, as_of = _resolve_as_of(src, as_of)
    r = enrich_responses(src, params, as_of)
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
    out["nps_var"] = _nps_variance(p, d, n)  # of the mean score, in proportions
    out["margin_of_error"] = 1.96 * np.sqrt(out["nps_var"]) * 100.0
    out["revenue_weighted_nps"] = np.where(
        out["w"] != 0, 100.0 * out["w_net"] / out["w"].where(out["w"] != 0), np.nan
    )
    out["below_min_n"] = out["responses"] < params.min_n
    for c in ["responses", "promoters", "passives", "detractors"]:
        out[c] = out[c].astype("int64")
    out["segment_value"] = out["segment_value"].astype(object)

    # change vs the same segment in the previous calendar period
    out["previous_period_start"] = _shift_period(out["period_start"], out["period_grain"])
    prev = out[["period_grain", "period_start", "segment_type", "segment_value", "responses", "nps",
                "margin_of_error", "nps_var"]].rename(
        columns={"period_start": "previous_period_start", "responses": "previous_responses",
                 "nps": "previous_nps", "margin_of_error": "previous_moe", "nps_var": "previous_nps_var"}
    )  # fmt: skip
    out = out.merge(prev, on=["period_grain", "previous_period_start", "segment_type", "segment_value"],
                    how="left")  # fmt: skip
    out["nps_change"] = out["nps"] - out["previous_nps"]
    out["change_margin_of_error"] = np.sqrt(out["margin_of_error"] ** 2 + out["previous_moe"] ** 2)
    exceeds = out["nps_change"].abs() > out["change_margin_of_error"]
    out["change_exceeds_margin_of_error"] = exceeds.astype(object).where(out["previous_nps"].notna(), None)
    out = _change_significance(out, params)
    out = _representative_nps(out, r, src, params, as_of)
    out = _with_send_rates(out, src, params, as_of)
    return (
        out[NPS_COLUMNS]
        .sort_values(["period_grain", "period_start", "segment_type", "segment_value"])
        .reset_index(drop=True)
    )


def _change_significance(out: pd.DataFrame, params: Params) -> pd.DataFrame:
    """change_p_value: two-sided z-test of nps - previous_nps with the two periods' variances
    (scipy's normal distribution), null without a previous period or when both variances are 0;
    change_is_significant: Benjamini-Hochberg (scipy.stats.false_discovery_control) at
    params.nps_change_fdr across the rows of a period that have a p-value."""
    from scipy.stats import false_discovery_control, norm

    out = out.copy()
    total_var = out["nps_var"] + out["previous_nps_var"]
    testable = out["previous_nps"].notna() & (total_var > 0)
    z = (out["nps"] - out["previous_nps"]) / 100.0 / np.sqrt(total_var.where(testable))
    out["change_p_value"] = pd.Series(2.0 * norm.sf(np.abs(z)), index=out.index).where(testable)
    significant = pd.Series([None] * len(out), index=out.index, dtype=object)
    for _, rows in out[testable].groupby(["period_grain", "period_start"]):
        adjusted = false_discovery_control(rows["change_p_value"].to_numpy(), method="bh")
        significant[rows.index] = [bool(a <= params.nps_change_fdr) for a in adjusted]
    out["change_is_significant"] = significant
    return out


def active_accounts(src: Sources, periods: list[tuple[str, dt.date]], params: Params = Params(),
                    as_of: object = None) -> pd.DataFrame:
    """The accounts active at the end of each (grain, period_start): the end is the next period's
    start capped at as_of (t); each account is seen in its version with the greatest updated_at < t
    (else its earliest); active = customer_since null or before t, and churned_at null or >= t.
    Segment attributes as the segment types (null -> 'unknown'); bands on the state at t, tenure on
    the last day before t."""
    src, as_of = _resolve_as_of(src, as_of)
    acc = src.accounts.sort_values(["account_id", "updated_at"], kind="stable")
    earliest = acc.groupby("account_id").head(1)
    parts = []
    for grain, start in periods:
        end = _utc(pd.Timestamp(start) + pd.DateOffset(months=1 if grain == "month" else 3))
        t = min(end, as_of)
        latest_before = acc[acc["updated_at"] < t].groupby("account_id").tail(1)
        version = pd.concat([latest_before, earliest]).drop_duplicates("account_id", keep="first").copy()
        since = version["customer_since"].astype(DATE_DTYPE)
        t_naive = t.tz_convert("UTC").tz_localize(None)
        churned = version["churned_at"].astype(TS_DTYPE)
        active = (since.isna() | (since < t_naive)) & (churned.isna() | (churned >= t))
        v = version[active].copy()
        last_day = (t - pd.Timedelta(microseconds=1)).tz_convert("UTC").tz_localize(None).normalize()
        tenure_days = (last_day - since[active]).dt.days
        v["arr"] = pd.to_numeric(v["arr"]).astype("float64")
        v["arr_band"] = _band(v["arr"], params.arr_band_bounds, ["under_10k", "10k_50k", "50k_250k", "250k_plus"])
        v["tenure_band"] = _band(tenure_days, params.tenure_band_days, ["0_6m", "6_12m", "1_2y", "2y_plus"])
        v["account_owner"] = v["owner"]
        for col in ["plan", "industry", "region", "employee_band", "account_owner"]:
            v[col] = v[col].astype(object).where(v[col].notna(), "unknown")
        v["period_grain"], v["period_start"] = grain, start
        parts.append(v[["period_grain", "period_start", "account_id", "arr", *ACCOUNT_SEGMENT_TYPES]])
    columns = ["period_grain", "period_start", "account_id", "arr", *ACCOUNT_SEGMENT_TYPES]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)


def collapse_strata(respondents: dict[tuple, int], min_n: int) -> dict[tuple, tuple]:
    """Each fine stratum (a tuple of attribute values) -> the stratum it is merged into: itself with
    at least min_n respondents; else, level by level, the prefix shared with the other small ones
    (dropping the last attribute, then the last two, ...) once they have min_n together; else ()
    ('other')."""
    merged = {key: key for key, n in respondents.items() if n >= min_n}
    small = [key for key, n in respondents.items() if n < min_n]
    width = max((len(k) for k in respondents), default=0)
    for level in range(width - 1, 0, -1):
        by_prefix: dict[tuple, list[tuple]] = {}
        for key in small:
            by_prefix.setdefault(key[:level], []).append(key)
        small = []
        for prefix, keys in by_prefix.items():
            if sum(respondents[k] for k in keys) >= min_n:
                merged.update(dict.fromkeys(keys, prefix))
            else:
                small.extend(keys)
    merged.update(dict.fromkeys(small, ()))
    return merged


def _post_stratified(resp: pd.DataFrame, pop: pd.DataFrame, params: Params) -> dict[str, float]:
    """Post-stratified NPS of the respondents ``resp`` (category + strata columns) weighted to the
    accounts ``pop`` (strata columns + arr), strata collapsed by collapse_strata."""
    strata = list(params.representative_strata)
    cells: dict[tuple, list[float]] = {}  # stratum -> [n, promoters, detractors, accounts, arr]
    for key, category in zip(resp[strata].itertuples(index=False, name=None), resp["category"], strict=True):
        cell = cells.setdefault(key, [0, 0, 0, 0, 0.0])
        cell[0] += 1
        cell[1] += category == "promoter"
        cell[2] += category == "detractor"
    for key, arr in zip(pop[strata].itertuples(index=False, name=None), pop["arr"], strict=True):
        cell = cells.setdefault(key, [0, 0, 0, 0, 0.0])
        cell[3] += 1
        cell[4] += 0.0 if pd.isna(arr) else float(arr)
    into = collapse_strata({k: int(c[0]) for k, c in cells.items()}, params.representative_min_stratum_responses)
    groups: dict[tuple, np.ndarray] = {}
    for key, cell in cells.items():
        groups[into[key]] = groups.get(into[key], np.zeros(5)) + np.array(cell, dtype=float)
    g = np.array(list(groups.values())) if groups else np.zeros((0, 5))
    n, promoters, detractors, accounts = g[:, 0], g[:, 1], g[:, 2], g[:, 3]
    weight = accounts if params.representative_weighting == "accounts" else g[:, 4]
    answered = n > 0
    weighted = weight > 0
    total = weight[answered].sum()
    rep_n, rep_p, rep_d = n[weighted].sum(), promoters[weighted].sum(), detractors[weighted].sum()
    result = {"representative_responses": int(rep_n), "population_accounts": int(accounts.sum()),
              "representative_nps": np.nan, "representative_margin_of_error": np.nan,
              "representative_design_effect": np.nan}
    if total > 0:
        share = weight[answered] / total
        pn, dn = promoters[answered] / n[answered], detractors[answered] / n[answered]
        var = float((share**2 * np.maximum(pn + dn - (pn - dn) ** 2, 0.0) / n[answered]).sum())
        result["representative_nps"] = float(100.0 * (share * (pn - dn)).sum())
        result["representative_margin_of_error"] = 1.96 * np.sqrt(var) * 100.0
        p, d = rep_p / rep_n, rep_d / rep_n
        srs_var = _nps_variance(p, d, rep_n)
        if srs_var > 0:
            result["representative_design_effect"] = var / srs_var
    return result


def _representative_nps(
    out: pd.DataFrame, r: pd.DataFrame, src: Sources, params: Params, as_of: pd.Timestamp
) -> pd.DataFrame:
    """representative_* columns of each segment row (docs/contracts.md section 4): the respondents
    whose account is known to the CRM, post-stratified over params.representative_strata (as of the
    response) to the accounts active at the period end, in the segment for an account-attribute
    segment type, all of them otherwise."""
    out = out.copy()
    periods = sorted({(g, s) for g, s in zip(out["period_grain"], out["period_start"], strict=True)})
    pop = active_accounts(src, periods, params, as_of)
    pop_by_period = {key: frame for key, frame in pop.groupby(["period_grain", "period_start"])}
    empty_pop = pop.iloc[0:0]
    known = r[r["account_id"].isin(set(src.accounts["account_id"]))]
    respondents: dict[tuple, pd.DataFrame] = {}
    for grain, period_col in (("month", "month_start"), ("quarter", "quarter_start")):
        for seg in SEGMENT_TYPES:
            for (start, value), frame in known.groupby([period_col, seg]):
                respondents[(grain, start, seg, value)] = frame
    empty_resp = known.iloc[0:0]
    records = []
    for grain, start, seg, value in out[["period_grain", "period_start", "segment_type", "segment_value"]].itertuples(
        index=False, name=None
    ):
        period_pop = pop_by_period.get((grain, start), empty_pop)
        if seg in ACCOUNT_SEGMENT_TYPES:
            period_pop = period_pop[period_pop[seg] == value]
        resp = respondents.get((grain, start, seg, value), empty_resp)
        records.append(_post_stratified(resp, period_pop, params))
    rep = pd.DataFrame(records, index=out.index)
    for col in rep.columns:
        out[col] = rep[col]
    for col in ["representative_responses", "population_accounts"]:
        out[col] = out[col].astype("int64")
    out["representative_population"] = np.where(
        out["segment_type"].isin(ACCOUNT_SEGMENT_TYPES), "segment_accounts", "all_accounts"
    )
    out["representative_weighting"] = params.representative_weighting
    return out


# --------------------------------------------------------------------------------------------
# marts.detractor_recovery
# --------------------------------------------------------------------------------------------


def _cycled(src: Sources, params: Params) -> pd.DataFrame:
    """Responses (already known at as_of) with the respondent's following response: next_at,
    next_score, next_response_id, has_following, and has_next (within next_response_window_days)."""
    r = src.responses.reset_index(drop=True).copy()
    r["respondent"] = r["contact_id"].where(r["contact_id"].notna(), r["account_id"])
    r = r.sort_values(["respondent", "responded_at", "response_id"], kind="stable").reset_index(drop=True)
    by = r.groupby("respondent", sort=False)
    r["next_at"] = by["responded_at"].shift(-1)
    r["next_score"] = by["score"].shift(-1)
    r["next_response_id"] = by["response_id"].shift(-1)
    window = pd.Timedelta(days=params.next_response_window_days)
    r["has_following"] = r["next_at"].notna()
    r["has_next"] = r["next_at"].notna() & ((r["next_at"] - r["responded_at"]) <= window)
    return r


def detractor_outcomes(src: Sources, params: Params = Params(), as_of: object = None) -> pd.DataFrame:
    """One row per detractor response known at as_of with next response, first follow-up, SLA flags
    and outcome flags."""
    src, as_of = _resolve_as_of(src, as_of)
    det = _cycled(src, params)
    det = det[det["score"] <= 6].copy().reset_index(drop=True)

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
        [h.isna(), h <= params.follow_up_fast_hours, h <= params.follow_up_slow_hours],
        ["never", "within_24h", "within_48h"],
        default="later",
    )
    det["hours_since_response"] = (as_of - det["responded_at"]) / pd.Timedelta(hours=1)
    for name, hours in (("24h", params.follow_up_fast_hours), ("48h", params.follow_up_slow_hours)):
        met = (h <= hours).fillna(False).astype(bool)
        det[f"sla_{name}_met"] = met
        det[f"sla_{name}_judged"] = met | (det["hours_since_response"] > hours)

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


def _ratio(num: pd.Series, den: pd.Series) -> pd.Series:
    return (num / den.where(den > 0)).astype("float64")


def detractor_recovery(src: Sources, params: Params = Params(), as_of: object = None) -> pd.DataFrame:
    src, as_of = _resolve_as_of(src, as_of)
    det = detractor_outcomes(src, params, as_of)
    if det.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in RECOVERY_COLUMNS})
    segments = enrich_responses(src, params, as_of)[["response_id", *SEGMENT_TYPES]]
    flags = ["has_next", "recovered", "fully_recovered", "awaiting_next", "lost_to_churn", "sla_24h_met",
             "sla_24h_judged", "sla_48h_met", "sla_48h_judged"]  # fmt: skip
    det = _segment_rows(
        det[["response_id", "month_start", "quarter_start", "follow_up_bucket", "follow_up_hours", *flags]].merge(
            segments, on="response_id"
        ),
        ["response_id", "month_start", "quarter_start", "follow_up_bucket", "follow_up_hours", *flags],
    )
    seg_keys = ["period_start", "segment_type", "segment_value"]
    parts = []
    for grain, period_col in (("month", "month_start"), ("quarter", "quarter_start")):
        d = det.rename(columns={period_col: "period_start"})
        per_bucket = d.groupby([*seg_keys, "follow_up_bucket"]).agg(
            detractors=("response_id", "size"),
            with_next_response=("has_next", "sum"),
            recovered=("recovered", "sum"),
            fully_recovered=("fully_recovered", "sum"),
            awaiting_next=("awaiting_next", "sum"),
            lost_to_churn=("lost_to_churn", "sum"),
            median_hours_to_first_follow_up=("follow_up_hours", "median"),
        )
        per_segment = d.groupby(seg_keys).agg(
            segment_median_hours_to_first_follow_up=("follow_up_hours", "median"),
            met_24=("sla_24h_met", "sum"),
            judged_24=("sla_24h_judged", "sum"),
            met_48=("sla_48h_met", "sum"),
            judged_48=("sla_48h_judged", "sum"),
        )
        per_segment["sla_24h_attainment"] = _ratio(per_segment["met_24"], per_segment["judged_24"])
        per_segment["sla_48h_attainment"] = _ratio(per_segment["met_48"], per_segment["judged_48"])
        spine = per_segment.reset_index()[seg_keys].merge(
            pd.DataFrame({"follow_up_bucket": FOLLOW_UP_BUCKETS}), how="cross"
        )
        g = spine.merge(per_bucket.reset_index(), on=[*seg_keys, "follow_up_bucket"], how="left")
        g = g.merge(per_segment.reset_index(), on=seg_keys, how="left")
        g.insert(0, "period_grain", grain)
        parts.append(g)
    out = pd.concat(parts, ignore_index=True)
    for c in ["detractors", "with_next_response", "recovered", "fully_recovered", "awaiting_next", "lost_to_churn"]:
        out[c] = out[c].fillna(0).astype("int64")
    out["recovery_rate"] = _ratio(out["recovered"], out["with_next_response"])
    out["full_recovery_rate"] = _ratio(out["fully_recovered"], out["with_next_response"])
    return (
        out[RECOVERY_COLUMNS]
        .sort_values(["period_grain", "period_start", "segment_type", "segment_value", "follow_up_bucket"])
        .reset_index(drop=True)
    )


# --------------------------------------------------------------------------------------------
# Themes: mentions (merges resolved) and actionability
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


def _theme_registry(themes: pd.DataFrame) -> pd.DataFrame:
    """nlp.themes rows (theme_id, label, keywords, status[, merged_into, human_label, is_actionable,
    level, parent_theme_id, kind]) indexed by theme_id; the shown label is a person's label when
    there is one. Without level / kind a theme is a discovered sub-theme (no parent)."""
    t = themes.copy()
    t["theme_id"] = t["theme_id"].astype("int64")
    for col, default in (("merged_into", None), ("human_label", None), ("is_actionable", None), ("level", "subtheme"),
                         ("parent_theme_id", None), ("kind", "discovered")):
        if col not in t.columns:
            t[col] = default
    t["label"] = t["human_label"].where(t["human_label"].notna(), t["label"])
    return t.set_index("theme_id")


def _resolve_merges(registry: pd.DataFrame, max_hops: int = 50) -> dict[int, int]:
    """theme_id -> the theme at the end of its merged_into chain (itself when not merged)."""
    into = {int(k): (None if pd.isna(v) else int(v)) for k, v in registry["merged_into"].items()}
    resolved = {}
    for theme in into:
        current, hops = theme, 0
        while into.get(current) is not None and into[current] in into and hops < max_hops:
            current, hops = into[current], hops + 1
        resolved[theme] = current
    return resolved


def theme_mentions(
    src: Sources, comment_themes: pd.DataFrame, themes: pd.DataFrame, params: Params = Params(),
    as_of: object = None,
) -> pd.DataFrame:  # fmt: skip
    """One row per response known at as_of and theme level whose comment's sub-theme resolves
    (merged_into chain) to an active sub-theme: a 'subtheme' row, and a 'theme' row for that
    sub-theme's parent when the parent resolves to an active parent theme. With the response's
    category, periods, account, ARR as of the response, comment and the assignment confidence."""
    r = enrich_responses(src, params, as_of)
    registry = _theme_registry(themes)
    resolved = _resolve_merges(registry)
    active = registry["status"] == "active"
    active_subs = set(registry.index[active & (registry["level"] == "subtheme")])
    active_parents = set(registry.index[active & (registry["level"] == "theme")])
    cols = ["response_id", "theme_id"] + [c for c in ("confidence", "sentiment") if c in comment_themes.columns]
    ct = comment_themes[cols].dropna(subset=["theme_id"]).copy()
    if "confidence" not in ct.columns:
        ct["confidence"] = np.nan
    if "sentiment" not in ct.columns:  # nlp.comment_sentiment (None: the comment has no sentiment row)
        ct["sentiment"] = None
    ct["response_id"] = ct["response_id"].astype(str)
    ct["theme_id"] = ct["theme_id"].astype("int64").map(resolved)
    ct = ct[ct["theme_id"].isin(active_subs)]
    ct["theme_id"] = ct["theme_id"].astype("int64")
    ct["confidence"] = pd.to_numeric(ct["confidence"]).astype("float64")
    parent = ct["theme_id"].map(registry["parent_theme_id"]).map(
        lambda p: None if pd.isna(p) else resolved.get(int(p), int(p)))
    ct["parent_theme_id"] = [p if p in active_parents else None for p in parent]
    ct["theme_level"] = "subtheme"
    parents = ct[ct["parent_theme_id"].notna()].copy()
    parents["theme_id"], parents["parent_theme_id"], parents["theme_level"] = parents["parent_theme_id"], None, "theme"
    ct = pd.concat([ct, parents], ignore_index=True)
    ct["theme_id"] = ct["theme_id"].astype("int64")
    ct["parent_theme_id"] = pd.to_numeric(ct["parent_theme_id"]).astype("Int64")
    m = ct.merge(
        r[["response_id", "account_id", "responded_at", "score", "category", "arr", "comment", "month_start",
           "quarter_start"]],
        on="response_id",
    )  # fmt: skip
    m["comment"] = _as_loaded(m["comment"])
    m["is_d"] = m["category"] == "detractor"
    m["is_p"] = m["category"] == "promoter"
    m["is_pa"] = m["category"] == "passive"
    return m


def themes_classified(mentions: pd.DataFrame, themes: pd.DataFrame, params: Params = Params()) -> pd.DataFrame:
    """Per active theme: label, keywords, the person's actionable decision, and the effective one
    (the decision, else detractor share of its mentions >= the threshold)."""
    registry = _theme_registry(themes)
    t = registry[registry["status"] == "active"].copy()
    counts = mentions.groupby("theme_id").agg(mentions=("response_id", "size"), detractors=("is_d", "sum"))
    t = t.join(counts)
    share = t["detractors"] / t["mentions"]
    decided = t["is_actionable"]
    t["is_actionable_decided"] = decided
    t["is_no_feedback"] = t["kind"] == "no_feedback"
    # the built-in no-feedback theme is never actionable unless a person says so
    heuristic = (share >= params.theme_actionable_min_detractor_share).fillna(False) & ~t["is_no_feedback"]
    t["is_actionable_effective"] = [bool(d) if pd.notna(d) else bool(h) for d, h in zip(decided, heuristic,
                                                                                        strict=True)]
    t["actionability_source"] = np.select([decided.notna(), t["is_no_feedback"]], ["human", "no_feedback"],
                                          "heuristic")
    t["parent_theme_id"] = pd.to_numeric(t["parent_theme_id"]).astype("Int64")
    t["parent_theme_label"] = t["parent_theme_id"].map(lambda p: None if pd.isna(p) else registry["label"].get(p))
    t["keywords_text"] = [_keywords_text(k, params.keywords_separator) for k in t["keywords"]]
    return t


def _arr_behind_detractors(mentions: pd.DataFrame, period_col: str) -> pd.Series:
    """Per (theme, period): sum over accounts with a detractor mention of the ARR as of the account's
    latest detractor mention in the period."""
    d = mentions[mentions["is_d"]].sort_values(["responded_at", "response_id"], kind="stable")
    last = d.groupby(["theme_id", period_col, "account_id"]).tail(1)
    return last["arr"].fillna(0.0).groupby([last["theme_id"], last[period_col]]).sum()


# --------------------------------------------------------------------------------------------
# marts.theme_recurrence
# --------------------------------------------------------------------------------------------


def theme_recurrence(
    src: Sources,
    comment_themes: pd.DataFrame,
    themes: pd.DataFrame,
    params: Params = Params(),
    as_of: object = None,
) -> pd.DataFrame:
    src, as_of = _resolve_as_of(src, as_of)
    r = enrich_responses(src, params, as_of)
    m = theme_mentions(src, comment_themes, themes, params, as_of)
    empty = pd.DataFrame({c: pd.Series(dtype=object) for c in THEME_COLUMNS})
    if m.empty:
        return empty
    classified = themes_classified(m, themes, params)
    latest_q = pd.Period(max(r["quarter_start"]), freq="Q")
    quarter_totals = r.groupby("quarter_start").agg(
        promoters=("category", lambda c: int((c == "promoter").sum())),
        detractors=("category", lambda c: int((c == "detractor").sum())),
    )

    counts = m.groupby(["theme_id", "quarter_start"]).agg(
        mentions=("response_id", "size"),
        promoter_mentions=("is_p", "sum"),
        passive_mentions=("is_pa", "sum"),
        detractor_mentions=("is_d", "sum"),
        scored_mentions=("sentiment", "count"),
        negative_mentions=("sentiment", lambda s: int((s == "negative").sum())),
        positive_mentions=("sentiment", lambda s: int((s == "positive").sum())),
    )
    arr_risk = _arr_behind_detractors(m, "quarter_start")

    rows = []
    k = params.theme_presence_min_mentions
    for theme_id, first_q in m.groupby("theme_id")["quarter_start"].min().items():
        present_before = 0
        prev_present = False
        streak = 0
        first_seen = last_seen = None
        theme = classified.loc[theme_id]
        for period in pd.period_range(pd.Period(first_q, freq="Q"), latest_q, freq="Q"):
            q = period.start_time.date()
            c = {name: int(counts[name].get((theme_id, q), 0)) for name in counts.columns}
            present = c["mentions"] >= k
            if present:
                status = "new" if present_before == 0 else ("recurring" if prev_present else "re-emerged")
                streak += 1
                present_before += 1
                first_seen = first_seen or q
                last_seen = q
            else:
                status = "resolved" if prev_present else "absent"
                streak = 0
            q_promoters = quarter_totals["promoters"].get(q, 0)
            q_detractors = quarter_totals["detractors"].get(q, 0)
            rows.append(
                {
                    "theme_id": int(theme_id),
                    "theme_level": theme["level"],
                    "parent_theme_id": theme["parent_theme_id"],
                    "parent_theme_label": theme["parent_theme_label"],
                    "is_no_feedback": bool(theme["is_no_feedback"]),
                    "theme_label": theme["label"],
                    "keywords": theme["keywords_text"],
                    "is_actionable": theme["is_actionable_effective"],
                    "actionability_source": theme["actionability_source"],
                    "quarter_start": q,
                    **c,
                    "detractor_share": c["detractor_mentions"] / c["mentions"] if c["mentions"] else np.nan,
                    "promoter_mention_share": c["promoter_mentions"] / q_promoters if q_promoters else np.nan,
                    "detractor_mention_share": c["detractor_mentions"] / q_detractors if q_detractors else np.nan,
                    # among the mentions with a sentiment (nlp.comment_sentiment); null when none has one
                    "negative_share": c["negative_mentions"] / c["scored_mentions"] if c["scored_mentions"] else np.nan,
                    "positive_share": c["positive_mentions"] / c["scored_mentions"] if c["scored_mentions"] else np.nan,
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
    for c in ["theme_id", "mentions", "promoter_mentions", "passive_mentions", "detractor_mentions",
              "quarters_present", "current_streak"]:  # fmt: skip
        out[c] = out[c].astype("int64")
    for c in ["detractor_share", "promoter_mention_share", "detractor_mention_share", "negative_share",
              "positive_share", "arr_at_risk"]:
        out[c] = out[c].astype("float64")
    return out.sort_values(["theme_id", "quarter_start"]).reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# marts.theme_impact
# --------------------------------------------------------------------------------------------


def _nps_and_margin(promoters: pd.Series, detractors: pd.Series, n: pd.Series) -> tuple[pd.Series, pd.Series]:
    """NPS and its 95 % margin of error (nan where n is 0)."""
    n = n.astype("float64").where(n > 0)
    p, d = promoters / n, detractors / n
    return 100.0 * (p - d), 1.96 * np.sqrt(_nps_variance(p, d, n)) * 100.0


def theme_impact(
    src: Sources,
    comment_themes: pd.DataFrame,
    themes: pd.DataFrame,
    params: Params = Params(),
    as_of: object = None,
) -> pd.DataFrame:
    """Per theme, quarter and segment (params.theme_impact_segment_types) with a mention: mentioners'
    NPS against the other respondents', the points at stake (100 x detractor mentioners /
    respondents) and the frequency x impact quadrant against the median theme of the same level,
    quarter and segment (the no-feedback theme left out)."""
    src, as_of = _resolve_as_of(src, as_of)
    r = enrich_responses(src, params, as_of)
    m = theme_mentions(src, comment_themes, themes, params, as_of)
    if m.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in IMPACT_COLUMNS})
    classified = themes_classified(m, themes, params)
    seg = r.melt(id_vars=["response_id", "quarter_start", "category"],
                 value_vars=list(params.theme_impact_segment_types), var_name="segment_type",
                 value_name="segment_value")
    keys = ["segment_type", "segment_value", "quarter_start"]
    totals = seg.groupby(keys).agg(
        respondents=("category", "size"),
        promoters=("category", lambda c: int((c == "promoter").sum())),
        detractors=("category", lambda c: int((c == "detractor").sum())),
    ).reset_index()
    sm = m.drop(columns=["quarter_start"]).merge(seg[["response_id", *keys]], on="response_id")
    counts = sm.groupby(["theme_id", "theme_level", *keys]).agg(
        mentioners=("response_id", "size"),
        promoter_mentioners=("is_p", "sum"),
        detractor_mentioners=("is_d", "sum"),
        scored=("sentiment", "count"),
        negative=("sentiment", lambda s: int((s == "negative").sum())),
        positive=("sentiment", lambda s: int((s == "positive").sum())),
    ).reset_index()
    d = sm[sm["is_d"]].sort_values(["responded_at", "response_id"], kind="stable")
    last = d.groupby(["theme_id", *keys, "account_id"]).tail(1)
    arr = last["arr"].fillna(0.0).groupby([last[c] for c in ["theme_id", *keys]]).sum().rename("detractor_arr")
    out = counts.merge(totals, on=keys).merge(arr.reset_index(), on=["theme_id", *keys], how="left")
    out["detractor_arr"] = out["detractor_arr"].fillna(0.0).astype("float64")
    out["theme_label"] = out["theme_id"].map(classified["label"])
    out["is_no_feedback"] = out["theme_id"].map(classified["is_no_feedback"]).fillna(False).astype(bool)

    out["mention_share"] = out["mentioners"] / out["respondents"]
    out["segment_nps"], _ = _nps_and_margin(out["promoters"], out["detractors"], out["respondents"])
    out["nps_mentioners"], out["mentioners_margin_of_error"] = _nps_and_margin(
        out["promoter_mentioners"], out["detractor_mentioners"], out["mentioners"])
    non = out["respondents"] - out["mentioners"]
    out["nps_non_mentioners"], out["non_mentioners_margin_of_error"] = _nps_and_margin(
        out["promoters"] - out["promoter_mentioners"], out["detractors"] - out["detractor_mentioners"], non)
    out["nps_difference"] = out["nps_mentioners"] - out["nps_non_mentioners"]
    out["difference_margin_of_error"] = np.sqrt(out["mentioners_margin_of_error"] ** 2
                                                + out["non_mentioners_margin_of_error"] ** 2)
    exceeds = out["nps_difference"].abs() > out["difference_margin_of_error"]
    out["difference_exceeds_margin_of_error"] = exceeds.astype(object).where(out["nps_difference"].notna(), None)
    out["nps_points_at_stake"] = 100.0 * out["detractor_mentioners"] / out["respondents"]
    out["negative_share"] = _ratio(out["negative"], out["scored"])
    out["positive_share"] = _ratio(out["positive"], out["scored"])

    rankable = out[~out["is_no_feedback"]]
    medians = rankable.groupby(["theme_level", *keys])[["mention_share", "nps_points_at_stake"]].median()
    med = out.join(medians, on=["theme_level", *keys], rsuffix="_median")
    high_freq = med["mention_share"] >= med["mention_share_median"]
    high_impact = (med["nps_points_at_stake"] > 0) & (med["nps_points_at_stake"] >= med["nps_points_at_stake_median"])
    quadrant = np.select(
        [high_freq & high_impact, high_impact, high_freq],
        ["high_frequency_high_impact", "low_frequency_high_impact", "high_frequency_low_impact"],
        "low_frequency_low_impact",
    )
    rank = np.select([high_freq & high_impact, high_impact, high_freq], [1, 2, 3], 4)
    out["priority_quadrant"] = pd.Series(quadrant, index=out.index, dtype=object).where(~out["is_no_feedback"], None)
    out["priority_rank"] = pd.Series(rank, index=out.index).astype("Int64").where(~out["is_no_feedback"])
    for c in ["theme_id", "respondents", "mentioners", "promoter_mentioners", "detractor_mentioners"]:
        out[c] = out[c].astype("int64")
    return out[IMPACT_COLUMNS].sort_values(["theme_id", "quarter_start", "segment_type", "segment_value"]) \
        .reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# marts.theme_alerts
# --------------------------------------------------------------------------------------------


def theme_alerts(
    src: Sources,
    comment_themes: pd.DataFrame,
    themes: pd.DataFrame,
    params: Params = Params(),
    as_of: object = None,
) -> pd.DataFrame:
    src, as_of = _resolve_as_of(src, as_of)
    m = theme_mentions(src, comment_themes, themes, params, as_of)
    if m.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in ALERT_COLUMNS})
    classified = themes_classified(m, themes, params)
    m = m[~m["theme_id"].map(classified["is_no_feedback"]).astype(bool)]  # nothing to act on: never an alert
    if m.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in ALERT_COLUMNS})
    d = m[m["is_d"]]
    monthly = m.groupby(["theme_id", "month_start"]).agg(
        mentions=("response_id", "size"), detractor_mentions=("is_d", "sum")
    )
    det_stats = d.groupby(["theme_id", "month_start"]).agg(
        accounts_affected=("account_id", "nunique"),
        first_detractor_mention_at=("responded_at", "min"),
        last_detractor_mention_at=("responded_at", "max"),
    )
    monthly = monthly.join(det_stats).reset_index()
    monthly["previous_month"] = _shift_period(monthly["month_start"], pd.Series("month", index=monthly.index))
    previous = monthly.set_index(["theme_id", "month_start"])["detractor_mentions"]
    monthly["previous_month_detractor_mentions"] = [
        int(previous.get((t, pm), 0)) for t, pm in zip(monthly["theme_id"], monthly["previous_month"], strict=True)
    ]
    threshold = params.theme_alert_min_detractor_mentions
    alerts = monthly[monthly["detractor_mentions"] >= threshold].copy()
    alerts["first_alert_month"] = alerts.groupby("theme_id")["month_start"].transform("min")
    alerts["is_new_alert"] = alerts["previous_month_detractor_mentions"] < threshold
    alerts["alert_threshold"] = threshold
    alerts["detractor_share"] = alerts["detractor_mentions"] / alerts["mentions"]
    arr = _arr_behind_detractors(m, "month_start")
    alerts["arr_at_risk"] = [float(arr.get((t, mo), 0.0)) for t, mo in zip(alerts["theme_id"], alerts["month_start"],
                                                                             strict=True)]  # fmt: skip

    samples = d[d["comment"].fillna("").str.strip() != ""].copy()
    samples["_conf"] = samples["confidence"].fillna(-np.inf)  # nulls last
    samples["_t"] = samples["responded_at"].astype("int64")
    # highest confidence first, then latest, then response_id ascending
    samples = samples.sort_values(["_conf", "_t"], ascending=[False, False], kind="stable")
    samples = samples.sort_values(
        ["theme_id", "month_start", "_conf", "_t", "response_id"], ascending=[True, True, False, False, True],
        kind="stable",
    )  # fmt: skip
    top = samples.groupby(["theme_id", "month_start"]).head(params.theme_alert_sample_comments)
    comments = top.groupby(["theme_id", "month_start"])["comment"].agg(list)
    ids = top.groupby(["theme_id", "month_start"])["response_id"].agg(list)
    keys = list(zip(alerts["theme_id"], alerts["month_start"], strict=True))
    alerts["sample_comments"] = [comments.get(k, []) for k in keys]
    alerts["sample_response_ids"] = [ids.get(k, []) for k in keys]
    alerts["theme_level"] = alerts["theme_id"].map(classified["level"])
    alerts["parent_theme_id"] = alerts["theme_id"].map(classified["parent_theme_id"]).astype("Int64")
    alerts["parent_theme_label"] = alerts["theme_id"].map(classified["parent_theme_label"])
    alerts["theme_label"] = alerts["theme_id"].map(classified["label"])
    alerts["keywords"] = alerts["theme_id"].map(classified["keywords_text"])
    alerts["is_actionable"] = alerts["theme_id"].map(classified["is_actionable_effective"])
    alerts["actionability_source"] = alerts["theme_id"].map(classified["actionability_source"])
    for c in ["theme_id", "mentions", "detractor_mentions", "accounts_affected", "previous_month_detractor_mentions"]:
        alerts[c] = alerts[c].astype("int64")
    return alerts[ALERT_COLUMNS].sort_values(["theme_id", "month_start"]).reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# marts.detractor_queue
# --------------------------------------------------------------------------------------------


def detractor_queue(
    src: Sources,
    comment_themes: pd.DataFrame,
    themes: pd.DataFrame,
    params: Params = Params(),
    as_of: object = None,
) -> pd.DataFrame:
    src, as_of = _resolve_as_of(src, as_of)
    det = detractor_outcomes(src, params, as_of)
    open_ = det[
        det["first_follow_up_at"].isna()
        & ~det["has_following"]
        & (det["responded_at"] >= as_of - pd.Timedelta(days=params.queue_max_age_days))
        & (det["churned_at"].isna() | (det["churned_at"] >= as_of))
    ].copy()
    current = _latest_account_version(src.accounts)
    open_["account_name"] = open_["account_id"].map(current["name"])
    open_["plan"] = open_["account_id"].map(current["plan"])
    open_["account_arr"] = pd.to_numeric(open_["account_id"].map(current["arr"])).astype("float64")
    open_["account_owner"] = open_["account_id"].map(current["owner"])

    m = theme_mentions(src, comment_themes, themes, params, as_of)
    classified = themes_classified(m, themes, params)
    theme_of = m[m["theme_level"] == "subtheme"].set_index("response_id")["theme_id"]
    open_["theme_id"] = open_["response_id"].map(theme_of)
    has_theme = open_["theme_id"].notna()
    tid = open_["theme_id"]
    open_["theme_label"] = tid.map(classified["label"])
    open_["theme_is_actionable"] = tid.map(classified["is_actionable_decided"]).astype(object)
    open_["theme_is_actionable"] = open_["theme_is_actionable"].where(open_["theme_is_actionable"].notna(), None)
    open_["is_actionable"] = tid.map(classified["is_actionable_effective"]).fillna(False).astype(bool)
    open_["actionability_source"] = np.where(has_theme, tid.map(classified["actionability_source"]), "no_theme")
    open_["is_high_value"] = (open_["account_arr"] >= params.queue_high_value_arr).fillna(False).astype(bool)
    hv, act = open_["is_high_value"], open_["is_actionable"]
    open_["priority_rank"] = np.select([hv & act, hv, act], [1, 2, 3], default=4)
    open_["priority_quadrant"] = (
        np.where(hv, "high_value", "low_value") + np.where(act, "_high_actionability", "_low_actionability")
    )
    open_["follow_up_due_at"] = open_["responded_at"] + pd.Timedelta(hours=params.follow_up_fast_hours)
    open_["is_sla_breached"] = as_of > open_["follow_up_due_at"]
    open_["hours_open"] = open_["hours_since_response"]
    open_["as_of"] = as_of
    open_["_arr"] = open_["account_arr"].fillna(-np.inf)  # nulls last in "ARR descending"
    open_ = open_.sort_values(
        ["priority_rank", "is_sla_breached", "_arr", "responded_at", "response_id"],
        ascending=[True, False, False, True, True],
        kind="stable",
    )
    open_["queue_position"] = np.arange(1, len(open_) + 1, dtype="int64")
    extra = src.responses.set_index("response_id")[["survey_type", "trigger_event", "comment"]].copy()
    extra["comment"] = _as_loaded(extra["comment"])
    for c in extra.columns:
        open_[c] = open_["response_id"].map(extra[c])
    open_["score"] = open_["score"].astype("int64")
    return open_[QUEUE_COLUMNS].reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# marts.passive_movement
# --------------------------------------------------------------------------------------------


def passive_movement(src: Sources, params: Params = Params(), as_of: object = None) -> pd.DataFrame:
    """Per period of the passive response and segment: passives whose next response converted
    (promoter), stayed passive or slipped (detractor); the rest awaiting or lost to churn."""
    src, as_of = _resolve_as_of(src, as_of)
    r = _cycled(src, params)
    p = r[(r["score"] >= 7) & (r["score"] <= 8)].copy()
    if p.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in PASSIVE_COLUMNS})
    churned = _latest_account_version(src.accounts)["churned_at"]
    p["churned_at"] = p["account_id"].map(churned).astype(TS_DTYPE)
    nxt = p["next_score"].where(p["has_next"])
    p["converted"] = nxt >= 9
    p["still_passive"] = (nxt >= 7) & (nxt <= 8)
    p["slipped"] = nxt <= 6
    p["lost_to_churn"] = ~p["has_next"] & p["churned_at"].notna() & (p["churned_at"] >= p["responded_at"])
    p["awaiting_next"] = ~p["has_next"] & ~p["lost_to_churn"]
    p["month_start"] = _month_start(p["responded_at"])
    p["quarter_start"] = _quarter_start(p["responded_at"])
    flags = ["has_next", "converted", "still_passive", "slipped", "awaiting_next", "lost_to_churn"]
    segments = enrich_responses(src, params, as_of)[["response_id", *SEGMENT_TYPES]]
    cols = ["response_id", "month_start", "quarter_start", *flags]
    p = _segment_rows(p[cols].merge(segments, on="response_id"), cols)
    parts = []
    for grain, period_col in (("month", "month_start"), ("quarter", "quarter_start")):
        g = p.groupby([period_col, "segment_type", "segment_value"]).agg(
            passives=("response_id", "size"),
            with_next_response=("has_next", "sum"),
            converted=("converted", "sum"),
            still_passive=("still_passive", "sum"),
            slipped=("slipped", "sum"),
            awaiting_next=("awaiting_next", "sum"),
            lost_to_churn=("lost_to_churn", "sum"),
        ).reset_index().rename(columns={period_col: "period_start"})
        g.insert(0, "period_grain", grain)
        parts.append(g)
    out = pd.concat(parts, ignore_index=True)
    for c in PASSIVE_COLUMNS[4:11]:
        out[c] = out[c].astype("int64")
    out["conversion_rate"] = _ratio(out["converted"], out["with_next_response"])
    out["slip_rate"] = _ratio(out["slipped"], out["with_next_response"])
    return out[PASSIVE_COLUMNS].sort_values(MART_KEYS["passive_movement"]).reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# marts.promoter_queue
# --------------------------------------------------------------------------------------------


def promoter_queue(
    src: Sources,
    comment_themes: pd.DataFrame,
    themes: pd.DataFrame,
    params: Params = Params(),
    as_of: object = None,
) -> pd.DataFrame:
    """Recent promoters not answered again, account not churned, not asked within the cooldown;
    ARR descending (unknown last), then the most recent answer."""
    src, as_of = _resolve_as_of(src, as_of)
    r = _cycled(src, params)
    churned = _latest_account_version(src.accounts)["churned_at"]
    r["churned_at"] = r["account_id"].map(churned).astype(TS_DTYPE)
    q = r[(r["score"] >= 9) & ~r["has_following"]
          & (r["responded_at"] >= as_of - pd.Timedelta(days=params.promoter_queue_max_age_days))
          & (r["churned_at"].isna() | (r["churned_at"] >= as_of))].copy()

    a = src.activities
    a = a[(a["created_at"] < as_of) & a["outcome"].isin(params.promoter_ask_outcomes)]
    if params.promoter_ask_activity_types is not None:
        a = a[a["activity_type"].isin(params.promoter_ask_activity_types)]
    last_asked = {}
    for row in q.itertuples():
        hit = (a["response_id"] == row.response_id) | (a["contact_id"] == row.contact_id)
        hit |= a["contact_id"].isna() & (a["account_id"] == row.account_id)
        last_asked[row.response_id] = a.loc[hit, "created_at"].max() if hit.any() else pd.NaT
    q["last_asked_at"] = pd.to_datetime(q["response_id"].map(last_asked), utc=True).astype(TS_DTYPE)
    cooldown = as_of - pd.Timedelta(days=params.promoter_ask_cooldown_days)
    q = q[q["last_asked_at"].isna() | (q["last_asked_at"] < cooldown)].copy()

    current = _latest_account_version(src.accounts)
    q["account_name"] = q["account_id"].map(current["name"])
    q["plan"] = q["account_id"].map(current["plan"])
    q["account_arr"] = pd.to_numeric(q["account_id"].map(current["arr"])).astype("float64")
    q["account_owner"] = q["account_id"].map(current["owner"])
    m = theme_mentions(src, comment_themes, themes, params, as_of)
    if not m.empty:
        classified = themes_classified(m, themes, params)
        theme_of = m[m["theme_level"] == "subtheme"].set_index("response_id")["theme_id"]
        q["theme_id"] = q["response_id"].map(theme_of).astype("Int64")
        q["theme_label"] = q["theme_id"].map(classified["label"])
    else:
        q["theme_id"], q["theme_label"] = pd.NA, None
    q["days_since_response"] = (as_of - q["responded_at"]) / pd.Timedelta(days=1)
    q["as_of"] = as_of
    q["_arr"] = q["account_arr"].fillna(-np.inf)  # nulls last in "ARR descending"
    q = q.sort_values(["_arr", "responded_at", "response_id"], ascending=[False, False, True], kind="stable")
    q["queue_position"] = np.arange(1, len(q) + 1, dtype="int64")
    q["comment"] = _as_loaded(q["comment"])
    q["score"] = q["score"].astype("int64")
    return q[PROMOTER_QUEUE_COLUMNS].reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# marts.account_nps_trajectory
# --------------------------------------------------------------------------------------------

_CATEGORY_RANK = {"detractor": 0, "passive": 1, "promoter": 2}


def account_nps_trajectory(src: Sources, params: Params = Params(), as_of: object = None) -> pd.DataFrame:
    src, as_of = _resolve_as_of(src, as_of)
    r = src.responses.copy()
    r["category"] = _category(r["score"])
    r = r.sort_values(["account_id", "responded_at", "response_id"], kind="stable")
    current = _latest_account_version(src.accounts)
    n = params.trajectory_last_scores
    rows = []
    for account_id, g in r.groupby("account_id", sort=True):
        last, prev = g.iloc[-1], (g.iloc[-2] if len(g) > 1 else None)
        tail = g.tail(n)
        if prev is None:
            trend = "first_response"
        else:
            delta = _CATEGORY_RANK[last["category"]] - _CATEGORY_RANK[prev["category"]]
            trend = "improving" if delta > 0 else "declining" if delta < 0 else "stable"
        acc = current.loc[account_id] if account_id in current.index else None
        churned_at = acc["churned_at"] if acc is not None else pd.NaT
        rows.append(
            {
                "account_id": account_id,
                "account_name": acc["name"] if acc is not None else None,
                "plan": acc["plan"] if acc is not None else None,
                "arr": float(acc["arr"]) if acc is not None and pd.notna(acc["arr"]) else np.nan,
                "account_owner": acc["owner"] if acc is not None else None,
                "is_churned": bool(pd.notna(churned_at) and churned_at < as_of),
                "responses": len(g),
                "first_response_at": g["responded_at"].iloc[0],
                "last_response_at": last["responded_at"],
                "days_since_last_response": int(np.floor((as_of - last["responded_at"]) / pd.Timedelta(days=1))),
                "last_score": int(last["score"]),
                "last_nps_category": last["category"],
                "previous_score": int(prev["score"]) if prev is not None else None,
                "previous_nps_category": prev["category"] if prev is not None else None,
                "score_change": int(last["score"] - prev["score"]) if prev is not None else None,
                "trend": trend,
                "last_scores": [int(s) for s in tail["score"]],
                "trajectory": " -> ".join(tail["category"]),
                "as_of": as_of,
            }
        )
    return pd.DataFrame(rows, columns=TRAJECTORY_COLUMNS)


# --------------------------------------------------------------------------------------------
# marts.nps_outcomes
# --------------------------------------------------------------------------------------------


def nps_outcomes(src: Sources, params: Params = Params(), as_of: object = None) -> pd.DataFrame:
    src, as_of = _resolve_as_of(src, as_of)
    r = enrich_responses(src, params, as_of)
    churned_at = r["account_id"].map(_latest_account_version(src.accounts)["churned_at"]).astype(TS_DTYPE)
    parts = []
    for horizon in params.outcome_horizons_days:
        end = r["responded_at"] + pd.Timedelta(days=horizon)
        mature = end <= as_of
        o = r[mature].copy()
        o["horizon_days"] = horizon
        o["arr_after"] = _account_as_of(o["account_id"], end[mature], src.accounts)["arr"]
        c = churned_at[mature]
        o["is_churned"] = (c.notna() & (c >= o["responded_at"]) & (c <= end[mature])).astype(bool)
        o["is_expanded"] = ~o["is_churned"] & (o["arr_after"] > o["arr"])
        o["is_contracted"] = ~o["is_churned"] & (o["arr_after"] < o["arr"])
        o["arr_retained"] = np.where(o["is_churned"], 0.0, o["arr_after"].fillna(0.0))
        o["arr_at_response"] = o["arr"].fillna(0.0)
        parts.append(o)
    o = pd.concat(parts, ignore_index=True)
    cols = ["response_id", "account_id", "horizon_days", "category", "is_churned", "is_expanded", "is_contracted",
            "arr_at_response", "arr_retained"]  # fmt: skip
    long = _segment_rows(o[cols + SEGMENT_TYPES], cols)
    out = (
        long.groupby(["horizon_days", "segment_type", "segment_value", "category"])
        .agg(
            responses=("response_id", "size"),
            distinct_accounts=("account_id", "nunique"),
            churned=("is_churned", "sum"),
            expanded=("is_expanded", "sum"),
            contracted=("is_contracted", "sum"),
            arr_at_response=("arr_at_response", "sum"),
            arr_retained=("arr_retained", "sum"),
        )
        .reset_index()
        .rename(columns={"category": "nps_category"})
    )
    for c in ["horizon_days", "responses", "distinct_accounts", "churned", "expanded", "contracted"]:
        out[c] = out[c].astype("int64")
    out["churn_rate"] = out["churned"] / out["responses"]
    out["expansion_rate"] = out["expanded"] / out["responses"]
    out["contraction_rate"] = out["contracted"] / out["responses"]
    out["net_revenue_retention"] = _ratio(out["arr_retained"], out["arr_at_response"])
    out["below_min_n"] = out["responses"] < params.min_n
    return out[OUTCOME_COLUMNS].reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# marts.survey_eligibility
# --------------------------------------------------------------------------------------------


def survey_eligibility(src: Sources, params: Params = Params(), as_of: object = None) -> pd.DataFrame:
    src, as_of = _resolve_as_of(src, as_of)
    contacts = src.contacts.sort_values("updated_at", kind="stable").groupby("contact_id").tail(1)
    accounts = _latest_account_version(src.accounts)
    r = src.responses[src.responses["contact_id"].notna()].copy()
    r["surveyed_at"] = r["sent_at"].where(r["sent_at"].notna(), r["responded_at"])
    surveys = r[["contact_id", "survey_type", "surveyed_at"]]
    if src.sends is not None:  # with survey sends, every send counts, answered or not
        sends = src.sends[src.sends["contact_id"].notna()].rename(columns={"sent_at": "surveyed_at"})
        surveys = pd.concat([surveys, sends[["contact_id", "survey_type", "surveyed_at"]]], ignore_index=True)
    last = surveys.pivot_table(index="contact_id", columns="survey_type", values="surveyed_at", aggfunc="max")
    out = contacts[["contact_id", "account_id", "role"]].rename(columns={"role": "contact_role"}).copy()
    for col, typ in (("last_relational_survey_at", "relational"), ("last_transactional_survey_at", "transactional")):
        out[col] = (out["contact_id"].map(last[typ]).astype(TS_DTYPE) if typ in last.columns
                    else pd.Series(pd.NaT, index=out.index, dtype=TS_DTYPE))
    out["account_name"] = out["account_id"].map(accounts["name"])
    out["plan"] = out["account_id"].map(accounts["plan"])
    out["account_owner"] = out["account_id"].map(accounts["owner"])
    churned_at = out["account_id"].map(accounts["churned_at"]).astype(TS_DTYPE)
    out["is_account_churned"] = (churned_at.notna() & (churned_at < as_of)).astype(bool)
    rel_until = out["last_relational_survey_at"] + pd.Timedelta(days=params.fatigue_relational_days)
    tr_until = out["last_transactional_survey_at"] + pd.Timedelta(days=params.fatigue_transactional_days)
    out["is_relational_fatigued"] = (rel_until > as_of).fillna(False).astype(bool)
    out["is_transactional_fatigued"] = (tr_until > as_of).fillna(False).astype(bool)
    out["is_eligible"] = ~(out["is_account_churned"] | out["is_relational_fatigued"] | out["is_transactional_fatigued"])
    frm = pd.concat([rel_until, tr_until, pd.Series(as_of, index=out.index)], axis=1).max(axis=1)
    out["eligible_from"] = frm.where(~out["is_account_churned"]).astype(TS_DTYPE)
    out["as_of"] = as_of
    return out[ELIGIBILITY_COLUMNS].sort_values("contact_id").reset_index(drop=True)

# --------------------------------------------------------------------------------------------
# Survey sends: which were answered, response rates (int_survey_sends_answered / _rated)
# --------------------------------------------------------------------------------------------

SEND_RATE_COLUMNS = ["sends", "responses_to_sends", "response_rate"]


def survey_sends_answered(src: Sources, params: Params = Params(), as_of: object = None) -> pd.DataFrame | None:
    """The sends known at as_of with ``answered_by`` (the response that answered it, else None),
    ``answer_source`` (linked / matched / None), periods and every segment attribute as of the send;
    None when survey sends are not available.

    Linked: the send's response_id is a response known at as_of. Matched (a send without
    response_id): a known response of the same survey_id and contact_id, responded within
    [sent_at, sent_at + send_response_window_days], that no send links; it answers the latest such
    send (ties: the greatest send_id); a send several responses pick is answered by the earliest."""
    src, as_of = _resolve_as_of(src, as_of)
    if src.sends is None:
        return None
    s = src.sends.reset_index(drop=True).copy()
    r = src.responses
    linked = s["response_id"].notna()
    known = linked & s["response_id"].isin(set(r["response_id"]))
    s["answered_by"] = s["response_id"].astype(object).where(known, None)
    s["answer_source"] = np.where(s["answered_by"].notna(), "linked", None)

    free = r[~r["response_id"].isin(set(s.loc[linked, "response_id"]))]
    free = free[free["contact_id"].notna() & free["survey_id"].notna()]
    open_sends = s.loc[~linked & s["contact_id"].notna() & s["survey_id"].notna(),
                       ["send_id", "survey_id", "contact_id", "sent_at"]]
    pairs = free[["response_id", "survey_id", "contact_id", "responded_at"]].merge(
        open_sends, on=["survey_id", "contact_id"])
    window = pd.Timedelta(days=params.send_response_window_days)
    pairs = pairs[(pairs["responded_at"] >= pairs["sent_at"]) & (pairs["responded_at"] <= pairs["sent_at"] + window)]
    latest_send = pairs.sort_values(["response_id", "sent_at", "send_id"]).groupby("response_id").tail(1)
    first_answer = latest_send.sort_values(["send_id", "responded_at", "response_id"]).groupby("send_id").head(1)
    matched = s["send_id"].map(first_answer.set_index("send_id")["response_id"])
    s.loc[matched.notna(), "answered_by"] = matched[matched.notna()]
    s.loc[matched.notna(), "answer_source"] = "matched"
    s["is_answered"] = s["answered_by"].notna()
    for col in ("answered_by", "answer_source"):
        s[col] = s[col].astype(object).where(s[col].notna(), None)

    s["month_start"] = _month_start(s["sent_at"])
    s["quarter_start"] = _quarter_start(s["sent_at"])
    attrs = _account_as_of(s["account_id"], s["sent_at"], src.accounts)
    for col in attrs.columns:
        s["account_name" if col == "name" else "account_owner" if col == "owner" else col] = attrs[col]
    s["arr_band"] = _band(s["arr"], params.arr_band_bounds, ["under_10k", "10k_50k", "50k_250k", "250k_plus"])
    send_day = s["sent_at"].dt.tz_convert("UTC").dt.tz_localize(None).dt.normalize()
    tenure_days = (send_day - pd.to_datetime(s["customer_since"])).dt.days
    s["tenure_band"] = _band(tenure_days, params.tenure_band_days, ["0_6m", "6_12m", "1_2y", "2y_plus"])
    n = params.usage_lookback_days
    sessions = _usage_sessions_before(s.rename(columns={"sent_at": "responded_at"}), src.usage, n)
    low, medium = params.usage_band_bounds
    s["usage_band"] = np.select(
        [sessions == 0, sessions < low * n, sessions < medium * n], ["none", "low", "medium"], default="high"
    )
    for col in ["plan", "industry", "region", "employee_band", "survey_type", "trigger_event", "account_owner"]:
        s[col] = s[col].astype(object).where(s[col].notna(), "unknown")
    s["overall"] = "all"
    return s


def survey_sends_rated(src: Sources, params: Params = Params(), as_of: object = None) -> pd.DataFrame | None:
    """Per period (of sent_at) and segment (as of the send) with a send: sends, responses_to_sends
    (the answered ones) and response_rate; None when survey sends are not available."""
    s = survey_sends_answered(src, params, as_of)
    if s is None:
        return None
    keys = ["period_grain", "period_start", "segment_type", "segment_value"]
    parts = []
    for grain, period_col in (("month", "month_start"), ("quarter", "quarter_start")):
        long = _segment_rows(s, ["send_id", period_col, "is_answered"])
        g = long.groupby([period_col, "segment_type", "segment_value"]).agg(
            sends=("send_id", "size"), responses_to_sends=("is_answered", "sum")).reset_index()
        parts.append(g.rename(columns={period_col: "period_start"}).assign(period_grain=grain))
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=[*keys, "sends"])
    out["sends"] = out["sends"].astype("int64")
    out["responses_to_sends"] = out["responses_to_sends"].astype("int64")
    out["response_rate"] = out["responses_to_sends"] / out["sends"]
    return out[[*keys, *SEND_RATE_COLUMNS]]


def _with_send_rates(out: pd.DataFrame, src: Sources, params: Params, as_of: pd.Timestamp) -> pd.DataFrame:
    """nps_by_segment's sends / responses_to_sends / response_rate: the period and segment's row of
    survey_sends_rated (0 sends, null rate without one); all null when sends are not available."""
    rated = survey_sends_rated(src, params, as_of)
    out = out.copy()
    if rated is None:
        for col in SEND_RATE_COLUMNS:
            out[col] = None
        return out
    keys = ["period_grain", "period_start", "segment_type", "segment_value"]
    out = out.drop(columns=[c for c in SEND_RATE_COLUMNS if c in out.columns]).merge(rated, on=keys, how="left")
    out["sends"] = out["sends"].fillna(0).astype("int64")
    out["responses_to_sends"] = out["responses_to_sends"].fillna(0).astype("int64")
    return out


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
    if isinstance(v, dt.datetime) and v.tzinfo is not None:
        # compare in UTC whatever the session time zone; periods are UTC: 2025-01-01 00:00+00 is
        # the date 2025-01-01
        v = v.astimezone(dt.UTC).replace(tzinfo=None)
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
