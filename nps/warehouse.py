"""Warehouse access: which PostgreSQL to use, connections, schema set-up and locks.

`NPS_WAREHOUSE_URL` (postgresql://...) selects any PostgreSQL, or `NPS_WAREHOUSE_CONN_ID` names an
Airflow connection that holds it. Without either, an embedded server
(PyPI `pgserver`, a real PostgreSQL) is started in `data/warehouse` and kept running so that
psql / BI tools can connect after the pipeline exits; `nps warehouse stop` stops it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, unquote, urlparse

from nps import config

if TYPE_CHECKING:
    from psycopg2.extensions import connection as PgConnection

log = logging.getLogger(__name__)

URL_ENV = config.WAREHOUSE_URL_ENV
#: alternatively, the id of an Airflow connection (postgres type) that holds the warehouse
CONN_ID_ENV = config.WAREHOUSE_CONN_ID_ENV


class WarehouseError(RuntimeError):
    """The warehouse cannot be reached or is misconfigured."""


@dataclass(frozen=True)
class ConnParams:
    host: str
    port: int
    user: str
    password: str
    dbname: str

    @property
    def is_socket(self) -> bool:
        return self.host.startswith("/")


def parse_url(url: str) -> ConnParams:
    """Split a postgresql:// URL (TCP, or a unix socket given as ?host=/dir) into libpq parts."""
    parsed = urlparse(url)
    if parsed.scheme not in ("postgresql", "postgres", "postgresql+psycopg2"):
        raise WarehouseError(
            f"{URL_ENV} must be a postgresql:// URL, got scheme {parsed.scheme!r} in {redact(url)}"
        )
    query = parse_qs(parsed.query)
    host = query.get("host", [parsed.hostname or ""])[0] or "127.0.0.1"
    dbname = unquote(parsed.path.lstrip("/")) or query.get("dbname", ["postgres"])[0]
    return ConnParams(
        host=host,
        port=int(query.get("port", [parsed.port or 5432])[0]),
        user=unquote(parsed.username or "") or query.get("user", ["postgres"])[0],
        password=unquote(parsed.password or ""),
        dbname=dbname,
    )


def redact(url: str) -> str:
    """The URL with its password hidden, for logs and error messages."""
    parsed = urlparse(url)
    if parsed.password:
        return url.replace(f":{parsed.password}@", ":***@", 1)
    return url


_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]*:)(?P<password>[^@\s]+)(?=@)", re.IGNORECASE)


def redact_text(text: str) -> str:
    """Any text (a log tail, an error message) with the passwords of the URLs in it hidden."""
    return _URL_PASSWORD.sub(lambda m: m.group("head") + "***", text)


def redact_secrets(text: str, url: str | None = None) -> str:
    """`text` with URL passwords hidden, and the password of `url` (the warehouse's) wherever it
    appears on its own (a driver message, a tool's debug output)."""
    text = redact_text(text)
    if url:
        try:
            password = parse_url(url).password
        except WarehouseError:
            password = ""
        if password:
            text = text.replace(password, "***")
    return text


# ---------------------------------------------------------------- SQLAlchemy URLs (one home)

_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,62}$")


def check_schema_name(schema: str) -> None:
    """A schema name that can go unquoted into SQL and a search_path."""
    if not _SCHEMA_NAME.match(schema):
        raise ValueError(f"invalid schema name {schema!r}: expected an unquoted SQL identifier")


def with_driver(url: str) -> str:
    """``postgresql://`` / ``postgres://`` (as users and Airflow connections write them) with the
    driver this project installs: SQLAlchemy 2.1 defaults to psycopg 3, which is not installed.
    Any other URL (another database, a driver already named) is returned as it is."""
    scheme, sep, rest = url.partition("://")
    if sep and scheme.lower() in ("postgresql", "postgres"):
        return f"postgresql+psycopg2://{rest}"
    return url


def sqlalchemy_url(warehouse_url: str, *, search_path: str | None = None) -> str:
    """A PostgreSQL URL as a ``postgresql+psycopg2://`` SQLAlchemy URL (Great Expectations, SQL
    sources, tests).

    Keeps unix-socket URLs (``postgresql://postgres:@/db?host=/tmp/x``) working and, when
    ``search_path`` is given, adds ``options=-csearch_path=<schema>`` so unqualified table
    names resolve in that schema only.
    """
    from sqlalchemy.engine import make_url

    url = make_url(warehouse_url.replace("postgres://", "postgresql://", 1))
    if url.get_backend_name() != "postgresql":
        raise ValueError(f"not a PostgreSQL URL: {url.render_as_string(hide_password=True)}")
    url = url.set(drivername="postgresql+psycopg2")
    if search_path is not None:
        check_schema_name(search_path)
        opts = url.query.get("options")
        existing = (opts if isinstance(opts, str) else " ".join(opts or ())).strip()
        existing = re.sub(r"-c\s*search_path=\S+", "", existing).strip()
        url = url.update_query_dict({"options": f"{existing} -csearch_path={search_path}".strip()})
    return url.render_as_string(hide_password=False)


def libpq_env(url: str) -> dict[str, str]:
    """Environment variables read by dbt_project/profiles.yml."""
    p = parse_url(url)
    return {
        "NPS_PGHOST": p.host,
        "NPS_PGPORT": str(p.port),
        "NPS_PGUSER": p.user,
        "NPS_PGPASSWORD": p.password,
        "NPS_PGDATABASE": p.dbname,
    }


def start_embedded(pgdata: Path | None = None, *, keep_running: bool = True) -> str:
    """Start (or reuse) the embedded PostgreSQL and return its URL."""
    import pgserver  # heavy-ish, and only needed without a configured warehouse

    pgdata = pgdata or config.embedded_pgdata()
    pgdata.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(pgdata, cleanup_mode=None if keep_running else "stop")
    url = server.get_uri("postgres")
    log.info("embedded PostgreSQL running in %s (%s)", pgdata, url)
    return url


def stop_embedded(pgdata: Path | None = None) -> bool:
    """Stop the embedded server if it runs. Returns True when a server was stopped."""
    pgdata = pgdata or config.embedded_pgdata()
    if not (pgdata / "postmaster.pid").exists():
        return False
    import pgserver

    user = "pgserver" if os.geteuid() == 0 else None
    pgserver.pg_ctl(["-w", "stop"], pgdata=pgdata, user=user)  # type: ignore[attr-defined]  # made at import
    return True


def url_from_airflow_connection(conn_id: str) -> str:
    """A postgresql:// URL from an Airflow connection (metadata DB, secrets backend or an
    AIRFLOW_CONN_<ID> variable); imported only when configured."""
    from urllib.parse import quote

    try:
        from airflow.sdk import Connection

        conn = Connection.get(conn_id)
    except Exception as exc:  # the SDK raises its own error types for an unknown id
        raise WarehouseError(f"{CONN_ID_ENV}={conn_id}: no such Airflow connection ({exc})") from exc
    auth = quote(conn.login or "postgres", safe="")
    if conn.password:
        auth += ":" + quote(conn.password, safe="")
    host, port, dbname = conn.host or "127.0.0.1", conn.port or 5432, conn.schema or "postgres"
    if host.startswith("/"):  # a unix socket directory
        return f"postgresql://{auth}@/{dbname}?host={host}&port={port}"
    return f"postgresql://{auth}@{host}:{port}/{dbname}"


def resolve_url(*, start: bool = True) -> str:
    """The warehouse URL: NPS_WAREHOUSE_URL if set, else the Airflow connection named by
    NPS_WAREHOUSE_CONN_ID, else the embedded server (started on demand).

    A URL found here is exported as NPS_WAREHOUSE_URL so child steps (dbt, GX) see the same one.
    """
    url = config.warehouse_url()
    if url:
        parse_url(url)  # fail early on a malformed URL
        return url
    conn_id = config.warehouse_conn_id()
    if conn_id:
        url = url_from_airflow_connection(conn_id)
        parse_url(url)
        os.environ[URL_ENV] = url
        return url
    if not start:
        raise WarehouseError(f"{URL_ENV} is not set and the embedded warehouse was not requested")
    url = start_embedded()
    os.environ[URL_ENV] = url
    return url


def database_url(url: str, dbname: str) -> str:
    """The URL of another database on the same server (same user, host or socket, port)."""
    p = parse_url(url)
    auth = p.user + (f":{p.password}" if p.password else "")
    if p.is_socket:
        return f"postgresql://{auth}@/{dbname}?host={p.host}&port={p.port}"
    return f"postgresql://{auth}@{p.host}:{p.port}/{dbname}"


@contextlib.contextmanager
def scratch_database(prefix: str, server_url: str | None = None, keep: bool = False) -> Iterator[str]:
    """A new database with the raw / nlp schemas, dropped on exit unless ``keep`` (to inspect
    it afterwards), on the server of ``server_url`` (default NPS_WAREHOUSE_URL, else a
    throw-away embedded server) — for benchmarks, which must never write to the user's own
    database."""
    import tempfile
    import uuid

    server = server_url or config.warehouse_url()
    if not server:
        server = start_embedded(Path(tempfile.mkdtemp(prefix=f"{prefix}-")) / "pgdata", keep_running=False)
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = connect(server)
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(f'create database "{name}"')
        url = database_url(server, name)
        conn = connect(url)
        try:
            ensure_schema(conn)
        finally:
            conn.close()
        yield url
    finally:
        if keep:
            print(f"database kept: {database_url(server, name)}", flush=True)
        else:
            with admin.cursor() as cur:
                cur.execute(f'drop database if exists "{name}" with (force)')
        admin.close()


def psql_hint(url: str) -> str:
    p = parse_url(url)
    return f"psql -h {p.host} -p {p.port} -U {p.user} -d {p.dbname}"


def connect(url: str | None = None, *, application_name: str = "nps-pipeline") -> PgConnection:
    """A psycopg2 connection (autocommit off: every task is one transaction)."""
    import psycopg2

    url = url or resolve_url()
    p = parse_url(url)
    try:
        return psycopg2.connect(
            host=p.host,
            port=p.port,
            user=p.user,
            password=p.password or None,
            dbname=p.dbname,
            application_name=application_name,
            connect_timeout=10,
        )
    except psycopg2.OperationalError as exc:
        raise WarehouseError(f"cannot connect to the warehouse at {redact(url)}: {exc}") from exc


def ensure_schema(conn: PgConnection) -> None:
    """Create raw.* and nlp.* if missing (idempotent; serialised so parallel tasks don't race)."""
    ddl = resources.files("nps").joinpath("sql/warehouse.sql").read_text()
    with conn.cursor() as cur:
        cur.execute("select pg_advisory_xact_lock(%s)", (lock_key("nps:ddl"),))
        cur.execute(ddl)
    conn.commit()


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for a name."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def advisory_lock(conn: PgConnection, name: str) -> None:
    """Take the transaction-level advisory lock `name`, waiting for it if another session holds it;
    the wait is logged with the holder's application name (which names its stage and run)."""
    key = lock_key(name)
    with conn.cursor() as cur:
        cur.execute("select pg_try_advisory_xact_lock(%s)", (key,))
        if cur.fetchone()[0]:
            return
        cur.execute(
            "select a.application_name, a.pid, a.xact_start from pg_locks l "
            "join pg_stat_activity a on a.pid = l.pid where l.locktype = 'advisory' and l.granted "
            "and l.objsubid = 1 and ((l.classid::bigint << 32) | l.objid::bigint) = %s "
            "limit 1",
            (key,),
        )
        holder = cur.fetchone()
        who = (f"{holder[0] or 'another session'} (pid {holder[1]}, since {holder[2]:%Y-%m-%d %H:%M:%S %Z})"
               if holder else "another session")
        log.warning("waiting for the %r lock, held by %s", name, who)
        cur.execute("select pg_advisory_xact_lock(%s)", (key,))
        log.warning("got the %r lock", name)


@contextlib.contextmanager
def transaction(url: str | None = None, *, lock: str | None = None,
                holder: str | None = None) -> Iterator[PgConnection]:
    """One transaction; with `lock`, an advisory lock held until commit so that two runs of the
    same (stage, interval) cannot write at the same time: the second waits (saying for whom),
    then sees the first's result. `holder` (e.g. "dbt_build <run id>") is the session's
    application name, which other sessions see while they wait."""
    conn = connect(url, application_name=f"nps {holder}"[:63] if holder else "nps-pipeline")
    try:
        if lock:
            advisory_lock(conn, lock)
        yield conn
        conn.commit()
    except BaseException as exc:
        lost = _rollback(conn)
        if lost is not None and isinstance(exc, Exception) and not isinstance(exc, WarehouseError):
            # the database error first: not the rollback's "connection already closed" over it
            raise connection_lost(url or resolve_url(start=False), exc) from exc
        raise
    finally:
        conn.close()


def _rollback(conn: PgConnection) -> Exception | None:
    """Roll back; None, or the error when the connection is gone (the server has rolled back)."""
    import psycopg2

    try:
        conn.rollback()
    except (psycopg2.OperationalError, psycopg2.InterfaceError) as exc:
        return exc
    return None


def connection_lost(url: str, exc: BaseException) -> WarehouseError:
    """A WarehouseError for a connection that died mid-transaction (an outage, a restart)."""
    # libpq's whole message on one line: the server's FATAL reason when it sent one, else its guess
    said = " ".join(str(exc).split()).rstrip(".") or type(exc).__name__
    return WarehouseError(f"the warehouse connection was lost ({redact(url)}): {redact_secrets(said, url)}. "
                          "Nothing of the interrupted transaction was kept; rerun the task once the "
                          "warehouse is back (every stage is idempotent for its interval).")
