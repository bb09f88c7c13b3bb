"""Doing to a test's database connection what a failover or a restart does."""

from __future__ import annotations

import psycopg
from django.db import connection


def kill_current_backend() -> None:
    """Terminate the Django connection's server process from a separate admin connection."""
    connection.ensure_connection()
    pid = connection.connection.info.backend_pid
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    with psycopg.connect(autocommit=True, **params) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
