"""Mixed money traffic against a running server, then every book of the ledger checked.

    python bench/mixed.py --base-url http://127.0.0.1:8050 --database-url postgres://postgres@127.0.0.1:5432/wallet_bench
    python bench/mixed.py --base-url http://127.0.0.1:8050 --duration 10 --json mixed.json   # API checks only

Set-up is bank.py's: users, their JWTs, wallets each funded by a deposit. With
`--database-url` (the server's database) the last eighth of the wallets get an operator's
limits on outgoing money (`max_outgoing_amount`, `max_outgoing_per_day`) written
straight into their rows, as the admin would. Then `--clients` threads, each with its own
keep-alive connection, for `--duration` seconds pick at random among:

- deposits, withdrawals and transfers between the wallets;
- holds on a wallet; captures of a pending hold (all or part of it, to another wallet or
  out of the service, now and then more than the hold); voids; and now and then a capture
  or void of a hold that already ended;
- refunds of a transfer or of a capture to a wallet, by the recipient: of all that is left,
  of part of it, or of more than is left.

Captures and voids pick among the newest pending holds, so clients race for the same hold;
refunds pick among recent transfers, so partial refunds of one transfer interleave.
Refusals the product promises are counted, not errors: insufficient_funds,
limit_exceeded, hold_not_pending, refund_exceeds_transfer, capture_exceeds_hold. Any
other answer is unexpected and fails the run. As in bank.py every money POST has its own
Idempotency-Key, and a transport error, a 5xx or 409 idempotency_key_in_use is sent again
with the same key; operations still unanswered at the end are sent again until they are.

The checks, through the API:

- the sum of the wallets' balances = what was deposited - withdrawn - captured out of the
  service, and each balance equals its deposit plus what the acknowledged answers moved;
- each wallet's `held` equals the sum of its pending holds (GET /holds?wallet=&status=pending)
  and the holds the client saw created and not ended; no balance is below its `held`;
- each refunded transfer's `refunded_amount` equals the refunds the client saw and is at
  most its amount;
- no 500.

With `--database-url`, in the database as well: `held` = the sum of pending holds and
`held <= balance` for every user wallet, no transfer refunded beyond its amount, every
captured hold's transfer moved its `captured_amount`, and then `manage.py reconcile`
(with DATABASE_URL set to it, the rest of the environment as given) must find nothing.

Exit status 0 when every check passed, 1 if one failed, 2 if set-up or read-back failed.
Loopback only; bounded in time (`--duration` at most 600 s) and count (`--max-ops`).
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import random
import resource
import subprocess
import sys
import threading
import time
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.bank import (  # noqa: E402
    API,
    ERROR_SAMPLES,
    MAX_CLIENTS,
    MAX_DURATION_S,
    MAX_WALLETS,
    BenchError,
    Client,
    Wallet,
    check_local,
    percentile,
    problem_code,
    set_up,
    write_json,
)

# The refusals the API promises for this traffic: counted, never errors.
EXPECTED_REFUSALS = {
    "insufficient_funds",
    "limit_exceeded",
    "hold_not_pending",
    "refund_exceeds_transfer",
    "capture_exceeds_hold",
}
# Relative weights of the operations a client picks.
WEIGHTS = {
    "deposit": 8,
    "withdrawal": 8,
    "transfer": 24,
    "hold": 20,
    "capture": 14,
    "void": 8,
    "refund": 14,
    "ended_hold": 4,  # a capture or void of a hold that already ended: hold_not_pending
}
SEND_ATTEMPTS = 5
RESOLVE_ATTEMPTS = 20
HOLD_SECONDS = 3600  # no hold expires during a run
NEWEST = 16  # captures and voids pick among this many newest pending holds
RECENT_REFUNDABLE = 256  # refunds pick among this many recent transfers
REFUND_API_CHECKS = 1000  # refunded transfers read back through the API, at most


@dataclass
class Op:
    kind: str
    method: str
    path: str
    body: dict
    wallet: Wallet  # whose owner's token sends it
    key: str
    context: dict = field(default_factory=dict)


@dataclass
class Refundable:
    id: str
    source: Wallet
    destination: Wallet
    amount: int
    refunded: int = 0  # as far as this client has seen; the server decides


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    by_kind: dict[str, list[float]] = field(default_factory=dict)  # answered requests' latencies
    statuses: Counter = field(default_factory=Counter)  # "<kind> <status> <code>"
    outcomes: Counter = field(default_factory=Counter)  # "<kind> ok|<code>"
    deltas: Counter = field(default_factory=Counter)  # wallet id -> balance change
    held: Counter = field(default_factory=Counter)  # wallet id -> held change
    refunded: Counter = field(default_factory=Counter)  # transfer id -> refunded
    money: Counter = field(default_factory=Counter)  # deposited, withdrawn, captured_out, ...
    unexpected: list[dict] = field(default_factory=list)
    unresolved: list[Op] = field(default_factory=list)


class Books:
    """What the clients share: pending holds, recently ended holds and refundable transfers."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pending: dict[str, tuple[Wallet, int]] = {}  # hold id -> (wallet, amount), oldest first
        self.ended: deque[tuple[str, Wallet]] = deque(maxlen=256)
        self.refundables: dict[str, Refundable] = {}
        self.recent: deque[str] = deque(maxlen=RECENT_REFUNDABLE)

    def add_hold(self, hold_id: str, wallet: Wallet, amount: int) -> None:
        with self.lock:
            self.pending[hold_id] = (wallet, amount)

    def end_hold(self, hold_id: str) -> None:
        with self.lock:
            found = self.pending.pop(hold_id, None)
            if found is not None:
                self.ended.append((hold_id, found[0]))

    def pick_pending(self, rng: random.Random) -> tuple[str, Wallet, int] | None:
        with self.lock:
            if not self.pending:
                return None
            newest = list(itertools.islice(reversed(self.pending), NEWEST))
            hold_id = rng.choice(newest)
            return (hold_id, *self.pending[hold_id])

    def pick_ended(self, rng: random.Random) -> tuple[str, Wallet] | None:
        with self.lock:
            return rng.choice(self.ended) if self.ended else None

    def add_refundable(self, item: Refundable) -> None:
        with self.lock:
            self.refundables[item.id] = item
            self.recent.append(item.id)

    def pick_refundable(self, rng: random.Random) -> Refundable | None:
        with self.lock:
            return self.refundables[rng.choice(self.recent)] if self.recent else None

    def refund_seen(self, transfer_id: str, amount: int) -> None:
        with self.lock:
            self.refundables[transfer_id].refunded += amount


@dataclass
class Plan:
    wallets: list[Wallet]
    amount_max: int
    greedy: int  # an amount no wallet has: insufficient funds
    max_ops: int
    run_id: str
    seed: int
    books: Books = field(default_factory=Books)
    stop: threading.Event = field(default_factory=threading.Event)
    issued: itertools.count = field(default_factory=itertools.count)


def next_op(rng: random.Random, plan: Plan, key: str) -> Op:
    """One operation, chosen by WEIGHTS; one that needs a hold or a transfer nobody has made
    yet becomes a transfer."""
    wallets, books = plan.wallets, plan.books
    kind = rng.choices(list(WEIGHTS), weights=list(WEIGHTS.values()))[0]
    wallet = rng.choice(wallets)
    other = rng.choice([w for w in wallets if w is not wallet]) if len(wallets) > 1 else wallet
    amount = plan.greedy if rng.random() < 0.03 else rng.randint(1, plan.amount_max)
    if kind == "capture" or kind == "void":
        picked = books.pick_pending(rng)
        if picked is not None:
            hold_id, holder, held = picked
            context = {"hold_id": hold_id, "hold_amount": held}
            if kind == "void":
                return Op("void", "POST", f"{API}/holds/{hold_id}/void", {}, holder, key, context)
            body: dict = {}
            roll = rng.random()
            if roll < 0.1:
                body["amount"] = held + 1  # more than the hold: capture_exceeds_hold
            elif roll < 0.55 and held > 1:
                body["amount"] = rng.randint(1, held - 1)
            destination = rng.choice([w for w in wallets if w is not holder])
            if rng.random() < 0.7:
                body["destination_wallet_id"] = destination.id
                context["destination"] = destination
            return Op("capture", "POST", f"{API}/holds/{hold_id}/capture", body, holder, key, context)
        kind = "transfer"
    if kind == "ended_hold":
        picked_ended = books.pick_ended(rng)
        if picked_ended is not None:
            hold_id, holder = picked_ended
            action = rng.choice(("capture", "void"))
            return Op(
                "ended_hold", "POST", f"{API}/holds/{hold_id}/{action}", {}, holder, key, {"hold_id": hold_id}
            )
        kind = "transfer"
    if kind == "refund":
        original = books.pick_refundable(rng)
        if original is not None:
            left = original.amount - original.refunded
            body = {"reason": "bench"}
            roll = rng.random()
            if roll < 0.2:
                body["amount"] = left + 1  # more than is left: refund_exceeds_transfer
            elif roll < 0.6 and left > 1:
                body["amount"] = rng.randint(1, left - 1)
            # else: no amount, all that is left
            return Op(
                "refund",
                "POST",
                f"{API}/transfers/{original.id}/refunds",
                body,
                original.destination,
                key,
                {"original": original},
            )
        kind = "transfer"
    if kind == "deposit":
        body = {"amount": rng.randint(1, plan.amount_max)}
        return Op("deposit", "POST", f"{API}/wallets/{wallet.id}/deposits", body, wallet, key)
    if kind == "withdrawal":
        return Op(
            "withdrawal", "POST", f"{API}/wallets/{wallet.id}/withdrawals", {"amount": amount}, wallet, key
        )
    if kind == "hold":
        body = {"amount": amount, "expires_in_seconds": HOLD_SECONDS}
        return Op("hold", "POST", f"{API}/wallets/{wallet.id}/holds", body, wallet, key)
    body = {"source_wallet_id": wallet.id, "destination_wallet_id": other.id, "amount": amount}
    return Op("transfer", "POST", f"{API}/transfers", body, wallet, key, {"destination": other})


def send(client: Client, op: Op, tally: Tally, attempts: int, pause: float) -> tuple[int, bytes] | None:
    """The op's final answer, sent again under its key after a transport error, a 5xx, a 409
    idempotency_key_in_use or an expired token; None if it never came."""
    clock = time.perf_counter
    for _attempt in range(attempts):
        token = op.wallet.owner.access
        started = clock()
        try:
            status, data = client.send(op.method, op.path, op.body, token=token, key=op.key, resend=False)
        except (OSError, http.client.HTTPException) as exc:
            tally.latencies.append(clock() - started)
            tally.statuses[f"{op.kind} transport {type(exc).__name__}"] += 1
            time.sleep(pause)
            continue
        tally.latencies.append(clock() - started)
        tally.by_kind.setdefault(op.kind, []).append(tally.latencies[-1])
        code = "" if status < 400 else problem_code(data)
        tally.statuses[f"{op.kind} {status} {code}".rstrip()] += 1
        if status == 401:
            try:
                op.wallet.owner.renew(client, token)
            except (BenchError, OSError, http.client.HTTPException) as exc:
                tally.statuses[f"token renewal failed: {exc}"[:120]] += 1
            continue
        if status >= 500 or (status == 409 and code == "idempotency_key_in_use"):
            if status == 500 and len(tally.unexpected) < ERROR_SAMPLES:
                tally.unexpected.append(sample(op, status, data))
            time.sleep(pause)
            continue
        return status, data
    return None


def sample(op: Op, status: int, data: bytes) -> dict:
    return {
        "request": f"{op.method} {op.path}",
        "idempotency_key": op.key,
        "body": op.body,
        "status": status,
        "response": data[:2000].decode("utf-8", "replace"),
    }


def settle(op: Op, status: int, data: bytes, tally: Tally, books: Books) -> None:
    """Book what an answer says moved (or count the refusal)."""
    if status >= 400:
        code = problem_code(data)
        if code in EXPECTED_REFUSALS:
            tally.outcomes[f"{op.kind} {code}"] += 1
            if code == "hold_not_pending" and "hold_id" in op.context:
                books.end_hold(op.context["hold_id"])
            return
        tally.outcomes[f"{op.kind} unexpected {status} {code}"] += 1
        if len(tally.unexpected) < ERROR_SAMPLES:
            tally.unexpected.append(sample(op, status, data))
        return
    body = json.loads(data)
    tally.outcomes[f"{op.kind} ok"] += 1
    wallet = op.wallet
    if op.kind == "deposit":
        amount = body["transfer"]["amount"]
        tally.deltas[wallet.id] += amount
        tally.money["deposited"] += amount
    elif op.kind == "withdrawal":
        amount = body["transfer"]["amount"]
        tally.deltas[wallet.id] -= amount
        tally.money["withdrawn"] += amount
    elif op.kind == "transfer":
        destination = op.context["destination"]
        tally.deltas[wallet.id] -= body["amount"]
        tally.deltas[destination.id] += body["amount"]
        books.add_refundable(Refundable(body["id"], wallet, destination, body["amount"]))
    elif op.kind == "hold":
        tally.held[wallet.id] += body["amount"]
        books.add_hold(body["id"], wallet, body["amount"])
    elif op.kind in ("capture", "void"):
        tally.held[wallet.id] -= body["amount"]
        books.end_hold(body["id"])
        captured = body["captured_amount"]
        if op.kind == "capture":
            tally.deltas[wallet.id] -= captured
            destination = op.context.get("destination")
            if destination is not None:
                tally.deltas[destination.id] += captured
                tally.money["captured_to_wallets"] += captured
                books.add_refundable(Refundable(body["capture_transfer_id"], wallet, destination, captured))
            else:
                tally.money["captured_out"] += captured
    elif op.kind == "refund":
        original: Refundable = op.context["original"]
        tally.deltas[original.destination.id] -= body["amount"]
        tally.deltas[original.source.id] += body["amount"]
        tally.refunded[original.id] += body["amount"]
        tally.money["refunded"] += body["amount"]
        books.refund_seen(original.id, body["amount"])
    else:  # an ended hold captured or voided: the API promised hold_not_pending
        tally.outcomes[f"{op.kind} unexpected {status}"] += 1
        tally.unexpected.append(sample(op, status, data))


def run_worker(index: int, plan: Plan, host: str, port: int, timeout: float) -> Tally:
    rng = random.Random(plan.seed * 1_000_003 + index)
    client = Client(host, port, timeout)
    tally = Tally()
    try:
        for seq in itertools.count():
            if plan.stop.is_set() or next(plan.issued) >= plan.max_ops:
                break
            op = next_op(rng, plan, f"mixed-{plan.run_id}-{index}-{seq}")
            answer = send(client, op, tally, SEND_ATTEMPTS, 0.05)
            if answer is None:
                tally.unresolved.append(op)
            else:
                settle(op, *answer, tally, plan.books)
    finally:
        client.close()
    return tally


def resolve(ops: list[Op], plan: Plan, client: Client, tally: Tally) -> list[Op]:
    """Send each unanswered op again under its key until the server answers (a replay, or
    the first execution); return those that still got no answer."""
    left = []
    for op in ops:
        answer = send(client, op, tally, RESOLVE_ATTEMPTS, 0.5)
        if answer is None:
            left.append(op)
        else:
            settle(op, *answer, tally, plan.books)
    return left


def get_json(client: Client, wallet: Wallet, path: str) -> dict:
    for _attempt in range(3):
        token = wallet.owner.access
        status, data = client.send("GET", path, token=token)
        if status == 401:
            wallet.owner.renew(client, token)
            continue
        if status != 200:
            raise BenchError(f"GET {path}: {status} {data[:300]!r}")
        return json.loads(data)
    raise BenchError(f"GET {path}: still 401 after renewing the token")


def read_back(client: Client, plan: Plan, refunded: Counter) -> dict:
    """Each wallet's balance and held, the sum of its pending holds as the API lists them,
    and the refunded transfers' refunded_amount (at most REFUND_API_CHECKS of them)."""
    wallets = {}
    for wallet in plan.wallets:
        data = get_json(client, wallet, f"{API}/wallets/{wallet.id}")
        pending, path = 0, f"{API}/holds?wallet={wallet.id}&status=pending&limit=100"
        while path:
            page = get_json(client, wallet, path)
            pending += sum(hold["amount"] for hold in page["results"])
            path = page["next"][page["next"].index("/api/") :] if page.get("next") else None
        wallets[wallet.id] = {"balance": data["balance"], "held": data["held"], "pending_holds": pending}
    refunds = {}
    ids = sorted(refunded)
    if len(ids) > REFUND_API_CHECKS:
        ids = random.Random(plan.seed).sample(ids, REFUND_API_CHECKS)
    for transfer_id in ids:
        original = plan.books.refundables[transfer_id]
        data = get_json(client, original.source, f"{API}/transfers/{transfer_id}")
        refunds[transfer_id] = {"amount": data["amount"], "refunded_amount": data["refunded_amount"]}
    return {"wallets": wallets, "refunds": refunds}


def api_checks(plan: Plan, seen: dict, tally: Tally, per_wallet: bool) -> dict:
    wallets = plan.wallets
    funded = sum(w.deposited for w in wallets)
    expected_total = (
        funded + tally.money["deposited"] - tally.money["withdrawn"] - tally.money["captured_out"]
    )
    total = sum(v["balance"] for v in seen["wallets"].values())
    below_held = [wid for wid, v in seen["wallets"].items() if v["balance"] < v["held"] or v["held"] < 0]
    held_vs_holds = [
        {"wallet": wid, "held": v["held"], "pending_holds": v["pending_holds"]}
        for wid, v in seen["wallets"].items()
        if v["held"] != v["pending_holds"]
    ]
    mismatched = []
    if per_wallet:
        for w in wallets:
            v = seen["wallets"][w.id]
            expected = {"balance": w.deposited + tally.deltas[w.id], "held": tally.held[w.id]}
            if (v["balance"], v["held"]) != (expected["balance"], expected["held"]):
                mismatched.append({"wallet": w.id, "expected": expected, "found": v})
    refunds_wrong = [
        {"transfer": tid, **r, "refunds_seen": tally.refunded[tid]}
        for tid, r in seen["refunds"].items()
        if r["refunded_amount"] > r["amount"] or (per_wallet and r["refunded_amount"] != tally.refunded[tid])
    ]
    return {
        "funded": funded,
        **{
            k: tally.money[k]
            for k in ("deposited", "withdrawn", "captured_out", "captured_to_wallets", "refunded")
        },
        "expected_total": expected_total,
        "total": total,
        "wallets_below_held": below_held,
        "held_not_sum_of_pending_holds": held_vs_holds,
        "per_wallet_checked": per_wallet,
        "mismatched_wallets": mismatched,
        "refunds_checked": len(seen["refunds"]),
        "refunds_wrong": refunds_wrong,
        "ok": total == expected_total
        and not below_held
        and not held_vs_holds
        and not mismatched
        and not refunds_wrong,
    }


DB_CHECKS = {
    # Each query lists what breaks the rule; every one must come back empty.
    "held_not_sum_of_pending_holds": """
        SELECT w.id::text, w.held, COALESCE(h.pending, 0)
          FROM wallets_wallet w
          LEFT JOIN (SELECT wallet_id, SUM(amount) AS pending FROM transfers_hold
                      WHERE status = 'pending' GROUP BY wallet_id) h ON h.wallet_id = w.id
         WHERE w.kind = 'user' AND w.held <> COALESCE(h.pending, 0)""",
    "balance_below_held": """
        SELECT id::text, balance, held FROM wallets_wallet WHERE kind = 'user' AND balance < held""",
    "refunded_beyond_transfer": """
        SELECT o.id::text, o.amount, SUM(r.amount)
          FROM transfers_transfer o JOIN transfers_transfer r ON r.refund_of_id = o.id
         GROUP BY o.id, o.amount HAVING SUM(r.amount) > o.amount""",
    "capture_not_as_recorded": """
        SELECT h.id::text, h.captured_amount, t.amount
          FROM transfers_hold h LEFT JOIN transfers_transfer t ON t.id = h.capture_transfer_id
         WHERE h.status = 'captured' AND (t.id IS NULL OR t.amount <> h.captured_amount
                                          OR t.source_wallet_id <> h.wallet_id)""",
}


def set_limits(database_url: str, wallets: list[Wallet], amount: int, per_day: int) -> None:
    """An operator's limits on these wallets, written as the admin would write them."""
    import psycopg

    with psycopg.connect(database_url) as conn:
        conn.execute(
            "UPDATE wallets_wallet SET max_outgoing_amount = %s, max_outgoing_per_day = %s"
            " WHERE id = ANY(%s)",
            [amount, per_day, [w.id for w in wallets]],
        )


def database_checks(database_url: str, our_ids: list[str]) -> dict:
    import psycopg

    found: dict = {}
    with psycopg.connect(database_url, autocommit=True) as conn:
        for name, sql in DB_CHECKS.items():
            found[name] = [list(row) for row in conn.execute(sql).fetchmany(ERROR_SAMPLES + 1)]
        (balance_sum,) = conn.execute(
            "SELECT COALESCE(SUM(balance), 0) FROM wallets_wallet WHERE id::text = ANY(%s)", [our_ids]
        ).fetchone()
    found["balances_sum"] = int(balance_sum)
    return found


def reconcile(database_url: str, timeout: float) -> dict:
    env = {**os.environ, "DATABASE_URL": database_url}
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "manage.py", "reconcile"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return {
        "exit": proc.returncode,
        "seconds": round(time.perf_counter() - started, 1),
        "output": (proc.stdout.strip() or proc.stderr.strip())[-1500:],
        "ok": proc.returncode == 0,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:8000")
    parser.add_argument("--database-url", help="the server's database: limits, SQL checks and reconcile")
    parser.add_argument("--clients", type=int, default=16, help="concurrent threads (default 16)")
    parser.add_argument("--wallets", type=int, default=32, help="wallets in all (default 32)")
    parser.add_argument("--users", type=int, help="wallet owners (default: --clients, at most --wallets)")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds of traffic (default 15)")
    parser.add_argument("--currency", default="USD")
    parser.add_argument("--funding", type=int, default=100_000, help="deposit per wallet, minor units")
    parser.add_argument("--amount-max", type=int, default=1_000, help="movements and holds of 1..this")
    parser.add_argument("--limit-amount", type=int, default=600, help="limited wallets: largest movement")
    parser.add_argument("--limit-per-day", type=int, default=40_000, help="limited wallets: per UTC day")
    parser.add_argument("--max-ops", type=int, default=1_000_000, help="stop after this many operations")
    parser.add_argument("--timeout", type=float, default=30.0, help="per-request socket timeout, s")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", metavar="FILE", help="also write the figures to FILE")
    args = parser.parse_args(argv)
    args.users = args.users or min(args.clients, args.wallets)
    if not 0 < args.duration <= MAX_DURATION_S:
        parser.error(f"--duration must be in (0, {MAX_DURATION_S}]")
    if not 1 <= args.clients <= MAX_CLIENTS:
        parser.error(f"--clients must be in 1..{MAX_CLIENTS}")
    if not 3 <= args.wallets <= MAX_WALLETS:
        parser.error(f"--wallets must be in 3..{MAX_WALLETS}")
    if not 1 <= args.users <= args.wallets:
        parser.error("--users must be in 1..--wallets")
    if not 1 <= args.amount_max <= args.funding <= 10**14 or args.max_ops < 1:
        parser.error("need 1 <= --amount-max <= --funding <= 10^14 and --max-ops >= 1")
    if args.limit_amount < 1 or args.limit_per_day < 1:
        parser.error("--limit-amount and --limit-per-day must be positive")
    # bank.set_up's settings for a uniform run
    args.mode, args.hot_funding, args.max_transfers = "uniform", None, args.max_ops
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        host, port = check_local(args.base_url)
    except BenchError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(
        f"mixed: {args.clients} clients, {args.wallets} wallets of {args.users} users, "
        f"{args.duration:g} s against {args.base_url}",
        flush=True,
    )
    set_up_started = time.perf_counter()
    try:
        wallets, run_id = set_up(args, host, port)
        limited = wallets[-max(2, args.wallets // 8) :] if args.database_url else []
        if limited:
            set_limits(args.database_url, limited, args.limit_amount, args.limit_per_day)
    except (BenchError, OSError, http.client.HTTPException) as exc:
        print(f"set-up failed: {exc}", file=sys.stderr)
        return 2
    print(
        f"set-up: {len(wallets)} wallets funded, {len(limited)} with limits "
        f"({args.limit_amount} a movement, {args.limit_per_day} a day) in "
        f"{time.perf_counter() - set_up_started:.1f} s",
        flush=True,
    )
    plan = Plan(wallets, args.amount_max, 3 * args.funding, args.max_ops, run_id, args.seed)
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=args.clients) as pool:
        futures = [pool.submit(run_worker, n, plan, host, port, args.timeout) for n in range(args.clients)]
        plan.stop.wait(args.duration)
        plan.stop.set()
        tallies = [future.result() for future in futures]
    elapsed = time.perf_counter() - started
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    client_cpu = (cpu_after.ru_utime + cpu_after.ru_stime) - (cpu_before.ru_utime + cpu_before.ru_stime)

    tally = Tally()
    for t in tallies:
        tally.latencies.extend(t.latencies)
        for kind, values in t.by_kind.items():
            tally.by_kind.setdefault(kind, []).extend(values)
        for name in ("statuses", "outcomes", "deltas", "held", "refunded", "money"):
            getattr(tally, name).update(getattr(t, name))
        tally.unexpected.extend(t.unexpected)
        tally.unresolved.extend(t.unresolved)
    latencies = sorted(tally.latencies)
    answered = sum(tally.outcomes.values())
    reader = Client(host, port, args.timeout)
    unresolved = resolve(tally.unresolved, plan, reader, tally) if tally.unresolved else []
    refusals = Counter()
    for key, n in tally.outcomes.items():
        outcome = key.partition(" ")[2]
        if outcome in EXPECTED_REFUSALS:
            refusals[outcome] += n
    errors_500 = sum(n for key, n in tally.statuses.items() if " 500" in key)
    figures = {
        "scenario": "mixed",
        "base_url": args.base_url,
        "clients": args.clients,
        "users": args.users,
        "wallets": args.wallets,
        "limited_wallets": len(limited),
        "duration_s": args.duration,
        "elapsed_s": round(elapsed, 3),
        "ops": answered,
        "ops_per_s": round(answered / elapsed, 1),
        "requests": len(latencies),
        "latency_ms": {
            "p50": percentile(latencies, 50),
            "p95": percentile(latencies, 95),
            "p99": percentile(latencies, 99),
            "max": percentile(latencies, 100),
        },
        "latency_ms_by_kind": {
            kind: {"requests": len(values), "p50": percentile(values, 50), "p99": percentile(values, 99)}
            for kind, values in sorted((k, sorted(v)) for k, v in tally.by_kind.items())
        },
        "outcomes": dict(sorted(tally.outcomes.items())),
        "refusals": dict(sorted(refusals.items())),
        "statuses": dict(sorted(tally.statuses.items())),
        "server_errors": sum(
            n for key, n in tally.statuses.items() if " 5" in key or " transport " in f" {key} "
        ),
        "errors_500": errors_500,
        "unexpected": sum(n for key, n in tally.outcomes.items() if " unexpected " in key),
        "unresolved_after_retries": len(unresolved),
        "load_generator_cpu_cores": round(client_cpu / elapsed, 2),
        "money": None,
        "error_samples": tally.unexpected[:ERROR_SAMPLES],
    }
    lat = figures["latency_ms"]
    by_kind = Counter()
    for key, n in tally.outcomes.items():
        by_kind[key.split(" ")[0]] += n
    print(
        f"operations: {answered} answered in {elapsed:.1f} s ({figures['ops_per_s']}/s), "
        f"{len(tally.unresolved)} sent again at the end, {len(unresolved)} still unanswered\n"
        f"by kind: {', '.join(f'{k} {v}' for k, v in sorted(by_kind.items()))}\n"
        f"refusals: {', '.join(f'{k} {v}' for k, v in sorted(refusals.items())) or 'none'}\n"
        f"latency ms: p50 {lat['p50']}  p95 {lat['p95']}  p99 {lat['p99']}  max {lat['max']}\n"
        + "p50 / p99 ms by kind: "
        + ", ".join(f"{k} {v['p50']} / {v['p99']}" for k, v in figures["latency_ms_by_kind"].items())
        + "\n"
        f"5xx and transport errors: {figures['server_errors']} (500: {errors_500}); "
        f"unexpected answers: {figures['unexpected']}\n"
        f"load generator CPU: {figures['load_generator_cpu_cores']} cores",
        flush=True,
    )
    for item in tally.unexpected[:ERROR_SAMPLES]:
        print(f"unexpected: {json.dumps(item, default=str)}", file=sys.stderr)

    try:
        seen = read_back(reader, plan, tally.refunded)
    except (BenchError, OSError, http.client.HTTPException) as exc:
        print(f"reading back failed: {exc}", file=sys.stderr)
        write_json(args.json, figures)
        return 2
    finally:
        reader.close()
    money = api_checks(plan, seen, tally, per_wallet=not unresolved)
    if args.database_url:
        try:
            db = database_checks(args.database_url, [w.id for w in wallets])
        except Exception as exc:  # any driver error is a failed read-back
            print(f"database checks failed: {exc}", file=sys.stderr)
            write_json(args.json, figures)
            return 2
        money["database"] = db
        money["reconcile"] = reconcile(args.database_url, timeout=max(120.0, args.duration * 4))
        money["ok"] = (
            money["ok"]
            and db["balances_sum"] == money["expected_total"]
            and not any(db[name] for name in DB_CHECKS)
            and money["reconcile"]["ok"]
        )
    money["ok"] = money["ok"] and not unresolved and errors_500 == 0 and figures["unexpected"] == 0
    figures["money"] = money
    print(
        f"money: total {money['total']} vs funded {money['funded']} + deposited {money['deposited']} "
        f"- withdrawn {money['withdrawn']} - captured out {money['captured_out']} "
        f"= {money['expected_total']}; "
        f"{len(money['wallets_below_held'])} wallets below held, "
        f"{len(money['held_not_sum_of_pending_holds'])} with held != pending holds, "
        + (
            f"{len(money['mismatched_wallets'])} differ from the answers seen, "
            if money["per_wallet_checked"]
            else "per-wallet check skipped (unanswered operations), "
        )
        + f"{len(money['refunds_wrong'])} of {money['refunds_checked']} refunded transfers wrong",
        flush=True,
    )
    if args.database_url:
        db = money["database"]
        print(
            "database: "
            + ", ".join(f"{name} {len(db[name])}" for name in DB_CHECKS)
            + f"; balances {db['balances_sum']}\nreconcile: {money['reconcile']['output'].splitlines()[0]}",
            flush=True,
        )
    print(f"checks: {'OK' if money['ok'] else 'FAILED'}", flush=True)
    for mismatch in money["mismatched_wallets"][:ERROR_SAMPLES]:
        print(f"mismatch: {json.dumps(mismatch)}", file=sys.stderr)
    write_json(args.json, figures)
    return 0 if money["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
