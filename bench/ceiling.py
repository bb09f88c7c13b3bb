"""The SQL ceiling: the transfer the API performs, sent straight to PostgreSQL.

    python bench/ceiling.py --database-url postgres://postgres@127.0.0.1:5432/wallet_bench --mode hot

Each client thread holds one psycopg connection and runs, per transfer, the same
statements the service runs for POST /api/v1/transfers (see the query budget in
transfers/tests/test_transfer_api.py): in one transaction, the `SELECT ... FOR NO KEY
UPDATE ... ORDER BY id` of both wallets, then one statement that writes the transfer,
its legs, the audit event, the idempotency record and both balances; COMMIT runs the
same deferred constraint triggers. No HTTP, no Python framework: what is left is PostgreSQL's own cost for
the work, the number the API's throughput is compared against.

Set-up creates its own user and wallets through the project's services (so the rows
are exactly what the app writes), on the database named by --database-url. Bounded in
time (--duration) and count, loopback only.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
from psycopg.types.json import Jsonb

REPO = Path(__file__).resolve().parent.parent
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", ""}

LOCK = (
    "SELECT id, owner_id, kind, currency, balance, status FROM wallets_wallet"
    " WHERE ((id = %(src)s AND owner_id = %(user)s) OR id = %(dst)s) AND kind = 'user'"
    " ORDER BY id FOR NO KEY UPDATE"
)
WRITE = """
WITH t AS (
    INSERT INTO transfers_transfer (id, kind, source_wallet_id, destination_wallet_id, amount, currency,
                                    status, reference, reference_wallet_id, description, initiated_by_id,
                                    created_at)
    VALUES (%(t)s, 'transfer', %(src)s, %(dst)s, %(amount)s, %(currency)s, 'completed', NULL, %(src)s, '',
            %(user)s, %(now)s)
), e AS (
    INSERT INTO transfers_ledgerentry (transfer_id, wallet_id, type, amount, balance_after, created_at)
    VALUES (%(t)s, %(src)s, 'transfer_out', -%(amount)s, %(src_after)s, %(now)s),
           (%(t)s, %(dst)s, 'transfer_in', %(amount)s, %(dst_after)s, %(now)s)
), a AS (
    INSERT INTO audit_auditevent (created_at, actor_id, actor_label, action, target_type, target_id, amount,
                                  currency, outcome, client_ip, user_agent, request_id, details)
    VALUES (%(now)s, %(user)s, '', 'money.transfer', 'transfer', %(t)s::text, %(amount)s, %(currency)s, 'ok',
            '127.0.0.1', 'ceiling', %(request)s, %(details)s)
), i AS (
    INSERT INTO transfers_idempotencyrecord (user_id, key, method, path, request_hash, status_code,
                                             response_body, transfer_id, created_at)
    VALUES (%(user)s, %(request)s, 'POST', '/api/v1/transfers', %(hash)s, 201, %(body)s, %(t)s, %(now)s)
), w AS (
    UPDATE wallets_wallet
       SET balance = CASE id WHEN %(src)s THEN %(src_after)s WHEN %(dst)s THEN %(dst_after)s END,
           updated_at = %(now)s
     WHERE id IN (%(src)s, %(dst)s)
)
SELECT 1
"""


@dataclass
class Result:
    latencies: list[float] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)


def set_up(database_url: str, wallets: int, funding: int, hot_funding: int) -> tuple[int, list[str]]:
    """A user and `wallets` funded USD wallets, made by the project's own services."""
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "wallet_project.settings.local")
    os.environ.setdefault("OTEL_SDK_DISABLED", "true")
    sys.path.insert(0, str(REPO))
    import django

    django.setup()
    from transfers.services import deposit_create
    from users.models import User
    from wallets.services import wallet_create

    user = User.objects.create_user(
        username=f"ceiling-{uuid.uuid4().hex[:10]}", email=f"{uuid.uuid4().hex[:10]}@example.com"
    )
    ids = []
    for index in range(wallets):
        wallet = wallet_create(owner_id=user.id, currency="USD", name=f"ceiling {index}")
        deposit_create(wallet_id=wallet.id, owner_id=user.id, amount=hot_funding if index == 0 else funding)
        ids.append(str(wallet.id))
    return user.id, ids


def client(
    url: str, user_id: int, wallets: list[str], mode: str, deadline: float, amount_max: int, seed: int
) -> Result:
    rng = random.Random(seed)  # a reproducible load plan, not a secret
    result = Result()
    with psycopg.connect(url) as conn:
        while time.perf_counter() < deadline:
            if mode == "hot":
                src, dst = wallets[0], rng.choice(wallets[1:])
            else:
                src, dst = rng.sample(wallets, 2)
            amount = rng.randint(1, amount_max)
            key = uuid.uuid4().hex
            started = time.perf_counter()
            try:
                with conn.transaction(), conn.cursor() as cur:
                    cur.execute(LOCK, {"src": src, "dst": dst, "user": user_id})
                    rows = {str(r[0]): r for r in cur.fetchall()}
                    if rows[src][4] < amount:
                        result.statuses["422"] += 1
                        continue
                    transfer_id = uuid.uuid4()
                    cur.execute(
                        WRITE,
                        {
                            "t": transfer_id,
                            "src": src,
                            "dst": dst,
                            "amount": amount,
                            "currency": "USD",
                            "user": user_id,
                            "now": datetime.now(UTC),
                            "src_after": rows[src][4] - amount,
                            "dst_after": rows[dst][4] + amount,
                            "request": key,
                            "details": Jsonb({"source_wallet_id": src, "destination_wallet_id": dst}),
                            "hash": "0" * 64,
                            "body": b"{}",
                        },
                    )
                result.statuses["201"] += 1
                result.latencies.append(time.perf_counter() - started)
            except psycopg.Error as exc:
                conn.rollback()
                result.statuses[type(exc).__name__] += 1
    return result


def percentile(ordered: list[float], p: float) -> float:
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def run(
    database_url: str, mode: str, clients: int, duration: float, wallets: int, amount_max: int = 1_000
) -> dict:
    host = urlsplit(database_url).hostname or ""
    if host not in LOCAL_HOSTS:
        raise SystemExit(f"refusing to load a non-local database host {host!r}")
    duration = min(duration, 600.0)
    user_id, ids = set_up(database_url, wallets, funding=10**9, hot_funding=10**13)
    deadline = time.perf_counter() + duration
    results: list[Result] = [Result() for _ in range(clients)]

    def work(index: int) -> None:
        results[index] = client(database_url, user_id, ids, mode, deadline, amount_max, seed=index + 1)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=duration + 60)
    elapsed = time.perf_counter() - started
    latencies = sorted(x for r in results for x in r.latencies)
    statuses = sum((r.statuses for r in results), Counter())
    return {
        "scenario": f"sql-ceiling-{mode}",
        "clients": clients,
        "wallets": wallets,
        "duration_s": round(elapsed, 2),
        "ops": statuses.get("201", 0),
        "ops_per_s": round(statuses.get("201", 0) / elapsed, 1),
        "p50_ms": round(percentile(latencies, 50) * 1000, 2),
        "p95_ms": round(percentile(latencies, 95) * 1000, 2),
        "p99_ms": round(percentile(latencies, 99) * 1000, 2),
        "statuses": dict(statuses),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL", ""))
    parser.add_argument("--mode", choices=("uniform", "hot"), default="uniform")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--wallets", type=int, default=64)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args(argv)
    if not args.database_url.startswith("postgres"):
        parser.error("--database-url must be a PostgreSQL URL")
    figures = run(args.database_url, args.mode, args.clients, args.duration, args.wallets)
    print(json.dumps(figures))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
