"""Load script: concurrent transfers against a running wallet server, then a money check.

    python bench/bank.py --base-url http://127.0.0.1:8050 --mode uniform
    python bench/bank.py --base-url http://127.0.0.1:8050 --mode hot --json hot.json

Set-up registers users, takes their JWTs, opens wallets and funds each with a deposit.
Then `--clients` threads, each with its own keep-alive connection, send transfers for
`--duration` seconds:

- uniform: random source and destination among all wallets (the source owner's token);
- hot: every transfer leaves one wallet, funded for the whole run, to a random other one.

Every money POST carries a fresh Idempotency-Key. A transport error or a 5xx is retried
with the *same* key, so the outcome of every transfer is known in the end (a replay tells
what happened). A 422 insufficient_funds is a business refusal, not an error. A 401
(access token expired) refreshes the owner's token and resends.

Afterwards every balance is read back through the API: the total must equal what was
deposited, no balance may be negative and, when every outcome is known, each balance must
equal its deposit plus the 201 transfers the script saw. Exit status 1 if a check fails,
2 if set-up or the read-back fails. Only the standard library: the client must cost as little CPU as it
can, since it shares the machine with the server and PostgreSQL.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import math
import random
import resource
import secrets
import select
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import urlsplit

API = "/api/v1"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
MAX_DURATION_S = 600
MAX_CLIENTS = 256
MAX_WALLETS = 10_000
MAX_MOVEMENT = 10**15  # the server's default MAX_MOVEMENT_AMOUNT
# The hot wallet is funded as if the server could do this many transfers a second.
HOT_RATE_BOUND = 10_000
SEND_ATTEMPTS = 5
ERROR_SAMPLES = 5


class BenchError(Exception):
    """Set-up or read-back could not proceed."""


def refusal(what: str, status: int, data: bytes) -> BenchError:
    hint = " (rate limited: raise the server's limits for the run)" if status == 429 else ""
    return BenchError(f"{what}: {status} {data[:300]!r}{hint}")


STALE_CONNECTION_ERRORS = (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected)


class Client:
    """One HTTP/1.1 keep-alive connection; one per thread, never shared."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.conn = http.client.HTTPConnection(host, port, timeout=timeout)

    def send(
        self,
        method: str,
        path: str,
        body: dict | None = None,
        *,
        token: str | None = None,
        key: str | None = None,
        resend: bool = True,
    ) -> tuple[int, bytes]:
        headers = {"Accept": "application/json"}
        payload = None
        if body is not None:
            payload = json.dumps(body, separators=(",", ":")).encode()
            headers["Content-Type"] = "application/json"
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if key is not None:
            headers["Idempotency-Key"] = key
        sock = self.conn.sock
        if sock is not None and select.select([sock], [], [], 0)[0]:
            self.conn.close()  # an idle keep-alive connection the server has closed (EOF waiting)
            sock = None
        for attempt in (1, 2):
            try:
                self.conn.request(method, path, payload, headers)
                response = self.conn.getresponse()
                data = response.read()
                break
            except (OSError, http.client.HTTPException) as exc:
                self.conn.close()  # the next request opens a fresh connection
                stale = isinstance(exc, STALE_CONNECTION_ERRORS) and sock is not None
                if not (stale and resend and attempt == 1):
                    raise
                # The server dropped a reused idle connection as the request went out: it
                # never reached the application, so send it once more on a fresh connection.
                sock = None
        if response.will_close:  # e.g. gunicorn sync workers answer Connection: close
            self.conn.close()
        return response.status, data

    def close(self) -> None:
        self.conn.close()


def problem_code(data: bytes) -> str:
    try:
        return str(json.loads(data).get("code", "?"))
    except (ValueError, AttributeError):
        return "?"


@dataclass
class Account:
    username: str
    password: str
    access: str = ""
    refresh: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def login(self, client: Client) -> None:
        status, data = client.send(
            "POST", f"{API}/auth/token", {"username": self.username, "password": self.password}
        )
        if status != 200:
            raise refusal(f"token for {self.username}", status, data)
        tokens = json.loads(data)
        self.access, self.refresh = tokens["access"], tokens["refresh"]

    def renew(self, client: Client, stale: str) -> None:
        """Replace an expired access token once, however many threads saw it expire."""
        with self.lock:
            if self.access != stale:
                return
            status, data = client.send("POST", f"{API}/auth/token/refresh", {"refresh": self.refresh})
            if status == 200:
                tokens = json.loads(data)
                self.access, self.refresh = tokens["access"], tokens["refresh"]
            else:
                self.login(client)


@dataclass
class Wallet:
    id: str
    owner: Account
    deposited: int = 0


@dataclass
class Plan:
    mode: str
    wallets: list[Wallet]
    amount_max: int
    max_transfers: int
    run_id: str
    seed: int
    stop: threading.Event = field(default_factory=threading.Event)
    issued: itertools.count = field(default_factory=itertools.count)


@dataclass
class WorkerResult:
    latencies: list[float] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    ok: int = 0
    refused: int = 0
    unresolved: int = 0
    deltas: Counter = field(default_factory=Counter)
    samples: list[dict] = field(default_factory=list)


def run_worker(index: int, plan: Plan, host: str, port: int, timeout: float) -> WorkerResult:
    rng = random.Random(plan.seed * 1_000_003 + index)
    client = Client(host, port, timeout)
    result = WorkerResult()
    wallets = plan.wallets
    last = len(wallets) - 1
    path = f"{API}/transfers"
    clock = time.perf_counter
    try:
        for seq in itertools.count():
            if plan.stop.is_set() or next(plan.issued) >= plan.max_transfers:
                break
            if plan.mode == "hot":
                source = wallets[0]
                destination = wallets[rng.randint(1, last)]
            else:
                i = rng.randint(0, last)
                j = rng.randint(0, last - 1)
                source, destination = wallets[i], wallets[j + 1 if j >= i else j]
            amount = rng.randint(1, plan.amount_max)
            body = {"source_wallet_id": source.id, "destination_wallet_id": destination.id, "amount": amount}
            key = f"bench-{plan.run_id}-{index}-{seq}"
            outcome = "unresolved"
            for _attempt in range(SEND_ATTEMPTS):
                token = source.owner.access
                started = clock()
                try:
                    status, data = client.send("POST", path, body, token=token, key=key, resend=False)
                except (OSError, http.client.HTTPException) as exc:
                    result.latencies.append(clock() - started)
                    result.statuses[f"transport {type(exc).__name__}"] += 1
                    time.sleep(0.05)
                    continue
                result.latencies.append(clock() - started)
                if status == 201:
                    result.statuses["201"] += 1
                    outcome = "ok"
                    break
                code = problem_code(data)
                result.statuses[f"{status} {code}"] += 1
                if status == 422 and code == "insufficient_funds":
                    outcome = "refused"
                    break
                if status == 401:
                    try:
                        source.owner.renew(client, token)
                    except (BenchError, OSError, http.client.HTTPException) as exc:
                        result.statuses[f"token renewal failed: {exc}"[:120]] += 1
                    continue
                if len(result.samples) < ERROR_SAMPLES:
                    result.samples.append(
                        {
                            "request": f"POST {path}",
                            "idempotency_key": key,
                            "body": body,
                            "status": status,
                            "response": data[:2000].decode("utf-8", "replace"),
                        }
                    )
                if status >= 500 or (status == 409 and code == "idempotency_key_in_use"):
                    time.sleep(0.05)  # same key again: a replay says what happened
                    continue
                outcome = "failed"  # a final answer that moved no money
                break
            if outcome == "ok":
                result.ok += 1
                result.deltas[source.id] -= amount
                result.deltas[destination.id] += amount
            elif outcome == "refused":
                result.refused += 1
            elif outcome == "unresolved":
                result.unresolved += 1
    finally:
        client.close()
    return result


def percentile(ordered: list[float], p: float) -> float | None:
    """Nearest-rank percentile of an ascending list of seconds, in milliseconds."""
    if not ordered:
        return None
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return round(ordered[rank - 1] * 1000, 1)


def check_local(base_url: str) -> tuple[str, int]:
    parts = urlsplit(base_url)
    if parts.scheme != "http" or parts.hostname not in LOCAL_HOSTS:
        raise BenchError(f"--base-url must be http:// on {', '.join(sorted(LOCAL_HOSTS))}; got {base_url!r}")
    if parts.path not in ("", "/"):
        raise BenchError("--base-url takes no path; the API lives under /api/v1/")
    return parts.hostname, parts.port or 80


def set_up(args: argparse.Namespace, host: str, port: int) -> tuple[list[Wallet], str]:
    run_id = secrets.token_hex(4)
    local = threading.local()

    def client() -> Client:
        if not hasattr(local, "client"):
            local.client = Client(host, port, args.timeout)
        return local.client

    status, _ = client().send("GET", "/healthz")
    if status != 200:
        raise BenchError(f"GET /healthz answered {status}; is the server running at {args.base_url}?")

    accounts = [
        Account(username=f"bench_{run_id}_{n}", password=secrets.token_urlsafe(18) + "aA1!")
        for n in range(args.users)
    ]

    def register(account: Account) -> None:
        body = {"username": account.username, "password": account.password}
        body["email"] = f"{account.username}@bench.example.com"
        status, data = client().send("POST", f"{API}/auth/register", body)
        if status != 201:
            raise refusal(f"register {account.username}", status, data)
        account.login(client())

    hot_funding = args.hot_funding or args.amount_max * min(
        args.max_transfers, HOT_RATE_BOUND * math.ceil(args.duration)
    )
    if hot_funding > MAX_MOVEMENT:
        raise BenchError(f"the hot wallet would need {hot_funding} in one deposit; lower --amount-max")

    def open_wallet(n: int) -> Wallet:
        owner = accounts[n % len(accounts)]
        status, data = client().send(
            "POST", f"{API}/wallets", {"currency": args.currency, "name": f"bench {n}"}, token=owner.access
        )
        if status != 201:
            raise refusal(f"open wallet {n}", status, data)
        wallet = Wallet(id=json.loads(data)["id"], owner=owner)
        amount = hot_funding if args.mode == "hot" and n == 0 else args.funding
        status, data = client().send(
            "POST",
            f"{API}/wallets/{wallet.id}/deposits",
            {"amount": amount, "description": "bench funding"},
            token=owner.access,
            key=f"bench-{run_id}-fund-{n}",
        )
        if status != 201:
            raise refusal(f"deposit into wallet {n}", status, data)
        wallet.deposited = amount
        return wallet

    with ThreadPoolExecutor(max_workers=min(16, args.clients)) as pool:
        list(pool.map(register, accounts))
        wallets = list(pool.map(open_wallet, range(args.wallets)))
    return wallets, run_id


def read_balances(wallets: list[Wallet], client: Client) -> dict[str, int]:
    balances = {}
    for wallet in wallets:
        for _attempt in range(3):
            token = wallet.owner.access
            status, data = client.send("GET", f"{API}/wallets/{wallet.id}", token=token)
            if status == 401:
                wallet.owner.renew(client, token)
                continue
            break
        if status != 200:
            raise refusal(f"GET wallet {wallet.id}", status, data)
        balances[wallet.id] = json.loads(data)["balance"]
    return balances


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:8000")
    parser.add_argument("--mode", choices=("uniform", "hot"), default="uniform")
    parser.add_argument("--clients", type=int, default=32, help="concurrent threads (default 32)")
    parser.add_argument("--wallets", type=int, default=64, help="wallets in all (default 64)")
    parser.add_argument("--users", type=int, help="wallet owners (default: --clients, at most --wallets)")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of transfers (default 20)")
    parser.add_argument("--currency", default="USD")
    parser.add_argument("--funding", type=int, default=100_000, help="deposit per wallet, minor units")
    parser.add_argument("--hot-funding", type=int, help="deposit into the hot wallet (default: enough)")
    parser.add_argument("--amount-max", type=int, default=1_000, help="transfers move 1..this")
    parser.add_argument("--max-transfers", type=int, default=1_000_000, help="stop after this many")
    parser.add_argument("--timeout", type=float, default=30.0, help="per-request socket timeout, s")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", metavar="FILE", help="also write the figures to FILE")
    args = parser.parse_args(argv)
    args.users = args.users or min(args.clients, args.wallets)
    if not 0 < args.duration <= MAX_DURATION_S:
        parser.error(f"--duration must be in (0, {MAX_DURATION_S}]")
    if not 1 <= args.clients <= MAX_CLIENTS:
        parser.error(f"--clients must be in 1..{MAX_CLIENTS}")
    if not 2 <= args.wallets <= MAX_WALLETS:
        parser.error(f"--wallets must be in 2..{MAX_WALLETS}")
    if not 1 <= args.users <= args.wallets:
        parser.error("--users must be in 1..--wallets")
    if not 1 <= args.amount_max <= args.funding <= MAX_MOVEMENT or args.max_transfers < 1:
        parser.error("need 1 <= --amount-max <= --funding <= 10^15 and --max-transfers >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        host, port = check_local(args.base_url)
    except BenchError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(
        f"bench: {args.mode}, {args.clients} clients, {args.wallets} wallets of {args.users} users, "
        f"{args.duration:g} s against {args.base_url}",
        flush=True,
    )
    set_up_started = time.perf_counter()
    try:
        wallets, run_id = set_up(args, host, port)
    except (BenchError, OSError, http.client.HTTPException) as exc:
        print(f"set-up failed: {exc}", file=sys.stderr)
        return 2
    print(
        f"set-up: {len(wallets)} wallets funded in {time.perf_counter() - set_up_started:.1f} s", flush=True
    )

    plan = Plan(args.mode, wallets, args.amount_max, args.max_transfers, run_id, args.seed)
    results: list[WorkerResult] = []
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=args.clients) as pool:
        futures = [pool.submit(run_worker, n, plan, host, port, args.timeout) for n in range(args.clients)]
        plan.stop.wait(args.duration)
        plan.stop.set()
        results = [future.result() for future in futures]
    elapsed = time.perf_counter() - started
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    client_cpu = (cpu_after.ru_utime + cpu_after.ru_stime) - (cpu_before.ru_utime + cpu_before.ru_stime)

    latencies = sorted(itertools.chain.from_iterable(r.latencies for r in results))
    statuses: Counter = Counter()
    deltas: Counter = Counter()
    for r in results:
        statuses.update(r.statuses)
        deltas.update(r.deltas)
    ok = sum(r.ok for r in results)
    refused = sum(r.refused for r in results)
    unresolved = sum(r.unresolved for r in results)
    samples = [s for r in results for s in r.samples][:ERROR_SAMPLES]
    server_errors = sum(n for key, n in statuses.items() if key[:1] == "5" or key.startswith("transport"))

    figures = {
        "mode": args.mode,
        "base_url": args.base_url,
        "clients": args.clients,
        "users": args.users,
        "wallets": args.wallets,
        "duration_s": args.duration,
        "elapsed_s": round(elapsed, 3),
        "transfers_ok": ok,
        "transfers_refused": refused,
        "transfers_unresolved": unresolved,
        "transfers_per_s": round(ok / elapsed, 1),
        "requests": len(latencies),
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "latency_ms": {
            "p50": percentile(latencies, 50),
            "p95": percentile(latencies, 95),
            "p99": percentile(latencies, 99),
            "max": percentile(latencies, 100),
            "mean": round(sum(latencies) / len(latencies) * 1000, 1) if latencies else None,
        },
        "statuses": dict(sorted(statuses.items())),
        "server_errors": server_errors,
        "load_generator_cpu_cores": round(client_cpu / elapsed, 2),
        "money": None,
        "error_samples": samples,
    }
    lat = figures["latency_ms"]
    print(
        f"transfers: {ok} ok, {refused} refused (insufficient funds), {unresolved} unresolved "
        f"in {elapsed:.1f} s\n"
        f"throughput: {figures['transfers_per_s']} transfers/s ({figures['requests_per_s']} requests/s)\n"
        f"latency ms: p50 {lat['p50']}  p95 {lat['p95']}  p99 {lat['p99']}  max {lat['max']}\n"
        f"statuses: {', '.join(f'{k}: {v}' for k, v in figures['statuses'].items()) or 'none'}\n"
        f"load generator CPU: {figures['load_generator_cpu_cores']} cores",
        flush=True,
    )
    for sample in samples:
        print(f"error sample: {json.dumps(sample)}", file=sys.stderr)

    try:
        reader = Client(host, port, args.timeout)
        balances = read_balances(wallets, reader)
        reader.close()
    except (BenchError, OSError, http.client.HTTPException) as exc:
        print(f"reading balances back failed: {exc}", file=sys.stderr)
        write_json(args.json, figures)
        return 2
    money = money_check(wallets, balances, deltas, per_wallet=unresolved == 0)
    figures["money"] = money
    print(
        f"money: total {money['total']} vs deposited {money['deposited']}, "
        f"{len(money['negative_wallets'])} negative balances, "
        + (
            f"{len(money['mismatched_wallets'])} wallets differ from the 201s seen"
            if money["per_wallet_checked"]
            else "per-wallet check skipped (unresolved outcomes)"
        )
        + f": {'OK' if money['ok'] else 'FAILED'}",
        flush=True,
    )
    for mismatch in money["mismatched_wallets"][:ERROR_SAMPLES]:
        print(f"mismatch: {json.dumps(mismatch)}", file=sys.stderr)
    write_json(args.json, figures)
    return 0 if money["ok"] else 1


def money_check(
    wallets: list[Wallet], balances: dict[str, int], deltas: Counter, *, per_wallet: bool
) -> dict:
    """Total unchanged, nothing negative and, if every outcome is known, each balance as the 201s say."""
    deposited = sum(w.deposited for w in wallets)
    total = sum(balances.values())
    negative = [wid for wid, balance in balances.items() if balance < 0]
    mismatched = []
    if per_wallet:
        for w in wallets:
            expected = w.deposited + deltas[w.id]
            if balances[w.id] != expected:
                mismatched.append({"wallet": w.id, "expected": expected, "balance": balances[w.id]})
    return {
        "deposited": deposited,
        "total": total,
        "negative_wallets": negative,
        "per_wallet_checked": per_wallet,
        "mismatched_wallets": mismatched,
        "ok": total == deposited and not negative and not mismatched,
    }


def write_json(path: str | None, figures: dict) -> None:
    if path:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(figures, fh, indent=2)
            fh.write("\n")


if __name__ == "__main__":
    sys.exit(main())
