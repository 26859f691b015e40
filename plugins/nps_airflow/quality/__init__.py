"""The audit gate: Great Expectations (GX Core 1.x) on ``raw.survey_responses`` and the candidate marts.

dbt owns the rules about one row or one model (keys, not null, accepted values, ranges, counts
that add up, formulas): they are data tests in the models' YAML, run by ``dbt_build`` on the
candidate before this gate. GX audits the build as a whole: freshness, no answer in the future,
row counts against the published marts, PII left in comments, segment coverage.

The checks are data, not code: ``expectations/gx/`` holds the suites, validation definitions and
checkpoints as files a person edits (docs/architecture.md, "A new check"). This package:

* :mod:`.suites` — where the project is and which suites it holds (reads the files);
* :mod:`.checks` — whether the files agree with each other, GX and the contract
  (``python -m nps_airflow.quality --check``);
* :mod:`.parameters` — the run-dependent bounds (freshness, row counts of the published marts);
* :mod:`.runner` — runs the checkpoints against the warehouse;
* :mod:`.report` — turns GX results into a report, JSON files and :class:`DataQualityError`.

Import cost: the standard library and nps core only; ``great_expectations`` and ``sqlalchemy`` are
imported inside the functions that need them (Airflow parses DAG files that import this package).
"""

from __future__ import annotations

from .checks import check_project
from .parameters import suite_parameters
from .report import (
    DataQualityError,
    ExpectationFailure,
    SuiteResult,
    ValidationReport,
    raise_for_failures,
    result_dir,
)
from .runner import validate
from .suites import SuiteSpec, default_project_root, pii_patterns, suite_names, suite_specs

__all__ = [
    "DataQualityError",
    "ExpectationFailure",
    "SuiteResult",
    "SuiteSpec",
    "ValidationReport",
    "check_project",
    "default_project_root",
    "pii_patterns",
    "raise_for_failures",
    "result_dir",
    "suite_names",
    "suite_parameters",
    "suite_specs",
    "validate",
]
