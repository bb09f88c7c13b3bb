#!/usr/bin/env python3
"""Patroni drill: crash the leader three ways and switch over, under traffic; lose nothing.

    .venv/bin/python ops/drills/patroni_drill.py          # as root (servers run as `postgres`)
    .venv/bin/python ops/drills/patroni_drill.py --keep   # keep the temp dirs for a post-mortem

The cluster is ops/ha/cluster.py's, on loopback ports chosen at run time: etcd x3,
PostgreSQL 15 x2 under Patroni (synchronous_mode, pg_rewind, slots; ttl 10 s,
loop_wait 1 s) and PgBouncer following the leader. The app, its traffic and the checks
are ops/drills/failover_drill.py's: the project's gunicorn (production settings, 2
workers) on the multi-host DATABASE_URL (target_session_attrs=read-write), transfer
threads that resend the *same* request (same Idempotency-Key) on transport errors, 5xx
and 409 idempotency_key_in_use, and a reader. Then, one after the other, with the
traffic running throughout:

1. postmaster: SIGKILL the leader's postmaster (its backends die with it). Patroni
   (primary_start_timeout 0) fails over to the synchronous standby instead of restarting
   it in place; the old leader comes back as a replica, through pg_rewind if it diverged;
2. patroni: SIGKILL the leader's Patroni. PostgreSQL keeps running and serving; once the
   leader key expires (ttl) the synchronous standby is elected. The killed Patroni is
   started again --patroni-down-seconds after the kill (what systemd's Restart= does,
   here late enough for the key to expire): it finds another leader and demotes its own
   PostgreSQL, which rejoins as a replica;
3. etcd: SIGKILL the etcd raft leader. Two members keep quorum: no failover may happen
   and the traffic goes on; the member is started again and rejoins;
4. switchover: `patronictl switchover --force` to the synchronous standby.

After each: a new leader (none after the etcd kill), the old one a running replica on the
new timeline, a synchronous standby again, PgBouncer pointing at the leader. At the end,
on the leader: every acknowledged transfer exists exactly once with its key's record, no
transfer the client was told failed, money conserved and every balance equal to deposits
plus acknowledged transfers, `manage.py reconcile` exits 0, no HTTP 500, no traceback,
every request that got a 5xx was resolved by a resend under the same key, and each
replica holds the leader's ledger. Per step it records the longest time without an
acknowledged transfer, the time Patroni's REST API named no primary (GET /primary), the
503s the clients saw and retried, and how long the old leader took to rejoin.

Prints PASS or FAIL with the figures; exit status 0 on PASS, 1 on FAIL, 2 if the drill
could not run, 3 if the HA tools are missing (scripts/ensure_ha_tools.sh installs them).
Bounded by --deadline (default 240 s); everything is stopped and removed on success,
failure and SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ha"))

from cluster import HaCluster, HaError, missing_tools
from failover_drill import Drill, DrillError, log, print_figures, run_to_end

SCENARIOS = ("postmaster", "patroni", "etcd", "switchover")


class LeaderView:
    """What failover_drill.Drill's checks call `pg_b`: whichever member leads now."""

    def __init__(self, cluster: HaCluster) -> None:
        self.cluster = cluster

    @property
    def name(self) -> str:
        return self.cluster.leader() or "no leader"

    def connect(self, dbname: str = "postgres") -> psycopg.Connection:
        leader = self.cluster.leader()
        if leader is None:
            raise DrillError("no Patroni leader to check against")
        return self.cluster.connect(leader, dbname)

    def stop(self) -> None:  # the cluster stops its members itself
        return None


class PatroniDrill(Drill):
    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__(args)
        self.cluster = HaCluster(members=args.members, strict=args.strict, ttl=args.ttl, log=log)
        self.pg_a = self.pg_b = LeaderView(self.cluster)  # type: ignore[assignment]
        self.primaries: list[tuple[float, str | None]] = []  # (time, GET /primary answer) on change
        self.monitor_stop = threading.Event()
        self.steps: dict[str, dict[str, Any]] = {}

    # -- set-up --

    def set_up_clusters(self) -> None:
        self.cluster.start(timeout=self.args.start_timeout)
        leader = self.cluster.leader()
        if leader is None:
            raise DrillError("the cluster started without a leader")
        self.cluster.create_app_database("wallet", self.app_password)
        threading.Thread(target=self.watch_primary, name="primary-monitor", daemon=True).start()

    def database_url(self) -> str:
        if self.args.via == "pgbouncer":
            return self.cluster.bouncer_url("wallet", self.app_password)
        return self.cluster.database_url("wallet", self.app_password, "wallet", self.args.connect_timeout)

    def app_env(self) -> dict[str, str]:
        env = super().app_env()
        if self.args.via == "pgbouncer":  # what PgBouncer 1.18 in transaction mode needs
            env.update({"DB_PREPARE_THRESHOLD": "0", "DB_DISABLE_SERVER_SIDE_CURSORS": "true"})
        return env

    def watch_primary(self) -> None:
        """Patroni's own answer, every 100 ms: which member says 200 to GET /primary."""
        last: str | None | bool = False
        while not self.monitor_stop.is_set():
            try:
                now = self.cluster.primary_by_rest()
            except Exception:  # a member half-started; ask again
                now = None
            if now != last:
                self.primaries.append((time.monotonic(), now))
                last = now
            self.monitor_stop.wait(0.1)

    # -- the steps --

    def wait_for(self, check: Any, timeout: float, what: str) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(HaError, OSError, psycopg.Error):
                if check():
                    return time.monotonic()
            time.sleep(0.1)
        raise DrillError(f"timed out after {timeout:.0f}s waiting for {what}: {self.cluster.describe()}")

    def rejoined(self, old: str) -> bool:
        """The old leader runs as a replica on the leader's timeline and a sync standby exists."""
        if not self.cluster.healthy():
            return False
        members = {m["name"]: m for m in self.cluster.cluster_state().get("members", [])}
        leader = next((m for m in members.values() if m.get("role") in ("leader", "master", "primary")), {})
        mine = members.get(old, {})
        return (
            mine.get("role") in ("replica", "sync_standby")
            and mine.get("timeline") == leader.get("timeline")
            and self.cluster.sync_standby() is not None
        )

    def log_mark(self, name: str) -> int:
        path = self.cluster.member(name).log
        return path.stat().st_size if path.exists() else 0

    def log_since(self, name: str, mark: int) -> str:
        with self.cluster.member(name).log.open("rb") as fh:
            fh.seek(mark)
            return fh.read().decode("utf-8", "replace")

    def step(self, name: str) -> None:
        cluster = self.cluster
        old = cluster.leader()
        if old is None:
            raise DrillError(f"{name}: no leader before the step")
        mark = self.log_mark(old)
        figures: dict[str, Any] = {"old_leader": old}
        started = time.monotonic()
        expect_new_leader = name != "etcd"

        if name == "postmaster":
            pid = cluster.kill_postmaster(old)
            log(f"[{name}] SIGKILL postmaster {pid} of leader {old}")
        elif name == "patroni":
            pid = cluster.kill_patroni(old)
            log(f"[{name}] SIGKILL Patroni {pid} of leader {old}; PostgreSQL keeps running")
        elif name == "etcd":
            index = cluster.etcd_leader()
            index = 0 if index is None else index
            cluster.kill_etcd(index)
            figures["etcd_killed"] = f"{cluster.etcd[index].name} (raft leader)"
            log(f"[{name}] SIGKILL etcd member {cluster.etcd[index].name}, the raft leader")
        elif name == "switchover":
            candidate = cluster.sync_standby()
            if candidate is None:
                raise DrillError("switchover: no synchronous standby to switch to")
            out = cluster.switchover(candidate, timeout=self.args.step_timeout)
            figures["patronictl"] = " ".join(out.split())[-120:]
            log(f"[{name}] patronictl switchover --force {old} -> {candidate} returned")

        if name == "patroni":
            # The standby is elected once the leader key expires; then "systemd" restarts
            # the dead Patroni, which must demote its still-running PostgreSQL.
            new_at = self.wait_for(
                lambda: cluster.leader() not in (None, old), self.args.step_timeout, "a new leader"
            )
            pause = started + self.args.patroni_down_seconds - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            cluster.restart_patroni(old)
            figures["patroni_restarted_s"] = round(time.monotonic() - started, 2)
            log(f"[{name}] Patroni of {old} started again")
        elif expect_new_leader:
            new_at = self.wait_for(
                lambda: cluster.leader() not in (None, old), self.args.step_timeout, "a new leader"
            )
        else:
            time.sleep(self.args.etcd_down_seconds)  # traffic goes on with two members
            new_at = None
            if cluster.leader() != old:
                self.problems.append(f"etcd: losing one etcd member moved the leader from {old}")
            cluster.restart_etcd(index)
            self.wait_for(lambda: all(cluster.etcd_healthy(e) for e in cluster.etcd), 30, "etcd x3 healthy")
            log(f"[{name}] etcd member started again; all three healthy")

        leader = cluster.leader()
        figures["new_leader"] = leader
        if new_at is not None:
            figures["new_leader_s"] = round(new_at - started, 2)
            log(f"[{name}] new leader {leader} after {new_at - started:.2f}s")
        first_ack = self.wait_for(
            lambda: self.acks_since(new_at or started) > 0, self.args.step_timeout, "a transfer acknowledged"
        )
        if expect_new_leader:
            rejoined_at = self.wait_for(
                lambda: self.rejoined(old), self.args.rejoin_timeout, f"{old} to rejoin as a replica"
            )
            figures["rejoined_s"] = round(rejoined_at - started, 2)
            log(f"[{name}] {old} is a replica again after {rejoined_at - started:.2f}s: {cluster.describe()}")
        else:
            rejoined_at = self.wait_for(
                lambda: cluster.healthy() and cluster.leader() == old,
                self.args.rejoin_timeout,
                "a healthy cluster",
            )
        self.wait_for_acks(rejoined_at, self.args.after_acks, timeout=20)
        ended = time.monotonic()

        patroni_log = self.log_since(old, mark)
        rewind_lines = [line for line in patroni_log.splitlines() if "rewind" in line.lower()]
        if any("running pg_rewind" in line.lower() for line in rewind_lines):
            diverged = next(
                (x[x.index("servers diverged") :] for x in rewind_lines if "servers diverged" in x), ""
            )
            figures["pg_rewind"] = f"ran ({diverged})" if diverged else "ran"
        elif "new target timeline" in patroni_log:
            figures["pg_rewind"] = "not needed: followed the new timeline (no divergence)"
        else:
            figures["pg_rewind"] = "not run"
        figures["pgbouncer"] = self.check_pgbouncer()
        figures.update(self.window_figures(started, ended, first_ack))
        self.steps[name] = figures

    def check_pgbouncer(self) -> str:
        """Through PgBouncer, the session lands on the leader, read-write, with the role's lock_timeout."""
        leader = self.cluster.leader()
        port = self.cluster.member(leader).pg_port if leader else None
        deadline = time.monotonic() + 15
        seen: Any = None
        while time.monotonic() < deadline:
            try:
                with psycopg.connect(
                    self.cluster.bouncer_url("wallet", self.app_password),
                    connect_timeout=3,
                    prepare_threshold=None,
                    autocommit=True,
                ) as conn:
                    seen = conn.execute(
                        "SELECT inet_server_port(), pg_is_in_recovery(), current_setting('lock_timeout')"
                    ).fetchone()
            except psycopg.Error as exc:
                seen = str(exc).strip()[:120]
            if seen == (port, False, "5s"):
                return f"on {leader}"
            time.sleep(0.3)
        self.problems.append(f"PgBouncer does not reach the leader {leader} (port {port}): {seen}")
        return f"WRONG: {seen}"

    def window_figures(self, started: float, ended: float, first_ack: float) -> dict[str, Any]:
        with self.traffic.lock:
            times = sorted(ack.at for ack in self.traffic.acks)
            retried = [a for a in self.traffic.acks if started <= a.at <= ended and a.attempts > 1]
            failures = [kind for at, kind in self.traffic.failures if started <= at <= ended]
            read_failures = [kind for at, kind in self.traffic.read_failures if started <= at <= ended]
        before = [t for t in times if t < started]
        inside = [t for t in times if started <= t <= ended]
        points = ([before[-1]] if before else [started]) + inside
        gap = max((b - a for a, b in itertools.pairwise(points)), default=0.0)
        return {
            "no_ack_longest_s": round(gap, 2),
            "first_ack_s": round(first_ack - started, 2),
            "no_rest_primary_s": round(self.no_primary_seconds(started, ended), 2),
            "acknowledged": len(inside),
            "retried_transfers": len(retried),
            "retried_503": sum(1 for kind in failures if kind.startswith("503")),
            "failed_attempts": Counter(failures).most_common(),
            "failed_reads": Counter(read_failures).most_common(),
            "step_s": round(ended - started, 2),
        }

    def no_primary_seconds(self, started: float, ended: float) -> float:
        """Seconds within [started, ended] when no member answered GET /primary with 200."""
        total, current, since = 0.0, None, started
        for at, primary in self.primaries:
            if at <= started:
                current = primary
                continue
            if at >= ended:
                break
            if current is None:
                total += at - since
            current, since = primary, at
        if current is None:
            total += ended - since
        return total

    # -- the whole drill --

    def execute(self) -> bool:
        self.set_up_clusters()
        self.set_up_app()
        self.set_up_accounts()
        self.start_traffic()
        try:
            if not self.wait_for_acks(self.timeline["traffic"], self.args.warmup_acks, timeout=30):
                raise DrillError(f"fewer than {self.args.warmup_acks} transfers acknowledged at the start")
            for name in self.args.steps:
                self.step(name)
        finally:
            self.stop_traffic()
            self.monitor_stop.set()
        self.figures["steps"] = self.steps
        self.summarize()
        self.verify()
        self.check_replicas()
        self.scan_gunicorn_log()
        return not self.problems

    def summarize(self) -> None:
        traffic = self.traffic
        acked = {ack.key for ack in traffic.acks}
        unresolved_5xx = [
            key
            for key, kinds in traffic.failed_keys.items()
            if key not in acked and any(k.startswith("5") or k.startswith("transport") for k in kinds)
        ]
        self.figures.update(
            {
                "acknowledged": len(traffic.acks),
                "replayed_acks": sum(1 for ack in traffic.acks if ack.replayed),
                "retried_transfers": sum(1 for ack in traffic.acks if ack.attempts > 1),
                "retried_503_total": sum(1 for _, kind in traffic.failures if kind.startswith("503")),
                "unresolved": len(traffic.unresolved),
                "refused": Counter(traffic.refused.values()).most_common(),
                "failed_attempts_total": len(traffic.failures),
                "reads": dict(traffic.reads),
                "final": self.cluster.describe(),
            }
        )
        if unresolved_5xx:
            self.problems.append(
                f"requests that got a 5xx or no answer, not resolved by a resend: {unresolved_5xx[:10]}"
            )

    def check_replicas(self) -> None:
        """Every replica ends with the leader's ledger (the synchronous one has it at once)."""
        leader = self.cluster.leader()
        pattern = [f"fo-{self.run_id}-%"]
        count_sql = (
            "SELECT count(*), coalesce(sum(amount), 0) FROM transfers_transfer WHERE description LIKE %s"
        )
        with self.cluster.connect(leader, "wallet") as conn:
            on_leader = conn.execute(count_sql, pattern).fetchone()
        seen = {leader: on_leader}
        for member in self.cluster.pg:
            if member.name == leader:
                continue
            deadline = time.monotonic() + 10
            while True:
                with self.cluster.connect(member.name, "wallet") as conn:
                    seen[member.name] = conn.execute(count_sql, pattern).fetchone()
                if seen[member.name] == on_leader or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
        self.figures["ledger_per_member"] = {
            name: f"{n} transfers, {s} cents" for name, (n, s) in seen.items()
        }
        if any(value != on_leader for value in seen.values()):
            self.problems.append(f"a replica's ledger differs from the leader's: {seen}")

    def clean_up(self, keep: bool) -> None:
        self.monitor_stop.set()
        super().clean_up(keep)
        self.cluster.stop(keep=keep)


def print_report(drill: PatroniDrill, passed: bool) -> None:
    f = drill.figures
    print("\n=== patroni drill ===")
    for name, figures in f.get("steps", {}).items():
        print(f"[{name}]")
        for key, value in figures.items():
            print(f"  {key}: {value}")
    print_figures(
        drill,
        (
            "acknowledged",
            "replayed_acks",
            "retried_transfers",
            "retried_503_total",
            "unresolved",
            "refused",
            "failed_attempts_total",
            "reads",
            "ledger_transfers",
            "ledger_per_member",
            "reconcile",
            "final",
            "log_tracebacks",
            "log_reconnect_warnings",
            "log_error_lines",
            "worker_timeouts",
            "traceback_samples",
        ),
        passed,
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=lambda s: [x for x in s.split(",") if x], default=list(SCENARIOS))
    parser.add_argument("--members", type=int, default=3, choices=(2, 3), help="PostgreSQL members")
    parser.add_argument(
        "--no-strict",
        dest="strict",
        action="store_false",
        help="synchronous_mode_strict: false; the patroni step then loses acknowledged transfers",
    )
    parser.add_argument(
        "--via",
        choices=("multihost", "pgbouncer"),
        default="multihost",
        help="the app's DATABASE_URL: every member with target_session_attrs=read-write (default), "
        "or the PgBouncer that Patroni's callback points at the leader",
    )
    parser.add_argument("--ttl", type=int, default=10, help="Patroni's leader key TTL, seconds")
    parser.add_argument(
        "--patroni-down-seconds",
        type=float,
        default=12.0,
        help="the killed Patroni is started again this long after the kill (default 12: past the ttl)",
    )
    parser.add_argument("--etcd-down-seconds", type=float, default=5.0)
    parser.add_argument("--start-timeout", type=float, default=90.0)
    parser.add_argument("--step-timeout", type=float, default=40.0)
    parser.add_argument("--rejoin-timeout", type=float, default=60.0)
    parser.add_argument("--clients", type=int, default=6, help="transfer threads (default 6)")
    parser.add_argument("--users", type=int, default=4)
    parser.add_argument("--wallets-per-user", type=int, default=3)
    parser.add_argument("--funding", type=int, default=10_000_000, help="deposit per wallet, cents")
    parser.add_argument("--amount-max", type=int, default=500)
    parser.add_argument("--warmup-acks", type=int, default=50)
    parser.add_argument("--after-acks", type=int, default=30, help="acknowledged transfers after each step")
    parser.add_argument("--resolve-seconds", type=float, default=45.0, help="bound on one transfer's retries")
    parser.add_argument("--http-timeout", type=float, default=15.0)
    parser.add_argument("--connect-timeout", type=int, default=2, help="libpq connect_timeout per host")
    parser.add_argument("--deadline", type=int, default=240, help="the whole drill, seconds")
    parser.add_argument("--keep", action="store_true", help="keep the temp dirs (logs, data) afterwards")
    parser.add_argument("--json", metavar="FILE", help="also write the figures to FILE")
    args = parser.parse_args(argv)
    unknown = [s for s in args.steps if s not in SCENARIOS]
    if unknown:
        parser.error(f"unknown steps {unknown}; choose among {','.join(SCENARIOS)}")
    args.url_style = "query"
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    missing = missing_tools()
    if missing:
        print(f"SKIP: missing {', '.join(missing)} (scripts/ensure_ha_tools.sh installs them)")
        return 3

    def make_drill() -> PatroniDrill:
        drill = PatroniDrill(args)
        log(f"run {drill.run_id} in {drill.tmp} and {drill.cluster.tmp}")
        return drill

    def wrap_up(drill: PatroniDrill) -> None:
        drill.figures.setdefault("steps", drill.steps)
        drill.figures.setdefault("final", drill.cluster.describe())

    return run_to_end(args, make_drill, print_report, errors=(DrillError, HaError), wrap_up=wrap_up)


if __name__ == "__main__":
    sys.exit(main())
