"""One home for configuration: paths, environment variables and run-time defaults.

Every `NPS_*` environment variable the pipeline reads is read here, by one function each (the
README's "Environment settings" table lists them, tests/test_settings_documented.py keeps it
complete); other modules call these functions, never `os.environ` for an NPS_* setting. The data
contract's facts and defaults live in `nps.contracts`.

Everything here is cheap to import (Airflow parses DAG files that import it).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from nps import contracts

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
EXPECTATIONS_DIR = PROJECT_ROOT / "expectations"
DAGS_DIR = PROJECT_ROOT / "dags"
PLUGINS_DIR = PROJECT_ROOT / "plugins"



def data_dir() -> Path:
    """Where generated demo sources, the embedded warehouse and Airflow's local state live."""
    return Path(os.environ.get("NPS_DATA_DIR", PROJECT_ROOT / "data")).resolve()


def sources_dir() -> Path:
    return Path(os.environ.get("NPS_SOURCES_DIR", data_dir() / "sources")).resolve()


def embedded_pgdata() -> Path:
    return Path(os.environ.get("NPS_EMBEDDED_PGDATA", data_dir() / "warehouse")).resolve()


def airflow_home() -> Path:
    return Path(os.environ.get("AIRFLOW_HOME", data_dir() / "airflow")).resolve()


@dataclass(frozen=True)
class Schedule:
    """When Airflow schedules nps_nightly: from `start` (NPS_DAG_START_DATE, default 2000-01-01) to
    `end` (NPS_DAG_END_DATE, default open), with `catchup` (NPS_DAG_CATCHUP, default false: only
    the latest interval runs when the DAG is unpaused; history is a backfill's job). Airflow creates
    no task for a window before `start`, so it is early: any history a team has can be rerun with
    `nps run` (set a later start together with NPS_DAG_CATCHUP, or catchup runs every day since)."""

    start: datetime
    end: datetime | None
    catchup: bool


def _date_env(name: str) -> datetime | None:
    value = os.environ.get(name)
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"{name} must be an ISO date (YYYY-MM-DD), got {value!r}") from exc
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


def schedule() -> Schedule:
    return Schedule(
        start=_date_env("NPS_DAG_START_DATE") or datetime(2000, 1, 1, tzinfo=UTC),
        end=_date_env("NPS_DAG_END_DATE"),
        catchup=os.environ.get("NPS_DAG_CATCHUP", "false").strip().lower() in ("1", "true", "yes"),
    )


def task_retries() -> int:
    """Retries of every pipeline task (NPS_TASK_RETRIES, default 2): a worker lost mid-task, a
    warehouse restart; every stage is idempotent per interval, so a retry redoes it safely."""
    value = os.environ.get("NPS_TASK_RETRIES", "2")
    if not value.isdigit():
        raise ValueError(f"NPS_TASK_RETRIES must be a whole number, got {value!r}")
    return int(value)


def task_retry_delay_seconds() -> float:
    """Seconds before the first retry (NPS_TASK_RETRY_DELAY_SECONDS, default 300; doubling after)."""
    return _float_env("NPS_TASK_RETRY_DELAY_SECONDS", 300.0)


def _float_env(name: str, default: float) -> float:
    value = os.environ.get(name)
    if not value:
        return default
    try:
        return float(value)
    except ValueError as exc:
        raise ValueError(f"{name} must be a number, got {value!r}") from exc


@dataclass(frozen=True)
class LoadSettings:
    """How the loader treats contract-breaking rows (defaults: nps.contracts)."""

    # A batch fails when more than this share of its rows is quarantined.
    max_quarantine_share: float = field(
        default_factory=lambda: _float_env("NPS_MAX_QUARANTINE_SHARE", contracts.MAX_QUARANTINE_SHARE)
    )
    # Comments longer than this are quarantined rather than loaded.
    max_comment_chars: int = contracts.MAX_COMMENT_CHARS
    # Rows dated later than now + this many hours are quarantined as 'future date'.
    future_tolerance_hours: float = contracts.FUTURE_TOLERANCE_HOURS


def dbt_full_refresh() -> bool:
    """NPS_DBT_FULL_REFRESH=1: the pipeline's dbt builds rebuild the incremental models from scratch
    (`--full-refresh`) instead of recomputing what changed (docs/incremental.md)."""
    return os.environ.get("NPS_DBT_FULL_REFRESH", "").strip().lower() in ("1", "true", "yes", "on")


def accept_row_loss() -> bool:
    """NPS_ACCEPT_ROW_LOSS=1: loads may remove more of the rows loaded before than their source's
    max_row_loss_share (a source that really deleted rows); the loss is recorded in raw.load_audit."""
    return os.environ.get("NPS_ACCEPT_ROW_LOSS", "").strip().lower() in ("1", "true", "yes", "on")


# ---------------------------------------------------------------- the warehouse

WAREHOUSE_URL_ENV = "NPS_WAREHOUSE_URL"
#: alternatively, the id of an Airflow connection (postgres type) that holds the warehouse
WAREHOUSE_CONN_ID_ENV = "NPS_WAREHOUSE_CONN_ID"
#: set by `nps` for its own child processes when it started the embedded warehouse
EMBEDDED_STARTED_ENV = "NPS_EMBEDDED_STARTED"


def warehouse_url() -> str | None:
    """NPS_WAREHOUSE_URL (postgresql://...), if set."""
    return os.environ.get(WAREHOUSE_URL_ENV) or None


def warehouse_conn_id() -> str | None:
    """NPS_WAREHOUSE_CONN_ID: an Airflow connection holding the warehouse, if set."""
    return os.environ.get(WAREHOUSE_CONN_ID_ENV) or None


def warehouse_configured() -> bool:
    """A warehouse was configured (else the embedded one is started on demand)."""
    return bool(warehouse_url() or warehouse_conn_id())


def embedded_started() -> bool:
    return bool(os.environ.get(EMBEDDED_STARTED_ENV))


# ---------------------------------------------------------------- sources

SOURCES_CONFIG_ENV = "NPS_SOURCES_CONFIG"
DEFAULT_SOURCES_CONFIG = PROJECT_ROOT / "sources.yml"


def sources_config_path() -> Path:
    """The source configuration: NPS_SOURCES_CONFIG, else sources.yml at the repository root."""
    return Path(os.environ.get(SOURCES_CONFIG_ENV) or DEFAULT_SOURCES_CONFIG)


# ---------------------------------------------------------------- validation and themes


def freshness_lag_days() -> float:
    """NPS_FRESHNESS_LAG_DAYS (default 3): how much older than a nightly run's interval end the
    newest response may be."""
    return _float_env("NPS_FRESHNESS_LAG_DAYS", 3.0)


def mart_row_count_tolerance() -> float:
    """NPS_MART_ROW_COUNT_TOLERANCE (default 0.1): the share of its published rows a growing mart
    may lose."""
    return _float_env("NPS_MART_ROW_COUNT_TOLERANCE", 0.1)


def gx_project_root() -> Path:
    """NPS_GX_PROJECT_ROOT (default expectations/): the Great Expectations project, the folder
    that holds `gx/` (suites, checkpoints; results in `gx/uncommitted/`)."""
    value = os.environ.get("NPS_GX_PROJECT_ROOT")
    return Path(value).expanduser().resolve() if value else EXPECTATIONS_DIR


def theme_model() -> str | None:
    """NPS_THEME_MODEL: a sentence-transformers model directory (default: the bundled MiniLM)."""
    return os.environ.get("NPS_THEME_MODEL") or None


def theme_device() -> str | None:
    """NPS_THEME_DEVICE: e.g. cuda on a GPU worker (default: the engine's, cpu)."""
    return os.environ.get("NPS_THEME_DEVICE") or None


def theme_overrides_path() -> str | None:
    """NPS_THEME_OVERRIDES: the theme overrides seed a person edits (default: the engine's own,
    dbt_project/seeds/theme_overrides.csv; a configured path that does not exist is an error)."""
    return os.environ.get("NPS_THEME_OVERRIDES") or None


def themes_queue() -> str:
    """NPS_THEMES_QUEUE: the Celery queue of the themes task (default `default`)."""
    return os.environ.get("NPS_THEMES_QUEUE", "default")


# ---------------------------------------------------------------- delivery (nps.delivery)


def report_base_url() -> str | None:
    """NPS_REPORT_BASE_URL: where `data/reports/` is served (e.g. https://bi.example.com/nps); set,
    the delivered report is a link to it instead of an e-mail attachment."""
    return os.environ.get("NPS_REPORT_BASE_URL") or None


def delivery_attempts() -> int:
    """NPS_DELIVERY_ATTEMPTS: tries per message within one delivery, with backoff (default 3)."""
    value = os.environ.get("NPS_DELIVERY_ATTEMPTS", "3")
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"NPS_DELIVERY_ATTEMPTS must be a whole number of at least 1, got {value!r}")
    return int(value)


def delivery_retry_seconds() -> float:
    """NPS_DELIVERY_RETRY_SECONDS: wait before a message's second try, doubling after (default 2)."""
    return _float_env("NPS_DELIVERY_RETRY_SECONDS", 2.0)


def delivery_max_age_days() -> float:
    """NPS_DELIVERY_MAX_AGE_DAYS: marts published as of longer ago than this deliver nothing (a
    backfill of history pages nobody; default 3; 0 = no limit)."""
    return _float_env("NPS_DELIVERY_MAX_AGE_DAYS", 3.0)


# ---------------------------------------------------------------- the local stack (nps stack)

STACK_PORT_ENV = "NPS_STACK_PORT"
CELERY_BROKER_ENV = "NPS_CELERY_BROKER_URL"
DEFAULT_CELERY_BROKER = "redis://127.0.0.1:6379/0"
#: the metadata database's name on the warehouse's server
STACK_METADATA_DB_ENV = "NPS_STACK_METADATA_DB"


def stack_home() -> Path:
    """NPS_STACK_HOME (default data/stack): the stack's AIRFLOW_HOME, state, secrets and logs."""
    return Path(os.environ.get("NPS_STACK_HOME", data_dir() / "stack")).resolve()


def stack_port() -> str:
    """NPS_STACK_PORT as given (default 8080); `nps.stack.port()` checks it is a port number."""
    return os.environ.get(STACK_PORT_ENV, "8080")


def stack_metadata_db() -> str:
    return os.environ.get(STACK_METADATA_DB_ENV, "nps_airflow")


def celery_broker_url() -> str:
    return os.environ.get(CELERY_BROKER_ENV, DEFAULT_CELERY_BROKER)


def worker_name() -> str | None:
    """NPS_WORKER_NAME: a stack worker's name (set by nps stack for each Celery worker)."""
    return os.environ.get("NPS_WORKER_NAME") or None


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the block, then restore each to what it was (or unset it)."""
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
