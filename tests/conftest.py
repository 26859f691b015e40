"""Shared fixtures: a real PostgreSQL (NPS_WAREHOUSE_URL's server, else an embedded pgserver),
a fresh database per test that needs one, the real MiniLM model, and Airflow pointed at a
throw-away home. Nothing here is mocked."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

# Before anything imports Airflow: a private AIRFLOW_HOME / data dir for this test session (each
# pytest-xdist worker is a session of its own), and a private copy of the GX project, whose
# uncommitted/ folder (results, Data Docs) every validation writes.
_SESSION_DIR = Path(tempfile.mkdtemp(prefix="nps-test-"))
os.environ["NPS_DATA_DIR"] = str(_SESSION_DIR)
os.environ["AIRFLOW_HOME"] = str(_SESSION_DIR / "airflow")
shutil.copytree(Path(__file__).resolve().parent.parent / "expectations", _SESSION_DIR / "expectations",
                ignore=shutil.ignore_patterns("uncommitted"))
os.environ["NPS_GX_PROJECT_ROOT"] = str(_SESSION_DIR / "expectations")
os.environ["NPS_TASK_RETRIES"] = "0"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from nps import orchestrate, warehouse  # noqa: E402

os.environ.update(orchestrate.airflow_env())

# The server the tests create their databases on; the user's own warehouse is never written.
_SERVER_URL = os.environ.pop(warehouse.URL_ENV, None)
os.environ.pop(warehouse.CONN_ID_ENV, None)


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    if _SERVER_URL:
        yield _SERVER_URL
        return
    yield warehouse.start_embedded(_SESSION_DIR / "pgdata", keep_running=False)


def _admin(url: str):
    conn = warehouse.connect(url)
    conn.autocommit = True
    return conn


@pytest.fixture(scope="session")
def make_database(pg_server_url: str) -> Iterator:
    """Factory: a new empty database on the test server with raw/nlp schemas; dropped at the end."""
    created: list[str] = []

    def make(prefix: str = "nps_test") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:8]}"
        admin = _admin(pg_server_url)
        with admin.cursor() as cur:
            cur.execute(f'create database "{name}"')
        admin.close()
        created.append(name)
        url = warehouse.database_url(pg_server_url, name)
        conn = warehouse.connect(url)
        warehouse.ensure_schema(conn)
        conn.close()
        return url

    yield make
    admin = _admin(pg_server_url)
    with admin.cursor() as cur:
        for name in created:
            cur.execute(f'drop database if exists "{name}" with (force)')
    admin.close()


@pytest.fixture
def db_url(make_database) -> str:
    return make_database()


@pytest.fixture
def db_conn(db_url: str):
    conn = warehouse.connect(db_url)
    yield conn
    conn.close()


# ---------------------------------------------------------------- the pipeline, run once per session


def query(url: str, sql: str):
    """A query's result as a DataFrame."""
    import pandas as pd

    conn = warehouse.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return pd.DataFrame(cur.fetchall(), columns=[d.name for d in cur.description])
    finally:
        conn.close()


def mart(url: str, name: str, schema: str = "marts"):
    return query(url, f"select * from {schema}.{name}")


@pytest.fixture(scope="session")
def small_sources(tmp_path_factory) -> tuple[Path, dict]:
    from nps.demo.generator import PRESETS, generate

    out = tmp_path_factory.mktemp("sources")
    manifest = generate(out, PRESETS["small"], progress=False)
    return out, manifest


@pytest.fixture(scope="session")
def pipeline(make_database, small_sources):
    """nps_nightly run through Airflow quarter by quarter over the small data set, as `make demo`
    does; yields (warehouse url, sources dir, generator manifest)."""
    from datetime import date

    sources, manifest = small_sources
    url = make_database("nps_pipeline")
    saved = {k: os.environ.get(k) for k in (warehouse.URL_ENV, "NPS_SOURCES_DIR")}
    os.environ[warehouse.URL_ENV] = url
    os.environ["NPS_SOURCES_DIR"] = str(sources)
    start, end = date.fromisoformat(manifest["start"]), date.fromisoformat(manifest["end"])
    for s, e in orchestrate.quarter_windows(start, end):
        orchestrate.run_window(s, e)
    yield url, sources, manifest
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def sources_frames(small_sources):
    from tests.reference import load_sources

    return load_sources(small_sources[0])


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With pytest-xdist (make test: -n 2 --dist loadgroup) the tests of the one pipeline the session
    builds run on one worker, so it is built once; the rest spread over the other. First among the
    hooks: xdist's own reads the mark to group the tests (after it, the mark groups nothing and
    each worker builds the pipeline)."""
    for item in items:
        if "pipeline" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("pipeline"))
