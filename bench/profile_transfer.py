"""Where a transfer request's time goes: py-spy samples of every gunicorn worker under load.

    python bench/profile_transfer.py --duration 15

Starts the suite's production-like server on a fresh database, runs bench/bank.py (uniform,
32 clients) against it and, meanwhile, samples each worker with `py-spy record --idle`
(idle stacks included, so time blocked on PostgreSQL's socket counts). Prints the share of
worker time by layer (inclusive: a sample counts for every layer on its stack) and the top
leaf functions, and writes the figures to bench/results/profile.json (the collapsed stacks
to /tmp/wallet-profile-stacks.txt, for a flame graph).
Needs py-spy (pip install py-spy) and ptrace rights over the workers.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.suite import RESULTS, Server, bank_args, log, parse_args  # noqa: E402

# Inclusive layers: (label, substring of a frame "function (file:line)").
LAYERS = [
    ("waiting for a request (gunicorn accept/select)", "wait (gunicorn/workers/sync.py"),
    ("whole request (gunicorn handle_request)", "handle_request (gunicorn"),
    ("PostgreSQL round trips (psycopg execute/commit)", "psycopg/"),
    ("money service (transfers/services.py)", "transfers/services.py"),
    ("idempotency (transfers/idempotency.py)", "transfers/idempotency.py"),
    ("JWT authentication", "authentication"),
    ("rate limits (ratelimit / redis)", "ratelimit"),
    ("redis client", "redis/"),
    ("DRF request/response machinery", "rest_framework/"),
    ("JSON parse/render", "json/"),
    ("logging", "logging/"),
    ("Prometheus metrics", "prometheus_client/"),
    ("audit", "audit/"),
    ("Django ORM (db/models)", "django/db/models/"),
    ("Django middleware stack", "django/utils/deprecation.py"),
]


def summarise(raw_files: list[Path]) -> dict:
    layers: Counter = Counter()
    leaves: Counter = Counter()
    total = 0
    for path in raw_files:
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack:
                continue
            n = int(count)
            total += n
            for label, marker in LAYERS:
                if marker in stack:
                    layers[label] += n
            leaves[stack.split(";")[-1]] += n
    busy = total - layers[LAYERS[0][0]]
    return {
        "samples": total,
        "busy_samples": busy,
        "layers_pct_of_all": {k: round(100 * layers[k] / total, 1) for k, _ in LAYERS if total},
        "layers_pct_of_busy": {k: round(100 * layers[k] / busy, 1) for k, _ in LAYERS[1:] if busy},
        "top_leaves_pct_of_all": [(leaf, round(100 * n / total, 1)) for leaf, n in leaves.most_common(15)],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--port", type=int, default=8061)
    parser.add_argument("--clients", type=int, default=32)
    own = parser.parse_args()
    args = parse_args(
        ["--workers", str(own.workers), "--port", str(own.port), "--database", "wallet_profile"]
    )
    with tempfile.TemporaryDirectory(prefix="wallet-profile-") as tmp, Server(args, Path(tmp)) as server:
        workdir = Path(tmp)
        out = workdir / "bank.json"
        load = subprocess.Popen(
            [
                sys.executable,
                str(REPO / "bench" / "bank.py"),
                *bank_args(server, "uniform", own.clients, own.duration + 12, out),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(10)  # bank.py's set-up (registrations hash passwords)
        raws, spies = [], []
        for pid in server.worker_pids():
            raw = workdir / f"worker-{pid}.txt"
            raws.append(raw)
            spies.append(
                subprocess.Popen(
                    [
                        str(Path(sys.executable).parent / "py-spy"),
                        "record",
                        "--pid",
                        str(pid),
                        "--duration",
                        str(int(own.duration)),
                        "--rate",
                        "200",
                        "--idle",
                        "--format",
                        "raw",
                        "--output",
                        str(raw),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        for spy in spies:
            spy.wait(timeout=own.duration + 60)
        load.wait(timeout=own.duration + 120)
        summary = summarise([r for r in raws if r.exists()])
        try:
            summary["load"] = {k: json.loads(out.read_text())[k] for k in ("transfers_per_s", "latency_ms")}
        except (OSError, ValueError, KeyError):
            summary["load"] = None
        stacks = (
            Path(tempfile.gettempdir()) / "wallet-profile-stacks.txt"
        )  # collapsed stacks, for flame graphs
        stacks.write_text("".join(r.read_text() for r in raws if r.exists()))
    log(f"transfers under the profiler: {summary['load']}")
    print(f"samples: {summary['samples']} (busy {summary['busy_samples']})")
    print("share of busy worker time by layer (inclusive):")
    for label, pct in summary["layers_pct_of_busy"].items():
        print(f"  {pct:>5}%  {label}")
    print("top leaf frames (% of all samples, idle included):")
    for leaf, pct in summary["top_leaves_pct_of_all"]:
        print(f"  {pct:>5}%  {leaf}")
    (RESULTS / "profile.json").write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
