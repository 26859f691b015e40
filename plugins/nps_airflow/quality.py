"""Great Expectations (GX Core 1.x) validation of ``raw.survey_responses`` and the marts.

The GX project is a *file* context rooted at ``expectations/`` (config in ``expectations/gx/``):

* ``gx/great_expectations.yml`` - stores, the Data Docs site and two postgres datasources,
  ``nps_raw`` and ``nps_marts``. Their ``connection_string`` is ``${NPS_GX_RAW_SQLALCHEMY_URL}`` /
  ``${NPS_GX_MARTS_SQLALCHEMY_URL}``, resolved from the environment at run time - no secret is
  ever committed. Table assets are *unqualified* table names; the schema comes from the
  ``search_path`` that :func:`validate` puts into those URLs (``options=-csearch_path=<schema>``),
  so the same committed config validates ``marts`` or a write-audit-publish candidate schema
  without rewriting any committed file.
* ``gx/expectations/*.json`` (suites), ``gx/validation_definitions/``, ``gx/checkpoints/`` (one
  checkpoint per suite, each with an ``UpdateDataDocsAction``) - all generated deterministically
  by ``python -m nps_airflow.quality --init`` from :func:`build_suites` (the single source of
  truth); ``python -m nps_airflow.quality --check`` fails when the committed files are stale.
* ``gx/uncommitted/`` (git-ignored): GX's validation results store, the Data Docs site
  (``uncommitted/data_docs/local_site/index.html``) and, per run, one plain JSON result per
  suite in ``uncommitted/runs/<run_id>/<suite>.json``.

GX returns ``success=False`` without raising; :func:`validate` raises :class:`DataQualityError`
(by default) with the suite, expectation, column and offending values of every failure.

Import cost: this module imports only the standard library; ``great_expectations`` is imported
inside the functions that need it (Airflow parses DAG files that import this module).
Nothing here touches the network: GX analytics are disabled (``GX_ANALYTICS_ENABLED=false`` and
``analytics_enabled: false`` in the project config) and Data Docs are rendered to local files.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import filecmp
import json
import logging
import os
import re
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nps.contracts import (
    DETRACTOR_MAX_SCORE,
    FOLLOW_UP_BUCKETS,
    FUTURE_TOLERANCE_HOURS,
    NO_FOLLOW_UP_DATA,
    NPS_CATEGORIES,
    NPS_MAX,
    NPS_MIN,
    PASSIVE_MIN_SCORE,
    PERIOD_GRAINS,
    PRIORITY_QUADRANTS,
    PROMOTER_MIN_SCORE,
    SCORE_MAX,
    SCORE_MIN,
    SEGMENT_TYPES,
    SPECS,
    SURVEY_TYPES,
    THEME_STATUSES,
    TRENDS,
)
from nps.warehouse import check_schema_name as _check_schema
from nps.warehouse import sqlalchemy_url

if TYPE_CHECKING:  # pragma: no cover
    from great_expectations.core import ExpectationSuite
    from great_expectations.data_context import FileDataContext

__all__ = [
    "ALL_SUITES",
    "MART_SUITES",
    "RAW_SUITES",
    "DataQualityError",
    "ExpectationFailure",
    "SuiteResult",
    "ValidationReport",
    "build_suites",
    "check_project",
    "default_project_root",
    "init_project",
    "raise_for_failures",
    "sqlalchemy_url",
    "validate",
]

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------
# Names shared by the committed GX files and the code
# --------------------------------------------------------------------------------------------

DATASOURCE_RAW = "nps_raw"
DATASOURCE_MARTS = "nps_marts"
#: env var holding the SQLAlchemy URL of the warehouse (exported by :func:`validate`)
ENV_WAREHOUSE_SQLALCHEMY_URL = "NPS_WAREHOUSE_SQLALCHEMY_URL"
#: env vars referenced by the committed datasources: the warehouse URL + search_path=<schema>
ENV_DATASOURCE_URL = {
    DATASOURCE_RAW: "NPS_GX_RAW_SQLALCHEMY_URL",
    DATASOURCE_MARTS: "NPS_GX_MARTS_SQLALCHEMY_URL",
}
#: override of the GX project root (the directory that holds ``gx/``)
ENV_PROJECT_ROOT = "NPS_GX_PROJECT_ROOT"
BATCH_DEFINITION = "whole_table"
DATA_DOCS_SITE = "local_site"
RUNS_DIR = "runs"  # under gx/uncommitted/

#: suite name -> (datasource, table)
SUITE_TABLES: dict[str, tuple[str, str]] = {
    "raw_survey_responses": (DATASOURCE_RAW, "survey_responses"),
    "marts_nps_by_segment": (DATASOURCE_MARTS, "nps_by_segment"),
    "marts_detractor_recovery": (DATASOURCE_MARTS, "detractor_recovery"),
    "marts_theme_recurrence": (DATASOURCE_MARTS, "theme_recurrence"),
    "marts_detractor_queue": (DATASOURCE_MARTS, "detractor_queue"),
    "marts_theme_alerts": (DATASOURCE_MARTS, "theme_alerts"),
    "marts_account_nps_trajectory": (DATASOURCE_MARTS, "account_nps_trajectory"),
    "marts_nps_outcomes": (DATASOURCE_MARTS, "nps_outcomes"),
    "marts_survey_eligibility": (DATASOURCE_MARTS, "survey_eligibility"),
}
RAW_SUITES: tuple[str, ...] = ("raw_survey_responses",)
MART_SUITES: tuple[str, ...] = (
    "marts_nps_by_segment",
    "marts_detractor_recovery",
    "marts_theme_recurrence",
    "marts_detractor_queue",
    "marts_theme_alerts",
    "marts_account_nps_trajectory",
    "marts_nps_outcomes",
    "marts_survey_eligibility",
)
#: marts that keep their history and only grow: a candidate with far fewer rows than the published
#: mart lost data. Today's queue and the alert list legitimately shrink, so they have no such bound.
GROWING_MART_SUITES: tuple[str, ...] = (
    "marts_nps_by_segment",
    "marts_detractor_recovery",
    "marts_theme_recurrence",
    "marts_account_nps_trajectory",
    "marts_nps_outcomes",
    "marts_survey_eligibility",
)
ALL_SUITES: tuple[str, ...] = RAW_SUITES + MART_SUITES

#: responded_at may be at most this far ahead of the database clock: the loader's tolerance
FUTURE_TOLERANCE = f"{FUTURE_TOLERANCE_HOURS:g} hours"
RAW_RESPONSES = SPECS["survey_responses"]

# PostgreSQL ARE versions of the redaction patterns in ``nlp.text``. They must flag only what
# ``nlp.text.redact_pii`` would have replaced (a stricter check would fail clean loads):
# the e-mail pattern is the same expression, the phone pattern is a conservative subset
# (North American 3-3-4 with one kind of separator or "(415) 555-0132", and "+CC" numbers
# written in separated groups). tests/test_quality.py checks both against redact_pii.
EMAIL_REGEX = (
    r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,24}\y"
)
PHONE_REGEX = (
    r"(?<![\w.$€£/+(-])(?:"
    r"\+[0-9]{1,3}[ .-][0-9]{2,4}[ .-][0-9]{3,4}[ .-][0-9]{3,4}"
    r"|\([0-9]{3}\) ?[0-9]{3}[ .-][0-9]{4}"
    r"|[0-9]{3}-[0-9]{3}-[0-9]{4}"
    r"|[0-9]{3}\.[0-9]{3}\.[0-9]{4}"
    r"|[0-9]{3} [0-9]{3} [0-9]{4}"
    r")(?![\w$€£%]|[.,-][0-9])"
)

_UUID_NAMESPACE = uuid.UUID("6f1d7c52-3b0e-5a8e-9a53-6e7073677821")
_MAX_VALUES_IN_MESSAGE = 5


def default_project_root() -> Path:
    """``$NPS_GX_PROJECT_ROOT`` or ``<repo>/expectations`` (next to ``plugins/``)."""
    env = os.environ.get(ENV_PROJECT_ROOT)
    if env:
        return Path(env).expanduser().resolve()
    return Path(__file__).resolve().parents[2] / "expectations"


# --------------------------------------------------------------------------------------------
# Result types
# --------------------------------------------------------------------------------------------


class DataQualityError(RuntimeError):
    """At least one expectation failed; ``report`` holds the full :class:`ValidationReport`."""

    def __init__(self, message: str, report: ValidationReport | None = None) -> None:
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class ExpectationFailure:
    suite: str
    expectation_type: str
    column: str | None
    description: str | None
    kwargs: dict[str, Any]
    observed_value: Any = None
    unexpected_count: int | None = None
    unexpected_percent: float | None = None
    sample: list[Any] = field(default_factory=list)
    exception: str | None = None

    def describe(self) -> str:
        parts = [f"[{self.suite}] {self.expectation_type}"]
        target = self.column or _columns_of(self.kwargs)
        if target:
            parts.append(f"column={target}")
        if self.description:
            parts.append(f"({self.description})")
        detail = []
        if self.exception:
            detail.append(f"error: {self.exception}")
        if self.unexpected_count is not None:
            pct = f" ({self.unexpected_percent:.2f}%)" if self.unexpected_percent is not None else ""
            detail.append(f"{self.unexpected_count} unexpected{pct}")
        if self.sample:
            detail.append(f"e.g. {_short(self.sample[:_MAX_VALUES_IN_MESSAGE])}")
        elif self.observed_value is not None:
            detail.append(f"observed {_short(self.observed_value)}")
        expected = _expected_of(self.kwargs)
        if expected:
            detail.append(f"expected {expected}")
        return " ".join(parts) + (": " + "; ".join(detail) if detail else "")


@dataclass(frozen=True)
class SuiteResult:
    suite: str
    table: str  # schema.table
    success: bool
    evaluated: int
    successful: int
    unsuccessful: int
    success_percent: float | None
    result_path: Path  # plain JSON of the full ExpectationSuiteValidationResult
    gx_result_path: Path | None  # the same result in GX's validation results store
    failures: tuple[ExpectationFailure, ...] = ()

    @property
    def statistics(self) -> dict[str, Any]:
        return {
            "evaluated_expectations": self.evaluated,
            "successful_expectations": self.successful,
            "unsuccessful_expectations": self.unsuccessful,
            "success_percent": self.success_percent,
        }


@dataclass(frozen=True)
class ValidationReport:
    success: bool
    run_id: str
    schema: str
    raw_schema: str
    suites: dict[str, SuiteResult]
    data_docs_index: Path | None
    run_dir: Path
    duration_s: float

    @property
    def failures(self) -> list[ExpectationFailure]:
        return [f for r in self.suites.values() for f in r.failures]

    @property
    def statistics(self) -> dict[str, dict[str, Any]]:
        return {name: r.statistics for name, r in self.suites.items()}

    @property
    def result_paths(self) -> dict[str, Path]:
        return {name: r.result_path for name, r in self.suites.items()}

    def summary(self) -> str:
        lines = [
            f"GX validation run {self.run_id}: {'PASSED' if self.success else 'FAILED'} "
            f"({len(self.suites)} suites, {self.duration_s:.1f}s)"
        ]
        for r in self.suites.values():
            lines.append(f"  {r.suite} on {r.table}: {r.successful}/{r.evaluated} expectations passed")
        lines.extend(f"  - {f.describe()}" for f in self.failures)
        if self.data_docs_index:
            lines.append(f"  Data Docs: {self.data_docs_index}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "success": self.success,
            "run_id": self.run_id,
            "schema": self.schema,
            "raw_schema": self.raw_schema,
            "duration_s": self.duration_s,
            "data_docs_index": str(self.data_docs_index) if self.data_docs_index else None,
            "suites": {
                name: {
                    "table": r.table,
                    "success": r.success,
                    **r.statistics,
                    "result_path": str(r.result_path),
                    "failures": [f.describe() for f in r.failures],
                }
                for name, r in self.suites.items()
            },
        }


def raise_for_failures(report: ValidationReport) -> ValidationReport:
    """Raise :class:`DataQualityError` naming every failed expectation; return the report if clean."""
    if report.success:
        return report
    failed = [r.suite for r in report.suites.values() if not r.success]
    lines = [
        f"Data quality check failed for suite(s) {', '.join(failed)} "
        f"(run {report.run_id}, marts schema {report.schema!r}, raw schema {report.raw_schema!r}):"
    ]
    for result in report.suites.values():
        if result.success:
            continue
        errors = {f.exception for f in result.failures}
        if len(result.failures) > 1 and len(errors) == 1 and None not in errors:
            # typically a missing table / column: one line instead of one per expectation
            lines.append(
                f"  - [{result.suite}] all {len(result.failures)} failed expectations on "
                f"{result.table} raised: {errors.pop()}"
            )
        else:
            lines.extend(f"  - {f.describe()}" for f in result.failures)
    if report.data_docs_index:
        lines.append(f"Data Docs: {report.data_docs_index}")
    lines.append(f"Results: {report.run_dir}")
    raise DataQualityError("\n".join(lines), report)


# --------------------------------------------------------------------------------------------
# Suites - the single source of truth for the committed JSON files
# --------------------------------------------------------------------------------------------


SUITE_PARAMETER_DEFAULTS: dict[str, Any] = {
    "raw_survey_responses__freshest_min": None,
    **{f"{name}__min_rows": None for name in GROWING_MART_SUITES},
}


def suite_parameters(
    conn: Any,
    *,
    interval_end: dt.datetime | None,
    published_schema: str = "marts",
    freshness_lag: dt.timedelta = dt.timedelta(days=3),
    row_count_tolerance: float = 0.1,
) -> dict[str, Any]:
    """The run-dependent bounds: the newest response must be at most ``freshness_lag`` older
    than the interval end, and each candidate mart must keep at least (1 - tolerance) of the
    rows of the mart published by the previous run (marts grow with history; a drop means lost
    data)."""
    params: dict[str, Any] = dict(SUITE_PARAMETER_DEFAULTS)
    if interval_end is not None:
        params["raw_survey_responses__freshest_min"] = interval_end - freshness_lag
    _check_schema(published_schema)
    with conn.cursor() as cur:
        for name in GROWING_MART_SUITES:
            table = SUITE_TABLES[name][1]
            cur.execute("select to_regclass(%s)", (f"{published_schema}.{table}",))
            if cur.fetchone()[0] is None:
                continue
            cur.execute(f"select count(*) from {published_schema}.{table}")
            previous = cur.fetchone()[0]
            params[f"{name}__min_rows"] = int(previous * (1 - row_count_tolerance))
    return params


def _literal_braces(regex: str) -> str:
    """A regex inside an UnexpectedRowsExpectation query: GX formats the query ({batch}), so
    literal braces are doubled."""
    return regex.replace("{", "{{").replace("}", "}}")


def _rank(score: str) -> str:
    """NPS category rank of a score in SQL: detractor 0 < passive 1 < promoter 2."""
    return f"(case when {score} >= {PROMOTER_MIN_SCORE} then 2 when {score} >= {PASSIVE_MIN_SCORE} then 1 else 0 end)"


def build_suites() -> dict[str, ExpectationSuite]:
    """The expectation suites (raw + one per mart), built in code (``--init`` writes them as JSON)."""
    import great_expectations as gx
    import great_expectations.expectations as gxe

    def not_null(*cols: str) -> list[Any]:
        return [gxe.ExpectColumnValuesToNotBeNull(column=c) for c in cols]

    def non_negative(*cols: str) -> list[Any]:
        return [gxe.ExpectColumnValuesToBeBetween(column=c, min_value=0) for c in cols]

    def sql(description: str, query: str) -> Any:
        return gxe.UnexpectedRowsExpectation(description=description, unexpected_rows_query=query)

    raw = [
        gxe.ExpectTableColumnsToMatchSet(
            column_set=list(RAW_RESPONSES.columns),
            exact_match=False,
        ),
        *not_null(*(c for c in RAW_RESPONSES.columns if c in RAW_RESPONSES.required)),
        gxe.ExpectColumnValuesToBeUnique(column="response_id"),
        gxe.ExpectColumnValuesToBeBetween(column="score", min_value=SCORE_MIN, max_value=SCORE_MAX),
        gxe.ExpectColumnValuesToBeInSet(column="survey_type", value_set=list(SURVEY_TYPES)),
        sql(
            f"responded_at is not in the future (tolerance {FUTURE_TOLERANCE})",
            "select response_id, responded_at from {batch} "
            f"where responded_at > now() + interval '{FUTURE_TOLERANCE}'",
        ),
        gxe.ExpectColumnValuesToNotMatchRegex(
            column="comment", regex=EMAIL_REGEX, description="comment has no e-mail address"
        ),
        gxe.ExpectColumnValuesToNotMatchRegex(
            column="comment", regex=PHONE_REGEX, description="comment has no phone number"
        ),
    ]

    nps_cols = [
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
    ]
    nps_by_segment = [
        gxe.ExpectTableColumnsToMatchSet(column_set=nps_cols, exact_match=False),
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        *not_null(
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
            "below_min_n",
        ),
        gxe.ExpectColumnValuesToBeInSet(column="period_grain", value_set=list(PERIOD_GRAINS)),
        gxe.ExpectColumnValuesToBeInSet(column="segment_type", value_set=list(SEGMENT_TYPES)),
        gxe.ExpectColumnDistinctValuesToContainSet(column="segment_type", value_set=list(SEGMENT_TYPES)),
        gxe.ExpectCompoundColumnsToBeUnique(
            column_list=["period_grain", "period_start", "segment_type", "segment_value"]
        ),
        gxe.ExpectColumnValuesToBeBetween(column="responses", min_value=1),
        *non_negative("promoters", "passives", "detractors", "margin_of_error"),
        gxe.ExpectColumnValuesToBeBetween(column="nps", min_value=NPS_MIN, max_value=NPS_MAX),
        gxe.ExpectColumnValuesToBeBetween(column="revenue_weighted_nps", min_value=NPS_MIN, max_value=NPS_MAX),
        sql(
            "promoters + passives + detractors = responses",
            "select period_grain, period_start, segment_type, segment_value, responses, "
            "promoters, passives, detractors from {batch} "
            "where promoters + passives + detractors <> responses",
        ),
        sql(
            "nps = 100 * (promoters - detractors) / responses",
            "select period_grain, period_start, segment_type, segment_value, nps, responses, "
            "promoters, detractors from {batch} where responses > 0 and "
            "abs(nps - 100.0 * (promoters - detractors) / responses) > 1e-6",
        ),
        sql(
            "segment_type 'overall' has segment_value 'all'",
            "select period_grain, period_start, segment_value from {batch} "
            "where segment_type = 'overall' and segment_value <> 'all'",
        ),
        gxe.ExpectColumnValuesToBeBetween(column="previous_nps", min_value=NPS_MIN, max_value=NPS_MAX),
        gxe.ExpectColumnValuesToBeBetween(column="change_margin_of_error", min_value=0),
        sql(
            "change_exceeds_margin_of_error = |nps - previous_nps| > sqrt(moe^2 + previous moe^2)",
            "select period_grain, period_start, segment_type, segment_value, nps_change, "
            "change_margin_of_error, change_exceeds_margin_of_error from {batch} "
            "where nps_change is distinct from nps - previous_nps "
            "or (change_exceeds_margin_of_error is null) <> (previous_nps is null) "
            "or change_exceeds_margin_of_error <> (abs(nps_change) > change_margin_of_error)",
        ),
    ]

    recovery_counts = [
        "detractors",
        "with_next_response",
        "recovered",
        "fully_recovered",
        "lost_to_churn",
        "awaiting_next",
    ]
    detractor_recovery = [
        gxe.ExpectTableColumnsToMatchSet(
            column_set=[
                "period_grain",
                "period_start",
                "segment_type",
                "segment_value",
                "follow_up_bucket",
                *recovery_counts,
                "recovery_rate",
                "full_recovery_rate",
                "median_hours_to_first_follow_up",
                "segment_median_hours_to_first_follow_up",
                "sla_24h_attainment",
                "sla_48h_attainment",
            ],
            exact_match=False,
        ),
        *not_null("period_grain", "period_start", "segment_type", "segment_value", "follow_up_bucket",
                  *recovery_counts),
        gxe.ExpectColumnValuesToBeInSet(column="period_grain", value_set=list(PERIOD_GRAINS)),
        gxe.ExpectColumnValuesToBeInSet(column="segment_type", value_set=list(SEGMENT_TYPES)),
        gxe.ExpectColumnValuesToBeInSet(column="follow_up_bucket", value_set=[*FOLLOW_UP_BUCKETS, NO_FOLLOW_UP_DATA]),
        gxe.ExpectCompoundColumnsToBeUnique(
            column_list=["period_grain", "period_start", "segment_type", "segment_value", "follow_up_bucket"]
        ),
        *non_negative(*recovery_counts, "median_hours_to_first_follow_up",
                      "segment_median_hours_to_first_follow_up"),
        *[
            gxe.ExpectColumnValuesToBeBetween(column=c, min_value=0, max_value=1)
            for c in ("recovery_rate", "full_recovery_rate", "sla_24h_attainment", "sla_48h_attainment")
        ],
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A="with_next_response",
            column_B="recovered",
            or_equal=True,
            description="recovered <= with_next_response",
        ),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A="recovered",
            column_B="fully_recovered",
            or_equal=True,
            description="fully_recovered <= recovered",
        ),
        sql(
            "with_next_response + awaiting_next + lost_to_churn = detractors",
            "select period_grain, period_start, follow_up_bucket, detractors, "
            "with_next_response, awaiting_next, lost_to_churn from {batch} "
            "where with_next_response + awaiting_next + lost_to_churn <> detractors",
        ),
        sql(
            "recovery_rate = recovered / with_next_response, null when with_next_response = 0",
            "select period_grain, period_start, follow_up_bucket, recovery_rate, recovered, "
            "with_next_response from {batch} where "
            "(with_next_response = 0 and recovery_rate is not null) or "
            "(with_next_response > 0 and (recovery_rate is null or "
            "abs(recovery_rate - recovered::float8 / with_next_response) > 1e-6))",
        ),
        sql(
            f"every period and segment has all four follow_up_buckets (or only {NO_FOLLOW_UP_DATA})",
            "select period_grain, period_start, segment_type, segment_value, "
            "count(distinct follow_up_bucket) as buckets "
            "from {batch} group by period_grain, period_start, segment_type, segment_value "
            f"having count(distinct follow_up_bucket) <> {len(FOLLOW_UP_BUCKETS)} "
            f"and array_agg(distinct follow_up_bucket) <> array['{NO_FOLLOW_UP_DATA}']",
        ),
        sql(
            "each segment type counts every detractor of the period once",
            "with d as (select * from {batch}) "
            "select d.period_grain, d.period_start, d.segment_type, sum(d.detractors) as detractors "
            "from d group by d.period_grain, d.period_start, d.segment_type "
            "having sum(d.detractors) <> (select sum(o.detractors) from d as o "
            "where o.segment_type = 'overall' and o.period_grain = d.period_grain "
            "and o.period_start = d.period_start)",
        ),
        sql(
            "SLA attainment: 48 h at least 24 h, the same on the four bucket rows",
            "select period_grain, period_start, segment_type, segment_value from {batch} "
            "group by period_grain, period_start, segment_type, segment_value "
            "having count(distinct sla_24h_attainment) > 1 or count(distinct sla_48h_attainment) > 1 "
            "or max(sla_24h_attainment) > max(sla_48h_attainment) + 1e-9",
        ),
    ]

    theme_recurrence = [
        gxe.ExpectTableColumnsToMatchSet(
            column_set=[
                "theme_id",
                "quarter_start",
                "theme_label",
                "keywords",
                "is_actionable",
                "actionability_source",
                "mentions",
                "promoter_mentions",
                "passive_mentions",
                "detractor_mentions",
                "detractor_share",
                "promoter_mention_share",
                "detractor_mention_share",
                "arr_at_risk",
                "quarters_present",
                "current_streak",
                "first_seen_quarter",
                "last_seen_quarter",
                "status",
            ],
            exact_match=False,
        ),
        *not_null(
            "theme_id",
            "quarter_start",
            "mentions",
            "detractor_mentions",
            "arr_at_risk",
            "quarters_present",
            "current_streak",
            "status",
        ),
        gxe.ExpectCompoundColumnsToBeUnique(column_list=["theme_id", "quarter_start"]),
        *non_negative("mentions", "detractor_mentions", "arr_at_risk", "quarters_present", "current_streak"),
        gxe.ExpectColumnValuesToBeBetween(column="detractor_share", min_value=0, max_value=1),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A="mentions",
            column_B="detractor_mentions",
            or_equal=True,
            description="detractor_mentions <= mentions",
        ),
        gxe.ExpectColumnValuesToBeInSet(column="status", value_set=list(THEME_STATUSES)),
        sql(
            "detractor_share is null exactly when mentions = 0",
            "select theme_id, quarter_start, mentions, detractor_share from {batch} "
            "where (mentions = 0) <> (detractor_share is null)",
        ),
        *[
            gxe.ExpectColumnValuesToBeBetween(column=c, min_value=0, max_value=1)
            for c in ("promoter_mention_share", "detractor_mention_share")
        ],
        sql(
            "promoter + passive + detractor mentions = mentions",
            "select theme_id, quarter_start, mentions, promoter_mentions, passive_mentions, "
            "detractor_mentions from {batch} "
            "where promoter_mentions + passive_mentions + detractor_mentions <> mentions",
        ),
    ]

    detractor_queue = [
        gxe.ExpectTableColumnsToMatchSet(
            column_set=[
                "response_id", "account_id", "contact_id", "queue_position", "priority_quadrant",
                "priority_rank", "account_name", "plan", "account_arr", "is_high_value",
                "account_owner", "score", "survey_type", "trigger_event", "comment", "responded_at",
                "theme_id", "theme_label", "theme_is_actionable", "is_actionable",
                "actionability_source", "follow_up_due_at", "is_sla_breached", "hours_open", "as_of",
            ],
            exact_match=False,
        ),
        *not_null("response_id", "account_id", "queue_position", "priority_quadrant", "priority_rank",
                  "score", "responded_at", "is_actionable", "follow_up_due_at", "is_sla_breached", "as_of"),
        gxe.ExpectColumnValuesToBeUnique(column="response_id"),
        gxe.ExpectColumnValuesToBeUnique(column="queue_position"),
        gxe.ExpectColumnValuesToBeBetween(column="score", min_value=SCORE_MIN, max_value=DETRACTOR_MAX_SCORE),
        gxe.ExpectColumnValuesToBeInSet(column="priority_quadrant", value_set=list(PRIORITY_QUADRANTS)),
        *non_negative("account_arr", "hours_open"),
        gxe.ExpectColumnValuesToNotMatchRegex(
            column="comment", regex=EMAIL_REGEX, description="comment has no e-mail address"
        ),
        gxe.ExpectColumnValuesToNotMatchRegex(
            column="comment", regex=PHONE_REGEX, description="comment has no phone number"
        ),
        sql(
            "priority_quadrant / priority_rank follow is_high_value and is_actionable",
            "select response_id, priority_quadrant, priority_rank, is_high_value, is_actionable from {batch} "
            "where priority_rank <> case when is_high_value and is_actionable then 1 when is_high_value "
            "then 2 when is_actionable then 3 else 4 end "
            "or priority_quadrant <> (case when is_high_value then 'high_value' else 'low_value' end) "
            "|| (case when is_actionable then '_high_actionability' else '_low_actionability' end)",
        ),
        sql(
            "queue_position is 1..n in priority_rank order",
            "select response_id, queue_position, priority_rank from ("
            "select response_id, queue_position, priority_rank, "
            "lag(priority_rank) over (order by queue_position) as previous_rank, "
            "row_number() over (order by queue_position) as n from {batch}) as q "
            "where queue_position <> n or previous_rank > priority_rank",
        ),
        sql(
            "is_sla_breached = as_of > follow_up_due_at; one as_of; responded before as_of",
            "select response_id, as_of, follow_up_due_at, is_sla_breached from {batch} "
            "where is_sla_breached <> (as_of > follow_up_due_at) or responded_at >= as_of "
            "or as_of <> (select min(as_of) from {batch})",
        ),
    ]

    theme_alerts = [
        gxe.ExpectTableColumnsToMatchSet(
            column_set=[
                "theme_id", "month_start", "theme_label", "keywords", "is_actionable",
                "actionability_source", "mentions", "detractor_mentions", "detractor_share",
                "alert_threshold", "previous_month_detractor_mentions", "is_new_alert",
                "first_alert_month", "accounts_affected", "arr_at_risk", "first_detractor_mention_at",
                "last_detractor_mention_at", "sample_comments", "sample_response_ids",
            ],
            exact_match=False,
        ),
        *not_null("theme_id", "month_start", "theme_label", "mentions", "detractor_mentions",
                  "alert_threshold", "is_new_alert", "first_alert_month", "accounts_affected",
                  "arr_at_risk", "sample_comments"),
        gxe.ExpectCompoundColumnsToBeUnique(column_list=["theme_id", "month_start"]),
        *non_negative("arr_at_risk", "previous_month_detractor_mentions"),
        gxe.ExpectColumnValuesToBeBetween(column="detractor_share", min_value=0, max_value=1),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A="mentions", column_B="detractor_mentions", or_equal=True,
            description="detractor_mentions <= mentions",
        ),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A="detractor_mentions", column_B="accounts_affected", or_equal=True,
            description="accounts_affected <= detractor_mentions",
        ),
        sql(
            "every alert crossed its threshold; is_new_alert = previous month below it",
            "select theme_id, month_start, detractor_mentions, alert_threshold, is_new_alert from {batch} "
            "where detractor_mentions < alert_threshold or is_new_alert <> "
            "(previous_month_detractor_mentions < alert_threshold) or first_alert_month > month_start",
        ),
        sql(
            "sample comments: one response id each, no e-mail address or phone number",
            "select theme_id, month_start, sample_comments from {batch} "
            "where cardinality(sample_comments) <> cardinality(sample_response_ids) "
            f"or array_to_string(sample_comments, ' | ') ~ '{_literal_braces(EMAIL_REGEX)}' "
            f"or array_to_string(sample_comments, ' | ') ~ '{_literal_braces(PHONE_REGEX)}'",
        ),
    ]

    account_nps_trajectory = [
        gxe.ExpectTableColumnsToMatchSet(
            column_set=[
                "account_id", "account_name", "plan", "arr", "account_owner", "is_churned", "responses",
                "first_response_at", "last_response_at", "days_since_last_response", "last_score",
                "last_nps_category", "previous_score", "previous_nps_category", "score_change", "trend",
                "last_scores", "trajectory", "as_of",
            ],
            exact_match=False,
        ),
        *not_null("account_id", "responses", "last_response_at", "days_since_last_response", "last_score",
                  "last_nps_category", "trend", "last_scores", "trajectory", "as_of"),
        gxe.ExpectColumnValuesToBeUnique(column="account_id"),
        gxe.ExpectColumnValuesToBeBetween(column="responses", min_value=1),
        gxe.ExpectColumnValuesToBeBetween(column="days_since_last_response", min_value=0),
        *[gxe.ExpectColumnValuesToBeBetween(column=c, min_value=SCORE_MIN, max_value=SCORE_MAX)
          for c in ("last_score", "previous_score")],
        gxe.ExpectColumnValuesToBeInSet(column="last_nps_category", value_set=list(NPS_CATEGORIES)),
        gxe.ExpectColumnValuesToBeInSet(column="trend", value_set=list(TRENDS)),
        sql(
            "category follows the score; trend follows the last two categories",
            "select account_id, last_score, previous_score, last_nps_category, trend from {batch} "
            "where last_nps_category <> case when last_score >= 9 then 'promoter' when last_score >= 7 "
            "then 'passive' else 'detractor' end or trend <> case when previous_score is null "
            f"then 'first_response' when {_rank('last_score')} > {_rank('previous_score')} then 'improving' "
            f"when {_rank('last_score')} < {_rank('previous_score')} then 'declining' else 'stable' end",
        ),
        sql(
            "the latest score ends last_scores; last response before as_of",
            "select account_id, last_score, last_scores from {batch} "
            "where last_scores[cardinality(last_scores)] <> last_score or last_response_at >= as_of "
            "or cardinality(last_scores) > responses",
        ),
    ]

    outcome_counts = ["responses", "distinct_accounts", "churned", "expanded", "contracted"]
    nps_outcomes = [
        gxe.ExpectTableColumnsToMatchSet(
            column_set=[
                "horizon_days", "segment_type", "segment_value", "nps_category", *outcome_counts,
                "churn_rate", "expansion_rate", "contraction_rate", "arr_at_response", "arr_retained",
                "net_revenue_retention", "below_min_n",
            ],
            exact_match=False,
        ),
        *not_null("horizon_days", "segment_type", "segment_value", "nps_category", *outcome_counts,
                  "churn_rate", "expansion_rate", "contraction_rate", "below_min_n"),
        gxe.ExpectCompoundColumnsToBeUnique(
            column_list=["horizon_days", "segment_type", "segment_value", "nps_category"]
        ),
        gxe.ExpectColumnValuesToBeInSet(column="segment_type", value_set=list(SEGMENT_TYPES)),
        gxe.ExpectColumnValuesToBeInSet(column="nps_category", value_set=list(NPS_CATEGORIES)),
        gxe.ExpectColumnValuesToBeBetween(column="horizon_days", min_value=1),
        gxe.ExpectColumnValuesToBeBetween(column="responses", min_value=1),
        *non_negative(*outcome_counts, "arr_at_response", "arr_retained", "net_revenue_retention"),
        *[
            gxe.ExpectColumnValuesToBeBetween(column=c, min_value=0, max_value=1)
            for c in ("churn_rate", "expansion_rate", "contraction_rate")
        ],
        sql(
            "churned + expanded + contracted <= responses; rates = counts / responses",
            "select horizon_days, segment_type, segment_value, nps_category from {batch} "
            "where churned + expanded + contracted > responses "
            "or abs(churn_rate - churned::float8 / responses) > 1e-9 "
            "or abs(expansion_rate - expanded::float8 / responses) > 1e-9",
        ),
    ]

    survey_eligibility = [
        gxe.ExpectTableColumnsToMatchSet(
            column_set=[
                "contact_id", "account_id", "contact_role", "account_name", "plan", "account_owner",
                "last_relational_survey_at", "last_transactional_survey_at", "is_relational_fatigued",
                "is_transactional_fatigued", "is_account_churned", "is_eligible", "eligible_from", "as_of",
            ],
            exact_match=False,
        ),
        *not_null("contact_id", "account_id", "is_relational_fatigued", "is_transactional_fatigued",
                  "is_account_churned", "is_eligible", "as_of"),
        gxe.ExpectColumnValuesToBeUnique(column="contact_id"),
        sql(
            "is_eligible = not fatigued and not churned; eligible_from consistent",
            "select contact_id, is_eligible, is_relational_fatigued, is_transactional_fatigued, "
            "is_account_churned, eligible_from from {batch} "
            "where is_eligible <> not (is_relational_fatigued or is_transactional_fatigued "
            "or is_account_churned) or (is_eligible and eligible_from <> as_of) "
            "or (not is_account_churned and eligible_from < as_of) "
            "or last_relational_survey_at >= as_of or last_transactional_survey_at >= as_of",
        ),
    ]

    # Bounds that depend on the run (see suite_parameters()): freshness relative to the data
    # interval, and row counts within a tolerance of the marts published by the previous run.
    raw.append(
        gxe.ExpectColumnMaxToBeBetween(
            column="responded_at",
            min_value={"$PARAMETER": "raw_survey_responses__freshest_min"},
            description="freshness: the newest response is not older than the allowed lag before the interval end",
        )
    )
    specs = {
        "raw_survey_responses": raw,
        "marts_nps_by_segment": nps_by_segment,
        "marts_detractor_recovery": detractor_recovery,
        "marts_theme_recurrence": theme_recurrence,
        "marts_detractor_queue": detractor_queue,
        "marts_theme_alerts": theme_alerts,
        "marts_account_nps_trajectory": account_nps_trajectory,
        "marts_nps_outcomes": nps_outcomes,
        "marts_survey_eligibility": survey_eligibility,
    }
    for name in GROWING_MART_SUITES:
        specs[name].append(
            gxe.ExpectTableRowCountToBeBetween(
                min_value={"$PARAMETER": f"{name}__min_rows"},
                description="row count within the tolerance of the previously published mart",
            )
        )

    suites: dict[str, ExpectationSuite] = {}
    for name, expectations in specs.items():
        datasource, table = SUITE_TABLES[name]
        suite = gx.ExpectationSuite(
            name=name,
            id=_stable_id("suite", name),
            meta={
                "notes": f"Generated by `python -m nps_airflow.quality --init`; validates the "
                f"table {table!r} of datasource {datasource!r}. Edit build_suites(), not this file."
            },
        )
        for i, exp in enumerate(expectations):
            suite.add_expectation(exp)
            exp.id = _stable_id("expectation", name, str(i), exp.expectation_type)
        suites[name] = suite
    return suites


# --------------------------------------------------------------------------------------------
# Project generation (--init) and consistency check (--check)
# --------------------------------------------------------------------------------------------


def _stable_id(*parts: str) -> str:
    return str(uuid.uuid5(_UUID_NAMESPACE, "/".join(parts)))


def _project_yaml() -> str:
    lines = [
        "# Great Expectations (GX Core 1.x) file context of the NPS pipeline.",
        "# Generated by `python -m nps_airflow.quality --init`; edit plugins/nps_airflow/quality.py.",
        "# Connection strings are ${ENV_VAR} references resolved at run time (no secrets here):",
        "# nps_airflow.quality.validate() exports the warehouse URL with search_path=<schema>.",
        "config_version: 4.0",
        "analytics_enabled: false",
        "progress_bars:",
        "  globally: false",
        "  metric_calculations: false",
        "config_variables_file_path: uncommitted/config_variables.yml",
        "plugins_directory: plugins/",
        "stores:",
        "  expectations_store:",
        "    class_name: ExpectationsStore",
        "    store_backend:",
        "      class_name: TupleFilesystemStoreBackend",
        "      suppress_store_backend_id: true",
        "      base_directory: expectations/",
        "  validation_results_store:",
        "    class_name: ValidationResultsStore",
        "    store_backend:",
        "      class_name: TupleFilesystemStoreBackend",
        "      suppress_store_backend_id: true",
        "      base_directory: uncommitted/validations/",
        "  checkpoint_store:",
        "    class_name: CheckpointStore",
        "    store_backend:",
        "      class_name: TupleFilesystemStoreBackend",
        "      suppress_store_backend_id: true",
        "      base_directory: checkpoints/",
        "  validation_definition_store:",
        "    class_name: ValidationDefinitionStore",
        "    store_backend:",
        "      class_name: TupleFilesystemStoreBackend",
        "      suppress_store_backend_id: true",
        "      base_directory: validation_definitions/",
        "expectations_store_name: expectations_store",
        "validation_results_store_name: validation_results_store",
        "checkpoint_store_name: checkpoint_store",
        "data_docs_sites:",
        f"  {DATA_DOCS_SITE}:",
        "    class_name: SiteBuilder",
        "    show_how_to_buttons: false",
        "    store_backend:",
        "      class_name: TupleFilesystemStoreBackend",
        "      base_directory: uncommitted/data_docs/local_site/",
        "    site_index_builder:",
        "      class_name: DefaultSiteIndexBuilder",
        "fluent_datasources:",
    ]
    for ds in (DATASOURCE_RAW, DATASOURCE_MARTS):
        lines += [
            f"  {ds}:",
            "    type: postgres",
            f"    id: {_stable_id('datasource', ds)}",
            f"    connection_string: ${{{ENV_DATASOURCE_URL[ds]}}}",
            "    assets:",
        ]
        for suite, (suite_ds, table) in SUITE_TABLES.items():
            if suite_ds != ds:
                continue
            lines += [
                f"      {table}:",
                "        type: table",
                f"        id: {_stable_id('asset', ds, table)}",
                f"        table_name: {table}",
                "        batch_metadata:",
                f"          suite: {suite}",
                "        batch_definitions:",
                f"          {BATCH_DEFINITION}:",
                f"            id: {_stable_id('batch_definition', ds, table, BATCH_DEFINITION)}",
                "            partitioner:",
            ]
    return "\n".join(lines) + "\n"


_GITIGNORE = "uncommitted/\n"


def init_project(project_root: Path | str | None = None) -> Path:
    """(Re)generate the committed GX files under ``<project_root>/gx`` deterministically.

    Rewrites ``great_expectations.yml``, ``expectations/``, ``validation_definitions/`` and
    ``checkpoints/``; leaves ``uncommitted/`` alone. Needs no database. Returns the gx dir.
    """
    root = Path(project_root) if project_root else default_project_root()
    gx_dir = root / "gx"
    gx_dir.mkdir(parents=True, exist_ok=True)
    for sub in ("expectations", "validation_definitions", "checkpoints"):
        shutil.rmtree(gx_dir / sub, ignore_errors=True)
    (gx_dir / "great_expectations.yml").write_text(_project_yaml(), encoding="utf-8")
    (gx_dir / ".gitignore").write_text(_GITIGNORE, encoding="utf-8")
    (gx_dir / "plugins").mkdir(exist_ok=True)
    (gx_dir / "plugins" / ".gitkeep").touch()

    with _gx_environment({}):
        import great_expectations as gx
        from great_expectations.checkpoint import UpdateDataDocsAction

        context = gx.get_context(mode="file", project_root_dir=str(root))
        for name, suite in build_suites().items():
            expectation_ids = [e.id for e in suite.expectations]
            suite = context.suites.add(suite)  # the store assigns random ids on create ...
            suite.id = _stable_id("suite", name)  # ... so put the stable ones back and save
            for exp, exp_id in zip(suite.expectations, expectation_ids, strict=True):
                exp.id = exp_id
            suite.save()

            datasource, table = SUITE_TABLES[name]
            batch_definition = (
                context.data_sources.get(datasource).get_asset(table).get_batch_definition(BATCH_DEFINITION)
            )
            vd = context.validation_definitions.add(
                gx.ValidationDefinition(name=name, data=batch_definition, suite=suite)
            )
            vd.id = _stable_id("validation_definition", name)
            vd.save()
            checkpoint = context.checkpoints.add(
                gx.Checkpoint(
                    name=name,
                    validation_definitions=[vd],
                    actions=[UpdateDataDocsAction(name="update_data_docs", site_names=[DATA_DOCS_SITE])],
                    result_format={"result_format": "SUMMARY", "partial_unexpected_count": 20},
                )
            )
            checkpoint.id = _stable_id("checkpoint", name)
            checkpoint.save()
    # GX rewrites the project config on load; keep the committed form byte-stable.
    (gx_dir / "great_expectations.yml").write_text(_project_yaml(), encoding="utf-8")
    _normalise_json_files(gx_dir)
    return gx_dir


def _normalise_json_files(gx_dir: Path) -> None:
    for sub in ("expectations", "validation_definitions", "checkpoints"):
        for path in sorted((gx_dir / sub).rglob("*")):
            if path.name.startswith(".ge_store_backend_id"):
                path.unlink()
            elif path.is_file():
                data = json.loads(path.read_text(encoding="utf-8"))
                path.write_text(
                    json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n",
                    encoding="utf-8",
                )


_COMMITTED = ("great_expectations.yml", ".gitignore", "expectations", "validation_definitions", "checkpoints")


def check_project(project_root: Path | str | None = None) -> list[str]:
    """Regenerate into a temp dir and list committed files that differ (empty = up to date)."""
    root = Path(project_root) if project_root else default_project_root()
    with tempfile.TemporaryDirectory(prefix="nps_gx_check_") as tmp:
        fresh = init_project(Path(tmp))
        differences: list[str] = []
        for name in _COMMITTED:
            a, b = root / "gx" / name, fresh / name
            if a.is_file() or b.is_file():
                if not (a.is_file() and b.is_file() and filecmp.cmp(a, b, shallow=False)):
                    differences.append(f"gx/{name}")
                continue
            a_files = {p.relative_to(a) for p in a.rglob("*") if p.is_file()} if a.is_dir() else set()
            b_files = {p.relative_to(b) for p in b.rglob("*") if p.is_file()}
            for rel in sorted(a_files | b_files):
                if (
                    rel not in a_files
                    or rel not in b_files
                    or not filecmp.cmp(a / rel, b / rel, shallow=False)
                ):
                    differences.append(f"gx/{name}/{rel}")
        return differences


# --------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _gx_environment(values: dict[str, str]) -> Iterator[None]:
    """Set env vars (and GX_ANALYTICS_ENABLED=false) for the block; restore them afterwards."""
    values = {"GX_ANALYTICS_ENABLED": "false", **values}
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _safe_run_id(run_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", run_id).strip("._") or "run"


def result_dir(run_id: str, project_root: Path | str | None = None) -> Path:
    """Where the JSON results of a validation run are written: one `<suite>.json` per suite and
    a `report.json`."""
    root = Path(project_root) if project_root else default_project_root()
    return root / "gx" / "uncommitted" / RUNS_DIR / _safe_run_id(run_id)


def validate(
    warehouse_url: str,
    *,
    schema: str = "marts",
    raw_schema: str = "raw",
    run_id: str | None = None,
    suites: Sequence[str] | None = None,
    raise_on_failure: bool = True,
    build_data_docs: bool = True,
    keep_runs: int | None = 30,
    project_root: Path | str | None = None,
    parameters: dict[str, Any] | None = None,
) -> ValidationReport:
    """Run the GX checkpoints of ``suites`` (default: all of them) against the warehouse.

    ``schema`` is where the mart tables are (``marts`` or a write-audit-publish candidate),
    ``raw_schema`` where ``survey_responses`` is. Each suite has its own committed checkpoint
    (named like the suite); its validation definitions run with its result_format, then Data
    Docs are built once for the new results (the checkpoint's ``UpdateDataDocsAction`` is what
    a plain ``checkpoint.run()`` from GX would use; it would rebuild the index per suite). The full result
    of each suite is written to ``gx/uncommitted/runs/<run_id>/<suite>.json``. ``keep_runs``
    (default 30, ``None`` = keep all) prunes older runs from ``gx/uncommitted`` so the Data
    Docs build does not slow down night after night.

    ``parameters`` fills the run-dependent bounds of the suites (:func:`suite_parameters`);
    a missing one means "no bound".

    Raises :class:`DataQualityError` when an expectation fails (unless
    ``raise_on_failure=False``; then check ``report.success`` / call :func:`raise_for_failures`).
    Infrastructure errors (unreachable database, missing table) propagate as GX/SQLAlchemy
    exceptions or are reported as failed expectations with their exception message.
    """
    started = time.perf_counter()
    names = list(ALL_SUITES if suites is None else suites)
    unknown = [s for s in names if s not in SUITE_TABLES]
    if unknown:
        raise ValueError(f"unknown suite(s) {unknown}; known: {list(SUITE_TABLES)}")
    if not names:
        raise ValueError("no suites to validate")
    _check_schema(schema)
    _check_schema(raw_schema)
    root = Path(project_root) if project_root else default_project_root()
    gx_dir = root / "gx"
    if not (gx_dir / "great_expectations.yml").is_file():
        raise FileNotFoundError(f"no GX project at {gx_dir}; run `python -m nps_airflow.quality --init`")
    now = dt.datetime.now(dt.UTC)
    run_name = run_id or f"manual__{now.strftime('%Y%m%dT%H%M%S%fZ')}"
    run_dir = result_dir(run_name, root)
    schemas = {DATASOURCE_RAW: raw_schema, DATASOURCE_MARTS: schema}
    env = {ENV_WAREHOUSE_SQLALCHEMY_URL: sqlalchemy_url(warehouse_url)}
    for ds, var in ENV_DATASOURCE_URL.items():
        env[var] = sqlalchemy_url(warehouse_url, search_path=schemas[ds])

    results: dict[str, SuiteResult] = {}
    index: Path | None = None
    with _gx_environment(env):
        import great_expectations as gx
        from great_expectations.core.run_identifier import RunIdentifier
        from great_expectations.data_context.types.resource_identifiers import (
            ExpectationSuiteIdentifier,
            ValidationResultIdentifier,
        )

        context = gx.get_context(mode="file", project_root_dir=str(root))
        gx_run_id = RunIdentifier(run_name=run_name, run_time=now)
        run_dir.mkdir(parents=True, exist_ok=True)
        docs_resources: list[Any] = []
        for name in names:
            # The committed checkpoint defines what runs (its validation definitions and
            # result_format). Its validation definitions are run here directly and Data Docs
            # are built once at the end: checkpoint.run() would rebuild the Data Docs index
            # after every suite, and the index build reads every stored result.
            checkpoint = context.checkpoints.get(name)
            t0 = time.perf_counter()
            for vd in checkpoint.validation_definitions:
                vr = vd.run(
                    expectation_parameters={**SUITE_PARAMETER_DEFAULTS, **(parameters or {})},
                    checkpoint_id=checkpoint.id,
                    result_format=checkpoint.result_format,
                    run_id=gx_run_id,
                )
                suite_id = ExpectationSuiteIdentifier(name=vd.suite.name)
                identifier = ValidationResultIdentifier(
                    expectation_suite_identifier=suite_id,
                    run_id=gx_run_id,
                    batch_identifier=_batch_id(vr, name),
                )
                docs_resources += [identifier, suite_id]
                results[name] = _suite_result(context, name, schemas, identifier, vr, run_dir)
            log.info(
                "GX suite %s: success=%s in %.2fs", name, results[name].success, time.perf_counter() - t0
            )
        if keep_runs:
            _prune_history(gx_dir / "uncommitted", keep_runs)
        if build_data_docs:
            t0 = time.perf_counter()
            context.build_data_docs(site_names=[DATA_DOCS_SITE], resource_identifiers=docs_resources)
            log.info("GX Data Docs built in %.2fs", time.perf_counter() - t0)
            index = gx_dir / "uncommitted" / "data_docs" / DATA_DOCS_SITE / "index.html"
            if not index.is_file():
                index = None
    report = ValidationReport(
        success=all(r.success for r in results.values()),
        run_id=run_name,
        schema=schema,
        raw_schema=raw_schema,
        suites=results,
        data_docs_index=index,
        run_dir=run_dir,
        duration_s=round(time.perf_counter() - started, 3),
    )
    (run_dir / "report.json").write_text(
        json.dumps(report.to_dict(), indent=2, default=str) + "\n", encoding="utf-8"
    )
    log.info("%s", report.summary())
    if raise_on_failure:
        raise_for_failures(report)
    return report


def _suite_result(
    context: FileDataContext,
    name: str,
    schemas: dict[str, str],
    identifier: Any,
    vr: Any,
    run_dir: Path,
) -> SuiteResult:
    datasource, table = SUITE_TABLES[name]
    payload = vr.to_json_dict()
    payload.setdefault("meta", {})["nps"] = {
        "suite": name,
        "datasource": datasource,
        "table": f"{schemas[datasource]}.{table}",
    }
    result_path = run_dir / f"{name}.json"
    result_path.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    gx_path: Path | None = None
    with contextlib.suppress(Exception):  # best effort: GX's own file for this result
        assert identifier is not None
        backend = context.validation_results_store.store_backend
        gx_path = Path(backend.full_base_directory) / backend._convert_key_to_filepath(identifier.to_tuple())
        if not gx_path.is_file():
            gx_path = None
    stats = payload.get("statistics") or {}
    failures = tuple(
        _with_sample_rows(context, datasource, schemas[datasource], table, _failure(name, r))
        for r in payload.get("results", [])
        if not r.get("success", False)
    )
    return SuiteResult(
        suite=name,
        table=f"{schemas[datasource]}.{table}",
        success=bool(payload.get("success")),
        evaluated=int(stats.get("evaluated_expectations") or 0),
        successful=int(stats.get("successful_expectations") or 0),
        unsuccessful=int(stats.get("unsuccessful_expectations") or 0),
        success_percent=stats.get("success_percent"),
        result_path=result_path,
        gx_result_path=gx_path,
        failures=failures,
    )


def _batch_id(vr: Any, suite: str) -> str:
    for r in vr.results:
        batch_id = (r.expectation_config.kwargs or {}).get("batch_id") if r.expectation_config else None
        if batch_id:
            return str(batch_id)
    datasource, table = SUITE_TABLES[suite]
    return f"{datasource}-{table}"


def _prune_history(uncommitted: Path, keep: int) -> None:
    """Keep the newest ``keep`` runs in GX's validation store, the Data Docs and ``runs/``.

    The Data Docs index build reads every stored result, so without pruning each nightly
    run gets slower (about 10 ms per stored result).
    """

    def prune(parents: list[Path]) -> None:
        dirs = [d for p in parents if p.is_dir() for d in p.iterdir() if d.is_dir()]
        newest: dict[str, float] = {}
        for d in dirs:
            newest[d.name] = max(newest.get(d.name, 0.0), d.stat().st_mtime)
        keep_names = set(sorted(newest, key=lambda n: newest[n], reverse=True)[:keep])
        for d in dirs:
            if d.name not in keep_names:
                shutil.rmtree(d, ignore_errors=True)

    store = uncommitted / "validations"
    docs = uncommitted / "data_docs" / DATA_DOCS_SITE / "validations"
    suites = sorted({p.name for base in (store, docs) if base.is_dir() for p in base.iterdir()})
    prune([base / s for base in (store, docs) for s in suites])
    prune([uncommitted / RUNS_DIR])


def _with_sample_rows(
    context: FileDataContext, datasource: str, schema: str, table: str, failure: ExpectationFailure
) -> ExpectationFailure:
    """GX returns the rows of an UnexpectedRowsExpectation only with result_format COMPLETE
    (which would also return *every* unexpected value of the column expectations), so fetch a
    few of them here, for the error message."""
    query = failure.kwargs.get("unexpected_rows_query")
    if failure.expectation_type != "unexpected_rows_expectation" or failure.exception or not query:
        return failure
    try:
        import sqlalchemy as sa

        sql = str(query).format(batch=f'"{schema}"."{table}"')
        engine = context.data_sources.get(datasource).get_engine()
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(f"select * from ({sql}) as unexpected limit {_MAX_VALUES_IN_MESSAGE}")
            )
            sample = [dict(row._mapping) for row in rows]
    except Exception as exc:  # noqa: BLE001 - the sample is a nicety; the failure stands
        log.debug("could not sample unexpected rows of %s: %s", failure.description, exc)
        return failure
    return dataclasses.replace(failure, sample=sample)


def _failure(suite: str, r: dict[str, Any]) -> ExpectationFailure:
    config = r.get("expectation_config") or {}
    kwargs = {k: v for k, v in (config.get("kwargs") or {}).items() if k != "batch_id"}
    result = r.get("result") or {}
    exc = r.get("exception_info") or {}
    exception = None
    if exc.get("raised_exception"):
        exception = str(exc.get("exception_message") or "").strip().splitlines()[0:1]
        exception = exception[0] if exception else "exception while evaluating"
    else:  # multiple exception infos keyed by metric id
        for info in exc.values() if isinstance(exc, dict) else ():
            if isinstance(info, dict) and info.get("raised_exception"):
                msg = str(info.get("exception_message") or "").strip().splitlines()
                exception = msg[0] if msg else "exception while evaluating"
                break
    missing = result.get("partial_missing_list")  # expect_column_distinct_values_to_contain_set
    sample: list[Any] = list(result.get("partial_unexpected_list") or [])
    details = result.get("details") or {}
    if not sample and isinstance(details, dict) and details.get("unexpected_rows"):
        sample = list(details["unexpected_rows"])
    observed = result.get("observed_value")
    if isinstance(details, dict) and details.get("mismatched"):
        observed = details["mismatched"]  # expect_table_columns_to_match_set: missing columns
    elif missing:
        observed = {"missing": missing}
    elif observed is None and isinstance(details, dict) and "value_counts" in details:
        observed = details["value_counts"]
    return ExpectationFailure(
        suite=suite,
        expectation_type=str(config.get("type") or config.get("expectation_type") or "?"),
        column=kwargs.get("column"),
        description=config.get("description"),
        kwargs=kwargs,
        observed_value=observed,
        unexpected_count=result.get("unexpected_count"),
        unexpected_percent=result.get("unexpected_percent"),
        sample=sample,
        exception=exception,
    )


def _columns_of(kwargs: dict[str, Any]) -> str | None:
    for key in ("column_list", "column_set"):
        if kwargs.get(key):
            return ",".join(map(str, kwargs[key]))
    if kwargs.get("column_A"):
        return f"{kwargs['column_A']},{kwargs.get('column_B')}"
    return None


def _expected_of(kwargs: dict[str, Any]) -> str | None:
    if "value_set" in kwargs:
        return f"values in {kwargs['value_set']}"
    if "min_value" in kwargs or "max_value" in kwargs:
        lo, hi = kwargs.get("min_value"), kwargs.get("max_value")
        return f"between {lo if lo is not None else '-inf'} and {hi if hi is not None else 'inf'}"
    if "regex" in kwargs:
        return "no match of the regex"
    return None


def _short(value: Any, limit: int = 400) -> str:
    text = json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m nps_airflow.quality",
        description="Great Expectations suites of the NPS pipeline.",
    )
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--init", action="store_true", help="regenerate the committed GX files")
    mode.add_argument("--check", action="store_true", help="fail if committed GX files are stale")
    mode.add_argument("--validate", action="store_true", help="run the checkpoints")
    parser.add_argument("--project-root", type=Path, default=None)
    parser.add_argument(
        "--url",
        default=os.environ.get("NPS_WAREHOUSE_URL"),
        help="warehouse URL (default: $NPS_WAREHOUSE_URL)",
    )
    parser.add_argument("--schema", default="marts")
    parser.add_argument("--raw-schema", default="raw")
    parser.add_argument("--suite", action="append", dest="suites", choices=list(SUITE_TABLES))
    parser.add_argument("--run-id", default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    if args.init:
        print(f"wrote {init_project(args.project_root)}")
        return 0
    if args.check:
        stale = check_project(args.project_root)
        for path in stale:
            print(f"stale: {path}", file=sys.stderr)
        if stale:
            print("run `python -m nps_airflow.quality --init`", file=sys.stderr)
        return 1 if stale else 0
    if not args.url:
        parser.error("--url or NPS_WAREHOUSE_URL is required for --validate")
    report = validate(
        args.url,
        schema=args.schema,
        raw_schema=args.raw_schema,
        run_id=args.run_id,
        suites=args.suites,
        raise_on_failure=False,
        project_root=args.project_root,
    )
    print(report.summary())
    return 0 if report.success else 1


if __name__ == "__main__":
    raise SystemExit(main())
