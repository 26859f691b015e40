"""Credentials from an Airflow connection (HTTP auth, a SQL source's URL), imported only when used."""

from __future__ import annotations

from typing import Any


def airflow_secret(conn_id: str) -> tuple[str, Any]:
    """(password-or-token, connection) of an Airflow connection."""
    from airflow.sdk import Connection  # Airflow 3 (requirements.txt)

    conn = Connection.get(conn_id)
    token = conn.password or (conn.extra_dejson or {}).get("token") or ""
    return token, conn
