"""What a validation run found, in words: result types, the JSON files, the error message.

GX returns a result per suite and ``success=False`` without raising. This module turns those
results (as plain dicts: ``ExpectationSuiteValidationResult.to_json_dict()``) into
:class:`SuiteResult` / :class:`ExpectationFailure`, writes them under
``gx/uncommitted/runs/<run_id>/`` (one ``<suite>.json`` each and a ``report.json``), and
:func:`raise_for_failures` raises :class:`DataQualityError` naming the suite, the expectation,
the column and offending values of every failure. No GX import, no database.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .suites import gx_dir

RUNS_DIR = "runs"  # under gx/uncommitted/
MAX_VALUES_IN_MESSAGE = 5


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
            detail.append(f"e.g. {_short(self.sample[:MAX_VALUES_IN_MESSAGE])}")
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


def result_dir(run_id: str, project_root: Path | str | None = None) -> Path:
    """Where the JSON results of a validation run are written: one ``<suite>.json`` per suite
    and a ``report.json``."""
    safe = re.sub(r"[^A-Za-z0-9._=-]+", "_", run_id).strip("._") or "run"
    return gx_dir(project_root) / "uncommitted" / RUNS_DIR / safe


def suite_result(suite: str, table: str, payload: dict[str, Any], run_dir: Path,
                 gx_result_path: Path | None = None) -> SuiteResult:
    """One suite's GX result (``to_json_dict()``), written to ``run_dir/<suite>.json``."""
    result_path = run_dir / f"{suite}.json"
    result_path.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    stats = payload.get("statistics") or {}
    return SuiteResult(
        suite=suite,
        table=table,
        success=bool(payload.get("success")),
        evaluated=int(stats.get("evaluated_expectations") or 0),
        successful=int(stats.get("successful_expectations") or 0),
        unsuccessful=int(stats.get("unsuccessful_expectations") or 0),
        success_percent=stats.get("success_percent"),
        result_path=result_path,
        gx_result_path=gx_result_path,
        failures=tuple(failure(suite, r) for r in payload.get("results", []) if not r.get("success", False)),
    )


def write_report(report: ValidationReport) -> Path:
    path = report.run_dir / "report.json"
    path.write_text(json.dumps(report.to_dict(), indent=2, default=str) + "\n", encoding="utf-8")
    return path


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
        if len(errors) == 1 and None not in errors:
            # typically a missing table / column: one line naming the table, not one per expectation
            n = len(result.failures)
            what = f"all {n} failed expectations" if n > 1 else result.failures[0].expectation_type
            lines.append(f"  - [{result.suite}] {what} on {result.table} raised: {errors.pop()}")
        else:
            lines.extend(f"  - {f.describe()}" for f in result.failures)
    if report.data_docs_index:
        lines.append(f"Data Docs: {report.data_docs_index}")
    lines.append(f"Results: {report.run_dir}")
    raise DataQualityError("\n".join(lines), report)


def failure(suite: str, r: dict[str, Any]) -> ExpectationFailure:
    """One failed expectation of a GX result (an item of its ``results``)."""
    config = r.get("expectation_config") or {}
    kwargs = {k: v for k, v in (config.get("kwargs") or {}).items() if k != "batch_id"}
    result = r.get("result") or {}
    details: dict[str, Any] = result["details"] if isinstance(result.get("details"), dict) else {}
    sample: list[Any] = list(result.get("partial_unexpected_list") or [])
    if not sample and details.get("unexpected_rows"):
        sample = list(details["unexpected_rows"])
    return ExpectationFailure(
        suite=suite,
        expectation_type=str(config.get("type") or config.get("expectation_type") or "?"),
        column=kwargs.get("column"),
        description=config.get("description"),
        kwargs=kwargs,
        observed_value=_observed(result, details),
        unexpected_count=result.get("unexpected_count"),
        unexpected_percent=result.get("unexpected_percent"),
        sample=sample,
        exception=_exception(r.get("exception_info") or {}),
    )


def _exception(info: dict[str, Any]) -> str | None:
    """The first line of the exception GX caught while evaluating, if any: one exception info, or
    several keyed by metric id."""
    infos = [info] if "raised_exception" in info else [v for v in info.values() if isinstance(v, dict)]
    for item in infos:
        if item.get("raised_exception"):
            lines = str(item.get("exception_message") or "").strip().splitlines()
            return lines[0] if lines else "exception while evaluating"
    return None


def _observed(result: dict[str, Any], details: dict[str, Any]) -> Any:
    if details.get("mismatched"):
        return details["mismatched"]  # expect_table_columns_to_match_set: missing columns
    if result.get("partial_missing_list"):  # expect_column_distinct_values_to_contain_set
        return {"missing": result["partial_missing_list"]}
    if result.get("observed_value") is None and "value_counts" in details:
        return details["value_counts"]
    return result.get("observed_value")


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
