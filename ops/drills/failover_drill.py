#!/usr/bin/env python3
"""Failover drill: kill the primary under traffic, promote the standby, lose nothing.

    .venv/bin/python ops/drills/failover_drill.py            # as root (or the postgres user)
    .venv/bin/python ops/drills/failover_drill.py --keep     # keep the temp dir for a post-mortem

On loopback ports chosen at run time, in a temporary directory:

1. a primary (pg_a) and a streaming standby (pg_b, pg_basebackup -R) with synchronous
   replication: synchronous_standby_names = 'FIRST 1 (pg_b)', synchronous_commit = on,
   so no COMMIT is acknowledged before pg_b has flushed it; pg_stat_replication must
   show pg_b as `sync`;
2. the app migrated and served by the project's gunicorn (production settings, 2 workers)
   with DATABASE_URL listing both nodes and target_session_attrs=read-write;
3. client threads sending transfers, each with its own Idempotency-Key, retrying the
   *same* request on transport errors, 5xx and 409 idempotency_key_in_use until a
   definite answer; every 201 is recorded with its key and transfer id;
4. the primary killed hard (SIGKILL to every process of the cluster), then the runbook
   promotion of the standby (docs/failover.md): synchronous_standby_names cleared,
   `pg_ctl promote`. No app restart;
5. on the promoted node: every acknowledged transfer exists with its key's idempotency
   record, no key applied twice, no transfer the client was not told about, balances
   equal deposits plus acknowledged transfers, `manage.py reconcile` exits 0;
   gunicorn's log has no traceback and the client saw no 500;
6. the runbook's second half: pg_a rebuilt with pg_rewind as the synchronous standby of
   pg_b, one more transfer through the app, and both nodes holding the same ledger.

--sabotage detaches the standby (asynchronous, not streaming) before the kill, so the
transfers acknowledged meanwhile die with the primary: the drill must then FAIL.

Prints PASS or FAIL with the figures; exit status 0 on PASS, 1 on FAIL, 2 if the drill
could not run. Bounded by --deadline (default 170 s); the clusters, the server, the
temp dir and the Redis database it used are cleaned up on success, failure and SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import redis
from psycopg import sql

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
API = "/api/v1"
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
REDIS_CANDIDATE_DBS = (11, 10, 9, 8, 7, 6, 5, 4)

T0 = time.monotonic()


def log(message: str) -> None:
    print(f"[{time.monotonic() - T0:6.1f}s] {message}", flush=True)


class DrillError(Exception):
    """The drill itself could not run (set-up, tooling): exit status 2."""


class Interrupted(BaseException):
    """SIGTERM, SIGINT or the deadline: clean up and stop."""


# --- Processes ----------------------------------------------------------------------


def run(
    cmd: list[str],
    *,
    timeout: float = 60,
    env: dict[str, str] | None = None,
    stderr_into_stdout: bool = False,
    **kwargs: Any,
) -> str:
    """Run a command (argument list, no shell); raise DrillError with its output if it fails."""
    try:
        done = subprocess.run(  # noqa: S603 - fixed argument lists built by this script
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT if stderr_into_stdout else subprocess.PIPE,
            text=True,
            timeout=timeout,
            env=env,
            check=False,
            **kwargs,
        )
    except subprocess.TimeoutExpired as exc:
        raise DrillError(f"timed out after {timeout}s: {' '.join(cmd)}") from exc
    if done.returncode != 0:
        raise DrillError(f"{' '.join(cmd)} exited {done.returncode}:\n{done.stdout}{done.stderr or ''}")
    return done.stdout


def as_postgres(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run its tools as the postgres OS user."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def free_ports(count: int) -> list[int]:
    ports: list[int] = []
    holders = []
    try:
        while len(ports) < count:
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            holders.append(sock)
            port = sock.getsockname()[1]
            if port != 5432:
                ports.append(port)
    finally:
        for sock in holders:
            sock.close()
    return ports


# --- PostgreSQL nodes ------------------------------------------------------------------


@dataclass
class Node:
    name: str
    port: int
    datadir: Path
    sockdir: Path

    @property
    def logfile(self) -> Path:
        return self.datadir.parent / f"{self.name}.log"

    def pg_ctl(self, *args: str, timeout: float = 60) -> str:
        cmd = [str(PG_BIN / "pg_ctl"), "-D", str(self.datadir), *args]
        return run(as_postgres(cmd), timeout=timeout)

    def start(self, wait: int = 30) -> None:
        try:
            self.pg_ctl("-l", str(self.logfile), "-w", "-t", str(wait), "start", timeout=wait + 30)
        except DrillError as exc:
            raise DrillError(f"{exc}\n{self.name}.log ends with:\n{self.log_tail()}") from exc

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.logfile.read_text(errors="replace")
        except OSError as exc:
            return f"(unreadable: {exc})"
        return "\n".join([line for line in text.splitlines() if line.strip()][-lines:])

    def connect(self, dbname: str = "postgres") -> psycopg.Connection:
        return psycopg.connect(
            host=str(self.sockdir), port=self.port, user="postgres", dbname=dbname, autocommit=True
        )

    def running_pids(self) -> list[int]:
        pidfile = self.datadir / "postmaster.pid"
        try:
            postmaster = int(pidfile.read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return []
        if not Path(f"/proc/{postmaster}").exists():
            return []
        pids = [postmaster]
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == postmaster:  # ppid
                pids.append(int(stat.parent.name))
        return pids

    def kill_hard(self) -> int:
        """SIGKILL the postmaster and every backend at once: a crash, no goodbye to clients."""
        pids = self.running_pids()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return len(pids)

    def stop(self) -> None:
        if not self.running_pids():
            return
        try:
            self.pg_ctl("-m", "immediate", "-w", "-t", "15", "stop", timeout=20)
        except DrillError:
            self.kill_hard()


def write_conf(path: Path, settings: dict[str, str | int]) -> None:
    lines = []
    for key, value in settings.items():
        rendered = value if isinstance(value, int) else "'" + str(value).replace("'", "''") + "'"
        lines.append(f"{key} = {rendered}")
    with path.open("a", encoding="utf-8") as fh:
        fh.write("\n# failover drill\n" + "\n".join(lines) + "\n")


def conninfo(**params: str | int) -> str:
    return " ".join(f"{key}={value}" for key, value in params.items())


# --- The HTTP client -----------------------------------------------------------------------


class Http:
    """One keep-alive connection per thread; reconnects after any transport error."""

    def __init__(self, port: int, timeout: float) -> None:
        self.port = port
        self.timeout = timeout
        self.conn: http.client.HTTPConnection | None = None

    def send(
        self, method: str, path: str, body: dict | None = None, *, token: str = "", key: str = ""
    ) -> tuple[int, dict[str, str], bytes]:
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        headers = {"Accept": "application/json"}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if key:
            headers["Idempotency-Key"] = key
        try:
            self.conn.request(method, path, payload, headers)
            response = self.conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException):
            self.close()
            raise
        if response.will_close:  # gunicorn's sync workers close after each response
            self.close()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def problem_code(data: bytes) -> str:
    try:
        return str(json.loads(data).get("code", "?"))
    except (ValueError, AttributeError):
        return "?"


@dataclass
class Account:
    username: str
    password: str
    token: str = ""
    wallets: list[str] = field(default_factory=list)


@dataclass
class Ack:
    key: str
    transfer_id: str
    source: str
    destination: str
    amount: int
    attempts: int
    replayed: bool
    at: float


@dataclass
class Traffic:
    """Everything the client threads saw; appended under `lock`."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)
    acks: list[Ack] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)  # key -> final non-201 code
    unresolved: list[str] = field(default_factory=list)
    failures: list[tuple[float, str]] = field(default_factory=list)  # (time, kind) per failed attempt
    failed_keys: dict[str, list[str]] = field(default_factory=dict)  # key -> its failed attempts
    server_errors_500: list[str] = field(default_factory=list)
    reads: Counter = field(default_factory=Counter)
    read_failures: list[tuple[float, str]] = field(default_factory=list)
    read_ok_times: list[float] = field(default_factory=list)


def transfer_worker(
    index: int, port: int, run_id: str, accounts: list[Account], traffic: Traffic, args: argparse.Namespace
) -> None:
    rng = random.Random(f"{run_id}-{index}")  # noqa: S311 - test traffic, not security
    client = Http(port, args.http_timeout)
    wallets = [(account, wallet) for account in accounts for wallet in account.wallets]
    seq = 0
    try:
        while not traffic.stop.is_set():
            seq += 1
            owner, source = rng.choice(wallets)
            destination = rng.choice([w for _, w in wallets if w != source])
            amount = rng.randint(1, args.amount_max)
            key = f"fo-{run_id}-{index}-{seq}"
            body = {
                "source_wallet_id": source,
                "destination_wallet_id": destination,
                "amount": amount,
                "description": key,  # ties each ledger row to its logical transfer
            }
            deadline = time.monotonic() + args.resolve_seconds
            attempts = 0
            while True:
                attempts += 1
                try:
                    status, headers, data = client.send(
                        "POST", f"{API}/transfers", body, token=owner.token, key=key
                    )
                except (OSError, http.client.HTTPException) as exc:
                    kind = f"transport {type(exc).__name__}"
                else:
                    if status == 201:
                        with traffic.lock:
                            traffic.acks.append(
                                Ack(
                                    key=key,
                                    transfer_id=json.loads(data)["id"],
                                    source=source,
                                    destination=destination,
                                    amount=amount,
                                    attempts=attempts,
                                    replayed=headers.get("idempotent-replayed") == "true",
                                    at=time.monotonic(),
                                )
                            )
                        break
                    code = problem_code(data)
                    kind = f"{status} {code}"
                    if status == 500:
                        with traffic.lock:
                            traffic.server_errors_500.append(f"{key}: {data[:300]!r}")
                    if status < 500 and not (status == 409 and code == "idempotency_key_in_use"):
                        with traffic.lock:  # a definite answer that moved no money
                            traffic.refused[key] = kind
                        break
                with traffic.lock:
                    traffic.failures.append((time.monotonic(), kind))
                    traffic.failed_keys.setdefault(key, []).append(kind)
                if time.monotonic() >= deadline:
                    with traffic.lock:
                        traffic.unresolved.append(key)
                    break
                time.sleep(min(0.1 * attempts, 0.5))  # same key again: a replay tells what happened
    finally:
        client.close()


def read_worker(port: int, accounts: list[Account], traffic: Traffic, args: argparse.Namespace) -> None:
    """Non-money reads alongside: they may answer 503 during the failover, never 500."""
    client = Http(port, args.http_timeout)
    n = 0
    try:
        while not traffic.stop.is_set():
            n += 1
            account = accounts[n % len(accounts)]
            path = f"{API}/transfers?limit=5" if n % 2 else f"{API}/wallets/{account.wallets[0]}"
            try:
                status, _, data = client.send("GET", path, token=account.token)
                kind = str(status) if status == 200 else f"{status} {problem_code(data)}"
            except (OSError, http.client.HTTPException) as exc:
                kind, status = f"transport {type(exc).__name__}", 0
            with traffic.lock:
                traffic.reads[kind] += 1
                if status == 200:
                    traffic.read_ok_times.append(time.monotonic())
                else:
                    traffic.read_failures.append((time.monotonic(), kind))
                    if status == 500:
                        traffic.server_errors_500.append(f"GET {path}: {data[:300]!r}")
            time.sleep(0.05)
    finally:
        client.close()


# --- The drill -------------------------------------------------------------------------------


class Drill:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.run_id = secrets.token_hex(4)
        self.tmp = Path(tempfile.mkdtemp(prefix="wallet-failover-"))
        self.sockdir = self.tmp / "sock"
        pg_a_port, pg_b_port, self.web_port = free_ports(3)
        self.pg_a = Node("pg_a", pg_a_port, self.tmp / "pg_a", self.sockdir)
        self.pg_b = Node("pg_b", pg_b_port, self.tmp / "pg_b", self.sockdir)
        self.app_password = secrets.token_hex(16)
        self.repl_password = secrets.token_hex(16)
        self.redis_db: int | None = None
        self.gunicorn: subprocess.Popen | None = None
        self.gunicorn_log = self.tmp / "gunicorn.log"
        self.env: dict[str, str] = {}
        self.accounts: list[Account] = []
        self.funding: dict[str, int] = {}
        self.traffic = Traffic()
        self.threads: list[threading.Thread] = []
        self.timeline: dict[str, float] = {}
        self.problems: list[str] = []
        self.figures: dict[str, Any] = {}

    # -- set-up --

    def set_up_clusters(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.tmp, "postgres", "postgres")
        self.sockdir.mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.sockdir, "postgres", "postgres")
        a, b = self.pg_a, self.pg_b
        run(
            as_postgres(
                [
                    str(PG_BIN / "initdb"),
                    "-D",
                    str(a.datadir),
                    "-U",
                    "postgres",
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-sync",
                ]
            ),
            timeout=60,
        )
        write_conf(
            a.datadir / "postgresql.conf",
            {
                "listen_addresses": "127.0.0.1",
                "port": a.port,
                "unix_socket_directories": str(self.sockdir),
                "cluster_name": a.name,
                "wal_level": "replica",
                "max_wal_senders": 5,
                "max_replication_slots": 5,
                "hot_standby": "on",
                "wal_log_hints": "on",  # lets pg_rewind turn the old primary into a standby
                # The rebuilt old primary replays from the last checkpoint the two nodes share,
                # which can be older than the fork by minutes. Without kept WAL that segment is
                # gone from the new primary (recycled at its restartpoint) and, depending on the
                # slot's on-disk position at the crash, from the old primary's own crash
                # recovery too: it then waits for it forever. Patroni's nodes keep the same.
                "wal_keep_size": "256MB",
                "synchronous_commit": "on",
                # A standby whose primary is gone retries the stream this often, and PostgreSQL 15
                # only notices a promote request between retries: the default 5s delays failover.
                "wal_retrieve_retry_interval": "1s",
                "max_connections": 60,
                "shared_buffers": "64MB",
                "log_line_prefix": "%m [%p] %q%u@%d ",
            },
        )
        a.start()
        with a.connect() as conn:
            create = "CREATE ROLE {} WITH LOGIN {} PASSWORD {}"
            for role, extra, password in (
                ("replicator", "REPLICATION", self.repl_password),
                ("wallet", "", self.app_password),
            ):
                conn.execute(
                    sql.SQL(create).format(sql.Identifier(role), sql.SQL(extra), sql.Literal(password))
                )
            conn.execute("CREATE DATABASE wallet OWNER wallet")
        log(f"primary {a.name} up on 127.0.0.1:{a.port}")

        primary = conninfo(
            host="127.0.0.1",
            port=a.port,
            user="replicator",
            password=self.repl_password,
            application_name=b.name,
        )
        run(
            as_postgres(
                [
                    str(PG_BIN / "pg_basebackup"),
                    "-D",
                    str(b.datadir),
                    "-d",
                    primary,
                    "-R",
                    "-X",
                    "stream",
                    "-C",
                    "-S",
                    b.name,
                    "-c",
                    "fast",
                ]
            ),
            timeout=60,
        )
        write_conf(
            b.datadir / "postgresql.auto.conf",
            {
                "port": b.port,
                "cluster_name": b.name,
                "primary_conninfo": primary,
                "primary_slot_name": b.name,
                # Symmetric: once promoted, pg_b would wait for pg_a as its sync standby.
                "synchronous_standby_names": f"FIRST 1 ({a.name})",
            },
        )
        b.start()
        # Only now: with synchronous_standby_names set and no standby, every COMMIT would wait.
        with a.connect() as conn:
            conn.execute(f"ALTER SYSTEM SET synchronous_standby_names = 'FIRST 1 ({b.name})'")
            conn.execute("SELECT pg_reload_conf()")
        self.wait_for_sync(timeout=20)
        log(f"standby {b.name} up on 127.0.0.1:{b.port}, streaming, sync_state=sync")

    def replication_state(self) -> list[tuple[str, str, str]]:
        with self.pg_a.connect() as conn:
            return conn.execute(
                "SELECT application_name, state, sync_state FROM pg_stat_replication"
            ).fetchall()

    def wait_for_sync(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            state = self.replication_state()
            if (self.pg_b.name, "streaming", "sync") in state:
                return
            if time.monotonic() > deadline:
                raise DrillError(f"standby never became synchronous: pg_stat_replication={state}")
            time.sleep(0.2)

    def pick_redis_db(self) -> None:
        for db in REDIS_CANDIDATE_DBS:
            client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db, socket_timeout=2)
            try:
                if client.dbsize() == 0 and client.set("failover-drill:claim", self.run_id, nx=True, ex=600):
                    self.redis_db = db
                    return
            except redis.RedisError as exc:
                raise DrillError(f"Redis at {REDIS_HOST}:{REDIS_PORT} is needed: {exc}") from exc
            finally:
                client.close()
        raise DrillError(f"no empty Redis database among {REDIS_CANDIDATE_DBS}")

    def database_url(self) -> str:
        a, b = self.pg_a, self.pg_b
        query = f"target_session_attrs=read-write&connect_timeout={self.args.connect_timeout}"
        if self.args.url_style == "netloc":  # needs settings on foundation.db_router.database_from_url
            return (
                f"postgres://wallet:{self.app_password}@127.0.0.1:{a.port},127.0.0.1:{b.port}/wallet?{query}"
            )
        # The form plain dj-database-url understands: libpq host and port lists as parameters.
        return (
            f"postgres://wallet:{self.app_password}@/wallet"
            f"?host=127.0.0.1,127.0.0.1&port={a.port},{b.port}&{query}"
        )

    def app_env(self) -> dict[str, str]:
        redis_url = f"redis://{REDIS_HOST}:{REDIS_PORT}/{self.redis_db}"
        huge = "1000000/m"
        env = {
            "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "HOME": os.environ.get("HOME", "/root"),
            "LANG": "C.UTF-8",
            "PYTHONUNBUFFERED": "1",
            "DJANGO_SETTINGS_MODULE": "wallet_project.settings.production",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "JWT_SIGNING_KEY": secrets.token_urlsafe(50),
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DJANGO_SECURE_SSL_REDIRECT": "false",
            "RATELIMIT_ENABLE": "false",
            "RATE_LIMIT_USER": huge,
            "RATE_LIMIT_MONEY": huge,
            "RATE_LIMIT_WALLET_OUTGOING": huge,
            "RATE_LIMIT_ANON": huge,
            "RATE_LIMIT_LOGIN_IP": huge,
            "RATE_LIMIT_LOGIN_USER": huge,
            "JWT_ACCESS_MINUTES": "30",
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "INFO",
            "REDIS_URL": redis_url,
            "CELERY_QUEUE": f"failover-drill-{self.run_id}",
            "DATABASE_URL": self.database_url(),
            "DB_CONN_MAX_AGE": "60",
            "GUNICORN_BIND": f"127.0.0.1:{self.web_port}",
            "WEB_CONCURRENCY": "2",
            "GUNICORN_TIMEOUT": "30",
            "PROMETHEUS_MULTIPROC_DIR": str(self.tmp / "prometheus"),
        }
        for name in ("PG_BIN",):
            if name in os.environ:
                env[name] = os.environ[name]
        return env

    def set_up_app(self) -> None:
        self.pick_redis_db()
        self.env = self.app_env()
        started = time.monotonic()
        run(
            [str(VENV_BIN / "python"), "manage.py", "migrate", "--noinput"],
            env=self.env,
            cwd=REPO,
            timeout=120,
        )
        log(f"migrated through the multi-host DATABASE_URL in {time.monotonic() - started:.1f}s")
        with self.gunicorn_log.open("wb") as out:
            self.gunicorn = subprocess.Popen(  # noqa: S603 - the project's own gunicorn
                [str(VENV_BIN / "gunicorn"), "-c", "gunicorn.conf.py", "wallet_project.wsgi:application"],
                cwd=REPO,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        client = Http(self.web_port, 5)
        deadline = time.monotonic() + 40
        while True:
            if self.gunicorn.poll() is not None:
                raise DrillError(f"gunicorn exited {self.gunicorn.returncode}; see {self.gunicorn_log}")
            try:
                status, _, _ = client.send("GET", "/readyz")
                if status == 200:
                    break
            except (OSError, http.client.HTTPException):
                pass
            if time.monotonic() > deadline:
                raise DrillError("gunicorn never answered /readyz 200")
            time.sleep(0.3)
        client.close()
        log(f"gunicorn (2 workers) ready on 127.0.0.1:{self.web_port}")

    def set_up_accounts(self) -> None:
        client = Http(self.web_port, 30)

        def call(method: str, path: str, body: dict, expect: int, **kw: str) -> dict:
            status, _, data = client.send(method, path, body, **kw)
            if status != expect:
                raise DrillError(f"{method} {path}: {status} {data[:300]!r}")
            return json.loads(data)

        for n in range(self.args.users):
            account = Account(f"drill_{self.run_id}_{n}", secrets.token_urlsafe(16) + "aA1!")
            call(
                "POST",
                f"{API}/auth/register",
                {"username": account.username, "password": account.password, "email": f"d{n}@drill.example"},
                201,
            )
            tokens = call(
                "POST", f"{API}/auth/token", {"username": account.username, "password": account.password}, 200
            )
            account.token = tokens["access"]
            for w in range(self.args.wallets_per_user):
                wallet = call("POST", f"{API}/wallets", {"currency": "USD"}, 201, token=account.token)["id"]
                call(
                    "POST",
                    f"{API}/wallets/{wallet}/deposits",
                    {"amount": self.args.funding},
                    201,
                    token=account.token,
                    key=f"fund-{self.run_id}-{n}-{w}",
                )
                account.wallets.append(wallet)
                self.funding[wallet] = self.args.funding
            self.accounts.append(account)
        client.close()
        log(f"{len(self.accounts)} users, {len(self.funding)} wallets funded with {self.args.funding} each")

    # -- traffic and failover --

    def start_traffic(self) -> None:
        for index in range(self.args.clients):
            thread = threading.Thread(
                target=transfer_worker,
                args=(index, self.web_port, self.run_id, self.accounts, self.traffic, self.args),
                name=f"transfer-{index}",
                daemon=True,
            )
            self.threads.append(thread)
        self.threads.append(
            threading.Thread(
                target=read_worker, args=(self.web_port, self.accounts, self.traffic, self.args), daemon=True
            )
        )
        for thread in self.threads:
            thread.start()
        self.timeline["traffic"] = time.monotonic()
        log(f"traffic: {self.args.clients} transfer threads + 1 reader")

    def acks_since(self, moment: float) -> int:
        with self.traffic.lock:
            return sum(1 for ack in self.traffic.acks if ack.at > moment)

    def wait_for_acks(self, moment: float, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.acks_since(moment) >= count:
                return True
            time.sleep(0.1)
        return False

    def fail_over(self) -> None:
        a, b = self.pg_a, self.pg_b
        if not self.wait_for_acks(self.timeline["traffic"], self.args.warmup_acks, timeout=30):
            raise DrillError(f"fewer than {self.args.warmup_acks} transfers acknowledged before the kill")
        time.sleep(self.args.warmup_seconds)
        if self.args.sabotage:
            self.desynchronize()
        else:
            self.wait_for_sync(timeout=5)  # still synchronous at the moment of the crash
        acked_before = len(self.traffic.acks)

        self.timeline["kill"] = time.monotonic()
        if self.args.kill_mode == "sigkill":
            killed = a.kill_hard()
            log(f"KILLED primary {a.name}: SIGKILL to {killed} processes ({acked_before} transfers acked)")
        else:
            a.pg_ctl("-m", "immediate", "-w", "stop")
            log(f"KILLED primary {a.name}: pg_ctl stop -m immediate ({acked_before} transfers acked)")

        time.sleep(self.args.detect_seconds)  # failure detection, by a human or a tool
        # Runbook (docs/failover.md): the survivor runs alone until the old primary is
        # rebuilt as its standby, so it must not wait for a synchronous standby.
        with b.connect() as conn:
            conn.execute("ALTER SYSTEM SET synchronous_standby_names = ''")
            conn.execute("SELECT pg_reload_conf()")
        b.pg_ctl("-w", "-t", "30", "promote")
        self.timeline["promoted"] = time.monotonic()
        with b.connect() as conn:
            in_recovery = conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]
        if in_recovery:
            raise DrillError(f"{b.name} is still in recovery after pg_ctl promote")
        log(f"PROMOTED {b.name} ({self.timeline['promoted'] - self.timeline['kill']:.2f}s after the kill)")

        recovered = self.wait_for_acks(self.timeline["promoted"], 1, timeout=self.args.recover_seconds)
        if not recovered:
            self.problems.append(
                f"no transfer acknowledged within {self.args.recover_seconds}s of the promotion: "
                "the service did not recover"
            )
        else:
            first = min(ack.at for ack in self.traffic.acks if ack.at > self.timeline["promoted"])
            self.timeline["first_ack_after_promotion"] = first
            log(f"RECOVERED: first transfer acknowledged {first - self.timeline['kill']:.2f}s after the kill")
            self.wait_for_acks(self.timeline["promoted"], self.args.after_acks, timeout=30)
            time.sleep(self.args.after_seconds)
        self.stop_traffic()

    def desynchronize(self) -> None:
        """--sabotage: what synchronous replication prevents, so the checks must FAIL.

        The primary stops waiting for the standby and the standby stops streaming, so
        transfers acknowledged from now on exist on the primary alone, and die with it.
        """
        a, b = self.pg_a, self.pg_b
        with a.connect() as conn:
            conn.execute("ALTER SYSTEM SET synchronous_standby_names = ''")
            conn.execute("SELECT pg_reload_conf()")
        with b.connect() as conn:
            conn.execute("ALTER SYSTEM SET primary_conninfo = ''")
            conn.execute("SELECT pg_reload_conf()")
        deadline = time.monotonic() + 10
        while self.replication_state() and time.monotonic() < deadline:
            time.sleep(0.1)
        moment = time.monotonic()
        self.wait_for_acks(moment, self.args.warmup_acks, timeout=20)
        alone = self.acks_since(moment)
        log(f"SABOTAGE: standby detached, {alone} transfers acknowledged by the primary alone")

    def stop_traffic(self) -> None:
        self.traffic.stop.set()
        deadline = time.monotonic() + self.args.resolve_seconds + self.args.http_timeout + 5
        for thread in self.threads:
            thread.join(timeout=max(0.1, deadline - time.monotonic()))
        alive = [t.name for t in self.threads if t.is_alive()]
        if alive:
            self.problems.append(f"client threads still waiting for an answer: {alive}")
        self.timeline["stopped"] = time.monotonic()
        log(f"traffic stopped: {len(self.traffic.acks)} transfers acknowledged")

    # -- verification --

    def verify(self) -> None:
        traffic, b = self.traffic, self.pg_b
        acks = {ack.key: ack for ack in traffic.acks}
        if len(acks) != len(traffic.acks):
            self.problems.append("the client recorded two acknowledgements for one key")
        with b.connect("wallet") as conn:
            in_recovery = conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]
            rows = conn.execute(
                "SELECT id::text, description, source_wallet_id::text, destination_wallet_id::text, amount "
                "FROM transfers_transfer WHERE description LIKE %s",
                [f"fo-{self.run_id}-%"],
            ).fetchall()
            per_key = conn.execute(
                "SELECT r.key, count(t.id), min(t.id::text) FROM transfers_idempotencyrecord r "
                "LEFT JOIN transfers_transfer t ON t.id = r.transfer_id "
                "WHERE r.key LIKE %s GROUP BY r.key",
                [f"fo-{self.run_id}-%"],
            ).fetchall()
            balances = dict(
                conn.execute(
                    "SELECT id::text, balance FROM wallets_wallet WHERE id::text = ANY(%s)",
                    [list(self.funding)],
                ).fetchall()
            )
        if in_recovery:
            self.problems.append(f"{b.name} is in recovery: the checks would read a standby")

        by_key: dict[str, list[tuple]] = {}
        for row in rows:
            by_key.setdefault(row[1], []).append(row)
        doubled = {key: len(found) for key, found in by_key.items() if len(found) > 1}
        if doubled:
            self.problems.append(f"transfers applied more than once (key: count): {doubled}")
        records = {key: (count, transfer_id) for key, count, transfer_id in per_key}
        two_per_record = [key for key, (count, _) in records.items() if count > 1]
        if two_per_record:
            self.problems.append(f"idempotency records pointing at several transfers: {two_per_record}")

        unrecorded = [key for key, found in by_key.items() if records.get(key, (0, None))[1] != found[0][0]]
        if unrecorded:
            self.problems.append(
                f"transfers committed without their key's idempotency record: {unrecorded[:10]}"
            )

        lost = [key for key in acks if key not in by_key]
        if lost:
            self.problems.append(f"{len(lost)} acknowledged transfers are missing: {lost[:10]}")
        wrong = []
        for key, ack in acks.items():
            if key not in by_key:
                continue  # reported as missing above
            for transfer_id, _, source, destination, amount in by_key.get(key, []):
                if (transfer_id, source, destination, amount) != (
                    ack.transfer_id,
                    ack.source,
                    ack.destination,
                    ack.amount,
                ):
                    wrong.append(key)
            record = records.get(key)
            if record is None or record[1] != ack.transfer_id:
                wrong.append(key)
        if wrong:
            self.problems.append(
                f"acknowledged transfers that differ from the ledger or their key: {wrong[:10]}"
            )
        phantom = [key for key in by_key if key not in acks and key not in traffic.unresolved]
        if phantom:
            self.problems.append(f"transfers in the ledger that the client was told failed: {phantom[:10]}")
        if traffic.unresolved:
            self.problems.append(
                f"{len(traffic.unresolved)} transfers got no definite answer within "
                f"{self.args.resolve_seconds}s: {traffic.unresolved[:10]}"
            )

        total_before = sum(self.funding.values())
        total_after = sum(balances.values())
        if total_after != total_before:
            self.problems.append(f"money changed: {total_before} deposited, {total_after} held")
        if not traffic.unresolved:
            expected = dict(self.funding)
            for ack in acks.values():
                expected[ack.source] -= ack.amount
                expected[ack.destination] += ack.amount
            mismatched = {
                w: (balances.get(w), expected[w]) for w in expected if balances.get(w) != expected[w]
            }
            if mismatched:
                self.problems.append(f"balances differ from deposits + acknowledged transfers: {mismatched}")

        try:
            out = run(
                [str(VENV_BIN / "python"), "manage.py", "reconcile"], env=self.env, cwd=REPO, timeout=60
            )
            self.figures["reconcile"] = "exit 0: " + " ".join(out.split())[:200]
        except DrillError as exc:
            self.figures["reconcile"] = "FAILED"
            self.problems.append(f"manage.py reconcile failed: {exc}")

        if traffic.server_errors_500:
            self.problems.append(f"the client saw HTTP 500: {traffic.server_errors_500[:5]}")
        self.figures["ledger_transfers"] = len(rows)

    # -- the runbook's second half --

    def rebuild_old_primary(self) -> None:
        """pg_rewind the crashed pg_a into a standby of pg_b and make it synchronous again.

        The steps of docs/failover.md, "Rebuild the old primary as a standby".
        """
        a, b = self.pg_a, self.pg_b
        started = time.monotonic()
        with b.connect() as conn:
            conn.execute("SELECT pg_create_physical_replication_slot(%s)", [a.name])
            # The promotion's checkpoint is spread out; until one completes, pg_b's control
            # file still says timeline 1 and pg_rewind would wrongly find nothing to rewind.
            conn.execute("CHECKPOINT")
        source = conninfo(host=str(self.sockdir), port=b.port, user="postgres", dbname="postgres")
        rewind_cmd = [str(PG_BIN / "pg_rewind"), "--target-pgdata", str(a.datadir), "--source-server", source]
        rewind = run(as_postgres(rewind_cmd), timeout=90, stderr_into_stdout=True)
        if "no rewind required" in rewind:
            raise DrillError(f"pg_rewind found nothing to rewind: {rewind.strip()}")
        # pg_rewind copied pg_b's configuration files too: give pg_a its own settings back.
        write_conf(
            a.datadir / "postgresql.auto.conf",
            {
                "port": a.port,
                "cluster_name": a.name,
                "primary_conninfo": conninfo(
                    host="127.0.0.1",
                    port=b.port,
                    user="replicator",
                    password=self.repl_password,
                    application_name=a.name,
                ),
                "primary_slot_name": a.name,
                "synchronous_standby_names": f"FIRST 1 ({b.name})",
            },
        )
        signal_file = a.datadir / "standby.signal"
        signal_file.touch()
        if os.geteuid() == 0:
            shutil.chown(signal_file, "postgres", "postgres")
        # A standby accepts connections once it has replayed up to the point pg_rewind
        # recorded, which may first have to be streamed from pg_b: on a busy machine that
        # can take longer than a first start.
        a.start(wait=90)
        with b.connect() as conn:
            conn.execute(f"ALTER SYSTEM SET synchronous_standby_names = 'FIRST 1 ({a.name})'")
            conn.execute("SELECT pg_reload_conf()")
            deadline = time.monotonic() + 20
            while (a.name, "streaming", "sync") not in conn.execute(
                "SELECT application_name, state, sync_state FROM pg_stat_replication"
            ).fetchall():
                if time.monotonic() > deadline:
                    raise DrillError(f"the rebuilt {a.name} never became a synchronous standby")
                time.sleep(0.2)
        self.figures["rebuild_s"] = round(time.monotonic() - started, 2)
        self.figures["pg_rewind"] = " ".join(rewind.split())[-120:]
        log(f"REBUILT {a.name} with pg_rewind as the synchronous standby of {b.name}")

        # A transfer committed now waits for pg_a; pg_a then holds exactly pg_b's ledger.
        account = self.accounts[0]
        client = Http(self.web_port, 30)
        body = {
            "source_wallet_id": account.wallets[0],
            "destination_wallet_id": account.wallets[1],
            "amount": 1,
            "description": f"fo-{self.run_id}-rebuilt",
        }
        status, _, data = client.send(
            "POST", f"{API}/transfers", body, token=account.token, key=f"fo-{self.run_id}-rebuilt"
        )
        client.close()
        if status != 201:
            self.problems.append(f"a transfer after the rebuild answered {status}: {data[:300]!r}")
            return
        pattern = [f"fo-{self.run_id}-%"]
        count_sql = "SELECT count(*) FROM transfers_transfer WHERE description LIKE %s"
        with b.connect("wallet") as conn:
            on_b = conn.execute(count_sql, pattern).fetchone()[0]
        deadline = time.monotonic() + 10
        while True:
            with a.connect("wallet") as conn:
                on_a = conn.execute(count_sql, pattern).fetchone()[0]
            if on_a == on_b or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        self.figures["rebuilt_standby_transfers"] = f"{on_a} on {a.name}, {on_b} on {b.name}"
        if on_a != on_b:
            self.problems.append(
                f"the rebuilt standby differs: {on_a} drill transfers on {a.name}, {on_b} on {b.name}"
            )

    def scan_gunicorn_log(self) -> None:
        text = self.gunicorn_log.read_text(encoding="utf-8", errors="replace")
        lines = text.splitlines()
        tracebacks = [line for line in lines if "Traceback" in line]
        errors = []
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and str(record.get("level", "")).upper() in {"ERROR", "CRITICAL"}:
                errors.append(record)
        self.figures["log_tracebacks"] = len(tracebacks)
        self.figures["log_error_lines"] = Counter(
            f"{r.get('logger', '?')}: {str(r.get('event', r.get('message', '')))[:100]}" for r in errors
        ).most_common(8)
        self.figures["log_reconnect_warnings"] = sum("database connection lost" in line for line in lines)
        self.figures["worker_timeouts"] = sum("WORKER TIMEOUT" in line for line in lines)
        if tracebacks:
            self.figures["traceback_samples"] = [line[:600] for line in tracebacks[:3]]
            self.problems.append(f"gunicorn's log has {len(tracebacks)} tracebacks (samples below)")
        if self.figures["worker_timeouts"]:
            self.problems.append(f"gunicorn killed {self.figures['worker_timeouts']} workers on timeout")

    def summarize(self) -> None:
        t, traffic = self.timeline, self.traffic
        kill = t.get("kill", 0)
        after_kill = [(at, kind) for at, kind in traffic.failures if at >= kill]
        window_end = t.get("first_ack_after_promotion", t.get("stopped", kill))
        read_fail_after = [at for at, _ in traffic.read_failures if at >= kill]
        read_recovered = [at for at in traffic.read_ok_times if read_fail_after and at > max(read_fail_after)]
        self.figures.update(
            {
                "acknowledged": len(traffic.acks),
                "acknowledged_after_promotion": self.acks_since(t.get("promoted", float("inf"))),
                "replayed_acks": sum(1 for ack in traffic.acks if ack.replayed),
                "retried_transfers": sum(1 for ack in traffic.acks if ack.attempts > 1)
                + sum(1 for _ in traffic.unresolved),
                "refused": Counter(traffic.refused.values()).most_common(),
                "unresolved": len(traffic.unresolved),
                "failed_attempts_total": len(traffic.failures),
                "failed_attempts_in_failover_window": Counter(
                    kind for at, kind in after_kill if at <= window_end + 1
                ).most_common(),
                "reads": dict(traffic.reads),
                "promotion_s_after_kill": round(t["promoted"] - kill, 2) if "promoted" in t else None,
                "recovery_s_after_kill": round(t["first_ack_after_promotion"] - kill, 2)
                if "first_ack_after_promotion" in t
                else None,
                "recovery_s_after_promotion": round(t["first_ack_after_promotion"] - t["promoted"], 2)
                if "first_ack_after_promotion" in t
                else None,
                "reads_recovered": bool(read_recovered) or not read_fail_after,
            }
        )

    def execute(self) -> bool:
        self.set_up_clusters()
        self.set_up_app()
        self.set_up_accounts()
        self.start_traffic()
        try:
            self.fail_over()
        finally:
            self.traffic.stop.set()
        self.summarize()
        self.verify()
        if self.args.rebuild:
            self.rebuild_old_primary()
        self.scan_gunicorn_log()
        return not self.problems

    # -- clean-up --

    def clean_up(self, keep: bool) -> None:
        self.traffic.stop.set()
        if self.gunicorn is not None and self.gunicorn.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.gunicorn.pid, signal.SIGTERM)
            try:
                self.gunicorn.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.gunicorn.pid, signal.SIGKILL)
                self.gunicorn.wait(timeout=5)
        for node in (self.pg_a, self.pg_b):
            try:
                node.stop()
            except Exception as exc:  # clean up the rest whatever happens here
                log(f"could not stop {node.name}: {exc}")
        if self.redis_db is not None:
            try:
                client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=self.redis_db, socket_timeout=2)
                client.flushdb()
                client.close()
            except redis.RedisError as exc:
                log(f"could not empty Redis database {self.redis_db}: {exc}")
        if keep:
            log(f"kept {self.tmp} (gunicorn.log, pg_a.log, pg_b.log, data directories)")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


def print_figures(drill: Drill, keys: tuple[str, ...], passed: bool) -> None:
    """The figures named by `keys` that the run has, its problems and its result (and the
    whole as JSON with --json): the end of every drill's report."""
    f = drill.figures
    for key in keys:
        if key in f:
            print(f"{key}: {f[key]}")
    for problem in drill.problems:
        print(f"PROBLEM: {problem}")
    print(f"RESULT: {'PASS' if passed else 'FAIL'}", flush=True)
    if drill.args.json:
        Path(drill.args.json).write_text(
            json.dumps({"passed": passed, "problems": drill.problems, **f}, indent=2, default=str) + "\n"
        )


REPORT_KEYS = (
    "acknowledged",
    "acknowledged_after_promotion",
    "replayed_acks",
    "retried_transfers",
    "unresolved",
    "refused",
    "failed_attempts_total",
    "failed_attempts_in_failover_window",
    "reads",
    "reads_recovered",
    "promotion_s_after_kill",
    "recovery_s_after_kill",
    "recovery_s_after_promotion",
    "ledger_transfers",
    "reconcile",
    "rebuild_s",
    "rebuilt_standby_transfers",
    "log_tracebacks",
    "log_reconnect_warnings",
    "log_error_lines",
    "worker_timeouts",
    "traceback_samples",
)


def print_report(drill: Drill, passed: bool) -> None:
    print("\n=== failover drill ===")
    print_figures(drill, REPORT_KEYS, passed)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=6, help="transfer threads (default 6)")
    parser.add_argument("--users", type=int, default=4)
    parser.add_argument("--wallets-per-user", type=int, default=3)
    parser.add_argument("--funding", type=int, default=10_000_000, help="deposit per wallet, cents")
    parser.add_argument("--amount-max", type=int, default=500)
    parser.add_argument("--warmup-acks", type=int, default=50, help="acknowledged transfers before the kill")
    parser.add_argument("--warmup-seconds", type=float, default=2.0)
    parser.add_argument("--kill-mode", choices=("sigkill", "immediate"), default="sigkill")
    parser.add_argument(
        "--detect-seconds",
        type=float,
        default=8.0,
        help="pause between kill and promotion (default 8: longer than the app's own reconnect budget)",
    )
    parser.add_argument(
        "--recover-seconds", type=float, default=30.0, help="bound on recovery after promotion"
    )
    parser.add_argument("--after-acks", type=int, default=50, help="acknowledged transfers after promotion")
    parser.add_argument("--after-seconds", type=float, default=3.0)
    parser.add_argument("--resolve-seconds", type=float, default=45.0, help="bound on one transfer's retries")
    parser.add_argument("--http-timeout", type=float, default=15.0)
    parser.add_argument("--connect-timeout", type=int, default=2, help="libpq connect_timeout per host")
    parser.add_argument(
        "--sabotage",
        action="store_true",
        help="detach the standby (asynchronous, not streaming) before the kill: the drill must FAIL",
    )
    parser.add_argument(
        "--no-rebuild",
        dest="rebuild",
        action="store_false",
        help="skip rebuilding the old primary as a standby with pg_rewind afterwards",
    )
    parser.add_argument("--url-style", choices=("query", "netloc"), default="query")
    parser.add_argument("--deadline", type=int, default=170, help="the whole drill, seconds")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, data) afterwards")
    parser.add_argument("--json", metavar="FILE", help="also write the figures to FILE")
    return parser.parse_args(argv)


def run_to_end(
    args: argparse.Namespace,
    make_drill: Callable[[], Drill],
    report: Callable[[Drill, bool], None],
    *,
    errors: tuple[type[Exception], ...] = (DrillError,),
    wrap_up: Callable[[Drill], None] | None = None,
) -> int:
    """Run a drill within args.deadline, whatever happens report it and clean up: exit status
    0 (passed), 1 (a check failed), 2 (the drill could not run or was interrupted)."""

    def interrupt(signum: int, _frame: Any) -> None:
        raise Interrupted(signal.Signals(signum).name)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGALRM):
        signal.signal(signum, interrupt)
    signal.alarm(args.deadline)

    drill = make_drill()
    passed, status = False, 2
    try:
        passed = drill.execute()
        status = 0 if passed else 1
    except errors as exc:
        drill.problems.append(f"drill could not run: {exc}")
    except Interrupted as exc:
        drill.problems.append(f"interrupted by {exc} (deadline {args.deadline}s)")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        with contextlib.suppress(Exception):
            if drill.gunicorn_log.exists() and "log_tracebacks" not in drill.figures:
                drill.scan_gunicorn_log()
        if wrap_up is not None:
            with contextlib.suppress(Exception):
                wrap_up(drill)
        report(drill, passed)
        drill.clean_up(keep=args.keep)
        log("cleaned up")
    return status


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not (PG_BIN / "initdb").exists():
        print(f"PostgreSQL binaries not found in {PG_BIN} (set PG_BIN)", file=sys.stderr)
        return 2

    def make_drill() -> Drill:
        drill = Drill(args)
        log(f"run {drill.run_id} in {drill.tmp}")
        return drill

    return run_to_end(args, make_drill, print_report)


if __name__ == "__main__":
    sys.exit(main())
