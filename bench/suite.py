"""The benchmark suite: a production-like server, every scenario, the SQL ceiling, one report.

    python bench/suite.py            # about 8-10 minutes
    python bench/suite.py --quick    # about 2 minutes, shorter runs and a smaller ledger

It creates a fresh PostgreSQL database (--database, dropped at the end), migrates it, runs
collectstatic and starts gunicorn with gunicorn.conf.py (or, with --server granian, granian's
WSGI server) and production settings (random
keys, JSON logs to a file, Prometheus multiprocess dir, Redis db 12, rate limits raised
through settings, never disabled). Then, against it:

- the SQL ceiling (bench/ceiling.py) and the API (bench/bank.py), uniform and hot, with the
  same client count;
- a deposit storm, reads during transfers and the large ledger (bench/scenarios.py);
- throughput against client count (1, 4, 16, 32, 64), uniform and hot, plotted to
  bench/results/throughput.png;
- peak RSS of each server worker (VmHWM);
- 200 clients straight to PostgreSQL and through PgBouncer in transaction mode
  (ops/ha/pgbouncer.ini; skipped, saying why, when pgbouncer is not installed).

Each scenario prints ops/s, p50/p95/p99 ms, statuses and its money check; the end prints
the ratio table and writes every figure to bench/results/latest.json. Exit status 1 if a
money check failed, 2 if the server could not be started. Loopback only.
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path

import psycopg

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench import scenarios  # noqa: E402

sys.path.insert(0, str(REPO / "ops" / "ha"))
from cluster import Bouncer, HaError, find_tool, pick_free_ports  # noqa: E402

RESULTS = REPO / "bench" / "results"
BIN = Path(sys.executable).parent
PG = "postgres://postgres@127.0.0.1:5432"
RAISED = "1000000/m"
PGBOUNCER_CLIENTS = 200
PGBOUNCER_POOL = 20
PGBOUNCER_ROUNDS = 3


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


class Server:
    """gunicorn with production settings on a fresh database; a context manager."""

    def __init__(
        self,
        args: argparse.Namespace,
        workdir: Path,
        *,
        port: int | None = None,
        extra_env: dict[str, str] | None = None,
        owns_database: bool = True,
        name: str = "server",
    ) -> None:
        self.args = args
        self.workdir = workdir
        self.port = port or args.port
        self.owns_database = owns_database  # creates, migrates and finally drops it
        self.database_url = f"{PG}/{args.database}"
        prom = workdir / f"prometheus-{name}"
        prom.mkdir()
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "wallet_project.settings.production",
            "DATABASE_URL": self.database_url,
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(48),
            "JWT_SIGNING_KEY": secrets.token_urlsafe(48),
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DJANGO_SECURE_SSL_REDIRECT": "false",
            "JWT_ACCESS_MINUTES": "30",
            "LOG_FORMAT": "json",
            "PROMETHEUS_MULTIPROC_DIR": str(prom),
            "REDIS_URL": "redis://127.0.0.1:6379/12",
            "RATE_LIMIT_USER": RAISED,
            "RATE_LIMIT_MONEY": RAISED,
            "RATE_LIMIT_WALLET_OUTGOING": RAISED,
            "RATE_LIMIT_ANON": RAISED,
            "RATE_LIMIT_LOGIN_IP": RAISED,
            "RATE_LIMIT_LOGIN_USER": RAISED,
            "WEB_CONCURRENCY": str(args.workers),
            "GUNICORN_WORKER_CLASS": args.worker_class,
            "GUNICORN_THREADS": str(args.threads),
            "GUNICORN_BIND": f"127.0.0.1:{self.port}",
            "DB_LOCK_TIMEOUT_MS": str(args.lock_timeout_ms),
            # Tracing as in production by default: no exporter configured, so no spans.
            **{k: "" for k in os.environ if k.startswith("OTEL_")},
            **(extra_env or {}),
        }
        self.log_path = workdir / f"{name}.log"
        self.proc: subprocess.Popen | None = None

    def manage(self, *command: str) -> None:
        subprocess.run(
            [sys.executable, "manage.py", *command], cwd=REPO, env=self.env, check=True, capture_output=True
        )

    def __enter__(self) -> Server:
        if self.owns_database:
            with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.args.database}" WITH (FORCE)')
                conn.execute(f'CREATE DATABASE "{self.args.database}"')
            started = time.perf_counter()
            self.manage("migrate", "--noinput", "-v", "0")
            self.manage("collectstatic", "--noinput", "-v", "0")
            log(
                f"database {self.args.database} migrated, static collected"
                f" in {time.perf_counter() - started:.1f} s"
            )
        logfile = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.command(),
            cwd=REPO,
            env=self.env,
            stdout=logfile,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=2) as response:
                    if response.status == 200:
                        log(
                            f"{self.args.server} ready on :{self.port}: {self.args.workers} "
                            f"{self.args.worker_class} workers x {self.args.threads} threads"
                            f" (log {self.log_path})"
                        )
                        return self
            except OSError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.5)
        self.__exit__(None, None, None)
        raise SystemExit(f"the server did not become ready; see {self.log_path}")

    def command(self) -> list[str]:
        if self.args.server == "granian":
            return [
                str(BIN / "granian"),
                "--interface",
                "wsgi",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                str(self.args.workers),
                "--blocking-threads",
                str(self.args.threads),
                "--no-access-log",
                "wallet_project.wsgi:application",
            ]
        return [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "wallet_project.wsgi"]

    def worker_pids(self) -> list[int]:
        assert self.proc is not None
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        return [int(p) for p in path.read_text().split()] if path.exists() else []

    def worker_peak_rss_mb(self) -> dict[str, float]:
        peaks = {}
        for pid in self.worker_pids():
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks[str(pid)] = round(int(line.split()[1]) / 1024, 1)
        return peaks

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        if self.owns_database and not self.args.keep_db:
            with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.args.database}" WITH (FORCE)')


def bank(server: Server, mode: str, clients: int, duration: float, workdir: Path) -> dict:
    out = workdir / f"bank-{mode}-{clients}-{secrets.token_hex(3)}.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "bank.py"), *bank_args(server, mode, clients, duration, out)],
        capture_output=True,
        text=True,
        timeout=duration + 300,
        check=False,
    )
    try:
        figures = json.loads(out.read_text())
    except (OSError, ValueError):
        return {"scenario": mode, "error": (proc.stdout + proc.stderr)[-800:], "exit": proc.returncode}
    lat = figures["latency_ms"]
    return {
        "scenario": mode,
        "clients": clients,
        "wallets": figures["wallets"],
        "elapsed_s": figures["elapsed_s"],
        "ops": figures["transfers_ok"],
        "ops_per_s": figures["transfers_per_s"],
        "p50_ms": lat["p50"],
        "p95_ms": lat["p95"],
        "p99_ms": lat["p99"],
        "statuses": figures["statuses"],
        "server_errors": figures["server_errors"],
        "refused": figures["transfers_refused"],
        "load_generator_cpu_cores": figures["load_generator_cpu_cores"],
        "money": figures["money"],
        "exit": proc.returncode,
    }


def mixed(server: Server, clients: int, duration: float, workdir: Path) -> dict:
    """bench/mixed.py: every kind of money operation at once, the books checked in the API, in
    the database and by `manage.py reconcile` (run with the server's environment)."""
    out = workdir / f"mixed-{clients}-{secrets.token_hex(3)}.json"
    command = [
        sys.executable,
        str(REPO / "bench" / "mixed.py"),
        "--base-url",
        f"http://127.0.0.1:{server.port}",
        "--database-url",
        server.database_url,
        "--clients",
        str(clients),
        "--users",
        str(min(8, clients)),
        "--duration",
        str(duration),
        "--json",
        str(out),
    ]
    proc = subprocess.run(
        command, cwd=REPO, env=server.env, capture_output=True, text=True, timeout=duration + 600, check=False
    )
    try:
        figures = json.loads(out.read_text())
    except (OSError, ValueError):
        return {"scenario": "mixed", "error": (proc.stdout + proc.stderr)[-800:], "exit": proc.returncode}
    lat = figures["latency_ms"]
    if figures["money"] is None:
        figures["money"] = {"ok": False}
    return {
        "scenario": "mixed",
        "clients": clients,
        "wallets": figures["wallets"],
        "elapsed_s": figures["elapsed_s"],
        "ops": figures["ops"],
        "ops_per_s": figures["ops_per_s"],
        "p50_ms": lat["p50"],
        "p95_ms": lat["p95"],
        "p99_ms": lat["p99"],
        "latency_ms_by_kind": figures["latency_ms_by_kind"],
        "outcomes": figures["outcomes"],
        "refusals": figures["refusals"],
        "statuses": figures["refusals"],
        "server_errors": figures["server_errors"],
        "money": figures["money"],
        "exit": proc.returncode,
    }


def bank_args(server: Server, mode: str, clients: int, duration: float, out: Path) -> list[str]:
    return [
        "--base-url",
        f"http://127.0.0.1:{server.port}",
        "--mode",
        mode,
        "--clients",
        str(clients),
        "--wallets",
        "64",
        "--users",
        str(min(8, clients)),
        "--duration",
        str(duration),
        "--json",
        str(out),
    ]


def ceiling(server: Server, mode: str, clients: int, duration: float) -> dict:
    env = {k: v for k, v in server.env.items() if k != "DJANGO_SETTINGS_MODULE"}
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "ceiling.py"),
            "--database-url",
            server.database_url,
            "--mode",
            mode,
            "--clients",
            str(clients),
            "--duration",
            str(duration),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=duration + 300,
        check=False,
    )
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return {"scenario": f"sql-ceiling-{mode}", "error": (proc.stdout + proc.stderr)[-800:]}


def pgbouncer(args: argparse.Namespace, server: Server, workdir: Path) -> dict:
    """PGBOUNCER_CLIENTS clients sending uniform transfers three ways: straight to PostgreSQL
    as usual (psycopg prepares statements from their 5th run), straight with preparing off
    (DB_PREPARE_THRESHOLD=0), and through PgBouncer in transaction mode with preparing off,
    which is what PgBouncer 1.18 (Debian 12) needs (from 1.21, max_prepared_statements would
    let it keep preparing). Same worker count, same database, the three servers up at once
    and run in turn for PGBOUNCER_ROUNDS rounds, so a busy machine's drift falls on all three;
    each variant's figures are the medians of its rounds."""
    if not find_tool("pgbouncer"):
        return {"skipped": "pgbouncer is not installed (scripts/ensure_ha_tools.sh installs it)"}
    clients, rounds = PGBOUNCER_CLIENTS, PGBOUNCER_ROUNDS
    seconds = max(3.0, args.duration / rounds)
    figures: dict = {"clients": clients, "rounds": rounds, "seconds_per_round": seconds}
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        # PgBouncer cannot forward the app's `options` startup parameter (its lock_timeout).
        conn.execute(f'ALTER DATABASE "{args.database}" SET lock_timeout = {int(args.lock_timeout_ms)}')
    password = secrets.token_hex(16)
    bouncer = Bouncer(None, pick_free_ports(1)[0], args.database, pool_size=PGBOUNCER_POOL, log=log)
    runs: dict[str, list[dict]] = {"direct": [], "direct_no_prepare": [], "pgbouncer": []}
    try:
        bouncer.set_users({"postgres": password})
        bouncer.start("127.0.0.1", 5432)
        pooled_env = {
            "DATABASE_URL": bouncer.url("postgres", password),
            "DB_PREPARE_THRESHOLD": "0",
            "DB_DISABLE_SERVER_SIDE_CURSORS": "true",
        }
        with (
            Server(
                args,
                workdir,
                port=args.port + 20,
                extra_env={"DB_PREPARE_THRESHOLD": "0"},
                owns_database=False,
                name="direct-no-prepare",
            ) as plain,
            Server(
                args,
                workdir,
                port=args.port + 21,
                extra_env=pooled_env,
                owns_database=False,
                name="pgbouncer",
            ) as pooled,
        ):
            targets = {"direct": server, "direct_no_prepare": plain, "pgbouncer": pooled}
            for n in range(rounds):
                for name, target in targets.items():
                    result = bank(target, "uniform", clients, seconds, workdir)
                    runs[name].append(result)
                    show({**result, "scenario": f"{clients} clients {name} #{n + 1}"})
            # While the app still holds its connections: clients on PgBouncer, servers behind it.
            pool = next(row for row in bouncer.admin("SHOW POOLS") if row["database"] == args.database)
        figures["pgbouncer_pool"] = {
            "pool_size": PGBOUNCER_POOL,
            **{k: pool[k] for k in ("cl_active", "cl_waiting", "sv_active", "sv_idle", "sv_used")},
        }
    except HaError as exc:
        runs["pgbouncer"].append({"scenario": "pgbouncer", "error": str(exc)})
    finally:
        bouncer.stop()
    for name, results in runs.items():
        figures[name] = median_of(results, name)
        show({**figures[name], "scenario": f"{clients} clients {name} (median)"})
    figures["pgbouncer_vs_direct"] = ratio(figures["pgbouncer"], figures["direct"])
    figures["pgbouncer_vs_direct_no_prepare"] = ratio(figures["pgbouncer"], figures["direct_no_prepare"])
    log(
        f"pgbouncer: {figures['pgbouncer_vs_direct']}x direct, "
        f"{figures['pgbouncer_vs_direct_no_prepare']}x direct without prepared statements (medians)"
    )
    return figures


def median_of(results: list[dict], name: str) -> dict:
    """One variant's rounds as one result: median rate and latencies, every money check."""
    failed = [r for r in results if "error" in r]
    if failed or not results:
        return {"scenario": name, "error": failed[0]["error"] if failed else "no run"}
    middle = len(results) // 2
    merged = {
        key: sorted(r[key] for r in results)[middle] for key in ("ops_per_s", "p50_ms", "p95_ms", "p99_ms")
    }
    return {
        "scenario": name,
        "clients": results[0]["clients"],
        **merged,
        "ops_per_s_rounds": [r["ops_per_s"] for r in results],
        "ops": sum(r["ops"] for r in results),
        "statuses": dict(sum((Counter(r["statuses"]) for r in results), Counter())),
        "server_errors": sum(r["server_errors"] for r in results),
        "money": {"ok": all((r.get("money") or {}).get("ok") for r in results)},
    }


def inprocess(args: argparse.Namespace) -> dict:
    """bench/inprocess.py in its own process: CPU per request against the framework's floor."""
    out = RESULTS / "inprocess.json"
    requests = "500" if args.quick else "2000"
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "inprocess.py"), "--requests", requests, "--json", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    print(proc.stdout.strip().split("\n\n", 1)[-1], flush=True)
    try:
        return json.loads(out.read_text())
    except (OSError, ValueError):
        return {"error": (proc.stdout + proc.stderr)[-800:]}


class _OtlpSink(http.server.BaseHTTPRequestHandler):
    """A stand-in collector on loopback: accepts OTLP/HTTP exports and counts them."""

    received = 0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).received += 1
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:  # quiet
        pass


def tracing(args: argparse.Namespace, workdir: Path) -> dict:
    """Uniform transfers against three servers that differ only in tracing, one after another:
    the SDK off, no exporter configured (the production default), and every span exported
    over OTLP/HTTP to a local sink (OTEL_TRACES_SAMPLER=always_on)."""
    sink = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _OtlpSink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    variants = {
        "sdk_off": {"OTEL_SDK_DISABLED": "true"},
        "no_exporter": {},
        "exporter_always_on": {
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{sink.server_address[1]}",
            "OTEL_TRACES_SAMPLER": "always_on",
        },
    }
    figures: dict = {}
    try:
        for n, (name, env) in enumerate(variants.items()):
            port = args.port + 10 + n
            with Server(
                args, workdir, port=port, extra_env=env, owns_database=False, name=f"tracing-{name}"
            ) as s:
                result = bank(s, "uniform", args.clients, args.duration, workdir)
            figures[name] = result
            show({**result, "scenario": f"tracing {name}"})
    finally:
        sink.shutdown()
    figures["exports_received"] = _OtlpSink.received
    base = figures["sdk_off"].get("ops_per_s")
    for name in ("no_exporter", "exporter_always_on"):
        value = figures[name].get("ops_per_s")
        figures[f"{name}_ratio"] = round(value / base, 3) if base and value else None
    log(
        f"tracing: no exporter {figures['no_exporter_ratio']}x and exporting every span "
        f"{figures['exporter_always_on_ratio']}x the throughput with the SDK off "
        f"({figures['exports_received']} OTLP exports received)"
    )
    return figures


def show(figures: dict) -> None:
    if "error" in figures:
        log(f"{figures.get('scenario')}: FAILED {figures['error']}")
        return
    money = figures.get("money")
    verdict = "" if money is None else f"  money {'OK' if money.get('ok') else 'FAILED'}"
    log(
        f"{figures['scenario']:<22} {figures.get('clients', ''):>3} clients  "
        f"{figures['ops_per_s']:>8} ops/s  "
        f"p50 {figures['p50_ms']} p95 {figures['p95_ms']} p99 {figures['p99_ms']} ms  "
        f"statuses {figures.get('statuses')}{verdict}"
    )


def ratio(a: dict, b: dict) -> float | None:
    try:
        return round(a["ops_per_s"] / b["ops_per_s"], 2)
    except (KeyError, TypeError, ZeroDivisionError):
        return None


def plot(sweep: dict, ceilings: dict, path: Path, title: str) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: no plot"
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for mode, marker, color in (("uniform", "o", "tab:blue"), ("hot", "s", "tab:orange")):
        points = sorted((int(c), f.get("ops_per_s", 0)) for c, f in sweep.get(mode, {}).items())
        if points:
            xs, ys = [p[0] for p in points], [p[1] for p in points]
            ax.plot(xs, ys, marker=marker, color=color, label=f"API {mode}")
        ceil = ceilings.get(mode, {})
        if ceil.get("ops_per_s"):
            ax.axhline(
                ceil["ops_per_s"],
                linestyle="--",
                linewidth=1,
                color=color,
                label=f"SQL ceiling {mode} ({ceil.get('clients', '?')} clients)",
            )
    ax.set_xscale("log", base=2)
    ax.set_xticks([1, 4, 16, 32, 64])
    ax.set_xticklabels(["1", "4", "16", "32", "64"])
    ax.set_xlabel("concurrent clients")
    ax.set_ylabel("transfers/s")
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="about 2 minutes: short runs, 100,000-entry ledger"
    )
    parser.add_argument("--port", type=int, default=8060)
    parser.add_argument("--database", default="wallet_suite")
    parser.add_argument("--keep-db", action="store_true", help="do not drop the database at the end")
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="server worker processes (WEB_CONCURRENCY; 0: gunicorn.conf.py's)",
    )
    parser.add_argument("--server", default="gunicorn", choices=("gunicorn", "granian"))
    parser.add_argument("--worker-class", default="sync", choices=("sync", "gthread"), help="gunicorn only")
    parser.add_argument(
        "--threads", type=int, default=1, help="threads per worker (gthread; granian: blocking threads)"
    )
    parser.add_argument(
        "--lock-timeout-ms",
        type=int,
        default=5000,
        help="the servers' DB_LOCK_TIMEOUT_MS (production default 5000)",
    )
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--duration", type=float, help="seconds per main scenario (default 15, quick 5)")
    parser.add_argument("--sweep", default="1,4,16,32,64", help="client counts for the curve ('' skips it)")
    parser.add_argument("--sweep-duration", type=float, help="seconds per curve point (default 5, quick 3)")
    parser.add_argument("--ledger-size", type=int, help="entries in the large ledger (default 1,000,000)")
    parser.add_argument(
        "--only",
        default="",
        help="a subset: inprocess,ceiling,uniform,hot,mixed,deposits,reads,stall,tracing,pgbouncer,"
        "sweep,ledger",
    )
    parser.add_argument("--json", default=str(RESULTS / "latest.json"))
    parser.add_argument("--plot", default=str(RESULTS / "throughput.png"))
    args = parser.parse_args(argv)
    args.duration = args.duration or (5.0 if args.quick else 15.0)
    args.sweep_duration = args.sweep_duration or (3.0 if args.quick else 5.0)
    args.ledger_size = args.ledger_size or (100_000 if args.quick else 1_000_000)
    if args.quick and args.sweep == "1,4,16,32,64":
        args.sweep = "1,16,64"
    args.only = {x for x in args.only.split(",") if x}
    # What gunicorn.conf.py starts by default: two sync workers per core.
    args.workers = args.workers or 2 * (os.cpu_count() or 1)
    if not 1 <= args.ledger_size <= 5_000_000 or not 0 < args.duration <= 120:
        parser.error("--ledger-size must be in 1..5,000,000 and --duration in (0, 120]")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wanted = (lambda name: name in args.only) if args.only else (lambda name: True)
    report: dict = {
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "uname": " ".join(os.uname())},
        "settings": {
            k: getattr(args, k)
            for k in (
                "server",
                "workers",
                "worker_class",
                "threads",
                "clients",
                "duration",
                "sweep_duration",
                "ledger_size",
            )
        },
        "scenarios": {},
        "ceiling": {},
        "sweep": {"uniform": {}, "hot": {}},
    }
    run_started = time.perf_counter()
    if wanted("inprocess"):
        report["inprocess"] = inprocess(args)
    with tempfile.TemporaryDirectory(prefix="wallet-suite-") as tmp, Server(args, Path(tmp)) as server:
        workdir = Path(tmp)
        for mode in ("uniform", "hot"):
            if wanted("ceiling"):
                report["ceiling"][mode] = ceiling(server, mode, args.clients, args.duration)
                show(report["ceiling"][mode])
            if wanted(mode):
                report["scenarios"][mode] = bank(server, mode, args.clients, args.duration, workdir)
                show(report["scenarios"][mode])
        if wanted("mixed"):
            report["scenarios"]["mixed"] = mixed(server, args.clients // 2, args.duration, workdir)
            show(report["scenarios"]["mixed"])
        if wanted("deposits"):
            try:
                figures = scenarios.deposit_storm("127.0.0.1", server.port, args.clients, 64, args.duration)
            except (RuntimeError, OSError) as exc:
                figures = {"scenario": "deposit-storm", "error": str(exc)}
            report["scenarios"]["deposit-storm"] = figures
            show(figures)
        if wanted("reads"):
            out = workdir / "reads-transfers.json"
            cmd = [
                sys.executable,
                str(REPO / "bench" / "bank.py"),
                *bank_args(server, "uniform", args.clients // 2, args.duration + 2, out),
            ]
            try:
                figures = scenarios.reads("127.0.0.1", server.port, args.clients // 2, 32, args.duration, cmd)
            except (RuntimeError, OSError) as exc:
                figures = {"scenario": "reads", "error": str(exc)}
            report["scenarios"]["reads"] = figures
            show(figures)
            if "concurrent_transfers" in figures and "transfers_per_s" in figures["concurrent_transfers"]:
                t = figures["concurrent_transfers"]
                log(
                    f"  (transfers meanwhile: {t['transfers_per_s']}/s, p99 {t['latency_ms']['p99']} ms, "
                    f"money {'OK' if t['money'] and t['money']['ok'] else 'FAILED'})"
                )
        if wanted("stall"):
            try:
                figures = scenarios.lock_stall(
                    "127.0.0.1", server.port, server.database_url, args.clients, 32, args.duration
                )
            except (RuntimeError, OSError, psycopg.Error) as exc:
                figures = {"scenario": "lock-stall", "error": str(exc)}
            report["scenarios"]["lock-stall"] = figures
            show(figures)
            if "bystander_ratio" in figures:
                log(
                    f"  bystanders {figures['bystander_transfers_per_s']} transfers/s "
                    f"(ratio {figures['bystander_ratio']}), victim transfers during the stall: "
                    f"{figures['victim_transfers_during_stall']}"
                )
        if wanted("tracing"):
            report["tracing"] = tracing(args, workdir)
        if wanted("pgbouncer"):
            report["pgbouncer"] = pgbouncer(args, server, workdir)
        if wanted("sweep") and args.sweep:
            for mode in ("uniform", "hot"):
                for clients in (int(c) for c in args.sweep.split(",")):
                    figures = bank(server, mode, clients, args.sweep_duration, workdir)
                    report["sweep"][mode][str(clients)] = figures
                    show({**figures, "scenario": f"curve {mode}"})
        if wanted("ledger"):
            log(f"large ledger: bulk-loading {args.ledger_size:,} entries into one wallet ...")
            try:
                figures = scenarios.large_ledger(
                    "127.0.0.1", server.port, server.database_url, args.ledger_size, server.env
                )
            except (RuntimeError, OSError, psycopg.Error) as exc:
                figures = {"scenario": "large-ledger", "error": str(exc)}
            report["scenarios"]["large-ledger"] = figures
            if "error" in figures:
                show(figures)
            else:
                log(
                    f"large ledger: {figures['entries']:,} entries loaded in "
                    f"{figures['bulk_load_with_commit_s']} s (inserts {figures['bulk_insert_s']} s, "
                    "the rest is the deferred trigger checks at COMMIT)"
                )
                for name in ("start", "middle", "end"):
                    h = figures["history"][name]
                    log(
                        f"  history {name:<6} p50 {h['p50_ms']} p95 {h['p95_ms']} ms, {h['rows']} rows "
                        f"{h['statuses']}; SQL alone {h.get('sql_ms')} ms: {h.get('plan')}"
                    )
                log(f"  history walk with next cursors: {figures['history']['walk_next_100']}")
                log(f"  reconciliation: {figures['reconciliation']}")
                log(f"  money {'OK' if figures['money']['ok'] else 'FAILED'} {figures['money']}")
        report["worker_peak_rss_mb"] = server.worker_peak_rss_mb()
        log(f"{args.server} worker peak RSS (VmHWM), MB: {report['worker_peak_rss_mb']}")
        report["server_log_lines"] = sum(1 for _ in server.log_path.open("rb"))

    s, c = report["scenarios"], report["ceiling"]
    ratios = {
        "uniform / sql-ceiling-uniform": (ratio(s.get("uniform", {}), c.get("uniform", {})), 0.33),
        "hot / sql-ceiling-hot": (ratio(s.get("hot", {}), c.get("hot", {})), 0.5),
        "deposit-storm / uniform": (ratio(s.get("deposit-storm", {}), s.get("uniform", {})), 0.8),
        "lock-stall bystanders / normal": (s.get("lock-stall", {}).get("bystander_ratio"), 0.5),
        "tracing, no exporter / SDK off": ((report.get("tracing") or {}).get("no_exporter_ratio"), 0.95),
    }
    report["ratios"] = {k: {"ratio": v, "target": t} for k, (v, t) in ratios.items()}
    report["elapsed_s"] = round(time.perf_counter() - run_started, 1)

    print(f"\nthroughput vs clients (transfers/s, {args.sweep_duration:g} s per point)")
    print(f"{'clients':>8} {'uniform':>10} {'p99 ms':>8} {'hot':>10} {'p99 ms':>8}")
    for clients in args.sweep.split(",") if args.sweep else []:
        u, h = report["sweep"]["uniform"].get(clients, {}), report["sweep"]["hot"].get(clients, {})
        print(
            f"{clients:>8} {u.get('ops_per_s', '-'):>10} {u.get('p99_ms', '-'):>8} "
            f"{h.get('ops_per_s', '-'):>10} {h.get('p99_ms', '-'):>8}"
        )

    print(f"\n{'scenario':<22} {'ops/s':>9} {'p50':>7} {'p95':>7} {'p99':>7}  5xx  money")
    for name, f in [*((f"sql-ceiling-{m}", v) for m, v in c.items()), *s.items()]:
        if "ops_per_s" in f:
            money = f.get("money") or {}
            print(
                f"{name:<22} {f['ops_per_s']:>9} {f['p50_ms']:>7} {f['p95_ms']:>7} {f['p99_ms']:>7} "
                f"{f.get('server_errors', 0):>4}  "
                f"{'OK' if money.get('ok', name.startswith('sql')) else 'FAILED'}"
            )
    print(f"\n{'ratio':<32} {'measured':>9} {'target':>8}")
    for name, (value, target) in ratios.items():
        verdict = "" if value is None else ("met" if value >= target else "NOT met")
        print(f"{name:<32} {value if value is not None else '-':>9} {'>= ' + str(target):>8}  {verdict}")

    if report["sweep"]["uniform"] or report["sweep"]["hot"]:
        title = (
            f"{args.workers} {args.server} {args.worker_class if args.server == 'gunicorn' else ''} workers, "
            f"{os.cpu_count()} CPUs shared with PostgreSQL and the client"
        )
        problem = plot(report["sweep"], c, Path(args.plot), title)
        print(problem or f"\nplot: {args.plot}")
        report["plot"] = None if problem else str(Path(args.plot).resolve())
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    print(f"figures: {args.json}  (whole run {report['elapsed_s']} s)")
    bouncer = report.get("pgbouncer") or {}
    failed = [
        name
        for name, f in {
            **s,
            **{
                f"pgbouncer-{k}": bouncer[k]
                for k in ("direct", "direct_no_prepare", "pgbouncer")
                if k in bouncer
            },
            **{f"curve-{m}-{k}": v for m in ("uniform", "hot") for k, v in report["sweep"][m].items()},
        }.items()
        if "error" in f or not (f.get("money") or {}).get("ok", False)
    ]
    if failed:
        print(f"money check or scenario FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
