"""The pipeline's stages as plain functions of an explicit data interval.

`dags/nps_nightly.py` wires them into Airflow; each one is a transaction (or a set of
transactions) over one window `[start, end)` and is safe to rerun.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from nps import config, contracts, warehouse
from nps.times import parse_when

log = logging.getLogger(__name__)


class BadInterval(ValueError):
    """The run has no usable data interval (none at all, or an empty one)."""


def resolve_interval(conf: dict[str, Any] | None, data_interval_start: datetime | None,
                     data_interval_end: datetime | None) -> tuple[datetime, datetime]:
    """The window a run works on: the run's data interval, or `interval_start`/`interval_end`
    from the run conf (a custom window, as `nps run` passes it). A backfill's conf
    `backfill_start`/`backfill_end` clips the run's data interval to the backfilled range (its
    first and last months may be partial)."""
    conf = conf or {}
    start = conf.get("interval_start") or data_interval_start
    end = conf.get("interval_end") or data_interval_end
    if start is None or end is None:
        raise BadInterval(
            "this run has no data interval: schedule the DAG with a data-interval timetable or "
            "pass interval_start and interval_end in the run conf"
        )
    start, end = parse_when(start), parse_when(end)
    if conf.get("backfill_start"):
        start = max(start, parse_when(conf["backfill_start"]))
    if conf.get("backfill_end"):
        end = min(end, parse_when(conf["backfill_end"]))
    if not start < end:
        raise BadInterval(
            f"empty data interval: start {start.isoformat()} is not before end {end.isoformat()}"
            + (" (the run lies outside its backfill's range)" if conf.get("backfill_start") else "")
        )
    return start, end


def build_skipped_reason(conf: dict[str, Any] | None, end: datetime) -> str | None:
    """Why this run does not build, validate and publish, or None: in a backfill only the run that
    reaches `backfill_end` does (the earlier runs' marts would be replaced minutes later)."""
    backfill_end = (conf or {}).get("backfill_end")
    if backfill_end and end < parse_when(backfill_end):
        return (f"backfill run up to {end:%Y-%m-%d}: loaded and themed; the run that reaches "
                f"{parse_when(backfill_end):%Y-%m-%d} builds, validates and publishes the marts once")
    return None


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


class LoadFailed(RuntimeError):
    """Some days of a multi-day load failed (each named); the other days were loaded."""


def fails_again_on_retry(exc: BaseException) -> bool:
    """True for a failure that lies in the data or the configuration (a failed expectation, a
    broken contract or mapping, too many quarantined rows, an unreadable file, rows lost by a
    re-drop, someone else's candidate): a retry would fail the same way minutes later, so the task
    fails at once. A lost connection, a killed or failing dbt, an unreachable source are retried."""
    from nlp.overrides import OverrideError
    from nps.sources import SourceConfigError
    from nps_airflow.connectors.column_mapping import MappingError
    from nps_airflow.extract import SourceContractError
    from nps_airflow.load import QuarantineThresholdExceeded, RowLossExceeded, UnreadableFileError
    from nps_airflow.quality import DataQualityError

    deterministic = (DataQualityError, SourceContractError, MappingError, SourceConfigError, OverrideError,
                     QuarantineThresholdExceeded, RowLossExceeded, UnreadableFileError, LoadFailed,
                     CandidateNotOurs, BadInterval)
    return isinstance(exc, deterministic)


def load_windows(source: Any, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """How `extract` cuts a window: date-partitioned file drops one UTC day at a time (a day's
    files, as its nightly run loads them: the same rows, quarantine and load-audit rows, at the
    same total cost); any other source (HTTP, SQL, an undated export) in one load, since each load
    reads the source again and a day-by-day backfill would read it once a day."""
    from nlp.nights import nights
    from nps_airflow import connectors

    return nights(start, end, 1) if getattr(connectors.build(source), "owns_files", False) else [(start, end)]


def extract(entity: str, start: datetime, end: datetime, run_id: str, *, accept_row_loss: bool = False) -> dict:
    """Load one entity for the window (see load_windows), each piece one transaction with its own
    load-audit row. A day that fails in a way that concerns only itself (too many quarantined
    rows, an unreadable file, rows lost by a re-drop) does not stop the others: they load, then
    the task fails naming every failed day. `accept_row_loss`: the run conf's, for a re-drop that
    really removed rows."""
    import psycopg2

    from nps import sources
    from nps_airflow.extract import with_preset_options
    from nps_airflow.load import (
        QuarantineThresholdExceeded,
        RowLossExceeded,
        UnreadableFileError,
        load_entity,
        record_not_configured,
    )

    configured = sources.load()  # the configuration once, not per day
    if entity in contracts.OPTIONAL_ENTITIES and not configured.is_configured(entity):
        with warehouse.transaction() as conn:
            return record_not_configured(conn, entity, start, end, run_id, origin=configured.path)
    source = with_preset_options(configured.entity(entity))
    pieces = load_windows(source, start, end)
    url = warehouse.resolve_url()
    conn = warehouse.connect(url, application_name=f"nps extract_{entity} {run_id}"[:63])
    total: dict[str, Any] = {}
    failures: list[str] = []
    try:
        for piece_start, piece_end in pieces:
            try:
                result = load_entity(conn, entity, piece_start, piece_end, run_id, source=source,
                                     accept_row_loss=accept_row_loss).as_dict()
            except (QuarantineThresholdExceeded, RowLossExceeded, UnreadableFileError) as exc:
                conn.rollback()
                failures.append(str(exc))
                continue
            except (psycopg2.OperationalError, psycopg2.InterfaceError) as exc:
                raise warehouse.connection_lost(url, exc) from exc
            for key, value in result.items():
                if isinstance(value, bool):
                    total[key] = total.get(key, False) or value
                elif isinstance(value, int | float):
                    total[key] = total.get(key, 0) + value
                elif isinstance(value, list):
                    total[key] = [*total.get(key, []), *(v for v in value if v not in total.get(key, []))]
                else:
                    total.setdefault(key, value)
    finally:
        conn.close()
    if failures:
        loaded = len(pieces) - len(failures)
        raise LoadFailed(f"{entity}: {len(failures)} of {len(pieces)} load(s) failed ({loaded} loaded):\n"
                         + "\n".join(failures))
    total.pop("checksum", None)  # one per load: in raw.load_audit
    total.update(start=start.isoformat(), end=end.isoformat(), loads=len(pieces))
    if "duration_s" in total:
        total["duration_s"] = round(total["duration_s"], 3)
    return total


def theme_config() -> Any:
    """The theme engine's configuration for the nightly run: defaults, with the sentence-transformers
    model from NPS_THEME_MODEL (a local directory, or a name already in the local cache; nothing
    is downloaded), the device from NPS_THEME_DEVICE (e.g. cuda on a GPU worker) and the overrides
    seed from NPS_THEME_OVERRIDES."""
    from nlp import ThemeConfig

    settings: dict[str, Any] = {"model": config.theme_model(), "device": config.theme_device(),
                                "overrides_path": config.theme_overrides_path()}
    return ThemeConfig(**{k: v for k, v in settings.items() if v})


def build_themes(start: datetime, end: datetime, run_id: str) -> dict:
    """Embed the window's new comments, assign them to registry themes, discover new themes."""
    from nlp import ThemeEngine

    with warehouse.transaction(lock="themes") as conn:
        stats = ThemeEngine(theme_config()).run_interval(conn, start, end, run_id)
    log.info("themes: %s", stats)
    return stats


class Superseded(RuntimeError):
    """Another run rebuilt the candidate marts after this run built them; that build contains
    this run's data, so this run has nothing left to validate or publish (the DAG skips it)."""


class CandidateNotOurs(RuntimeError):
    """The candidate marts are not the ones this run built and validated: never publish them."""


#: the one lock of the candidate marts: dbt_build, validate and publish each hold it, so a run
#: never validates or publishes a candidate another run is building or has built
CANDIDATE_LOCK = "dbt"


def dbt_build(run_id: str, end: datetime | None = None, start: datetime | None = None) -> None:
    """Build staging -> intermediate -> marts; the marts land in the candidate schema (write).
    They are "as of" the data interval end (`end`), or the "as of" of the marts already published
    when that is later. The build is recorded as the candidate's provenance (ops.candidate_build)."""
    from nps_airflow.dbt import BUILD_ARGS, build_as_of, build_vars, run_dbt
    from nps_airflow.publish import CANDIDATE_SCHEMA

    url = warehouse.resolve_url()
    with warehouse.transaction(url, lock=CANDIDATE_LOCK, holder=f"dbt_build {run_id}") as conn:
        # the lock serialises builds (dbt opens its own connections). dbt commits model by model,
        # so the candidate is marked "being built by this run" and committed (on a connection of
        # its own: this one holds the lock until the end) before dbt starts; only a finished
        # build is ever validated or published
        as_of = build_as_of(conn, end)
        marker = warehouse.connect(url, application_name=f"nps dbt_build {run_id}"[:63])
        try:
            with marker.cursor() as cur:
                cur.execute(
                    "insert into ops.candidate_build (candidate_schema, run_id, as_of, interval_start,"
                    " interval_end, built_at, finished_at, validated_at)"
                    " values (%s, %s, %s, %s, %s, now(), null, null)"
                    " on conflict (candidate_schema) do update set run_id = excluded.run_id,"
                    " as_of = excluded.as_of, interval_start = excluded.interval_start,"
                    " interval_end = excluded.interval_end, built_at = excluded.built_at,"
                    " finished_at = null, validated_at = null",
                    (CANDIDATE_SCHEMA, run_id, as_of, start, end),
                )
            marker.commit()
        finally:
            marker.close()
        args = BUILD_ARGS + (["--full-refresh"] if config.dbt_full_refresh() else [])
        run_dbt(args, url, vars=build_vars(CANDIDATE_SCHEMA))
        with conn.cursor() as cur:
            cur.execute("update ops.candidate_build set finished_at = now() where candidate_schema = %s "
                        "and run_id = %s", (CANDIDATE_SCHEMA, run_id))


def _candidate(cur, run_id: str, stage: str, end: datetime | None) -> dict:
    """The candidate's provenance row, checked to be this run's build (under the lock).

    Another run's build means that run built after this one (builds are serialised and this
    run's build finished before its validate/publish started), so it holds this run's data too:
    Superseded, unless its "as of" is earlier than this run's interval end (a backfill of an old
    window built after tonight's run, before tonight's publish): then this run fails, naming that
    run, rather than leave tonight's data out of the marts without a word."""
    from nps_airflow.publish import CANDIDATE_SCHEMA

    cur.execute("select run_id, as_of, built_at, validated_at, finished_at from ops.candidate_build "
                "where candidate_schema = %s", (CANDIDATE_SCHEMA,))
    row = cur.fetchone()
    if row is None:
        raise CandidateNotOurs(f"{stage}: {CANDIDATE_SCHEMA} has no recorded build; run dbt_build first")
    built = dict(zip(("run_id", "as_of", "built_at", "validated_at", "finished_at"), row, strict=True))
    if built["finished_at"] is None:  # under the lock, so nobody is building: that build died
        raise CandidateNotOurs(
            f"{stage}: the build of {CANDIDATE_SCHEMA} by run {built['run_id']} (started "
            f"{built['built_at']:%Y-%m-%d %H:%M:%S} UTC) never finished (killed?), so the candidate is half "
            "built. Nothing was published; rerun this run from dbt_build."
        )
    if built["run_id"] == run_id:
        return built
    cur.execute("select as_of from ops.published_builds order by publish_id desc limit 1")
    published = cur.fetchone()
    if built["as_of"] is not None and (end is None or built["as_of"] >= end):
        raise Superseded(
            f"{stage}: run {built['run_id']} rebuilt {CANDIDATE_SCHEMA} at {built['built_at']:%Y-%m-%d %H:%M:%S} "
            f"UTC (as of {built['as_of']:%Y-%m-%d %H:%M}), after this run's build; it includes this run's "
            "data and publishes it when it passes validation: nothing to do here"
        )
    raise CandidateNotOurs(
        f"{stage}: run {built['run_id']} rebuilt {CANDIDATE_SCHEMA} after this run (run {run_id}) built it, "
        f"as of {built['as_of']}, before this run's interval end {end}"
        f"{f' (published: {published[0]})' if published else ''}. Nothing was published by this run; "
        "rerun it from dbt_build (Airflow: clear dbt_build with its downstream tasks; or nps run for its window)."
    )


def freshness_lag(start: datetime | None, end: datetime | None, now: datetime | None = None) -> timedelta:
    """How much older than the interval end the newest response may be. A nightly run (its
    interval ended within the lag, NPS_FRESHNESS_LAG_DAYS, default 3, of now): the lag, so that a
    source that stopped delivering fails the night. A historical window (a backfill, a one-off
    import, a rerun of an old window) is as fresh as its data will ever be: only that it holds
    responses (the newest at or after its start) is checked; an export whose last answer came a few
    days before the window's end is not stale."""
    lag = timedelta(days=config.freshness_lag_days())
    now = now or datetime.now(UTC)
    if start is None or end is None or end >= now - lag:
        return lag
    if end - start > lag:
        log.info("validate: [%s, %s) ended more than %s before now: freshness only checks that the window "
                 "holds responses", start.isoformat(), end.isoformat(), lag)
    return max(lag, end - start)


def validate(run_id: str, start: datetime | None = None, end: datetime | None = None) -> dict:
    """Great Expectations on raw data and the candidate marts (audit); raises on any failure.
    Runs under the candidate lock, on the candidate this run built (else Superseded / CandidateNotOurs)."""
    from nps_airflow.publish import CANDIDATE_SCHEMA, PUBLISHED_SCHEMA
    from nps_airflow.quality import suite_parameters
    from nps_airflow.quality import validate as gx_validate

    url = warehouse.resolve_url()
    with warehouse.transaction(url, lock=CANDIDATE_LOCK, holder=f"validate {run_id}") as conn:
        with conn.cursor() as cur:
            _candidate(cur, run_id, "validate", end)
        parameters = suite_parameters(
            conn,
            interval_end=end,
            published_schema=PUBLISHED_SCHEMA,
            freshness_lag=freshness_lag(start, end),
            row_count_tolerance=config.mart_row_count_tolerance(),
        )
        report = gx_validate(url, schema=CANDIDATE_SCHEMA, run_id=run_id, parameters=parameters,
                             raise_on_failure=True)
        with conn.cursor() as cur:
            cur.execute("update ops.candidate_build set validated_at = now() where candidate_schema = %s "
                        "and run_id = %s", (CANDIDATE_SCHEMA, run_id))
    return {"success": report.success, "data_docs": str(report.data_docs_index),
            "results": str(report.run_dir)}


def publish(run_id: str | None = None, end: datetime | None = None) -> list[dict]:
    """Swap the validated candidate marts into `marts` in one transaction (publish), under the
    candidate lock, only when this run built and validated them; record the publish (ops)."""
    from nps_airflow.publish import CANDIDATE_SCHEMA
    from nps_airflow.publish import publish as publish_marts

    with warehouse.transaction(lock=CANDIDATE_LOCK, holder=f"publish {run_id}") as conn:
        with conn.cursor() as cur:
            if run_id is None:  # a manual publish of whatever was validated last
                cur.execute("select run_id from ops.candidate_build where candidate_schema = %s",
                            (CANDIDATE_SCHEMA,))
                row = cur.fetchone()
                run_id = row[0] if row else ""
            built = _candidate(cur, run_id, "publish", end)
            if built["validated_at"] is None:
                raise CandidateNotOurs(f"publish: run {run_id} built {CANDIDATE_SCHEMA} but did not validate it; "
                                       "nothing was published")
        tables = publish_marts(conn, commit=False)
        with conn.cursor() as cur:
            cur.execute(
                "insert into ops.published_builds (run_id, as_of, interval_start, interval_end, built_at)"
                " select run_id, as_of, interval_start, interval_end, built_at from ops.candidate_build"
                " where candidate_schema = %s", (CANDIDATE_SCHEMA,),
            )
    return [t.__dict__ for t in tables]


def report_html(run_id: str) -> dict:
    """The HTML morning report of the published marts (nps.report), written next to the run's
    validation results (`gx/uncommitted/runs/<run_id>/report.html`, beside its `report.json`), at
    the stable path `data/reports/latest.html` and as the dated copy `report-<date>.html`."""
    from nps import report
    from nps_airflow.quality.report import result_dir

    run_file = result_dir(run_id, config.gx_project_root()) / "report.html"
    rendered, written = report.publish_report(extra=[run_file])
    log.info("report_html: the report as of %s written to %s", rendered.report_date,
             ", ".join(str(p) for p in written))
    return {"report_date": rendered.report_date.isoformat(), "paths": [str(p) for p in written]}


def deliver(run_id: str, rendered: dict | None, interval_start: datetime | None = None) -> dict:
    """Deliver the report, the tickets of the interval's new theme alerts and the SLA breaches
    (nps_airflow.deliver), once each."""
    from nps_airflow import deliver as delivery_channels

    dated = [Path(p) for p in (rendered or {}).get("paths", []) if Path(p).name.startswith("report-")]
    since = interval_start.astimezone(UTC).date() if interval_start else None
    return delivery_channels.deliver(run_id, report_file=dated[0] if dated else None, since=since)


def entities() -> list[str]:
    return list(contracts.ENTITIES)
