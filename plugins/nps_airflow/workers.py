"""Worker identity for a scale-out deployment with several Celery workers on one host."""

from __future__ import annotations

import socket

from nps import config


def hostname() -> str:
    """Airflow's `hostname_callable` for the stack's workers: the host name, plus the worker's name
    (NPS_WORKER_NAME) when set, so the task instances in the metadata database say which worker
    ran them even when both workers share a host (`nps stack start --executor celery`)."""
    name = config.worker_name()
    host = socket.getfqdn()
    return f"{host}-{name}" if name else host
