"""The Ledger overview on the 1,000,000-entry benchmark ledger: each query's time and plan,
and the whole admin page.

    python bench/dashboard.py                     # about 7 minutes here, most of it the load
    python bench/dashboard.py --entries 100000    # under a minute

It creates a fresh database (--database, dropped at the end unless --keep-db) and migrates
it, opens one user's USD wallet and loads it with --entries deposits of 1 cent, one second
apart and ending now, in one transaction (bench/statement_memory.py's load: the triggers
stay on and check every entry at COMMIT), so 86,400 of them fall in the last 24 hours and
all of them in the last 30 days; adds --refusals `money.failed` audit rows over the same
period. Then, in this process (Django's test client, no HTTP): the hourly totals added up
(the whole history but the last hour, then that hour), every dashboard query run --repeat
times (median and max) with its plan under EXPLAIN (ANALYZE, BUFFERS), the same queries
reading every row instead of the totals (and the check that both give the same figures),
and the whole page rendered for a staff user. Figures: stdout and bench/results/dashboard.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.statement_memory import LOAD_SQL  # noqa: E402

RESULTS = REPO / "bench" / "results" / "dashboard.json"
ADMIN_URL = "postgres://postgres@127.0.0.1:5432/postgres"
REFUSAL_SQL = """
INSERT INTO audit_auditevent (created_at, actor_id, actor_label, action, target_type, target_id, amount,
                              currency, outcome, user_agent, request_id, details)
SELECT %(start)s::timestamptz + g * (%(span)s::interval / %(n)s), %(user)s, '', 'money.failed', 'wallet',
       %(w)s, 100, 'USD', (ARRAY['insufficient_funds', 'limit_exceeded', 'wallet_frozen'])[1 + g %% 3],
       '', '', '{}'::jsonb
  FROM generate_series(1, %(n)s) g
"""


def log(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


def timed(fn, repeat: int) -> dict:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return {"median_ms": round(statistics.median(times), 2), "max_ms": round(max(times), 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--refusals", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--database", default="wallet_bench_dashboard")
    parser.add_argument("--keep-db", action="store_true")
    args = parser.parse_args(argv)
    if not 1 <= args.entries <= 5_000_000 or not 0 <= args.refusals <= 5_000_000:
        parser.error("--entries 1..5,000,000, --refusals 0..5,000,000")
    url = f"postgres://postgres@127.0.0.1:5432/{args.database}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{args.database}"')
        conn.execute(f'CREATE DATABASE "{args.database}"')
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "wallet_project.settings.local"}
    env["DJANGO_DEBUG"] = "false"
    env.pop("REDIS_URL", None)
    try:
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=REPO, env=env, check=True
        )
        os.environ.update({k: env[k] for k in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE", "DJANGO_DEBUG")})
        os.environ.pop("REDIS_URL", None)
        return run(args, url)
    finally:
        if not args.keep_db:
            from django.db import connections

            connections.close_all()
            with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{args.database}"')


def run(args: argparse.Namespace, url: str) -> int:
    import django

    django.setup()
    from django.db import connection
    from django.test import Client

    from dashboard import rollup, sections, selectors
    from transfers import services as ledger
    from users.models import User
    from wallets.models import Wallet
    from wallets.services import wallet_create

    owner = User.objects.create_user("bench-owner", "owner@example.com", "Bench-pass-123")
    staff = User.objects.create_user("bench-staff", "staff@example.com", "Bench-pass-123", is_staff=True)
    wallet = wallet_create(owner_id=owner.id, currency="USD")
    ledger.deposit_create(wallet_id=wallet.id, owner_id=owner.id, amount=1)
    system = Wallet.objects.get(kind=Wallet.Kind.SYSTEM, currency="USD")
    start = datetime.now(UTC) - timedelta(seconds=args.entries + 60)
    log(f"loading {args.entries:,} deposits into one wallet ...")
    t0 = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        with conn.transaction():
            params = {"n": args.entries, "sys": system.id, "w": wallet.id, "user": owner.id, "base": 1}
            params["start"] = start
            for statement in LOAD_SQL:
                conn.execute(statement, params)
        if args.refusals:
            conn.execute(
                REFUSAL_SQL,
                {
                    "n": args.refusals,
                    "start": start,
                    "span": timedelta(seconds=args.entries),
                    "user": owner.id,
                    "w": str(wallet.id),
                },
            )
        for table in ("transfers_ledgerentry", "transfers_transfer", "audit_auditevent", "wallets_wallet"):
            conn.execute(f"VACUUM ANALYZE {table}")
    load_s = round(time.perf_counter() - t0, 1)
    log(f"loaded in {load_s} s (with COMMIT and VACUUM ANALYZE)")

    results: dict = {"entries": args.entries, "refusals": args.refusals, "load_s": load_s}
    # The totals: the whole history up to an hour and a bit ago (what a first page view does
    # on a ledger that has never been added up), then one more hour (a page view's work
    # once an hour has passed).
    now = datetime.now(UTC)
    t0 = time.perf_counter()
    rollup.rollup(now=now - timedelta(hours=1), budget=None)  # as manage.py dashboard_rollup
    results["rollup_history_s"] = round(time.perf_counter() - t0, 2)
    t0 = time.perf_counter()
    mark = rollup.rollup(now=now)
    results["rollup_one_hour_ms"] = round((time.perf_counter() - t0) * 1000, 1)
    history, hour = results["rollup_history_s"], results["rollup_one_hour_ms"]
    log(f"rolled up: the history in {history} s, one hour in {hour} ms")

    window = sections.Window(now=now)
    until = now + sections.EXPIRING_WITHIN
    span = {"now": now, "day": window.day, "month": window.month}
    actions = {"actions": list(selectors.REFUSAL_ACTIONS)}
    queries = {
        "currency_positions": (
            lambda rolled: selectors.currency_positions(rolled=rolled),
            "currency_positions",
            lambda rolled: {"rolled": rolled},
        ),
        "last_reconciliation_run": (lambda rolled: selectors.last_reconciliation_run(), None, None),
        "money_moved": (
            lambda rolled: selectors.money_moved(**span, rolled=rolled),
            "money_moved",
            lambda rolled: {**span, "rolled": rolled, "live_from": max(rolled, window.month)},
        ),
        "refusals": (
            lambda rolled: selectors.refusals(**span, rolled=rolled),
            "refusals",
            lambda rolled: {**span, **actions, "rolled": rolled, "live_from": max(rolled, window.month)},
        ),
        "holds_expiring": (
            lambda rolled: selectors.holds_expiring(until=until, limit=10),
            "holds_expiring",
            lambda rolled: {"until": until, "limit": 10},
        ),
        "proposals_waiting": (
            lambda rolled: selectors.proposals_waiting(limit=10),
            "proposals_waiting",
            lambda rolled: {"limit": 10},
        ),
    }
    for label, rolled in (("queries", mark), ("queries_without_totals", rollup.EPOCH)):
        results[label] = {}
        for name, (fn, sql_name, params) in queries.items():
            figures = timed(lambda fn=fn, rolled=rolled: fn(rolled), args.repeat if label == "queries" else 3)
            if sql_name:
                with connection.cursor() as cursor:
                    cursor.execute(
                        "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + selectors.sql(sql_name), params(rolled)
                    )
                    plan = cursor.fetchone()[0][0]
                figures["explain_ms"] = round(plan["Execution Time"], 2)
                figures["plan"] = plan_nodes(plan["Plan"])
            results[label][name] = figures
            log(f"{label} {name}: {figures['median_ms']} ms median, {figures['max_ms']} ms max")
    # Reading every row instead of the totals gives the same figures (a position is its
    # rolled-up total plus the rows since, so it is checked against the plain sum instead).
    with connection.cursor() as cursor:
        cursor.execute("SELECT sum(amount) FROM transfers_ledgerentry WHERE wallet_id = %s", [system.id])
        system_sum = int(cursor.fetchone()[0])
    (usd,) = selectors.currency_positions(rolled=mark)
    same = {
        "money_moved": selectors.money_moved(**span, rolled=mark)
        == selectors.money_moved(**span, rolled=rollup.EPOCH),
        "refusals": selectors.refusals(**span, rolled=mark)
        == selectors.refusals(**span, rolled=rollup.EPOCH),
        "system_position": usd.system_position == system_sum,
    }
    results["totals_agree_with_the_rows"] = same
    log(f"totals agree with the rows: {same}")
    positions = selectors.currency_positions(rolled=mark)
    results["positions"] = [vars(p) | {"imbalance": p.imbalance} for p in positions]
    client = Client()
    client.force_login(staff)
    results["page"] = timed(lambda: client.get("/admin/ledger-overview/"), args.repeat)
    assert client.get("/admin/ledger-overview/").status_code == 200
    log(f"whole page: {results['page']['median_ms']} ms median, {results['page']['max_ms']} ms max")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, default=str))
    log(f"figures in {RESULTS.relative_to(REPO)}")
    return 0 if all(p.imbalance == 0 for p in positions) and all(same.values()) else 1


def plan_nodes(node: dict, depth: int = 0) -> list[str]:
    """The plan's node types and indexes, one line each, indented by depth."""
    line = "  " * depth + node["Node Type"]
    if "Index Name" in node:
        line += f" using {node['Index Name']}"
    if "Relation Name" in node:
        line += f" on {node['Relation Name']}"
    line += f" (rows {node.get('Actual Rows')}, {node.get('Actual Total Time')} ms)"
    lines = [line]
    for child in node.get("Plans", []):
        lines += plan_nodes(child, depth + 1)
    return lines


if __name__ == "__main__":
    raise SystemExit(main())
