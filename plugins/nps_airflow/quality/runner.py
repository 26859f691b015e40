"""Run the committed checkpoints against the warehouse (GX Core 1.x file context).

The datasources' table assets are *unqualified* table names; the schema comes from the
``search_path`` the runner puts into the URLs it exports for them (``options=-csearch_path=<schema>``),
so the same committed files validate ``marts`` or the write-audit-publish candidate schema without
rewriting anything. Nothing here touches the network: GX analytics are off and Data Docs are
rendered to local files under ``gx/uncommitted/``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nps.warehouse import check_schema_name, sqlalchemy_url

from . import report
from .suites import (
    DATA_DOCS_SITE,
    DATASOURCE_RAW,
    DATASOURCE_URL_ENV,
    PARAMETERS,
    SuiteSpec,
    default_project_root,
    gx_environment,
    suite_specs,
)

log = logging.getLogger(__name__)

#: env var holding the warehouse's SQLAlchemy URL while GX runs (for expectations that need it)
ENV_WAREHOUSE_SQLALCHEMY_URL = "NPS_WAREHOUSE_SQLALCHEMY_URL"


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
    parameters: Mapping[str, Mapping[str, Any]] | None = None,
) -> report.ValidationReport:
    """Run the checkpoints of ``suites`` (default: all of them) against the warehouse.

    ``schema`` is where the mart tables are (``marts`` or a write-audit-publish candidate),
    ``raw_schema`` where ``survey_responses`` is. Each suite's checkpoint (named like the suite)
    defines what runs: its validation definitions run here with its result_format, and Data Docs
    are built once at the end (``checkpoint.run()`` would rebuild the Data Docs index after every
    suite, and the index build reads every stored result). The full result of each suite is
    written to ``gx/uncommitted/runs/<run_id>/<suite>.json``; ``keep_runs`` (default 30, ``None``
    = keep all) prunes older runs so the Data Docs build does not slow down night after night.

    ``parameters`` (suite -> {name: value}, :func:`.parameters.suite_parameters`) fills the
    run-dependent bounds; a missing one means "no bound".

    Raises :class:`.report.DataQualityError` when an expectation fails (unless
    ``raise_on_failure=False``; then check ``report.success``). Infrastructure errors
    (unreachable database, missing table) propagate as GX/SQLAlchemy exceptions or are reported
    as failed expectations with their exception message.
    """
    started = time.perf_counter()
    root = Path(project_root) if project_root else default_project_root()
    specs = _selected(root, suites)
    check_schema_name(schema)
    check_schema_name(raw_schema)
    now = dt.datetime.now(dt.UTC)
    run_name = run_id or f"manual__{now.strftime('%Y%m%dT%H%M%S%fZ')}"
    run_dir = report.result_dir(run_name, root)
    schemas = {ds: raw_schema if ds == DATASOURCE_RAW else schema for ds in DATASOURCE_URL_ENV}
    env = {ENV_WAREHOUSE_SQLALCHEMY_URL: sqlalchemy_url(warehouse_url)}
    env.update({var: sqlalchemy_url(warehouse_url, search_path=schemas[ds]) for ds, var in DATASOURCE_URL_ENV.items()})

    with gx_environment(env):
        import great_expectations as gx
        from great_expectations.core.run_identifier import RunIdentifier

        context: Any = gx.get_context(mode="file", project_root_dir=str(root))
        run = _Run(context, RunIdentifier(run_name=run_name, run_time=now), root / "gx", run_dir, schemas)
        run_dir.mkdir(parents=True, exist_ok=True)
        for spec in specs:
            run.suite(spec, {name: None for name in PARAMETERS} | dict((parameters or {}).get(spec.name, {})))
        if keep_runs:
            _prune_history(run.gx_dir / "uncommitted", keep_runs)
        index = run.data_docs() if build_data_docs else None
    result = report.ValidationReport(
        success=all(r.success for r in run.results.values()),
        run_id=run_name,
        schema=schema,
        raw_schema=raw_schema,
        suites=run.results,
        data_docs_index=index,
        run_dir=run_dir,
        duration_s=round(time.perf_counter() - started, 3),
    )
    report.write_report(result)
    log.info("%s", result.summary())
    if raise_on_failure:
        report.raise_for_failures(result)
    return result


def _selected(root: Path, names: Sequence[str] | None) -> list[SuiteSpec]:
    if not (root / "gx" / "great_expectations.yml").is_file():
        raise FileNotFoundError(f"no GX project at {root / 'gx'} (expected great_expectations.yml)")
    specs = suite_specs(root)
    wanted = list(specs if names is None else names)
    unknown = [s for s in wanted if s not in specs]
    if unknown:
        raise ValueError(f"unknown suite(s) {unknown}; known: {list(specs)}")
    if not wanted:
        raise ValueError("no suites to validate")
    return [specs[name] for name in wanted]


class _Run:
    """One validation run: the GX context, the run id and what has been validated so far."""

    def __init__(self, context: Any, run_id: Any, gx_dir: Path, run_dir: Path, schemas: dict[str, str]) -> None:
        self.context, self.run_id, self.gx_dir, self.run_dir, self.schemas = context, run_id, gx_dir, run_dir, schemas
        self.results: dict[str, report.SuiteResult] = {}
        self.docs_resources: list[Any] = []

    def suite(self, spec: SuiteSpec, parameters: dict[str, Any]) -> None:
        from great_expectations.data_context.types.resource_identifiers import (
            ExpectationSuiteIdentifier,
            ValidationResultIdentifier,
        )

        t0 = time.perf_counter()
        checkpoint = self.context.checkpoints.get(spec.name)
        table = f"{self.schemas[spec.datasource]}.{spec.table}"
        for vd in checkpoint.validation_definitions:
            vr = vd.run(expectation_parameters=parameters, checkpoint_id=checkpoint.id,
                        result_format=checkpoint.result_format, run_id=self.run_id)
            suite_id = ExpectationSuiteIdentifier(name=vd.suite.name)
            identifier = ValidationResultIdentifier(expectation_suite_identifier=suite_id, run_id=self.run_id,
                                                    batch_identifier=_batch_id(vr, spec))
            self.docs_resources += [identifier, suite_id]
            payload = vr.to_json_dict()
            payload.setdefault("meta", {})["nps"] = {"suite": spec.name, "datasource": spec.datasource, "table": table}
            result = report.suite_result(spec.name, table, payload, self.run_dir, self._gx_result_path(identifier))
            failures = tuple(self._with_sample_rows(spec, f) for f in result.failures)
            self.results[spec.name] = dataclasses.replace(result, failures=failures)
        log.info("GX suite %s: success=%s in %.2fs", spec.name, self.results[spec.name].success,
                 time.perf_counter() - t0)

    def data_docs(self) -> Path | None:
        t0 = time.perf_counter()
        self.context.build_data_docs(site_names=[DATA_DOCS_SITE], resource_identifiers=self.docs_resources)
        log.info("GX Data Docs built in %.2fs", time.perf_counter() - t0)
        index = self.gx_dir / "uncommitted" / "data_docs" / DATA_DOCS_SITE / "index.html"
        return index if index.is_file() else None

    def _gx_result_path(self, identifier: Any) -> Path | None:
        """Best effort: GX's own file of this result in its validation results store."""
        with contextlib.suppress(Exception):
            backend = self.context.validation_results_store.store_backend
            path = Path(backend.full_base_directory) / backend._convert_key_to_filepath(identifier.to_tuple())
            return path if path.is_file() else None
        return None

    def _with_sample_rows(self, spec: SuiteSpec, failure: report.ExpectationFailure) -> report.ExpectationFailure:
        """GX returns the rows of an UnexpectedRowsExpectation only with result_format COMPLETE
        (which would also return *every* unexpected value of the column expectations), so fetch a
        few of them here, for the error message."""
        query = failure.kwargs.get("unexpected_rows_query")
        if failure.expectation_type != "unexpected_rows_expectation" or failure.exception or not query:
            return failure
        try:
            import sqlalchemy as sa

            sql = str(query).format(batch=f'"{self.schemas[spec.datasource]}"."{spec.table}"')
            engine = self.context.data_sources.get(spec.datasource).get_engine()
            with engine.connect() as conn:
                rows = conn.execute(
                    sa.text(f"select * from ({sql}) as unexpected limit {report.MAX_VALUES_IN_MESSAGE}"))
                sample = [dict(row._mapping) for row in rows]
        except Exception as exc:  # noqa: BLE001 - the sample is a nicety; the failure stands
            log.debug("could not sample unexpected rows of %s: %s", failure.description, exc)
            return failure
        return dataclasses.replace(failure, sample=sample)


def _batch_id(vr: Any, spec: SuiteSpec) -> str:
    for r in vr.results:
        batch_id = (r.expectation_config.kwargs or {}).get("batch_id") if r.expectation_config else None
        if batch_id:
            return str(batch_id)
    return f"{spec.datasource}-{spec.table}"


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
    prune([uncommitted / report.RUNS_DIR])
