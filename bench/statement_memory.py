"""A 1,000,000-entry statement as CSV: the web worker's memory while it streams, and the cost
of a balance at an instant on that wallet.

    python bench/statement_memory.py                    # about 3-4 minutes (most of it the load)
    python bench/statement_memory.py --entries 100000   # about 30 s

It creates a fresh database (--database, dropped at the end unless --keep-db), migrates it
and starts gunicorn with production settings and ONE sync worker (bench/suite.py's Server),
so every request below reaches the worker whose memory is measured. Then:

1. one owner and one USD wallet through the API, no deposit;
2. the wallet gets --entries deposit transfers of 1 cent, one second apart, in one
   transaction of set-based INSERTs (bench/scenarios.py's large-ledger load, with spread
   timestamps). The ledger's triggers stay on: at COMMIT PostgreSQL checks every transfer's
   legs and every entry's running balance;
3. warm-up: a small statement as CSV and JSON; the worker's peak RSS (VmHWM) is read;
4. the whole history as CSV (`?format=csv`), read by the client as it arrives and checked
   (row count, every running balance, opening + in - out = closing); the worker's VmRSS is
   sampled every 100 ms meanwhile, and its VmHWM read after;
5. a tenth of the history as CSV, the same way, for comparison;
6. `GET /balance?at=` at the first entry, the middle, the last, before the first and now
   (p50/p95 of 50 each), and the plan of the query with EXPLAIN ANALYZE;
7. a JSON statement page for a one-day period and for the whole history.

Figures go to stdout and bench/results/statement_memory.json. Loopback only.
"""

from __future__ import annotations

import argparse
import csv
import http.client
import io
import json
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.bank import Client, percentile  # noqa: E402
from bench.scenarios import API, make_accounts  # noqa: E402
from bench.suite import RESULTS, Server, log  # noqa: E402

# The large-ledger load (bench/scenarios.py BULK_SQL), each deposit a second after the one before.
LOAD_SQL = [
    "SET LOCAL work_mem = '256MB'",
    "CREATE TEMP TABLE bulk ON COMMIT DROP AS"
    " SELECT g, gen_random_uuid() AS t, %(start)s::timestamptz + g * interval '1 second' AS at"
    " FROM generate_series(1, %(n)s) g",
    """INSERT INTO transfers_transfer (id, kind, source_wallet_id, destination_wallet_id, amount, currency,
                                      status, reference, reference_wallet_id, description, initiated_by_id,
                                      created_at)
       SELECT t, 'deposit', %(sys)s, %(w)s, 1, 'USD', 'completed', NULL, %(w)s, 'bulk', %(user)s, at
         FROM bulk ORDER BY g""",
    """INSERT INTO transfers_ledgerentry (transfer_id, wallet_id, type, amount, balance_after, created_at)
       SELECT b.t, CASE l.leg WHEN 0 THEN %(sys)s ELSE %(w)s END, 'deposit',
              CASE l.leg WHEN 0 THEN -1 ELSE 1 END,
              CASE l.leg WHEN 0 THEN NULL ELSE %(base)s + b.g END, b.at
         FROM bulk b CROSS JOIN (VALUES (0), (1)) AS l(leg) ORDER BY b.g, l.leg""",
    "UPDATE wallets_wallet SET balance = %(base)s + %(n)s, updated_at = now() WHERE id = %(w)s",
]


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def download_csv(port: int, path: str, token: str, worker: int) -> dict:
    """Stream a CSV statement, check it row by row, and sample the worker's VmRSS meanwhile."""
    samples: list[int] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            samples.append(status_kb(worker, "VmRSS"))
            done.wait(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    conn.request("GET", path, headers={"Authorization": f"Bearer {token}", "Accept": "text/csv"})
    response = conn.getresponse()
    headers = dict(response.getheaders())
    if response.status != 200:
        done.set()
        raise RuntimeError(f"{path}: {response.status} {response.read()[:300]!r}")
    counting = _Counting(response)
    reader = csv.reader(io.TextIOWrapper(counting, encoding="utf-8", newline=""))
    header = next(reader)
    opening = next(reader)
    balance = int(opening[5])
    entries = total_in = total_out = 0
    chain_ok = True
    closing = None
    for row in reader:
        if row[0] == "closing":
            closing = row
            continue
        amount = int(row[4])
        balance += amount
        chain_ok &= balance == int(row[5])
        entries += 1
        total_in += max(amount, 0)
        total_out += max(-amount, 0)
    elapsed = time.perf_counter() - started
    done.set()
    sampler.join()
    conn.close()
    closing_balance = int(closing[5]) if closing else None
    return {
        "seconds": round(elapsed, 2),
        "megabytes": round(counting.size / 1e6, 1),
        "entries": entries,
        "header": header,
        "running_balances_ok": chain_ok,
        "opening_plus_in_minus_out_is_closing": int(opening[5]) + total_in - total_out == closing_balance,
        "headers_agree": (
            headers.get("Statement-Count") == str(entries)
            and headers.get("Statement-Total-In") == str(total_in)
            and headers.get("Statement-Closing-Balance") == str(closing_balance)
        ),
        "closing_balance": closing_balance,
        "worker_rss_mb_during": {
            "min": round(min(samples) / 1024, 1),
            "max": round(max(samples) / 1024, 1),
            "samples": len(samples),
        },
        "worker_peak_rss_mb_after": round(status_kb(worker, "VmHWM") / 1024, 1),
    }


class _Counting(io.RawIOBase):
    """The response body as a raw stream, counting its bytes."""

    def __init__(self, response: http.client.HTTPResponse) -> None:
        self.response = response
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.response.read(len(buffer))
        self.size += len(data)
        buffer[: len(data)] = data
        return len(data)


def timed_gets(client: Client, path: str, token: str, n: int) -> tuple[dict, dict]:
    latencies = []
    for _ in range(n):
        t0 = time.perf_counter()
        status, data = client.send("GET", path, token=token)
        latencies.append(time.perf_counter() - t0)
        if status != 200:
            raise RuntimeError(f"{path}: {status} {data[:300]!r}")
    latencies.sort()
    return {"p50_ms": percentile(latencies, 50), "p95_ms": percentile(latencies, 95)}, json.loads(data)


def _nodes(plan: dict) -> str:
    here = plan["Node Type"] + (f" {plan['Index Name']}" if "Index Name" in plan else "")
    rows = f" rows={plan['Actual Rows']}" if "Index Name" in plan else ""
    children = [_nodes(p) for p in plan.get("Plans", [])]
    return here + rows + (f" ({', '.join(children)})" if children else "")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--database", default="wallet_bench_statement")
    parser.add_argument("--port", type=int, default=8063)
    parser.add_argument("--keep-db", action="store_true")
    args = parser.parse_args(argv)
    if not 1000 <= args.entries <= 5_000_000:
        parser.error("--entries must be between 1,000 and 5,000,000")
    # What bench/suite.py's Server reads: one sync worker, production settings.
    args.workers, args.worker_class, args.threads, args.server, args.lock_timeout_ms = (
        1,
        "sync",
        1,
        "gunicorn",
        5000,
    )
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report: dict = {"entries": args.entries, "when": datetime.now(UTC).isoformat(timespec="seconds")}
    with tempfile.TemporaryDirectory() as tmp, Server(args, Path(tmp)) as server:
        (worker,) = server.worker_pids()
        (account,) = make_accounts("127.0.0.1", args.port, users=1, wallets=1, funding=0)
        token, wallet = account.owner.access, account.id
        start = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=args.entries + 3600)
        # The USD system wallet (created on first use; the wallet was opened without a deposit,
        # so that its only entries are the load's).
        server.manage(
            "shell", "-c", "from wallets.services import system_wallet_id; system_wallet_id(currency='USD')"
        )
        with psycopg.connect(server.database_url, autocommit=True) as conn:
            sys_id, user_id = conn.execute(
                "SELECT s.id, w.owner_id FROM wallets_wallet s, wallets_wallet w"
                " WHERE s.kind = 'system' AND s.currency = 'USD' AND w.id = %s",
                [wallet],
            ).fetchone()
            t0 = time.perf_counter()
            with conn.transaction():
                (base,) = conn.execute(
                    "SELECT balance FROM wallets_wallet WHERE id = %s FOR UPDATE", [wallet]
                ).fetchone()
                params = {
                    "n": args.entries,
                    "sys": sys_id,
                    "w": wallet,
                    "user": user_id,
                    "base": base,
                    "start": start,
                }
                for statement in LOAD_SQL:
                    conn.execute(statement, params)
                inserted = time.perf_counter() - t0
            report["load_s"] = {
                "inserts": round(inserted, 1),
                "with_commit": round(time.perf_counter() - t0, 1),
            }
            conn.execute("VACUUM ANALYZE transfers_ledgerentry")
            conn.execute("ANALYZE transfers_transfer")
            log(f"loaded {args.entries:,} entries in {report['load_s']}")

            client = Client("127.0.0.1", args.port, 60.0)
            statement = f"{API}/wallets/{wallet}/statement"
            early = f"?from={iso(start)}&to={iso(start + timedelta(hours=1))}"
            client.send("GET", statement + early + "&format=csv", token=token)
            client.send("GET", statement + early, token=token)
            report["worker_peak_rss_mb_after_warm_up"] = round(status_kb(worker, "VmHWM") / 1024, 1)

            tenth = f"?to={iso(start + timedelta(seconds=args.entries // 10 + 1))}&format=csv"
            report["csv_tenth"] = download_csv(args.port, statement + tenth, token, worker)
            log(f"CSV of a tenth: {report['csv_tenth']}")
            report["csv_whole"] = download_csv(args.port, statement + "?format=csv", token, worker)
            log(f"CSV of the whole history: {report['csv_whole']}")

            balance = f"{API}/wallets/{wallet}/balance"
            middle = start + timedelta(seconds=args.entries // 2, milliseconds=500)
            instants = {
                "before_first": start - timedelta(days=1),
                "first": start + timedelta(seconds=1),
                "middle": middle,
                "last": start + timedelta(seconds=args.entries),
                "now": None,
            }
            report["balance_at"] = {}
            for name, at in instants.items():
                path = balance + (f"?at={iso(at)}" if at else "")
                figures, body = timed_gets(client, path, token, 50)
                figures["balance"] = body["balance"]
                if at is not None:
                    sql = (
                        (REPO / "transfers" / "sql" / "balance_at.sql")
                        .read_text()
                        .format(
                            entry="SELECT id, balance_after FROM transfers_ledgerentry WHERE wallet_id = w.id"
                            " AND created_at <= %(at)s ORDER BY created_at DESC, id DESC LIMIT 1"
                        )
                    )
                    (raw,) = conn.execute(
                        f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}",
                        {"wallet": wallet, "owner": user_id, "at": at},
                    ).fetchone()
                    figures["sql_ms"] = round(raw[0]["Execution Time"], 3)
                    figures["plan"] = _nodes(raw[0]["Plan"])
                report["balance_at"][name] = figures
            log(f"balance at: {json.dumps(report['balance_at'], indent=1)}")

            day = f"?from={iso(middle)}&to={iso(middle + timedelta(days=1))}&limit=100"
            report["json_statement"] = {
                "one_day_first_page": timed_gets(client, statement + day, token, 10)[0],
                "whole_history_first_page": timed_gets(client, statement + "?limit=100", token, 3)[0],
            }
            log(f"JSON statement pages: {report['json_statement']}")
            client.close()
        report["worker_peak_rss_mb_final"] = round(status_kb(worker, "VmHWM") / 1024, 1)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "statement_memory.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    checks = [
        report[k][c] for k in ("csv_tenth", "csv_whole") for c in ("running_balances_ok", "headers_agree")
    ]
    return 0 if all(checks) and report["csv_whole"]["entries"] == args.entries else 1


if __name__ == "__main__":
    sys.exit(main())
