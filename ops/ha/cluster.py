#!/usr/bin/env python3
"""A throwaway high-availability PostgreSQL cluster: etcd x3, Patroni x2 (or 3), PgBouncer.

    .venv/bin/python ops/ha/cluster.py up              # start, print the addresses, wait for Ctrl-C
    .venv/bin/python ops/ha/cluster.py up --members 3  # three PostgreSQL nodes
    .venv/bin/python ops/ha/cluster.py check           # start, check it is healthy, stop (exit 0/1)

Everything lives in one `mktemp -d` directory that is removed when the cluster stops,
also on Ctrl-C, SIGTERM, an error or the --deadline; stopping twice is harmless. On the
loopback interface only, on fixed spare ports by default (etcd clients 23790-23792, etcd
peers 23800-23802, PostgreSQL 55432-55434, Patroni REST 58008-58010, PgBouncer 56432) or
on ports picked at run time (--free-ports, what the drills use so runs never collide).

- etcd: three members (`etcd-server`), one raft group, quorum 2: ops/ha/etcd.yml.
- Patroni (`patroni`, etcd3 API) runs one PostgreSQL 15 per member with synchronous
  replication, pg_rewind and replication slots: ops/ha/patroni.yml.
- PgBouncer (`pgbouncer`), transaction pooling, in front of whichever member is primary:
  ops/ha/pgbouncer.ini; Patroni's on_role_change callback (ops/ha/pgbouncer_follow.sh)
  repoints it.

Run as root, the servers run as the `postgres` OS user (PostgreSQL and PgBouncer refuse
root); run as another user, as that user. The drills import `HaCluster` from here.
subprocess only runs fixed argument lists and urllib only opens loopback http URLs
(hence the `nosec` marks).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import string
import subprocess  # nosec B404
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

HERE = Path(__file__).resolve().parent
PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
SERVER_OS_USER = "postgres"
TOOLS = {"etcd": "etcd-server", "patroni": "patroni", "patronictl": "patroni", "pgbouncer": "pgbouncer"}
MEMBER_NAMES = ("pg_a", "pg_b", "pg_c")


class HaError(Exception):
    """The cluster could not be started or did not reach the state asked for in time."""


def missing_tools() -> list[str]:
    """The Debian packages whose programs are not installed (scripts/ensure_ha_tools.sh)."""
    missing = {package for tool, package in TOOLS.items() if not find_tool(tool)}
    if not (PG_BIN / "initdb").exists():
        missing.add(f"postgresql-15 (no {PG_BIN}/initdb)")
    return sorted(missing)


def find_tool(name: str) -> str | None:
    return shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/usr/bin:/sbin:/bin")


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def pick_free_ports(count: int) -> list[int]:
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


# --- Server processes -----------------------------------------------------------------------


def server_user() -> pwd.struct_passwd:
    """Who the servers run as: `postgres` when we are root (PostgreSQL and PgBouncer refuse root)."""
    return pwd.getpwnam(SERVER_OS_USER) if os.geteuid() == 0 else pwd.getpwuid(os.geteuid())


def chown(path: Path) -> None:
    if os.geteuid() == 0:
        user = server_user()
        os.chown(path, user.pw_uid, user.pw_gid)


def spawn(cmd: list[str], logfile: Path, cwd: Path) -> subprocess.Popen:
    """A server process as the server user, in its own session, output to logfile."""
    env = {
        "PATH": f"{PG_BIN}:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": str(cwd),
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
    }
    kwargs: dict[str, Any] = {}
    if os.geteuid() == 0:
        user = server_user()
        kwargs = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
    with logfile.open("ab") as out:
        chown(logfile)
        return subprocess.Popen(  # noqa: S603  # nosec B603
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
            start_new_session=True,
            **kwargs,
        )


def terminate(process: subprocess.Popen | None, grace: float = 10) -> None:
    if process is None or process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.terminate()
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        process.wait(timeout=5)


def render(template: str, target: Path, **values: object) -> None:
    """One of this folder's templates with its $-placeholders filled in, 0600, for the servers."""
    text = string.Template((HERE / template).read_text(encoding="utf-8")).substitute(values)
    write_private(target, text)


def write_private(target: Path, text: str) -> None:
    target.write_text(text, encoding="utf-8")
    target.chmod(0o600)
    chown(target)


def wait(check: Callable[[], bool], deadline: float, what: str, every: float = 0.2) -> None:
    while True:
        try:
            ok = check()
        except HaError:
            raise
        except Exception:  # not up yet (refused, 503, half-started): poll until the deadline
            ok = False
        if ok:
            return
        if time.monotonic() > deadline:
            raise HaError(f"timed out waiting for {what}")
        time.sleep(every)


# --- PgBouncer ---------------------------------------------------------------------------------


class Bouncer:
    """PgBouncer, transaction pooling, in front of one PostgreSQL database (ops/ha/pgbouncer.ini).

    Its files live in `directory`: pgbouncer.ini; databases.ini, the one [databases] entry
    (rewritten by point_at(), or by the Patroni callback ops/ha/pgbouncer_follow.sh);
    userlist.txt and admin.pgpass (plain passwords, 0600); pgbouncer.log and .pid.
    """

    def __init__(
        self,
        directory: Path | None,
        port: int,
        dbname: str,
        *,
        pool_size: int = 20,
        max_client_conn: int = 400,
        log: Callable[[str], None] = print,
    ) -> None:
        # No directory given: a throwaway one of its own, removed by stop().
        self.own_dir = Path(tempfile.mkdtemp(prefix="wallet-pgbouncer-")) if directory is None else None
        if self.own_dir is not None:
            chown(self.own_dir)
        self.dir = directory or self.own_dir / "pgbouncer"
        self.port = port
        self.dbname = dbname
        self.log = log
        self.admin_password = secrets.token_hex(16)
        self.users: dict[str, str] = {}
        self.process: subprocess.Popen | None = None
        self.dir.mkdir()
        chown(self.dir)
        render(
            "pgbouncer.ini",
            self.dir / "pgbouncer.ini",
            databases_ini=self.dir / "databases.ini",
            port=port,
            socket_dir=self.dir,
            userlist=self.dir / "userlist.txt",
            max_client_conn=max_client_conn,
            pool_size=pool_size,
            logfile=self.dir / "pgbouncer.log",
            pidfile=self.dir / "pgbouncer.pid",
        )
        write_private(
            self.dir / "admin.pgpass", f"127.0.0.1:{port}:pgbouncer:pgbouncer_admin:{self.admin_password}\n"
        )
        self.set_users({})

    def point_at(self, host: str, port: int) -> None:
        write_private(
            self.dir / "databases.ini", f"{self.dbname} = host={host} port={port} dbname={self.dbname}\n"
        )
        if self.running():
            self.admin("RELOAD")

    def set_users(self, users: dict[str, str]) -> None:
        """The userlist: the admin and these roles. PgBouncer logs in to PostgreSQL as them."""
        self.users.update(users)
        entries = {"pgbouncer_admin": self.admin_password, **self.users}
        write_private(self.dir / "userlist.txt", "".join(f'"{u}" "{pw}"\n' for u, pw in entries.items()))
        if self.running():
            self.admin("RELOAD")

    def start(self, host: str, port: int) -> None:
        self.point_at(host, port)
        self.process = spawn(
            [find_tool("pgbouncer") or "pgbouncer", str(self.dir / "pgbouncer.ini")],
            self.dir / "pgbouncer.out",
            self.dir,
        )
        wait(self.listening, time.monotonic() + 15, "pgbouncer listening")
        self.log(f"pgbouncer: 127.0.0.1:{self.port}, transaction pooling, in front of {host}:{port}")

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def listening(self) -> bool:
        if not self.running():
            raise HaError(f"pgbouncer exited; see {self.dir / 'pgbouncer.log'}")
        return not port_free(self.port)

    def admin(self, command: str) -> list[dict[str, Any]]:
        """A command on PgBouncer's admin console (SHOW POOLS, RELOAD, ...): rows as dicts."""
        with psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user="pgbouncer_admin",
            password=self.admin_password,
            dbname="pgbouncer",
            autocommit=True,
            connect_timeout=3,
            prepare_threshold=None,
            row_factory=dict_row,
        ) as conn:
            cur = conn.execute(command)
            return cur.fetchall() if cur.description else []

    def url(self, user: str, password: str) -> str:
        return f"postgres://{user}:{password}@127.0.0.1:{self.port}/{self.dbname}"

    def stop(self) -> None:
        terminate(self.process)
        if self.own_dir is not None:
            shutil.rmtree(self.own_dir, ignore_errors=True)


@dataclass
class Ports:
    etcd_client: list[int]
    etcd_peer: list[int]
    pg: list[int]
    rest: list[int]
    pgbouncer: int

    @classmethod
    def fixed(cls, members: int) -> Ports:
        return cls(
            etcd_client=[23790, 23791, 23792],
            etcd_peer=[23800, 23801, 23802],
            pg=[55432 + n for n in range(members)],
            rest=[58008 + n for n in range(members)],
            pgbouncer=56432,
        )

    @classmethod
    def free(cls, members: int) -> Ports:
        p = pick_free_ports(6 + 2 * members + 1)
        return cls(
            etcd_client=p[0:3],
            etcd_peer=p[3:6],
            pg=p[6 : 6 + members],
            rest=p[6 + members : 6 + 2 * members],
            pgbouncer=p[-1],
        )

    def all(self) -> list[int]:
        return [*self.etcd_client, *self.etcd_peer, *self.pg, *self.rest, self.pgbouncer]


@dataclass
class Member:
    name: str
    pg_port: int
    rest_port: int
    config: Path
    data_dir: Path
    log: Path
    process: subprocess.Popen | None = None

    @property
    def rest(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"


@dataclass
class EtcdMember:
    name: str
    client_port: int
    peer_port: int
    data_dir: Path
    log: Path
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"


@dataclass
class HaCluster:
    members: int = 3
    free_ports: bool = True
    strict: bool = True
    ttl: int = 10
    loop_wait: int = 1
    retry_timeout: int = 4
    pgbouncer: bool = True
    pool_size: int = 20
    max_client_conn: int = 400
    log: Callable[[str], None] = print
    tmp: Path = field(init=False)
    ports: Ports = field(init=False)

    def __post_init__(self) -> None:
        if not 2 <= self.members <= 3:
            raise HaError("2 or 3 PostgreSQL members")
        self.ports = Ports.free(self.members) if self.free_ports else Ports.fixed(self.members)
        self.tmp = Path(tempfile.mkdtemp(prefix="wallet-ha-"))
        self.scope = f"wallet-ha-{secrets.token_hex(3)}"
        self.superuser_password = secrets.token_hex(16)
        self.replication_password = secrets.token_hex(16)
        self.socket_dir = self.tmp / "sock"
        self.bouncer_dir = self.tmp / "pgbouncer"
        self.etcd = [
            EtcdMember(
                f"etcd{n}",
                self.ports.etcd_client[n],
                self.ports.etcd_peer[n],
                self.tmp / f"etcd{n}",
                self.tmp / f"etcd{n}.log",
            )
            for n in range(3)
        ]
        self.pg = [
            Member(
                name,
                self.ports.pg[n],
                self.ports.rest[n],
                self.tmp / f"{name}.yml",
                self.tmp / name,
                self.tmp / f"{name}.patroni.log",
            )
            for n, name in enumerate(MEMBER_NAMES[: self.members])
        ]
        self.bouncer: Bouncer | None = None
        self.stopped = False

    # -- start ------------------------------------------------------------------------

    def start(self, timeout: float = 90) -> None:
        missing = missing_tools()
        if missing:
            raise HaError(f"missing: {', '.join(missing)} (scripts/ensure_ha_tools.sh installs them)")
        busy = [port for port in self.ports.all() if not port_free(port)]
        if busy:
            raise HaError(f"ports already in use: {busy} (--free-ports picks spare ones)")
        deadline = time.monotonic() + timeout
        chown(self.tmp)
        self.socket_dir.mkdir()
        chown(self.socket_dir)
        for etcd in self.etcd:
            self.start_etcd(etcd, new=True)
        wait(lambda: all(self.etcd_healthy(e) for e in self.etcd), deadline, "etcd quorum")
        self.log(f"etcd: 3 members on {', '.join(str(e.client_port) for e in self.etcd)}")
        if self.pgbouncer:
            self.bouncer = Bouncer(
                self.bouncer_dir,
                self.ports.pgbouncer,
                "wallet",
                pool_size=self.pool_size,
                max_client_conn=self.max_client_conn,
                log=self.log,
            )
        for n, member in enumerate(self.pg):
            self.write_patroni_config(member)
            self.start_patroni(member)
            if n == 0:  # the first bootstraps; the others then clone it
                wait(lambda: self.leader() == self.pg[0].name, deadline, f"{member.name} bootstrapped")
        self.wait_healthy(max(1.0, deadline - time.monotonic()))
        if self.bouncer is not None:
            leader = self.member(self.leader() or self.pg[0].name)
            self.bouncer.start("127.0.0.1", leader.pg_port)
        self.log(f"patroni: leader {self.leader()}, sync standby {self.sync_standby()}")

    def start_etcd(self, etcd: EtcdMember, new: bool = False) -> None:
        if new:
            etcd.data_dir.mkdir(mode=0o700)
            chown(etcd.data_dir)
        config = self.tmp / f"{etcd.name}.yml"
        render(
            "etcd.yml",
            config,
            name=etcd.name,
            data_dir=etcd.data_dir,
            client_port=etcd.client_port,
            peer_port=etcd.peer_port,
            initial_cluster=",".join(f"{e.name}=http://127.0.0.1:{e.peer_port}" for e in self.etcd),
            token=self.scope,
            state="new" if new else "existing",
        )
        etcd.process = spawn([find_tool("etcd") or "etcd", f"--config-file={config}"], etcd.log, self.tmp)

    def write_patroni_config(self, member: Member) -> None:
        follow = " ".join(
            [
                str(HERE / "pgbouncer_follow.sh"),
                "127.0.0.1",
                str(member.pg_port),
                str(self.bouncer_dir),
                str(self.ports.pgbouncer),
                str(PG_BIN / "psql"),
            ]
        )
        render(
            "patroni.yml",
            member.config,
            scope=self.scope,
            name=member.name,
            rest_port=member.rest_port,
            etcd_hosts=",".join(f"127.0.0.1:{e.client_port}" for e in self.etcd),
            ttl=self.ttl,
            loop_wait=self.loop_wait,
            retry_timeout=self.retry_timeout,
            synchronous_mode_strict="true" if self.strict else "false",
            pg_port=member.pg_port,
            data_dir=member.data_dir,
            bin_dir=PG_BIN,
            pgpass=self.tmp / f"{member.name}.pgpass",
            superuser_password=self.superuser_password,
            replication_password=self.replication_password,
            socket_dir=self.socket_dir,
            follow_callback=follow if self.pgbouncer else "''",
        )

    def start_patroni(self, member: Member) -> None:
        member.process = spawn([find_tool("patroni") or "patroni", str(member.config)], member.log, self.tmp)

    def create_app_database(self, user: str, password: str, lock_timeout_ms: int = 5000) -> None:
        """The app's role and its `wallet` database on the leader, and the role in PgBouncer's
        userlist. The role carries the app's lock_timeout: PgBouncer drops the `options`
        startup parameter the settings send it in."""
        leader = self.leader()
        if leader is None:
            raise HaError("no leader to create the database on")
        with self.connect(leader) as conn:
            role = sql.Identifier(user)
            conn.execute(sql.SQL("CREATE ROLE {} WITH LOGIN PASSWORD {}").format(role, sql.Literal(password)))
            conn.execute(
                sql.SQL("ALTER ROLE {} SET lock_timeout = {}").format(
                    role, sql.Literal(f"{lock_timeout_ms}ms")
                )
            )
            conn.execute(sql.SQL("CREATE DATABASE wallet OWNER {}").format(role))
        if self.bouncer is not None:
            self.bouncer.set_users({user: password})

    def set_bouncer_users(self, users: dict[str, str]) -> None:
        if self.bouncer is None:
            raise HaError("this cluster runs without PgBouncer")
        self.bouncer.set_users(users)

    # -- state ----------------------------------------------------------------------------

    @staticmethod
    def http(url: str, method: str = "GET", timeout: float = 1.0) -> tuple[int, Any]:
        request = urllib.request.Request(url, method=method)  # noqa: S310 - loopback http only
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310  # nosec B310
                body = response.read()
                status = response.status
        except urllib.error.HTTPError as exc:
            body, status = exc.read(), exc.code
        try:
            return status, json.loads(body)
        except ValueError:
            return status, body

    def etcd_healthy(self, etcd: EtcdMember) -> bool:
        status, body = self.http(f"{etcd.url}/health")
        return status == 200 and isinstance(body, dict) and body.get("health") == "true"

    def member(self, name: str) -> Member:
        return next(m for m in self.pg if m.name == name)

    def cluster_state(self) -> dict:
        """Patroni's view (GET /cluster) from the first member whose REST API answers."""
        for member in self.pg:
            try:
                status, body = self.http(f"{member.rest}/cluster")
            except OSError:
                continue
            if status == 200 and isinstance(body, dict):
                return body
        return {}

    def leader(self) -> str | None:
        for m in self.cluster_state().get("members", []):
            if m.get("role") in ("leader", "master", "primary") and m.get("state") == "running":
                return m["name"]
        return None

    def sync_standby(self) -> str | None:
        for m in self.cluster_state().get("members", []):
            if m.get("role") == "sync_standby" and m.get("state") in ("running", "streaming"):
                return m["name"]
        return None

    def primary_by_rest(self) -> str | None:
        """The member answering 200 to Patroni's GET /primary: holds the lock and runs as primary."""
        for member in self.pg:
            try:
                status, _ = self.http(f"{member.rest}/primary", timeout=0.5)
            except OSError:
                continue
            if status == 200:
                return member.name
        return None

    def healthy(self) -> bool:
        members = self.cluster_state().get("members", [])
        if len(members) != len(self.pg):
            return False
        leaders = [m for m in members if m.get("role") in ("leader", "master", "primary")]
        sync = [m for m in members if m.get("role") == "sync_standby"]
        running = all(m.get("state") in ("running", "streaming") for m in members)
        return len(leaders) == 1 and len(sync) == 1 and running

    def wait_healthy(self, timeout: float) -> None:
        wait(self.healthy, time.monotonic() + timeout, "a leader, a sync standby, all members running")

    def describe(self) -> str:
        rows = []
        state = self.cluster_state()
        for m in state.get("members", []):
            role, state = m.get("role"), m.get("state")
            rows.append(f"{m['name']} {role} {state} tl={m.get('timeline')} lag={m.get('lag', 0)}")
        return "; ".join(rows) or "no member answers"

    def connect(self, name: str, dbname: str = "postgres") -> psycopg.Connection:
        return psycopg.connect(
            host=str(self.socket_dir),
            port=self.member(name).pg_port,
            user="postgres",
            dbname=dbname,
            autocommit=True,
            connect_timeout=3,
        )

    def database_url(self, user: str, password: str, dbname: str, connect_timeout: int = 2) -> str:
        """The app's multi-host URL: libpq keeps the first member that accepts writes."""
        hosts = ",".join("127.0.0.1" for _ in self.pg)
        ports = ",".join(str(m.pg_port) for m in self.pg)
        return (
            f"postgres://{user}:{password}@/{dbname}?host={hosts}&port={ports}"
            f"&target_session_attrs=read-write&connect_timeout={connect_timeout}"
        )

    def bouncer_url(self, user: str, password: str) -> str:
        if self.bouncer is None:
            raise HaError("this cluster runs without PgBouncer")
        return self.bouncer.url(user, password)

    # -- failures and operations ------------------------------------------------------------

    def postmaster_pid(self, name: str) -> int | None:
        try:
            pid = int((self.member(name).data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None
        return pid if Path(f"/proc/{pid}").exists() else None

    def kill_postmaster(self, name: str) -> int:
        """SIGKILL the member's postmaster: its backends die with it (a crash, no checkpoint)."""
        pid = self.postmaster_pid(name)
        if pid is None:
            raise HaError(f"{name} has no running postmaster")
        os.kill(pid, signal.SIGKILL)
        return pid

    def kill_patroni(self, name: str) -> int:
        """SIGKILL the member's Patroni: PostgreSQL (its own session) keeps running."""
        process = self.member(name).process
        if process is None or process.poll() is not None:
            raise HaError(f"{name}'s Patroni is not running")
        process.kill()
        process.wait(timeout=5)
        return process.pid

    def restart_patroni(self, name: str) -> None:
        """What systemd's Restart=always does for a Patroni that died."""
        member = self.member(name)
        if member.process is not None and member.process.poll() is None:
            return
        self.start_patroni(member)

    def kill_etcd(self, index: int) -> int:
        process = self.etcd[index].process
        if process is None or process.poll() is not None:
            raise HaError(f"{self.etcd[index].name} is not running")
        process.kill()
        process.wait(timeout=5)
        return process.pid

    def etcd_leader(self) -> int | None:
        """The index of the etcd raft leader, from the members' own status."""
        for n, etcd in enumerate(self.etcd):
            try:
                status, body = self.http(f"{etcd.url}/v3/maintenance/status", method="POST")
            except OSError:
                continue
            if status == 200 and isinstance(body, dict):
                leader = int(body.get("leader", 0))
                member = int(body.get("header", {}).get("member_id", 0))
                if leader and leader == member:
                    return n
        return None

    def restart_etcd(self, index: int) -> None:
        etcd = self.etcd[index]
        if etcd.process is not None and etcd.process.poll() is None:
            return
        self.start_etcd(etcd, new=False)

    def patronictl(self, *args: str, timeout: float = 60) -> str:
        cmd = [find_tool("patronictl") or "patronictl", "-c", str(self.pg[0].config), *args]
        done = subprocess.run(  # noqa: S603  # nosec B603
            cmd, capture_output=True, text=True, timeout=timeout, check=False
        )
        if done.returncode != 0:
            raise HaError(f"{' '.join(cmd[3:])} exited {done.returncode}: {done.stdout}{done.stderr}")
        return done.stdout

    def switchover(self, candidate: str, timeout: float = 60) -> str:
        leader = self.leader()
        if leader is None:
            raise HaError("no leader to switch over from")
        return self.patronictl(
            "switchover", self.scope, "--leader", leader, "--candidate", candidate, "--force", timeout=timeout
        )

    # -- stop ---------------------------------------------------------------------------------

    def stop(self, keep: bool = False) -> None:
        """Stop everything and remove the directory. Safe to call again, and after a failed start."""
        if self.stopped:
            return
        if self.bouncer is not None:
            self.bouncer.stop()
        for member in self.pg:
            terminate(member.process, grace=20)  # Patroni stops its PostgreSQL
        for member in self.pg:  # a PostgreSQL whose Patroni was killed is still up
            pid = self.postmaster_pid(member.name)
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGQUIT)  # immediate shutdown
                for _ in range(50):
                    if not Path(f"/proc/{pid}").exists():
                        break
                    time.sleep(0.1)
                else:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(pid, signal.SIGKILL)  # the postmaster leads its own session
        for etcd in self.etcd:
            terminate(etcd.process)
        self.stopped = True
        if keep:
            self.log(f"kept {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("up", "check"))
    parser.add_argument("--members", type=int, default=3, choices=(2, 3))
    parser.add_argument(
        "--no-strict", dest="strict", action="store_false", help="synchronous_mode_strict: false"
    )
    parser.add_argument("--free-ports", action="store_true", help="spare ports instead of the fixed ones")
    parser.add_argument("--no-pgbouncer", dest="pgbouncer", action="store_false")
    parser.add_argument("--keep", action="store_true", help="keep the directory (logs, data) afterwards")
    parser.add_argument("--deadline", type=int, default=3600, help="stop by itself after this many seconds")
    args = parser.parse_args(argv)

    missing = missing_tools()
    if missing:
        print(f"cannot start: missing {', '.join(missing)}; run scripts/ensure_ha_tools.sh", file=sys.stderr)
        return 2

    def interrupt(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    for signum in (signal.SIGTERM, signal.SIGALRM):
        signal.signal(signum, interrupt)
    signal.alarm(args.deadline)
    cluster = HaCluster(
        members=args.members, free_ports=args.free_ports, strict=args.strict, pgbouncer=args.pgbouncer
    )
    cluster.log(f"directory {cluster.tmp}")
    try:
        cluster.start()
        cluster.log(cluster.describe())
        if args.action == "check":
            print(cluster.patronictl("list"))
            return 0
        password = secrets.token_hex(12)
        cluster.create_app_database("wallet", password)
        for member in cluster.pg:
            print(f"{member.name}: postgresql 127.0.0.1:{member.pg_port}, patroni {member.rest}")
        print(f"etcd: {','.join(e.url for e in cluster.etcd)}")
        print(f"DATABASE_URL={cluster.database_url('wallet', password, 'wallet')}")
        if cluster.pgbouncer:
            print(
                f"through PgBouncer: DATABASE_URL={cluster.bouncer_url('wallet', password)} "
                "DB_PREPARE_THRESHOLD=0 DB_DISABLE_SERVER_SIDE_CURSORS=true"
            )
        print(f"patronictl -c {cluster.pg[0].config} list      # Ctrl-C stops it all", flush=True)
        while True:
            time.sleep(3600)
    except HaError as exc:
        print(f"cluster failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        cluster.stop(keep=args.keep)
        cluster.log("stopped")


if __name__ == "__main__":
    sys.exit(main())
