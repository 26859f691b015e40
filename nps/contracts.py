"""The data contract: one home for the facts every stage agrees on.

What the sources deliver (the entities: columns, kinds, required columns, keys, the documented
values of code columns), the tolerances the loader applies, and the vocabularies of the marts
(segment types, periods, buckets, statuses). Every other place reads them from here:

- the loader (`nps_airflow.extract` / `load` and the connectors' column mappings) validates rows against
  `SPECS` with the tolerances below;
- the demo generator writes `SPECS`' columns and draws from the same vocabularies;
- dbt gets `SEGMENT_TYPES` as the var `segment_types` of every pipeline build (`nps_airflow.dbt`);
- `nps/sql/warehouse.sql` (the raw tables), docs/contracts.md, the vocabularies and ranges of the
  dbt tests (tests/test_contracts.py) and the quality gate's hand-edited suites in expectations/gx/
  (the future-date tolerance, the segment types: `nps_airflow.quality.checks`) are checked against
  it, so a change here that they do not follow fails the tests.

Standard library only and no I/O: cheap to import (Airflow parses DAG files that import it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

# ---------------------------------------------------------------- column kinds

#: How a source string is validated and what it becomes in raw.*: text as is; timestamp -> timestamptz
#: (ISO 8601 or the mapping's transform; UTC); date -> date (YYYY-MM-DD); int -> integer >= 0;
#: score -> smallint in [SCORE_MIN, SCORE_MAX]; numeric -> numeric(14, 2).
TEXT, TIMESTAMP, DATE, INT, SCORE, NUMERIC = "text", "timestamp", "date", "int", "score", "numeric"

# ---------------------------------------------------------------- scores and categories

SCORE_MIN, SCORE_MAX = 0, 10
#: promoter 9-10, passive 7-8, detractor 0-6
PROMOTER_MIN_SCORE = 9
PASSIVE_MIN_SCORE = 7
DETRACTOR_MAX_SCORE = PASSIVE_MIN_SCORE - 1
NPS_CATEGORIES = ("promoter", "passive", "detractor")
#: NPS = 100 x (promoters - detractors) / responses lies in this range
NPS_MIN, NPS_MAX = -100, 100

# ---------------------------------------------------------------- documented values of code columns

SURVEY_TYPES = ("relational", "transactional")
ACTIVITY_TYPES = ("call", "email", "meeting", "ticket")

# ---------------------------------------------------------------- entities


@dataclass(frozen=True)
class EntitySpec:
    """One source entity as raw.* stores it (docs/contracts.md sections 1 and 2)."""

    table: str
    key: tuple[str, ...]
    #: the column a window is cut on (and a file drop dated by)
    interval_column: str
    #: contract column -> kind, in the order of the table and the file drops
    columns: dict[str, str]
    #: columns that must have a value (else the row is quarantined as missing_<column>)
    required: frozenset[str]
    #: free text that may hold PII: redacted before it is stored, length-limited
    pii_text_columns: tuple[str, ...] = ()
    #: the values a code column is documented to take (the demo writes them, the gate checks
    #: survey_type); the loader keeps other values as they are, except in `enforced_enums`
    enums: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: code columns of `enums` whose other values the loader quarantines as invalid_<column> (a
    #: blank value is allowed: unknown)
    enforced_enums: frozenset[str] = frozenset()

    @property
    def timestamp_columns(self) -> frozenset[str]:
        return frozenset(c for c, kind in self.columns.items() if kind == TIMESTAMP)

    @property
    def null_columns(self) -> frozenset[str]:
        """Where a source's null tokens ("NA", "N/A", "-", ...) mean "no value": typed columns (no
        token is a timestamp or a score) and free text (a comment of "NA" says nothing). Not
        codes and ids: "NA" is North America in a region column, a language code, an id."""
        return frozenset(c for c, kind in self.columns.items() if kind != TEXT) | frozenset(self.pii_text_columns)


SPECS: dict[str, EntitySpec] = {
    "survey_responses": EntitySpec(
        table="raw.survey_responses",
        key=("response_id",),
        interval_column="responded_at",
        columns={
            "response_id": TEXT, "survey_id": TEXT, "survey_type": TEXT, "trigger_event": TEXT,
            "account_id": TEXT, "contact_id": TEXT, "channel": TEXT, "sent_at": TIMESTAMP,
            "responded_at": TIMESTAMP, "score": SCORE, "comment": TEXT, "language": TEXT,
        },
        required=frozenset({"response_id", "account_id", "responded_at", "score"}),
        pii_text_columns=("comment",),
        enums={"survey_type": SURVEY_TYPES},
    ),
    "accounts": EntitySpec(
        table="raw.accounts",
        key=("account_id", "updated_at"),
        interval_column="updated_at",
        columns={
            "account_id": TEXT, "name": TEXT, "industry": TEXT, "region": TEXT,
            "employee_band": TEXT, "plan": TEXT, "arr": NUMERIC, "currency": TEXT,
            "customer_since": DATE, "owner": TEXT, "churned_at": TIMESTAMP, "updated_at": TIMESTAMP,
        },
        required=frozenset({"account_id", "updated_at"}),
    ),
    "contacts": EntitySpec(
        table="raw.contacts",
        key=("contact_id", "updated_at"),
        interval_column="updated_at",
        columns={
            "contact_id": TEXT, "account_id": TEXT, "email": TEXT, "full_name": TEXT, "role": TEXT,
            "created_at": TIMESTAMP, "updated_at": TIMESTAMP,
        },
        required=frozenset({"contact_id", "account_id", "updated_at"}),
    ),
    "activities": EntitySpec(
        table="raw.activities",
        key=("activity_id",),
        interval_column="created_at",
        columns={
            "activity_id": TEXT, "account_id": TEXT, "contact_id": TEXT, "response_id": TEXT,
            "activity_type": TEXT, "created_at": TIMESTAMP, "outcome": TEXT,
        },
        required=frozenset({"activity_id", "account_id", "created_at"}),
        enums={"activity_type": ACTIVITY_TYPES},
    ),
    "usage_daily": EntitySpec(
        table="raw.usage_daily",
        key=("account_id", "usage_date"),
        interval_column="usage_date",
        columns={
            "account_id": TEXT, "usage_date": DATE, "active_users": INT, "sessions": INT,
            "core_events": INT,
        },
        required=frozenset({"account_id", "usage_date"}),
    ),
    # One row per survey invitation sent, answered or not: what response rates and survey fatigue
    # are counted on. response_id links the answer when the export knows it (docs/contracts.md).
    "survey_sends": EntitySpec(
        table="raw.survey_sends",
        key=("send_id",),
        interval_column="sent_at",
        columns={
            "send_id": TEXT, "survey_id": TEXT, "survey_type": TEXT, "trigger_event": TEXT,
            "account_id": TEXT, "contact_id": TEXT, "channel": TEXT, "sent_at": TIMESTAMP,
            "response_id": TEXT,
        },
        required=frozenset({"send_id", "account_id", "sent_at"}),
        enums={"survey_type": SURVEY_TYPES},
        # a send of another type would count towards neither fatigue rule: quarantined, not kept
        enforced_enums=frozenset({"survey_type"}),
    ),
}
#: the source entities, in load order
ENTITIES: tuple[str, ...] = tuple(SPECS)
# A team can start with its survey export alone: CRM, product usage and survey sends come later.
# An entity left out of sources.yml is "not configured": its load records that in raw.load_audit
# and the marts that need it degrade visibly (marts.source_coverage, README "Survey-only teams").
REQUIRED_ENTITIES: tuple[str, ...] = ("survey_responses",)
OPTIONAL_ENTITIES: tuple[str, ...] = tuple(e for e in ENTITIES if e not in REQUIRED_ENTITIES)

# ---------------------------------------------------------------- load tolerances (per-source defaults)

#: A timestamp later than now + this many hours is quarantined as future_<column> by the loader,
#: and the validation gate fails raw.survey_responses rows later than its own now() + the same
#: tolerance, so a row the loader accepts never fails the gate. 24 h: a source's clock or a time
#: zone declared a few hours off does not lose the night's rows; a timestamp a day or more ahead
#: is wrong data. A source may set a smaller `future_tolerance_hours`, not a larger one.
FUTURE_TOLERANCE_HOURS = 24.0
#: A date column later than today (UTC) + this many days is quarantined as future_<column>.
FUTURE_DATE_TOLERANCE_DAYS = 1
#: Free text longer than this is quarantined as <column>_too_long.
MAX_COMMENT_CHARS = 5000
#: A load fails when more than this share of its rows is quarantined (the good rows are loaded).
MAX_QUARANTINE_SHARE = 0.05
#: A re-drop may remove at most this share of the rows loaded before from a file / window.
MAX_ROW_LOSS_SHARE = 0.05

# ---------------------------------------------------------------- mart vocabularies (docs/contracts.md section 4)

PERIOD_GRAINS = ("month", "quarter")
#: overall first; every other one is an attribute of the response (as of the response)
SEGMENT_TYPES = (
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
    "account_owner",
)
FOLLOW_UP_BUCKETS = ("within_24h", "within_48h", "later", "never")
#: the one bucket of marts.detractor_recovery when CRM activities are not available
NO_FOLLOW_UP_DATA = "no_follow_up_data"
THEME_STATUSES = ("new", "recurring", "resolved", "re-emerged", "absent")
PRIORITY_QUADRANTS = (
    "high_value_high_actionability",
    "high_value_low_actionability",
    "low_value_high_actionability",
    "low_value_low_actionability",
)
TRENDS = ("improving", "declining", "stable", "first_response")
