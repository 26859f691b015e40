"""Is the committed GX project consistent? (``python -m nps_airflow.quality --check``, tests)

The suites are files a person edits, so nothing regenerates them from code. What a hand edit can
get wrong is checked here instead, each problem as one line naming the file:

* the files agree with each other (each checkpoint runs the validation definition of its name,
  which pairs the suite of that name with a table of great_expectations.yml), and GX loads them;
* connection strings are ``${VAR}`` references, never a URL (no secret in git);
* every ``$PARAMETER`` is one the runner fills (:mod:`.parameters`);
* the facts that come from the data contract (``nps/contracts.py``) say what the contract says:
  the future-date tolerance of the raw suite and the segment types of the coverage check. They are
  written in the suite, so that the file says what it checks, and compared with the contract
  here, so that a contract change that the suite does not follow fails the tests;
* every PII check uses the raw suite's patterns (:func:`.suites.pii_patterns`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nps import contracts

from .suites import (
    DATASOURCE_MARTS,
    DATASOURCE_URL_ENV,
    PARAMETERS,
    expectations,
    gx_dir,
    gx_environment,
    literal_braces,
    parameters_of,
    patterns_in,
    project_config,
    read_json,
    suite_files,
    tables,
)


def check_project(project_root: Path | str | None = None, *, load_with_gx: bool = True) -> list[str]:
    """Problems of the committed GX project, one line each (empty: consistent). ``load_with_gx``
    also loads every checkpoint with GX (imports great_expectations; no database)."""
    suites = suite_files(project_root)
    problems = [
        *structure_problems(project_root),
        *connection_problems(project_root),
        *parameter_problems(project_root),
        *contract_problems(suites),
        *pii_problems(suites),
    ]
    if load_with_gx and not problems:
        problems += gx_load_problems(project_root)
    return problems


def structure_problems(project_root: Path | str | None = None) -> list[str]:
    """Each checkpoint runs the one validation definition of its name, which validates the suite
    of that name (same id) on a table asset of great_expectations.yml; every suite is run."""
    gx = gx_dir(project_root)
    known = tables(project_root)
    suites = suite_files(project_root)
    problems: list[str] = []
    for path in sorted((gx / "checkpoints").glob("*.json")):
        name = path.stem
        runs = [v.get("name") for v in read_json(path).get("validation_definitions", [])]
        vd_path = gx / "validation_definitions" / f"{name}.json"
        if runs != [name] or not vd_path.is_file():
            problems.append(f"gx/checkpoints/{path.name}: must run the one validation definition "
                            f"gx/validation_definitions/{name}.json, runs {runs}")
            continue
        vd = read_json(vd_path)
        suite = vd.get("suite", {})
        where = f"gx/validation_definitions/{name}.json"
        if suite.get("name") != name or name not in suites:
            problems.append(f"{where}: must validate the suite gx/expectations/{name}.json")
        elif suite.get("id") != suites[name].get("id"):
            problems.append(f"{where}: suite id {suite.get('id')} is not the id in gx/expectations/{name}.json")
        if _datasource_asset(vd) not in known:
            problems.append(f"{where}: datasource/asset {_datasource_asset(vd)} is not in great_expectations.yml")
    checkpoints = {p.stem for p in (gx / "checkpoints").glob("*.json")}
    problems += [f"gx/expectations/{name}.json: no checkpoint of that name runs it"
                 for name in sorted(set(suites) - checkpoints)]
    return problems


def _datasource_asset(vd: dict[str, Any]) -> tuple[Any, Any]:
    data = vd.get("data", {})
    return data.get("datasource", {}).get("name"), data.get("asset", {}).get("name")


def connection_problems(project_root: Path | str | None = None) -> list[str]:
    datasources = project_config(project_root).get("fluent_datasources") or {}
    problems = []
    if set(datasources) != set(DATASOURCE_URL_ENV):
        problems.append(f"gx/great_expectations.yml: datasources {sorted(datasources)}, "
                        f"expected {sorted(DATASOURCE_URL_ENV)}")
    for name, spec in datasources.items():
        expected = f"${{{DATASOURCE_URL_ENV.get(name, '...')}}}"
        if spec.get("connection_string") != expected:
            problems.append(f"gx/great_expectations.yml: datasource {name}'s connection_string must be {expected} "
                            "(the runner sets it; never a URL in a committed file)")
    return problems


def parameter_problems(project_root: Path | str | None = None) -> list[str]:
    gx = gx_dir(project_root)
    problems = []
    for name, suite in suite_files(project_root).items():
        unknown = sorted(parameters_of(suite) - set(PARAMETERS))
        if unknown:
            problems.append(f"gx/expectations/{name}.json: unknown $PARAMETER {unknown}; "
                            f"the runner fills {list(PARAMETERS)}")
        vd_path = gx / "validation_definitions" / f"{name}.json"
        datasource = _datasource_asset(read_json(vd_path))[0] if vd_path.is_file() else None
        if "min_rows" in parameters_of(suite) and datasource != DATASOURCE_MARTS:
            problems.append(f"gx/expectations/{name}.json: min_rows compares a mart with the published one; "
                            f"{name} is not a suite of {DATASOURCE_MARTS}")
    return problems


def contract_problems(suites: dict[str, dict[str, Any]]) -> list[str]:
    """Where a suite file disagrees with nps/contracts.py."""
    problems = []
    hours = f"{contracts.FUTURE_TOLERANCE_HOURS:g} hours"
    future = [e for e in expectations(suites.get("raw_survey_responses", {}))
              if "now()" in str(e.get("kwargs", {}).get("unexpected_rows_query", ""))]
    if not future or any(f"now() + interval '{hours}'" not in e["kwargs"]["unexpected_rows_query"]
                         or hours not in str(e.get("description")) for e in future):
        problems.append("gx/expectations/raw_survey_responses.json: the future-date check (query and description) "
                        f"must allow now() + interval '{hours}' (contracts.FUTURE_TOLERANCE_HOURS, the loader's)")
    coverage = [e for e in expectations(suites.get("marts_nps_by_segment", {}))
                if e.get("type") == "expect_column_distinct_values_to_contain_set"
                and e.get("kwargs", {}).get("column") == "segment_type"]
    if not coverage or any(e["kwargs"].get("value_set") != list(contracts.SEGMENT_TYPES) for e in coverage):
        problems.append("gx/expectations/marts_nps_by_segment.json: the segment coverage check's value_set must be "
                        f"contracts.SEGMENT_TYPES, in order: {list(contracts.SEGMENT_TYPES)}")
    return problems


def pii_problems(suites: dict[str, dict[str, Any]]) -> list[str]:
    """Every expectation with ``meta.pii`` uses the raw suite's pattern of that kind."""
    patterns = patterns_in(suites.get("raw_survey_responses", {}))
    problems = [] if set(patterns) == {"email", "phone"} else [
        "gx/expectations/raw_survey_responses.json: needs one regex expectation with meta.pii 'email' and one "
        f"with 'phone' on comment, has {sorted(patterns)}"]
    for name, suite in suites.items():
        for e in expectations(suite):
            kinds = e.get("meta", {}).get("pii")
            kwargs = e.get("kwargs", {})
            for kind in [kinds] if isinstance(kinds, str) else kinds or []:
                pattern = patterns.get(kind)
                if pattern is None:
                    problems.append(f"gx/expectations/{name}.json: meta.pii {kind!r} is not a pattern of the raw suite")
                elif "regex" in kwargs and kwargs["regex"] != pattern:
                    problems.append(f"gx/expectations/{name}.json: the {kind} regex differs from the raw suite's")
                elif "regex" not in kwargs and literal_braces(pattern) not in str(kwargs.get("unexpected_rows_query")):
                    problems.append(f"gx/expectations/{name}.json: the {kind} check's query does not use the raw "
                                    "suite's pattern (braces doubled)")
    return problems


def gx_load_problems(project_root: Path | str | None = None) -> list[str]:
    """Load the project and every checkpoint with GX, as the runner will (no connection is made)."""
    placeholders = {var: "postgresql+psycopg2://check@localhost/check" for var in DATASOURCE_URL_ENV.values()}
    root = Path(project_root) if project_root else gx_dir().parent
    problems = []
    with gx_environment(placeholders):
        import great_expectations as gx

        context: Any = gx.get_context(mode="file", project_root_dir=str(root))
        for path in sorted((gx_dir(root) / "checkpoints").glob("*.json")):
            try:
                checkpoint = context.checkpoints.get(path.stem)
                for vd in checkpoint.validation_definitions:
                    problems += [f"gx/checkpoints/{path.name}: {error}" for error in vd.is_fresh().errors]
            except Exception as exc:  # noqa: BLE001 - any GX complaint is a problem to report
                problems.append(f"gx/checkpoints/{path.name}: GX cannot load it: {type(exc).__name__}: {exc}")
    return problems
