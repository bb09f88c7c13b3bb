"""CPU per request inside the Django process, against the framework's own floor, in one run.

    python bench/inprocess.py                 # 2,000 requests per endpoint; CPU, wall time, ratio
    python bench/inprocess.py --profile       # and a cProfile summary of transfers, by package
    python bench/inprocess.py --profile --profile-endpoint capture   # ... of another endpoint
    python bench/inprocess.py --json out.json # the figures as JSON too (bench/suite.py uses it)

Creates a throwaway database (--database, dropped at the end), migrates it, and calls the
WSGI application directly with production settings (JWT, idempotency keys, rate limits in
Redis db 12 raised through settings, JSON logs, metrics, tracing as configured by the
environment: by default no exporter, so no spans) for POST /api/v1/transfers, POST
deposits, GET a wallet, GET a history page (20 entries), POST a hold (3 cents), the capture
of part of it (2) to another wallet, and the refund of part of that transfer (1) by its
recipient, between 16 wallets of 8 users.
CPU is this process's (`time.process_time`); wall time also includes the PostgreSQL and
Redis work the request waits for. The requests run in 10 batches; "best" is the cheapest
batch's CPU per request, the figure least disturbed by other work on a shared machine.
SQL is the statements one more request sent through Django's cursor, untimed (BEGIN and
COMMIT are not counted: Django sends them outside it).

The floor, measured the same way in the same process: a minimal DRF APIView that parses the
transfer's JSON body, validates it with a plain `Serializer` and answers 201, with no
authentication, throttling, middleware or I/O (Django's request object, DRF's parser,
serializer and renderer: what any DRF endpoint pays). Each endpoint's CPU is reported as a
ratio to it. It complements bench/suite.py: the suite measures throughput of the whole
machine, this isolates the Python cost of one request, which is what the suite's throughput
is made of on 2 shared cores.
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
from collections.abc import Callable
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

    def environ(self, method: str, path: str, data: bytes, query: str = "") -> dict:
        return {
            "REQUEST_METHOD": method,
            "PATH_INFO": path,
            "QUERY_STRING": query,
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

    def call(
        self,
        method: str,
        path: str,
        body: dict | None = None,
        token: str = "",
        key: str = "",
        query: str = "",
    ) -> tuple[int, bytes]:
        data = json.dumps(body).encode() if body is not None else b""
        environ = self.environ(method, path, data, query)
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


def floor_view() -> Callable[[dict], int]:
    """The framework's floor: Django's request, DRF's parser, a plain Serializer, DRF's renderer."""
    from django.core.handlers.wsgi import WSGIRequest
    from rest_framework import serializers, status
    from rest_framework.parsers import JSONParser
    from rest_framework.renderers import JSONRenderer
    from rest_framework.response import Response
    from rest_framework.views import APIView

    class TransferBody(serializers.Serializer):
        source_wallet_id = serializers.UUIDField()
        destination_wallet_id = serializers.UUIDField()
        amount = serializers.IntegerField(min_value=1, max_value=10**15)
        reference = serializers.CharField(required=False, max_length=128)
        description = serializers.CharField(required=False, allow_blank=True, max_length=255)

    class Floor(APIView):
        authentication_classes: list = []
        permission_classes: list = []
        throttle_classes: list = []
        parser_classes = [JSONParser]
        renderer_classes = [JSONRenderer]

        def post(self, request):
            body = TransferBody(data=request.data)
            body.is_valid(raise_exception=True)
            return Response(body.data, status=status.HTTP_201_CREATED)

    view = Floor.as_view()

    def call(environ: dict) -> int:
        response = view(WSGIRequest(environ))
        response.render()
        return response.status_code

    return call


def _tracing_state() -> str:
    from foundation.tracing import recording

    if os.environ.get("OTEL_SDK_DISABLED") == "true":
        return "off (OTEL_SDK_DISABLED=true)"
    return "recording spans (exporter configured)" if recording() else "no exporter configured (no spans)"


BATCHES = 10


def measure(label: str, request: Callable[[], None], count: int) -> dict[str, float]:
    from django.db import connection

    for _ in range(min(200, count)):  # warm caches, prepared statements, connections
        request()
    statements = []

    def count_statement(execute, sql, params, many, context):
        statements.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count_statement):  # one more, untimed: its SQL statements
        request()
    # In BATCHES: the cheapest batch is the figure least disturbed by other processes on a
    # shared machine; the mean over all of them is kept too.
    size = max(1, count // BATCHES)
    batches, wall = [], time.perf_counter()
    for _ in range(max(1, count // size)):
        cpu = time.process_time()
        for _ in range(size):
            request()
        batches.append(time.process_time() - cpu)
    done, wall = size * len(batches), time.perf_counter() - wall
    return {
        "endpoint": label,
        "cpu_ms": 1000 * sum(batches) / done,
        "cpu_ms_best_batch": 1000 * min(batches) / size,
        "wall_ms": 1000 * wall / done,
        "sql_statements": len(statements),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per endpoint")
    parser.add_argument("--database", default="wallet_inprocess")
    parser.add_argument("--profile", action="store_true", help="also print cProfile time by package")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument(
        "--cumulative", type=int, default=0, help="with --profile: the N costliest call trees"
    )
    parser.add_argument("--callers", help="with --cumulative: print who calls functions matching this")
    parser.add_argument(
        "--profile-endpoint",
        choices=["transfer", "deposit", "wallet", "history", "hold", "capture", "refund"],
        default="transfer",
        help="with --profile: which endpoint to profile",
    )
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
            from foundation.tracing import configure_tracing

            configure_tracing()  # as wsgi.py does (OTEL_SDK_DISABLED=true turns it off)
            app = App()
            accounts, every_wallet = set_up(app)
            rng = random.Random(7)  # a reproducible load plan, not a secret
            floor = floor_view()
            floor_body = json.dumps(
                {"source_wallet_id": every_wallet[0], "destination_wallet_id": every_wallet[1], "amount": 1}
            ).encode()

            def floor_request() -> None:
                environ = {**app.environ("POST", "/floor", floor_body), "wsgi.input": io.BytesIO(floor_body)}
                assert floor(environ) == 201

            def transfer() -> None:
                token, mine = rng.choice(accounts)
                source = rng.choice(mine)
                destination = rng.choice([w for w in every_wallet if w != source])
                body = {"source_wallet_id": source, "destination_wallet_id": destination, "amount": 1}
                status, content = app.call("POST", "/api/v1/transfers", body, token, uuid.uuid4().hex)
                assert status == 201, content

            def deposit() -> None:
                token, mine = rng.choice(accounts)
                path = f"/api/v1/wallets/{rng.choice(mine)}/deposits"
                status, content = app.call("POST", path, {"amount": 1}, token, uuid.uuid4().hex)
                assert status == 201, content

            def get_wallet() -> None:
                token, mine = rng.choice(accounts)
                status, content = app.call("GET", f"/api/v1/wallets/{rng.choice(mine)}", None, token)
                assert status == 200, content

            def history_page() -> None:
                token, mine = rng.choice(accounts)
                path = f"/api/v1/wallets/{rng.choice(mine)}/transactions"
                status, content = app.call("GET", path, None, token, query="limit=20")
                assert status == 200, content

            owner_of = {wallet: token for token, mine in accounts for wallet in mine}
            holds: list[tuple[str, str, str]] = []  # (owner's token, hold id, wallet id), pending
            captures: list[tuple[str, str]] = []  # (payee's token, capture transfer id)

            def hold_create() -> None:
                token, mine = rng.choice(accounts)
                wallet = rng.choice(mine)
                body = {"amount": 3, "expires_in_seconds": 3600}
                path = f"/api/v1/wallets/{wallet}/holds"
                status, content = app.call("POST", path, body, token, uuid.uuid4().hex)
                assert status == 201, content
                holds.append((token, json.loads(content)["id"], wallet))

            def capture() -> None:
                # Part of a hold (2 of 3) to another wallet: a transfer, and the rest released.
                token, hold_id, wallet = holds.pop()
                destination = rng.choice([w for w in every_wallet if w != wallet])
                body = {"amount": 2, "destination_wallet_id": destination}
                path = f"/api/v1/holds/{hold_id}/capture"
                status, content = app.call("POST", path, body, token, uuid.uuid4().hex)
                assert status == 200, content
                captures.append((owner_of[destination], json.loads(content)["capture_transfer_id"]))

            def refund() -> None:
                # Part of a captured transfer (1 of 2) back to its sender, by its recipient.
                token, transfer_id = captures.pop()
                path = f"/api/v1/transfers/{transfer_id}/refunds"
                status, content = app.call("POST", path, {"amount": 1}, token, uuid.uuid4().hex)
                assert status == 201, content

            rows = [measure("floor: DRF view, Serializer, 201, no I/O", floor_request, args.requests)]
            # Each capture takes a hold the hold row made, each refund a capture's transfer.
            for label, request in (
                ("POST /api/v1/transfers", transfer),
                ("POST /api/v1/wallets/{id}/deposits", deposit),
                ("GET /api/v1/wallets/{id}", get_wallet),
                ("GET /api/v1/wallets/{id}/transactions?limit=20", history_page),
                ("POST /api/v1/wallets/{id}/holds", hold_create),
                ("POST /api/v1/holds/{id}/capture (part, to a wallet)", capture),
                ("POST /api/v1/transfers/{id}/refunds (part)", refund),
            ):
                rows.append(measure(label, request, args.requests))
            floor_cpu, floor_best = rows[0]["cpu_ms"], rows[0]["cpu_ms_best_batch"]
            for row in rows:
                row["ratio_to_floor"] = row["cpu_ms"] / floor_cpu
                row["best_ratio_to_floor"] = row["cpu_ms_best_batch"] / floor_best
            tracing = _tracing_state()
            print(f"\n{args.requests} requests each, production settings, tracing {tracing}:")
            print(
                f"{'endpoint':56} {'CPU ms':>8} {'wall ms':>8} {'x floor':>8}"
                f" {'best':>7} {'x floor':>8} {'SQL':>4}"
            )
            for row in rows:
                cpu, wall, times = row["cpu_ms"], row["wall_ms"], row["ratio_to_floor"]
                best, best_times = row["cpu_ms_best_batch"], row["best_ratio_to_floor"]
                print(
                    f"{row['endpoint']:56} {cpu:8.3f} {wall:8.3f} {times:8.2f}"
                    f" {best:7.3f} {best_times:8.2f} {row['sql_statements']:>4}"
                )
            if args.json:
                args.json.write_text(json.dumps({"tracing": tracing, "rows": rows}, indent=2))
            if args.profile:
                profiled = {
                    "transfer": transfer,
                    "deposit": deposit,
                    "wallet": get_wallet,
                    "history": history_page,
                    "hold": hold_create,
                    "capture": capture,
                    "refund": refund,
                }
                request = profiled[args.profile_endpoint]
                # What a capture or a refund consumes, made before the profiler starts.
                for _ in range(args.requests if args.profile_endpoint in ("capture", "refund") else 0):
                    hold_create()
                for _ in range(args.requests if args.profile_endpoint == "refund" else 0):
                    capture()
                profile = cProfile.Profile(time.process_time)  # CPU, not time spent waiting
                profile.enable()
                for _ in range(args.requests):
                    request()
                profile.disable()
                print(
                    f"\nshare of {args.profile_endpoint} CPU (own time, cProfile on process_time) by package:"
                )
                for share, key in by_package(profile):
                    print(f"{share:5.1f} %  {key}")
                if args.cumulative:
                    print("\nfunctions by cumulative CPU time:")
                    pstats.Stats(profile).sort_stats("cumulative").print_stats(args.cumulative)
                    print("\nfunctions by own CPU time:")
                    pstats.Stats(profile).sort_stats("tottime").print_stats(args.cumulative)
                    if args.callers:
                        pstats.Stats(profile).sort_stats("tottime").print_callers(args.callers)
    finally:
        if "django.db" in sys.modules:
            sys.modules["django.db"].connections.close_all()
        with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
    return 0


if __name__ == "__main__":
    sys.exit(main())
