"""CPU per transfer request inside the Django process: no HTTP server, no client, no other load.

    python bench/inprocess.py                 # 2,000 transfers, CPU and wall time per request
    python bench/inprocess.py --profile       # and a cProfile summary: share of time by package

Creates a throwaway database (--database, dropped at the end), migrates it, and calls the
WSGI application directly with production settings (JWT, idempotency keys, rate limits in
Redis db 12 raised through settings, JSON logs, metrics) for POST /api/v1/transfers between
16 wallets of 8 users. CPU is this process's (`time.process_time`); wall time also
includes the PostgreSQL and Redis work the request waits for. It complements bench/suite.py:
the suite measures throughput of the whole machine, this isolates the Python cost of one
request, which is what the suite's throughput is made of on 2 shared cores.
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import io
import json
import os
import pstats
import random
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.suite import PG, RAISED  # noqa: E402


def environment(database: str, prom_dir: str) -> dict[str, str]:
    return {
        "DJANGO_SETTINGS_MODULE": "wallet_project.settings.production",
        "DATABASE_URL": f"{PG}/{database}",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(48),
        "JWT_SIGNING_KEY": secrets.token_urlsafe(48),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DJANGO_SECURE_SSL_REDIRECT": "false",
        "LOG_FORMAT": "json",
        "REDIS_URL": "redis://127.0.0.1:6379/12",
        "OTEL_SDK_DISABLED": "true",
        "PROMETHEUS_MULTIPROC_DIR": prom_dir,
        **{
            f"RATE_LIMIT_{scope}": RAISED
            for scope in ("USER", "MONEY", "WALLET_OUTGOING", "ANON", "LOGIN_IP", "LOGIN_USER")
        },
    }


class App:
    """The WSGI application, called the way a server would."""

    def __init__(self) -> None:
        from django.core.wsgi import get_wsgi_application

        self.app = get_wsgi_application()

    def call(self, method: str, path: str, body: dict | None = None, token: str = "", key: str = ""):
        data = json.dumps(body).encode() if body is not None else b""
        environ = {
            "REQUEST_METHOD": method,
            "PATH_INFO": path,
            "QUERY_STRING": "",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8000",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "HTTP_HOST": "127.0.0.1",
            "REMOTE_ADDR": "127.0.0.1",
            "CONTENT_TYPE": "application/json",
            "CONTENT_LENGTH": str(len(data)),
            "wsgi.input": io.BytesIO(data),
            "wsgi.errors": sys.stderr,
            "wsgi.url_scheme": "http",
        }
        if token:
            environ["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        if key:
            environ["HTTP_IDEMPOTENCY_KEY"] = key
        status = {}

        def start_response(line: str, headers: list, exc_info: object = None) -> None:
            status["code"] = int(line.split()[0])

        content = b"".join(self.app(environ, start_response))
        return status["code"], content


def set_up(app: App, users: int = 8) -> tuple[list[tuple[str, list[str]]], list[str]]:
    accounts, every_wallet = [], []
    password = secrets.token_urlsafe(16)
    for _ in range(users):
        name = f"inproc-{secrets.token_hex(4)}"
        body = {"username": name, "password": password, "email": f"{name}@example.com"}
        status, content = app.call("POST", "/api/v1/auth/register", body)
        assert status == 201, content
        status, content = app.call("POST", "/api/v1/auth/token", {"username": name, "password": password})
        token = json.loads(content)["access"]
        wallets = []
        for n in range(2):
            status, content = app.call("POST", "/api/v1/wallets", {"currency": "USD", "name": f"w{n}"}, token)
            wallet = json.loads(content)["id"]
            deposit = f"/api/v1/wallets/{wallet}/deposits"
            status, content = app.call("POST", deposit, {"amount": 10**9}, token, uuid.uuid4().hex)
            assert status == 201, content
            wallets.append(wallet)
        accounts.append((token, wallets))
        every_wallet.extend(wallets)
    return accounts, every_wallet


def by_package(profile: cProfile.Profile) -> list[tuple[float, str]]:
    totals: collections.Counter = collections.Counter()
    for (filename, _, function), (_, _, own, _, _) in pstats.Stats(profile).stats.items():
        if "site-packages/" in filename:
            key = filename.split("site-packages/")[1].split("/")[0]
        elif str(REPO) in filename:
            key = "app: " + filename.split(str(REPO) + "/")[1]
        elif filename.startswith("~"):
            key = "builtin: " + function
        else:
            key = "stdlib: " + Path(filename).name
        totals[key] += own
    everything = sum(totals.values()) or 1.0
    return [(100 * own / everything, key) for key, own in totals.most_common(25)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--database", default="wallet_inprocess")
    parser.add_argument("--profile", action="store_true", help="also print cProfile time by package")
    args = parser.parse_args()
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{args.database}"')
    try:
        with tempfile.TemporaryDirectory(prefix="wallet-inprocess-") as prom:
            os.environ.update(environment(args.database, prom))
            subprocess.run(  # the project's own manage.py
                [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=REPO, check=True
            )
            import django

            django.setup()
            app = App()
            accounts, every_wallet = set_up(app)
            rng = random.Random(7)  # a reproducible load plan, not a secret

            def transfer() -> None:
                token, mine = rng.choice(accounts)
                source = rng.choice(mine)
                destination = rng.choice([w for w in every_wallet if w != source])
                body = {"source_wallet_id": source, "destination_wallet_id": destination, "amount": 1}
                status, content = app.call("POST", "/api/v1/transfers", body, token, uuid.uuid4().hex)
                assert status == 201, content

            for _ in range(200):  # warm caches, prepared statements, connections
                transfer()
            cpu, wall = time.process_time(), time.perf_counter()
            for _ in range(args.requests):
                transfer()
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            print(
                f"{args.requests} transfers: CPU {1000 * cpu / args.requests:.2f} ms per request,"
                f" wall {1000 * wall / args.requests:.2f} ms per request"
            )
            if args.profile:
                profile = cProfile.Profile()
                profile.enable()
                for _ in range(args.requests):
                    transfer()
                profile.disable()
                print("\nshare of profiled time (own time) by package:")
                for share, key in by_package(profile):
                    print(f"{share:5.1f} %  {key}")
    finally:
        if "django.db" in sys.modules:
            sys.modules["django.db"].connections.close_all()
        with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
    return 0


if __name__ == "__main__":
    sys.exit(main())
