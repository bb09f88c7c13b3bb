"""Scenarios of the benchmark suite that bank.py does not cover.

- deposit storm: concurrent deposits into many wallets (all legs leave the one system wallet);
- reads: wallet detail and history pages while bank.py sends transfers;
- large ledger: one wallet bulk-loaded with N entries in one transaction the deferred
  triggers validate, then history pages at the start, middle and end, and a reconciliation
  of that wallet in a subprocess (wall time, peak RSS).

Standard library HTTP only (bench/bank.py's keep-alive Client); psycopg for the bulk load.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import random
import secrets
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import psycopg

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.bank import Client, percentile  # noqa: E402

API = "/api/v1"


@dataclass
class Owner:
    username: str
    password: str
    access: str = ""


@dataclass
class Account:
    id: str
    owner: Owner
    deposited: int = 0


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    ok: int = 0
    amounts: Counter = field(default_factory=Counter)


def _check(what: str, status: int, data: bytes, expected: int) -> bytes:
    if status != expected:
        raise RuntimeError(f"{what}: {status} {data[:300]!r}")
    return data


def make_accounts(host: str, port: int, users: int, wallets: int, funding: int) -> list[Account]:
    """Register `users` owners and open `wallets` USD wallets among them, each funded once."""
    run = secrets.token_hex(4)
    local = threading.local()

    def client() -> Client:
        if not hasattr(local, "c"):
            local.c = Client(host, port, 30.0)
        return local.c

    owners = [Owner(f"suite_{run}_{n}", secrets.token_urlsafe(18) + "aA1!") for n in range(users)]

    def register(owner: Owner) -> None:
        body = {
            "username": owner.username,
            "password": owner.password,
            "email": f"{owner.username}@x.example",
        }
        _check("register", *client().send("POST", f"{API}/auth/register", body), 201)
        data = client().send(
            "POST", f"{API}/auth/token", {"username": owner.username, "password": owner.password}
        )
        owner.access = json.loads(_check("token", *data, 200))["access"]

    def open_wallet(n: int) -> Account:
        owner = owners[n % users]
        data = client().send(
            "POST", f"{API}/wallets", {"currency": "USD", "name": f"s{n}"}, token=owner.access
        )
        account = Account(json.loads(_check("wallet", *data, 201))["id"], owner)
        if funding:
            data = client().send(
                "POST",
                f"{API}/wallets/{account.id}/deposits",
                {"amount": funding},
                token=owner.access,
                key=f"suite-{run}-fund-{n}",
            )
            _check("funding deposit", *data, 201)
            account.deposited = funding
        return account

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(register, owners))
        return list(pool.map(open_wallet, range(wallets)))


def balances(host: str, port: int, accounts: list[Account]) -> dict[str, int]:
    client = Client(host, port, 30.0)
    out = {}
    for a in accounts:
        data = client.send("GET", f"{API}/wallets/{a.id}", token=a.owner.access)
        out[a.id] = json.loads(_check("read balance", *data, 200))["balance"]
    client.close()
    return out


def summarise(name: str, tallies: list[Tally], elapsed: float, clients: int) -> dict:
    latencies = sorted(x for t in tallies for x in t.latencies)
    statuses: Counter = Counter()
    for t in tallies:
        statuses.update(t.statuses)
    ok = sum(t.ok for t in tallies)
    return {
        "scenario": name,
        "clients": clients,
        "elapsed_s": round(elapsed, 2),
        "ops": ok,
        "ops_per_s": round(ok / elapsed, 1) if elapsed else 0.0,
        "p50_ms": percentile(latencies, 50),
        "p95_ms": percentile(latencies, 95),
        "p99_ms": percentile(latencies, 99),
        "statuses": dict(sorted(statuses.items())),
        "server_errors": sum(n for k, n in statuses.items() if k[:1] == "5" or k.startswith("transport")),
    }


def deposit_storm(host: str, port: int, clients: int, wallets: int, duration: float) -> dict:
    """Every client deposits into random wallets; each request has its own Idempotency-Key."""
    accounts = make_accounts(host, port, users=min(8, wallets), wallets=wallets, funding=0)
    run = secrets.token_hex(4)
    stop = threading.Event()

    def work(index: int) -> Tally:
        rng = random.Random(index)
        client, tally = Client(host, port, 30.0), Tally()
        for seq in itertools.count():
            if stop.is_set():
                break
            account = accounts[rng.randrange(len(accounts))]
            amount = rng.randint(1, 1000)
            key = f"storm-{run}-{index}-{seq}"
            for _attempt in range(5):  # same key on a transport error or a 5xx: the outcome becomes known
                started = time.perf_counter()
                try:
                    status, _data = client.send(
                        "POST",
                        f"{API}/wallets/{account.id}/deposits",
                        {"amount": amount},
                        token=account.owner.access,
                        key=key,
                    )
                except OSError as exc:
                    tally.latencies.append(time.perf_counter() - started)
                    tally.statuses[f"transport {type(exc).__name__}"] += 1
                    continue
                tally.latencies.append(time.perf_counter() - started)
                tally.statuses[str(status)] += 1
                if status == 201:
                    tally.ok += 1
                    tally.amounts[account.id] += amount
                if status < 500 and status != 409:
                    break
        client.close()
        return tally

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        futures = [pool.submit(work, n) for n in range(clients)]
        stop.wait(duration)
        stop.set()
        tallies = [f.result() for f in futures]
    figures = summarise("deposit-storm", tallies, time.perf_counter() - started, clients)
    expected: Counter = Counter()
    for t in tallies:
        expected.update(t.amounts)
    seen = balances(host, port, accounts)
    mismatched = [a.id for a in accounts if seen[a.id] != expected[a.id]]
    figures["wallets"] = wallets
    figures["money"] = {
        "deposited": sum(expected.values()),
        "total": sum(seen.values()),
        "negative_wallets": [k for k, v in seen.items() if v < 0],
        "mismatched_wallets": mismatched,
        "ok": sum(seen.values()) == sum(expected.values()) and not mismatched and min(seen.values()) >= 0,
    }
    return figures


def reads(host: str, port: int, clients: int, wallets: int, duration: float, transfer_cmd: list[str]) -> dict:
    """Wallet detail and history pages, while bank.py (transfer_cmd) moves money in the background."""
    accounts = make_accounts(host, port, users=min(8, wallets), wallets=wallets, funding=100_000)
    # Some history to page through.
    seed = Client(host, port, 30.0)
    for n, a in enumerate(accounts):
        for k in range(20):
            seed.send(
                "POST",
                f"{API}/wallets/{a.id}/deposits",
                {"amount": 1},
                token=a.owner.access,
                key=f"h-{a.id}-{n}-{k}",
            )
            a.deposited += 1
    seed.close()
    background = subprocess.Popen(transfer_cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(min(8.0, duration / 2))  # bank.py's set-up, so the reads overlap the transfers
    stop = threading.Event()

    def work(index: int) -> Tally:
        rng = random.Random(index)
        client, tally = Client(host, port, 30.0), Tally()
        while not stop.is_set():
            a = accounts[rng.randrange(len(accounts))]
            path = (
                f"{API}/wallets/{a.id}"
                if rng.random() < 0.5
                else f"{API}/wallets/{a.id}/transactions?limit=50"
            )
            started = time.perf_counter()
            try:
                status, _ = client.send("GET", path, token=a.owner.access)
            except OSError as exc:
                tally.statuses[f"transport {type(exc).__name__}"] += 1
                continue
            tally.latencies.append(time.perf_counter() - started)
            tally.statuses[str(status)] += 1
            tally.ok += status == 200
        client.close()
        return tally

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        futures = [pool.submit(work, n) for n in range(clients)]
        stop.wait(duration)
        stop.set()
        tallies = [f.result() for f in futures]
    elapsed = time.perf_counter() - started
    out, err = background.communicate(timeout=600)
    figures = summarise("reads", tallies, elapsed, clients)
    try:
        figures["concurrent_transfers"] = json.loads(
            Path(transfer_cmd[transfer_cmd.index("--json") + 1]).read_text()
        )
    except (OSError, ValueError):
        figures["concurrent_transfers"] = {"error": (out + err)[-500:]}
    seen = balances(host, port, accounts)
    figures["money"] = {
        "deposited": sum(a.deposited for a in accounts),
        "total": sum(seen.values()),
        "negative_wallets": [k for k, v in seen.items() if v < 0],
        "ok": sum(seen.values()) == sum(a.deposited for a in accounts)
        and min(seen.values()) >= 0
        and bool(figures["concurrent_transfers"].get("money", {}).get("ok")),
    }
    return figures


BULK_SQL = [
    "SET LOCAL work_mem = '256MB'",
    "CREATE TEMP TABLE bulk ON COMMIT DROP AS"
    " SELECT g, gen_random_uuid() AS t FROM generate_series(1, %(n)s) g",
    """INSERT INTO transfers_transfer (id, kind, source_wallet_id, destination_wallet_id, amount, currency,
                                      status, reference, reference_wallet_id, description, initiated_by_id,
                                      created_at)
       SELECT t, 'deposit', %(sys)s, %(w)s, 1, 'USD', 'completed', NULL, %(w)s, 'bulk', %(user)s, now()
         FROM bulk ORDER BY g""",
    # Legs interleaved (system leg, then user leg, per transfer) as the service writes them.
    """INSERT INTO transfers_ledgerentry (transfer_id, wallet_id, type, amount, balance_after, created_at)
       SELECT b.t, CASE l.leg WHEN 0 THEN %(sys)s ELSE %(w)s END, 'deposit',
              CASE l.leg WHEN 0 THEN -1 ELSE 1 END,
              CASE l.leg WHEN 0 THEN NULL ELSE %(base)s + b.g END, now()
         FROM bulk b CROSS JOIN (VALUES (0), (1)) AS l(leg) ORDER BY b.g, l.leg""",
    "UPDATE wallets_wallet SET balance = %(base)s + %(n)s, updated_at = now() WHERE id = %(w)s",
]


def _nodes(plan: dict) -> str:
    """A one-line plan: node types and the indexes they use."""
    here = plan["Node Type"] + (f" {plan['Index Name']}" if "Index Name" in plan else "")
    children = [_nodes(p) for p in plan.get("Plans", [])]
    return here + (f" ({', '.join(children)})" if children else "")


def _cursor(position: int) -> str:
    """DRF's cursor encoding (rest_framework.pagination.CursorPagination.encode_cursor)."""
    return base64.b64encode(urlencode({"p": str(position)}).encode()).decode()


def large_ledger(host: str, port: int, database_url: str, size: int, env: dict, pages: int = 20) -> dict:
    """Bulk-load one wallet with `size` deposit entries, then page its history and reconcile it."""
    (account,) = make_accounts(host, port, users=1, wallets=1, funding=1)
    with psycopg.connect(database_url, autocommit=True) as conn:
        sys_id, user_id = conn.execute(
            "SELECT s.id, w.owner_id FROM wallets_wallet s, wallets_wallet w "
            "WHERE s.kind = 'system' AND s.currency = 'USD' AND w.id = %s",
            [account.id],
        ).fetchone()
        started = time.perf_counter()
        with conn.transaction():
            (base,) = conn.execute(
                "SELECT balance FROM wallets_wallet WHERE id = %s FOR UPDATE", [account.id]
            ).fetchone()
            params = {"n": size, "sys": sys_id, "w": account.id, "user": user_id, "base": base}
            for statement in BULK_SQL:
                conn.execute(statement, params)
            insert_s = time.perf_counter() - started
        load_s = time.perf_counter() - started  # the COMMIT runs the 3 x size deferred trigger checks
        conn.execute("ANALYZE transfers_ledgerentry")
        conn.execute("ANALYZE transfers_transfer")
        # Cursor positions, read by the database (not a list of every id in this process).
        (count,) = conn.execute(
            "SELECT count(*) FROM transfers_ledgerentry WHERE wallet_id = %s", [account.id]
        ).fetchone()

        def nth_id(offset: int) -> int:
            return conn.execute(
                "SELECT id FROM transfers_ledgerentry WHERE wallet_id = %s ORDER BY id OFFSET %s LIMIT 1",
                [account.id, offset],
            ).fetchone()[0]

        positions = {"start": None, "middle": nth_id(count // 2), "end": nth_id(min(50, count - 1))}
        plans = {}
        for name, position in positions.items():
            plan = conn.execute(
                # The shape the API runs (transfers.selectors.wallet_history, HistoryPagination).
                "EXPLAIN (ANALYZE, FORMAT JSON) SELECT e.id, e.type, e.amount, e.balance_after, e.created_at,"
                " t.reference, t.description FROM transfers_ledgerentry e"
                " JOIN transfers_transfer t ON t.id = e.transfer_id"
                " WHERE e.wallet_id = ANY(ARRAY[%s]::uuid[]) AND e.id < %s"
                " ORDER BY e.wallet_id ASC, e.id DESC LIMIT 51",
                [account.id, position or 2**62],
            ).fetchone()[0][0]
            plans[name] = {"sql_ms": round(plan["Execution Time"], 2), "plan": _nodes(plan["Plan"])}
    client = Client(host, port, 30.0)
    history: dict[str, dict] = {}
    for name, position in positions.items():
        path = f"{API}/wallets/{account.id}/transactions?limit=50"
        if position is not None:
            path += f"&cursor={_cursor(position)}"
        latencies, statuses = [], Counter()
        for _ in range(pages):
            t0 = time.perf_counter()
            status, data = client.send("GET", path, token=account.owner.access)
            latencies.append(time.perf_counter() - t0)
            statuses[str(status)] += 1
        rows = json.loads(data).get("results", []) if status == 200 else []
        latencies.sort()
        history[name] = {
            "p50_ms": percentile(latencies, 50),
            "p95_ms": percentile(latencies, 95),
            "max_ms": percentile(latencies, 100),
            "rows": len(rows),
            "statuses": dict(statuses),
            **plans[name],
        }
    # Walk a few pages forward with the server's own `next` cursor, to prove the chain works.
    walk, path, t0 = 0, f"{API}/wallets/{account.id}/transactions?limit=100", time.perf_counter()
    while path and walk < 20:
        status, data = client.send("GET", path, token=account.owner.access)
        if status != 200:
            break
        nxt = json.loads(data).get("next")
        path = nxt[nxt.index("/api/") :] if nxt else None
        walk += 1
    history["walk_next_100"] = {
        "pages": walk,
        "ms_per_page": round((time.perf_counter() - t0) / max(walk, 1) * 1000, 1),
    }
    status, data = client.send("GET", f"{API}/wallets/{account.id}", token=account.owner.access)
    client.close()
    balance = json.loads(data)["balance"] if status == 200 else None

    script = (
        "import django, json, time; django.setup()\n"
        "from transfers.reconciliation import reconciliation_run\n"
        "t0 = time.perf_counter()\n"
        f"run = reconciliation_run(wallet_id={account.id!r})\n"
        "print(json.dumps({'seconds': round(time.perf_counter() - t0, 2), 'status': run.status,"
        " 'entries_checked': run.entries_checked, 'transfers_checked': run.transfers_checked,"
        " 'discrepancies': run.discrepancy_count,"
        " 'self_peak_rss_mb': round(int(open('/proc/self/status').read().split('VmHWM:')[1].split()[0])"
        " / 1024, 1)}))\n"
    )
    # The child reports its own peak (VmHWM of its address space). Not ru_maxrss: on Linux a
    # fork+exec child starts with the high-water mark of the parent it was forked from.
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    recon_wall = time.perf_counter() - t0
    try:
        recon = json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        recon = {"error": (proc.stdout + proc.stderr)[-800:]}
    recon["wall_s_with_startup"] = round(recon_wall, 2)
    return {
        "scenario": "large-ledger",
        "entries": size,
        "bulk_insert_s": round(insert_s, 2),
        "bulk_load_with_commit_s": round(load_s, 2),
        "history": history,
        "reconciliation": recon,
        "money": {"ok": balance == base + size, "balance": balance, "expected": base + size},
    }


def env_for_django(base: dict) -> dict:
    env = dict(os.environ)
    env.update(base)
    return env


def lock_stall(
    host: str, port: int, database_url: str, clients: int, wallets: int, duration: float, hold: float = 10.0
) -> dict:
    """Transfers that do not touch a wallet keep going while another connection holds its row lock.

    `clients` send transfers in a closed loop; two of them only between the victim wallet and
    another, the rest only among the other wallets. First `duration` seconds as they are
    (the normal rate), then `hold` seconds while a separate connection holds the victim's
    row lock (`SELECT ... FOR UPDATE` in an open transaction, as a stuck job or an operator's
    session would). The figure is the bystanders' transfers/s during the stall against
    their normal rate; the victim's requests wait for the lock until DB_LOCK_TIMEOUT_MS and
    answer 503 service_busy (retried by a client under the same key).
    """
    accounts = make_accounts(host, port, max(4, wallets // 2), wallets, funding=10**12)
    victim, others = accounts[0], accounts[1:]
    stop = threading.Event()
    window: dict[str, float] = {}

    def run(index: int, tally: Tally, counts: Counter) -> None:
        client = Client(host, port, 60.0)
        rng = random.Random(f"stall-{index}")
        touches_victim = index < 2
        try:
            while not stop.is_set():
                if touches_victim:
                    pair = [victim, rng.choice(others)]
                    rng.shuffle(pair)
                else:
                    pair = rng.sample(others, 2)
                source, destination = pair
                body = {"source_wallet_id": source.id, "destination_wallet_id": destination.id, "amount": 1}
                started = time.perf_counter()
                status, _ = client.send(
                    "POST", f"{API}/transfers", body, token=source.owner.access, key=secrets.token_hex(12)
                )
                done = time.perf_counter()
                tally.statuses[str(status)] += 1
                if status == 201:
                    tally.ok += 1
                    tally.latencies.append(done - started)
                    source.deposited -= 1
                    destination.deposited += 1
                    counts[(_phase(window, done), "victim" if touches_victim else "bystander")] += 1
        finally:
            client.close()

    tallies = [Tally() for _ in range(clients)]
    counters = [Counter() for _ in range(clients)]
    threads = [threading.Thread(target=run, args=(i, tallies[i], counters[i])) for i in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(duration)
    with psycopg.connect(database_url) as conn:
        conn.execute("SELECT id FROM wallets_wallet WHERE id = %s FOR UPDATE", [victim.id])
        window["from"] = time.perf_counter()
        time.sleep(hold)
        window["to"] = time.perf_counter()
        conn.rollback()
    time.sleep(1.0)
    stop.set()
    for t in threads:
        t.join(timeout=120)
    elapsed = time.perf_counter() - started
    counts: Counter = Counter()
    for c in counters:
        counts.update(c)
    normal_seconds = window["from"] - started
    normal = counts[("normal", "bystander")] / normal_seconds
    stalled = counts[("stalled", "bystander")] / (window["to"] - window["from"])
    figures = summarise("lock-stall", tallies, elapsed, clients)
    figures.update(
        {
            "hold_s": hold,
            "bystander_transfers_per_s": {"normal": round(normal, 1), "during_stall": round(stalled, 1)},
            "bystander_ratio": round(stalled / normal, 2) if normal else None,
            "victim_transfers_during_stall": counts[("stalled", "victim")],
            "money": _money(host, port, accounts),
        }
    )
    return figures


def _phase(window: dict[str, float], at: float) -> str:
    held_from, held_to = window.get("from"), window.get("to")
    if held_from is None or at < held_from:
        return "normal"
    return "stalled" if held_to is None or at <= held_to else "after"


def _money(host: str, port: int, accounts: list[Account]) -> dict:
    """Every wallet's balance is what the acknowledged transfers say it must be."""
    found = balances(host, port, accounts)
    wrong = {a.id: (found[a.id], a.deposited) for a in accounts if found[a.id] != a.deposited}
    return {"ok": not wrong, "wallets": len(accounts), "wrong": wrong}
