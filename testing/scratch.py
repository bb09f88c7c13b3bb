"""Scratch databases for migration tests: created and dropped here, migrated by `manage.py`.

Each scratch database is created and dropped on an admin connection (psycopg,
autocommit) and migrated by `manage.py` in a subprocess, exactly as the deploy step
runs it; the suite's own test database is never touched. Tests get one through the
`scratch` fixture (conftest.py).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psycopg
from django.conf import settings
from psycopg import sql

BASE_DIR = Path(__file__).resolve().parents[1]
SUBPROCESS_TIMEOUT = 120


@dataclass
class Scratch:
    name: str
    url: str

    def connect(self, **kwargs) -> psycopg.Connection:
        return psycopg.connect(self.url, **kwargs)


def _server() -> dict[str, object]:
    s = settings.DATABASES["default"]
    return {
        "host": s["HOST"] or "127.0.0.1",
        "port": int(s["PORT"] or 5432),
        "user": s["USER"] or "postgres",
        "password": s["PASSWORD"] or None,
    }


def database_url(dbname: str, user: str | None = None) -> str:
    """A URL for `dbname` on the test server, as `user` (the server's user, with its password, by default)."""
    server = _server()
    user = user or str(server["user"])
    password = (
        f":{quote(str(server['password']), safe='')}" if server["password"] and user == server["user"] else ""
    )
    return f"postgres://{quote(user, safe='')}{password}@{server['host']}:{server['port']}/{dbname}"


@contextlib.contextmanager
def admin_connection() -> Iterator[psycopg.Connection]:
    with psycopg.connect(dbname="postgres", autocommit=True, **_server()) as conn:
        yield conn


@contextlib.contextmanager
def scratch_database() -> Iterator[Scratch]:
    """A database of its own, empty, dropped afterwards."""
    name = f"wallet_migrations_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with admin_connection() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield Scratch(name=name, url=database_url(name))
    finally:
        with admin_connection() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def subprocess_env(database_url: str, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "DATABASE_", "DB_", "MIGRATE", "MIGRATION", "PROMETHEUS_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="wallet_project.settings.test",
        DATABASE_URL=database_url,
        OTEL_SDK_DISABLED="true",
        # deploy/migrate.sh calls `python`: this interpreter, as /opt/venv/bin is first in the image.
        PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        **extra,
    )
    return env


def run_in_project(command: list[str], database_url: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run `command` in the project's folder against `database_url`, as the deploy step would."""
    return subprocess.run(
        command,
        cwd=BASE_DIR,
        env=subprocess_env(database_url, **env),
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT,
        check=False,
    )


def manage(database_url: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run_in_project([sys.executable, "manage.py", *args], database_url, **env)


def migrate(database_url: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    result = manage(database_url, "migrate", *args, "--noinput", **env)
    assert result.returncode == 0, f"migrate {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def schema(db: Scratch) -> dict[str, list[tuple]]:
    """Everything a migration can create in the public schema, in a comparable form."""
    queries = {
        "columns": """SELECT table_name, column_name, data_type, is_nullable, column_default
                      FROM information_schema.columns WHERE table_schema = 'public'""",
        "constraints": """SELECT conrelid::regclass::text, conname, pg_get_constraintdef(c.oid)
                          FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
                          WHERE n.nspname = 'public'""",
        "indexes": "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'",
        "triggers": """SELECT tgrelid::regclass::text, tgname, pg_get_triggerdef(t.oid)
                       FROM pg_trigger t WHERE NOT tgisinternal""",
        "functions": """SELECT proname, md5(prosrc) FROM pg_proc p
                        JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public'""",
    }
    with db.connect() as conn:
        return {name: sorted(conn.execute(query).fetchall()) for name, query in queries.items()}


def applied(db: Scratch, app: str) -> set[str]:
    with db.connect() as conn:
        rows = conn.execute("SELECT name FROM django_migrations WHERE app = %s", [app]).fetchall()
    return {name for (name,) in rows}
