"""The committed Great Expectations project: where it is and which suites it holds.

``expectations/gx/`` is a GX Core 1.x file context a person edits: ``great_expectations.yml``
(stores, the Data Docs site and the two postgres datasources, whose connection strings are
``${NPS_GX_RAW_SQLALCHEMY_URL}`` / ``${NPS_GX_MARTS_SQLALCHEMY_URL}``), one suite per table in
``expectations/``, and for each suite a validation definition and a checkpoint of the same name.
This module reads those files (no GX import, no database): the runner, the parameters and the
checks (:mod:`.checks`) all see the suites the same way.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nps import config

DATASOURCE_RAW = "nps_raw"
DATASOURCE_MARTS = "nps_marts"
#: the env var each datasource's committed connection string names; the runner exports the
#: warehouse URL with ``search_path=<schema>`` into it, so no secret is ever in a committed file
DATASOURCE_URL_ENV = {
    DATASOURCE_RAW: "NPS_GX_RAW_SQLALCHEMY_URL",
    DATASOURCE_MARTS: "NPS_GX_MARTS_SQLALCHEMY_URL",
}
#: the run-dependent bounds a suite may use as ``{"$PARAMETER": name}`` (see .parameters)
PARAMETERS = ("freshest_min", "min_rows")
DATA_DOCS_SITE = "local_site"


@dataclass(frozen=True)
class SuiteSpec:
    """One suite as the runner needs it: what it validates and which parameters it uses."""

    name: str
    datasource: str
    table: str
    parameters: frozenset[str]


def default_project_root() -> Path:
    """The folder that holds ``gx/``: ``$NPS_GX_PROJECT_ROOT`` or ``expectations/``."""
    return config.gx_project_root()


def gx_dir(project_root: Path | str | None = None) -> Path:
    return Path(project_root or default_project_root()) / "gx"


def read_json(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return data


def project_config(project_root: Path | str | None = None) -> dict[str, Any]:
    """``great_expectations.yml`` as a dict."""
    import yaml

    path = gx_dir(project_root) / "great_expectations.yml"
    if not path.is_file():
        raise FileNotFoundError(f"no GX project at {path.parent} (expected great_expectations.yml)")
    return dict(yaml.safe_load(path.read_text(encoding="utf-8")) or {})


def suite_files(project_root: Path | str | None = None) -> dict[str, dict[str, Any]]:
    """Every suite file, by suite name."""
    folder = gx_dir(project_root) / "expectations"
    return {p.stem: read_json(p) for p in sorted(folder.glob("*.json"))}


def tables(project_root: Path | str | None = None) -> dict[tuple[str, str], str]:
    """(datasource, asset) -> table name, in the order of great_expectations.yml."""
    datasources = project_config(project_root).get("fluent_datasources") or {}
    return {
        (ds, asset): str(spec.get("table_name", asset))
        for ds, ds_spec in datasources.items()
        for asset, spec in (ds_spec.get("assets") or {}).items()
    }


def parameters_of(suite: dict[str, Any]) -> frozenset[str]:
    """The ``$PARAMETER`` names a suite's expectations use."""
    return frozenset(_parameter_names(suite.get("expectations", [])))


def _parameter_names(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        if "$PARAMETER" in value:
            yield str(value["$PARAMETER"])
        for item in value.values():
            yield from _parameter_names(item)
    elif isinstance(value, list):
        for item in value:
            yield from _parameter_names(item)


def suite_specs(project_root: Path | str | None = None) -> dict[str, SuiteSpec]:
    """The suites to validate, one per checkpoint, in the order of their tables in
    great_expectations.yml (raw first). A checkpoint runs the validation definition of the same
    name, which pairs the suite of that name with a table asset (:func:`.checks.check_project`
    reports a project that breaks this)."""
    gx = gx_dir(project_root)
    known = tables(project_root)
    order = list(known)
    suites = suite_files(project_root)
    specs: list[tuple[int, SuiteSpec]] = []
    for path in sorted((gx / "checkpoints").glob("*.json")):
        name = path.stem
        vd = read_json(gx / "validation_definitions" / f"{name}.json")
        key = (vd["data"]["datasource"]["name"], vd["data"]["asset"]["name"])
        spec = SuiteSpec(name=name, datasource=key[0], table=known[key],
                         parameters=parameters_of(suites[vd["suite"]["name"]]))
        specs.append((order.index(key), spec))
    return {spec.name: spec for _, spec in sorted(specs, key=lambda item: item[0])}


def suite_names(project_root: Path | str | None = None) -> list[str]:
    return list(suite_specs(project_root))


def expectations(suite: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in suite.get("expectations", []) if isinstance(e, dict)]


def pii_patterns(project_root: Path | str | None = None) -> dict[str, str]:
    """The PII regexes (PostgreSQL ARE) of the raw suite, by kind (``email``, ``phone``): the
    expectations whose ``meta.pii`` names one kind. Every other PII check must use the same
    pattern (checked by :func:`.checks.check_project`), and tests/test_quality.py checks them
    against ``nlp.text.redact_pii``: they flag only what redaction would have replaced."""
    return patterns_in(suite_files(project_root).get("raw_survey_responses", {}))


def patterns_in(suite: dict[str, Any]) -> dict[str, str]:
    """kind -> regex of a suite's regex expectations whose ``meta.pii`` names one kind."""
    return {str(e["meta"]["pii"]): str(e["kwargs"]["regex"])
            for e in expectations(suite)
            if isinstance(e.get("meta", {}).get("pii"), str) and "regex" in e.get("kwargs", {})}


@contextlib.contextmanager
def gx_environment(values: dict[str, str]) -> Iterator[None]:
    """Set env vars (and GX_ANALYTICS_ENABLED=false: nothing leaves the machine) for the block;
    restore them afterwards."""
    with config.environment({"GX_ANALYTICS_ENABLED": "false", **values}):
        yield


def literal_braces(regex: str) -> str:
    """A regex inside an ``unexpected_rows_query``: GX formats the query (``{batch}``), so a
    literal brace is written twice."""
    return regex.replace("{", "{{").replace("}", "}}")
