"""Choosing the warehouse: a URL, an Airflow connection, or the embedded server."""

from __future__ import annotations

import json

import pytest

from nps import warehouse


def test_an_airflow_connection_can_name_the_warehouse(db_url, monkeypatch):
    p = warehouse.parse_url(db_url)  # TCP, or the embedded server's unix socket directory
    monkeypatch.delenv(warehouse.URL_ENV, raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_NPS_WH", json.dumps({
        "conn_type": "postgres", "host": p.host, "port": p.port, "login": p.user,
        "password": p.password or None, "schema": p.dbname}))
    monkeypatch.setenv(warehouse.CONN_ID_ENV, "nps_wh")
    url = warehouse.resolve_url(start=False)
    assert warehouse.parse_url(url) == p
    conn = warehouse.connect(url)
    with conn.cursor() as cur:
        cur.execute("select current_database()")
        assert cur.fetchone() == (p.dbname,)
    conn.close()


def test_an_unknown_airflow_connection_is_a_clear_error(monkeypatch):
    monkeypatch.delenv(warehouse.URL_ENV, raising=False)
    monkeypatch.setenv(warehouse.CONN_ID_ENV, "no_such_connection")
    with pytest.raises(warehouse.WarehouseError, match="no_such_connection: no such Airflow connection"):
        warehouse.resolve_url(start=False)


def test_a_url_that_is_not_postgresql_is_refused(monkeypatch):
    monkeypatch.setenv(warehouse.URL_ENV, "mysql://root@localhost/test")
    with pytest.raises(warehouse.WarehouseError, match="must be a postgresql:// URL"):
        warehouse.resolve_url()
