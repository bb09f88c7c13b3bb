"""Webhook delivery cost: the dispatcher's fan-out and one sender's throughput.

    python bench/webhooks.py                    # 5,000 events, 50 users with one endpoint each
    python bench/webhooks.py --events 20000 --json out.json

Creates a throwaway database (--database, dropped at the end) and migrates it, starts a
receiver process on 127.0.0.1 (answers 200 at once), writes the events with the services
(deposits spread over 100 wallets), then measures, in this process, as `manage.py
deliver_webhooks` runs them:

- fan-out: the dispatcher turning every event into its delivery (`fan_out_settled`);
- sending: dispatcher passes and lane sends until every delivery succeeded (sign, check the
  address, POST, record the attempt): deliveries per second of one sender.

The money path is not in it: it writes the same event rows with or without webhooks
(bench/inprocess.py measures that). Loopback only, bounded by --events (at most 100,000).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.suite import PG  # noqa: E402

RECEIVER = textwrap.dedent(
    """
    import sys
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()
    """
)


def psql(command: str) -> None:
    subprocess.run(["psql", f"{PG}/postgres", "-q", "-c", command], check=True, capture_output=True)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--database", default="wallet_bench_webhooks")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if not 1 <= args.events <= 100_000:
        parser.error("--events must be between 1 and 100000")

    psql(f'DROP DATABASE IF EXISTS "{args.database}"')
    psql(f'CREATE DATABASE "{args.database}"')
    os.environ.update(
        DJANGO_SETTINGS_MODULE="wallet_project.settings.local",
        DATABASE_URL=f"{PG}/{args.database}",
        WEBHOOK_ALLOW_PRIVATE_NETWORKS="true",
        WEBHOOK_REQUIRE_HTTPS="false",
        LOG_LEVEL="WARNING",
    )
    receiver = subprocess.Popen([sys.executable, "-c", RECEIVER], stdout=subprocess.PIPE, text=True)
    try:
        port = int(receiver.stdout.readline())
        subprocess.run([sys.executable, str(REPO / "manage.py"), "migrate", "-v", "0"], check=True)
        figures = run(args, port)
    finally:
        receiver.terminate()
        receiver.wait(10)
        from django.db import connections

        connections.close_all()
        psql(f'DROP DATABASE IF EXISTS "{args.database}"')
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


def run(args: argparse.Namespace, port: int) -> dict:
    import django

    django.setup()
    from transfers import services as ledger
    from users.models import User
    from wallets.services import wallet_create
    from webhooks.delivery import lane_send
    from webhooks.dispatch import dispatch_pass, fan_out_settled
    from webhooks.models import WebhookDelivery
    from webhooks.services import endpoint_create

    users = [
        User.objects.create(username=f"bench{i}", email=f"bench{i}@example.com") for i in range(args.users)
    ]
    for user in users:
        endpoint_create(owner_id=user.id, url=f"http://127.0.0.1:{port}/hooks", event_types=["*"])
    wallets = [
        (wallet_create(owner_id=users[i % len(users)].id, currency="USD"), users[i % len(users)])
        for i in range(100)
    ]
    started = time.perf_counter()
    for n in range(args.events):
        wallet, owner = wallets[n % len(wallets)]
        ledger.deposit_create(wallet_id=wallet.id, owner_id=owner.id, amount=1 + n % 997)
    writing = time.perf_counter() - started

    started = time.perf_counter()
    fan_out_settled(timeout=600)
    fan_out_seconds = time.perf_counter() - started
    created = WebhookDelivery.objects.count()

    started, cpu = time.perf_counter(), time.process_time()
    deadline = started + 600
    while WebhookDelivery.objects.filter(status="pending").exists() and time.perf_counter() < deadline:
        leased, _ = dispatch_pass()
        for delivery_id in leased:
            lane_send(delivery_id, budget_seconds=60)
    sending = time.perf_counter() - started
    sending_cpu = time.process_time() - cpu
    succeeded = WebhookDelivery.objects.filter(status="succeeded").count()
    return {
        "events": args.events,
        "endpoints": args.users,
        "deliveries": created,
        "succeeded": succeeded,
        "events_written_per_second": round(args.events / writing, 1),
        "fan_out_seconds": round(fan_out_seconds, 3),
        "fan_out_per_second": round(created / fan_out_seconds, 1),
        "sending_seconds": round(sending, 2),
        "deliveries_per_second_one_sender": round(succeeded / sending, 1),
        "sender_cpu_ms_per_delivery": round(1000 * sending_cpu / max(1, succeeded), 3),
    }


if __name__ == "__main__":
    sys.exit(main())
