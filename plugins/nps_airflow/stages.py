"""The pipeline's stages as plain functions of an explicit data interval.

`dags/nps_nightly.py` wires them into Airflow; each one is a transaction (or a set of
transactions) over one window `[start, end)` and is safe to rerun.
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime, timedelta
from typing import Any

from nps import config, warehouse

log = logging.getLogger(__name__)


def parse_when(value: str | datetime) -> datetime:
    """An ISO date/time (naive means UTC) as an aware UTC datetime."""
    when = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def resolve_interval(conf: dict[str, Any] | None, data_interval_start: datetime | None,
                     data_interval_end: datetime | None) -> tuple[datetime, datetime]:
    """The window a run works on: the run's data interval, or `interval_start`/`interval_end`
    from the run conf (a backfill of a whole quarter in one run)."""
    conf = conf or {}
    start = conf.get("interval_start") or data_interval_start
    end = conf.get("interval_end") or data_interval_end
    if start is None or end is None:
        raise ValueError(
            "this run has no data interval: schedule the DAG with a data-interval timetable or "
            "pass interval_start and interval_end in the run conf"
        )
    start, end = parse_when(start), parse_when(end)
    if not start < end:
        raise ValueError(
            f"empty data interval: start {start.isoformat()} is not before end {end.isoformat()}"
        )
    return start, end


def prepare_warehouse() -> str:
    """Resolve the warehouse (starting the embedded one if needed) and create raw/nlp schemas."""
    url = warehouse.resolve_url()
    conn = warehouse.connect(url)
    try:
        warehouse.ensure_schema(conn)
    finally:
        conn.close()
    log.info("warehouse ready: %s (connect: %s)", warehouse.redact(url), warehouse.psql_hint(url))
    return url


def extract(entity: str, start: datetime, end: datetime, run_id: str) -> dict:
    from nps_airflow.extract import load_entity

    url = warehouse.resolve_url()
    conn = warehouse.connect(url)
    try:
        return load_entity(conn, entity, start, end, run_id).as_dict()
    finally:
        conn.close()


def theme_config() -> Any:
    """The theme engine's configuration for the nightly run: defaults, with the sentence-transformers
    model from NPS_THEME_MODEL (a local directory, or a name already in the local cache; nothing
    is downloaded) and the device from NPS_THEME_DEVICE (e.g. cuda on a GPU worker)."""
    from nlp import ThemeConfig

    overrides = {k: os.environ[env] for k, env in (("model", "NPS_THEME_MODEL"), ("device", "NPS_THEME_DEVICE"))
                 if os.environ.get(env)}
    return ThemeConfig(**overrides)


def build_themes(start: datetime, end: datetime, run_id: str) -> dict:
    """Embed the window's new comments, assign them to registry themes, discover new themes."""
    from nlp import ThemeEngine

    with warehouse.transaction(lock="themes") as conn:
        stats = ThemeEngine(theme_config()).run_interval(conn, start, end, run_id)
    log.info("themes: %s", stats)
    return stats


def dbt_build(run_id: str, end: datetime | None = None) -> None:
    """Build staging -> intermediate -> marts; the marts land in the candidate schema (write).
    They are "as of" the data interval end (`end`), or the newest interval loaded when later."""
    from nps_airflow.dbt import BUILD_ARGS, build_as_of, build_vars, run_dbt
    from nps_airflow.publish import CANDIDATE_SCHEMA

    url = warehouse.resolve_url()
    with warehouse.transaction(url, lock="dbt") as conn:
        # the lock only serialises concurrent builds; dbt opens its own connections
        as_of = build_as_of(conn, end)
        run_dbt(BUILD_ARGS, url, vars=build_vars(run_id, CANDIDATE_SCHEMA, as_of))


def validate(run_id: str, start: datetime | None = None, end: datetime | None = None) -> dict:
    """Great Expectations on raw data and the candidate marts (audit); raises on any failure."""
    from nps_airflow.publish import CANDIDATE_SCHEMA, PUBLISHED_SCHEMA
    from nps_airflow.quality import suite_parameters
    from nps_airflow.quality import validate as gx_validate

    url = warehouse.resolve_url()
    conn = warehouse.connect(url)
    try:
        parameters = suite_parameters(
            conn,
            interval_end=end,
            published_schema=PUBLISHED_SCHEMA,
            freshness_lag=timedelta(days=float(os.environ.get("NPS_FRESHNESS_LAG_DAYS", "3"))),
            row_count_tolerance=float(os.environ.get("NPS_MART_ROW_COUNT_TOLERANCE", "0.1")),
        )
    finally:
        conn.close()
    report = gx_validate(url, schema=CANDIDATE_SCHEMA, run_id=run_id, parameters=parameters,
                         raise_on_failure=True)
    return {"success": report.success, "data_docs": str(report.data_docs_index),
            "results": str(report.run_dir)}


def publish() -> list[dict]:
    """Swap the validated candidate marts into `marts` in one transaction (publish)."""
    from nps_airflow.publish import publish as publish_marts

    conn = warehouse.connect()
    try:
        return [t.__dict__ for t in publish_marts(conn)]
    finally:
        conn.close()


def summary() -> str:
    from nps.summary import render_summary

    conn = warehouse.connect()
    try:
        return render_summary(conn)
    finally:
        conn.close()


def entities() -> list[str]:
    return list(config.ENTITIES)
