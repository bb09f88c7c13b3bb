"""Point-in-time recovery drill: prove that the backup scripts restore the ledger to a moment.

    python ops/drills/pitr_drill.py [--keep] [--budget SECONDS] [--sabotage]

On one machine, with throwaway PostgreSQL clusters on spare loopback ports (the
server on 5432 is never touched):

1. initdb a primary, turn on WAL archiving with ops/backup/enable_wal_archiving.sh,
   restart it, create the `wallet` database and run the Django migrations.
2. Take a base backup with ops/backup/base_backup.sh (pg_verifybackup-checked).
3. Run real money movements through the app's services (users, wallets, deposits,
   withdrawals, transfers from several threads) and record every acknowledged one
   with the server's clock at acknowledgement.
4. Switch WAL, note T (the server's clock, a second clear of any traffic on each side)
   and the wallet balances at T.
5. Run more movements (and open a new wallet), recording the server's clock before
   each starts: all of them begin after T.
6. Switch WAL and wait until the archive holds every segment; apply retention with
   ops/backup/prune_backups.sh (WAL older than the base backup goes).
7. Restore to T into a new cluster on another port with ops/backup/restore_pitr.sh.
8. Prove on the restored database: every movement acknowledged before T is there,
   nothing after T is, balances equal those at T, and `manage.py reconcile` exits 0.

Prints PASS or FAIL with counts and timings; exits 0 only on PASS. Everything lives in
one temporary directory that is removed at the end, also on failure or interruption
(clusters are stopped with `pg_ctl -m immediate` first); --keep leaves it for a
post-mortem. --sabotage restores to the middle of the after-T traffic instead of T,
to show that the checks catch a wrong restore (the drill must then FAIL). Run as root,
server-side tools run as the `postgres` OS user; run as another user, they run as that
user. The whole drill is bounded by --budget seconds.

`workload` is the internal sub-command that runs inside Django (a subprocess with
DATABASE_URL pointing at the throwaway primary).
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BACKUP_SCRIPTS = REPO / "ops" / "backup"
VENV_PYTHON = REPO / ".venv" / "bin" / "python"
SERVER_OS_USER = "postgres"
SETTINGS = "wallet_project.settings.local"  # no Redis needed: in-process cache, inline tasks


# --- Utilities --------------------------------------------------------------------------------------


class DrillFailure(Exception):
    """A check or a step of the drill failed; the message says which."""


class Clock:
    """The drill's time budget and the duration of each step."""

    def __init__(self, budget: float) -> None:
        self.start = time.monotonic()
        self.deadline = self.start + budget
        self.steps: list[tuple[str, float]] = []

    def remaining(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise DrillFailure("the drill ran out of its time budget")
        return left

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        t0 = time.monotonic()
        print(f"[{t0 - self.start:6.1f}s] {name} ...", flush=True)
        try:
            yield
        finally:
            self.steps.append((name, time.monotonic() - t0))


def pg_bin() -> Path:
    if os.environ.get("PGBIN"):
        return Path(os.environ["PGBIN"])
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))
    if candidates:
        return candidates[-1]
    found = shutil.which("pg_config")
    if found:
        return Path(subprocess.check_output([found, "--bindir"], text=True).strip())  # noqa: S603
    raise DrillFailure("no PostgreSQL server tools found; set PGBIN")


def as_server_user(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run server-side tools as postgres."""
    if os.geteuid() == 0:
        return ["runuser", "-u", SERVER_OS_USER, "--", *cmd]
    return cmd


def run(cmd: list[str], clock: Clock, *, env: dict | None = None, cap: float = 120, check: bool = True):
    """Run a command with a timeout inside the budget; on failure raise with its output."""
    timeout = min(cap, clock.remaining())
    try:
        result = subprocess.run(  # noqa: S603 the drill runs its own fixed commands
            cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as error:
        raise DrillFailure(f"timed out after {timeout:.0f}s: {' '.join(cmd)}") from error
    if check and result.returncode != 0:
        raise DrillFailure(
            f"exit {result.returncode}: {' '.join(cmd)}\n--- stdout\n{result.stdout[-3000:]}"
            f"\n--- stderr\n{result.stderr[-3000:]}"
        )
    return result


def port_is_free(port: int, socket_dir: Path) -> bool:
    if (socket_dir / f".s.PGSQL.{port}").exists() or Path(f"/var/run/postgresql/.s.PGSQL.{port}").exists():
        return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count: int, socket_dir: Path) -> list[int]:
    # Random in a band above 55432, so drills running side by side rarely even try the same one.
    candidates = list(range(55432, 56432))
    random.shuffle(candidates)
    ports = [p for p in candidates[:200] if port_is_free(p, socket_dir)][:count]
    if len(ports) < count:
        raise DrillFailure("no free loopback ports in 55432-56431")
    return ports


def connect(port: int, dbname: str = "wallet"):
    import psycopg

    return psycopg.connect(
        host="127.0.0.1", port=port, user="postgres", dbname=dbname, autocommit=True, connect_timeout=10
    )


def django_env(port: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "CACHE_URL", "RATELIMIT_CACHE_URL"}}
    env.update(
        DATABASE_URL=f"postgres://postgres@127.0.0.1:{port}/wallet",
        DJANGO_SETTINGS_MODULE=SETTINGS,
        DJANGO_DEBUG="false",
        PYTHONPATH=str(REPO),
    )
    return env


def tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# --- The drill ----------------------------------------------------------------------------------------


class Drill:
    def __init__(self, clock: Clock, keep: bool, sabotage: bool = False) -> None:
        self.clock = clock
        self.keep = keep
        self.sabotage = sabotage
        self.bin = pg_bin()
        self.python = str(VENV_PYTHON if VENV_PYTHON.exists() else Path(sys.executable))
        self.root = Path(tempfile.mkdtemp(prefix="pitr-drill-"))
        if os.geteuid() == 0:
            user = pwd.getpwnam(SERVER_OS_USER)
            os.chown(self.root, user.pw_uid, user.pw_gid)
        self.sock = self.root / "sock"
        self.primary = self.root / "primary"
        self.restored = self.root / "restored"
        self.backups = self.root / "backups"
        self.work = self.root / "work"
        self.primary_log = self.root / "primary.log"
        self.restored_log = self.root / "restored.log"
        self.data_dirs: list[Path] = []
        self.facts: dict = {}

    # Each server-side tool gets the environment it needs and nothing of ours.
    def server_env(self, port: int, **extra: str) -> dict:
        env = {
            "PATH": f"{self.bin}:/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG": "C.UTF-8",
            "PGBIN": str(self.bin),
            "PGHOST": str(self.sock),
            "PGPORT": str(port),
            "PGUSER": "postgres",
            "BACKUP_DIR": str(self.backups),
        }
        env.update(extra)
        return env

    def server(self, cmd: list[str], port: int, cap: float = 120, **extra: str):
        # runuser keeps the environment we pass; `env` makes that explicit and independent of it.
        wrapped = ["env", "-i", *(f"{k}={v}" for k, v in self.server_env(port, **extra).items()), *cmd]
        return run(as_server_user(wrapped), self.clock, cap=cap)

    def run(self) -> None:
        clock = self.clock
        primary_port, restored_port = free_ports(2, self.sock)
        self.facts["ports"] = (primary_port, restored_port)
        self.sock.mkdir()
        self.work.mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.sock, SERVER_OS_USER, SERVER_OS_USER)

        with clock.step(f"initdb and start a throwaway primary on 127.0.0.1:{primary_port}"):
            self.server(
                [f"{self.bin}/initdb", "-D", str(self.primary), "-U", "postgres", "--auth=trust",
                 "-E", "UTF8", "--locale=C.UTF-8", "--no-instructions", "--data-checksums"],
                primary_port,
            )  # fmt: skip
            with (self.primary / "postgresql.conf").open("a") as conf:
                conf.write(
                    f"\n# pitr_drill\nport = {primary_port}\nlisten_addresses = '127.0.0.1'\n"
                    f"unix_socket_directories = '{self.sock}'\nmax_connections = 40\n"
                )
            self.data_dirs.append(self.primary)
            self.pg_ctl(self.primary, self.primary_log, "start", primary_port)

        with clock.step("enable WAL archiving (enable_wal_archiving.sh) and restart"):
            enable = [str(BACKUP_SCRIPTS / "enable_wal_archiving.sh")]
            out = self.server(enable, primary_port, ARCHIVE_TIMEOUT="10s")
            if "RESTART REQUIRED" not in out.stdout:
                raise DrillFailure(f"expected the script to ask for a restart, got: {out.stdout!r}")
            self.pg_ctl(self.primary, self.primary_log, "restart", primary_port)
            out = self.server(enable, primary_port, ARCHIVE_TIMEOUT="10s")  # run again: confirms
            if "RESTART REQUIRED" in out.stdout:
                raise DrillFailure("archiving still needs a restart after the restart")
            with connect(primary_port, "postgres") as conn:
                settings = dict(conn.execute(
                    "SELECT name, setting FROM pg_settings"
                    " WHERE name IN ('archive_mode', 'wal_level', 'archive_timeout', 'archive_command')"
                ).fetchall())  # fmt: skip
                expected = {"archive_mode": "on", "wal_level": "replica", "archive_timeout": "10"}
                into_our_archive = str(self.backups / "wal") in settings.get("archive_command", "")
                if not into_our_archive or any(settings.get(k) != v for k, v in expected.items()):
                    raise DrillFailure(f"archiving is not configured as asked: {settings}")
                conn.execute("CREATE DATABASE wallet")

        with clock.step("migrate the wallet database"):
            run([self.python, "manage.py", "migrate", "--noinput"], clock, env=django_env(primary_port))

        with clock.step("base backup (base_backup.sh: pg_basebackup + pg_verifybackup)"):
            out = self.server([str(BACKUP_SCRIPTS / "base_backup.sh")], primary_port)
            backup = Path(out.stdout.strip().splitlines()[-1])
            if not (backup / "backup.info").is_file():
                raise DrillFailure(f"base_backup.sh printed {backup}, which has no backup.info")
            self.facts["backup_mb"] = sum(f.stat().st_size for f in backup.rglob("*") if f.is_file()) / 2**20

        with clock.step("movements before T"):
            before = self.workload("before", primary_port)

        with clock.step("switch WAL and note T"):
            time.sleep(1.0)
            with connect(primary_port) as conn:
                conn.execute("SELECT pg_switch_wal()")
                time.sleep(1.0)
                target = conn.execute("SELECT clock_timestamp()").fetchone()[0]
                balances_at_t = dict(conn.execute("SELECT id::text, balance FROM wallets_wallet").fetchall())
                t_counts = conn.execute("SELECT count(*) FROM transfers_transfer").fetchone()[0]
            time.sleep(1.0)
            self.facts["T"] = target

        with clock.step("movements after T"):
            after = self.workload("after", primary_port)

        with clock.step("switch WAL and wait until the archive holds every segment"):
            archived = self.archive_everything(primary_port)

        with clock.step("retention (prune_backups.sh KEEP_BASE_BACKUPS=1)"):
            wal_dir = self.backups / "wal"
            segments_before = len(list(wal_dir.glob("0*")))
            self.server([str(BACKUP_SCRIPTS / "prune_backups.sh")], primary_port, KEEP_BASE_BACKUPS="1")
            self.facts["pruned"] = segments_before - len(list(wal_dir.glob("0*")))
            self.facts["segments"] = len([f for f in wal_dir.iterdir() if len(f.name) == 24])

        target_iso = target.isoformat()
        if self.sabotage:
            # Restore to the middle of the after-T traffic: the checks below must catch it.
            acked = sorted(m["acked_at"] for m in after["movements"])
            target_iso = acked[len(acked) // 2]
        what = "the SABOTAGED target" if self.sabotage else "T"
        with clock.step(f"restore to {what} {target_iso} on 127.0.0.1:{restored_port} (restore_pitr.sh)"):
            self.data_dirs.append(self.restored)
            t0 = time.monotonic()
            restore = self.server(
                [str(BACKUP_SCRIPTS / "restore_pitr.sh"), str(backup), target_iso, str(self.restored),
                 str(restored_port)],
                restored_port,
                cap=150,
                SOCKET_DIR=str(self.sock),
                LOGFILE=str(self.restored_log),
                RECOVERY_TIMEOUT=str(int(max(10, clock.remaining() - 20))),
            )  # fmt: skip
            self.facts["restore_seconds"] = time.monotonic() - t0
            self.facts["restore_log"] = [
                line.strip() for line in restore.stderr.splitlines() if "server:" in line
            ]

        with clock.step("verify the restored ledger"):
            self.verify(restored_port, target, before, after, balances_at_t, t_counts)

        self.facts.update(before=before, after=after, archived=archived)

    def pg_ctl(self, data: Path, logfile: Path, action: str, port: int) -> None:
        self.server(
            [f"{self.bin}/pg_ctl", "-D", str(data), "-l", str(logfile), "-w", "-t", "60", action],
            port,
            cap=70,
        )

    def workload(self, phase: str, port: int) -> dict:
        out = self.work / f"{phase}.json"
        cmd = [self.python, str(Path(__file__).resolve()), "workload", "--phase", phase, "--out", str(out)]
        if phase == "after":
            cmd += ["--wallets", str(self.work / "before.json")]
        run(cmd, self.clock, env=django_env(port), cap=90)
        return json.loads(out.read_text())

    def archive_everything(self, port: int) -> dict:
        """Close the current segment and wait until it (and so every earlier one) is archived."""
        t0 = time.monotonic()
        with connect(port) as conn:
            last = conn.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()[0]
            while True:
                row = conn.execute(
                    "SELECT last_archived_wal, failed_count, last_failed_wal FROM pg_stat_archiver"
                ).fetchone()
                done = row[0] is not None and row[0] >= last and (self.backups / "wal" / last).exists()
                if done:
                    break
                if time.monotonic() - t0 > min(60, self.clock.remaining()):
                    raise DrillFailure(f"segment {last} not archived within 60s (archiver: {row})")
                time.sleep(0.1)
        return {"last_segment": last, "seconds": time.monotonic() - t0, "failed_count": row[1]}

    def verify(self, port: int, target, before: dict, after: dict, balances_at_t: dict, t_count: int) -> None:
        problems: list[str] = []
        before_ids = {m["id"] for m in before["movements"]}
        after_ids = {m["id"] for m in after["movements"]}

        # The drill's own record must split cleanly around T, or the proof means nothing.
        late = [m for m in before["movements"] if datetime.fromisoformat(m["acked_at"]) >= target]
        early = [m for m in after["movements"] if datetime.fromisoformat(m["started_at"]) <= target]
        if late or early:
            problems.append(
                f"record does not split at T: {len(late)} acked at/after T, {len(early)} began <= T"
            )
        if not before_ids or not after_ids:
            problems.append("a phase acknowledged no movement")
        if len(before_ids) != t_count:
            problems.append(
                f"primary had {t_count} transfers at T, the client acknowledged {len(before_ids)}"
            )

        with connect(port) as conn:
            in_recovery = conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]
            restored_ids = {row[0] for row in conn.execute("SELECT id::text FROM transfers_transfer")}
            balances = dict(conn.execute("SELECT id::text, balance FROM wallets_wallet").fetchall())
            late_wallet = conn.execute(
                "SELECT count(*) FROM wallets_wallet WHERE id = %s", (after["new_wallet_id"],)
            ).fetchone()[0]
        if in_recovery:
            problems.append("the restored cluster is still in recovery")
        missing = before_ids - restored_ids
        leaked = after_ids & restored_ids
        unknown = restored_ids - before_ids - after_ids
        if missing:
            problems.append(
                f"{len(missing)} movements acknowledged before T are missing, e.g. {sorted(missing)[:3]}"
            )
        if leaked:
            problems.append(f"{len(leaked)} movements made after T are present, e.g. {sorted(leaked)[:3]}")
        if unknown:
            problems.append(f"{len(unknown)} transfers nobody acknowledged are present")
        if late_wallet:
            problems.append("the wallet opened after T exists")
        if balances != balances_at_t:
            differ = [
                w for w in set(balances) | set(balances_at_t) if balances.get(w) != balances_at_t.get(w)
            ]
            problems.append(f"{len(differ)} wallet balances differ from those at T")

        recon = run(
            [self.python, "manage.py", "reconcile"], self.clock, env=django_env(port), cap=60, check=False
        )
        self.facts["reconcile"] = (recon.returncode, recon.stdout.strip().splitlines()[:1])
        if recon.returncode != 0:
            problems.append(
                f"reconcile exited {recon.returncode}: {recon.stdout[-800:]} {recon.stderr[-800:]}"
            )

        self.facts["counts"] = {
            "before": len(before_ids),
            "after": len(after_ids),
            "restored": len(restored_ids),
            "present_before": len(before_ids & restored_ids),
            "present_after": len(leaked),
            "wallets": len(balances),
        }
        if problems:
            raise DrillFailure("the restored ledger is wrong:\n  - " + "\n  - ".join(problems))

    def cleanup(self) -> None:
        for data in reversed(self.data_dirs):
            if (data / "postmaster.pid").exists():
                subprocess.run(  # noqa: S603 fixed command
                    as_server_user([f"{self.bin}/pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop"]),
                    capture_output=True,
                    timeout=30,
                    check=False,
                )
        if self.keep:
            print(f"kept {self.root}")
        else:
            shutil.rmtree(self.root, ignore_errors=True)


def main_drill(args: argparse.Namespace) -> int:
    clock = Clock(args.budget)

    def interrupted(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupted)

    drill: Drill | None = None
    failure: str | None = None
    try:
        drill = Drill(clock, args.keep, args.sabotage)
        drill.run()
    except (DrillFailure, KeyboardInterrupt) as error:
        failure = str(error) or type(error).__name__
    except Exception as error:  # a bug in the drill is a failed drill, reported like one
        failure = f"{type(error).__name__}: {error}"
    finally:
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(sig, signal.SIG_IGN)  # a second signal must not cut the cleanup short
        if drill is not None:
            if failure:
                for log in (drill.primary_log, drill.restored_log):
                    if log.exists():
                        print(f"--- last lines of {log.name}\n{tail(log)}", file=sys.stderr)
            drill.cleanup()

    total = time.monotonic() - clock.start
    print("\nTimings:")
    for name, seconds in clock.steps:
        print(f"  {seconds:6.2f}s  {name}")
    print(f"  {total:6.2f}s  total")
    if failure:
        print(f"\nPITR DRILL FAIL: {failure}")
        return 1
    assert drill is not None
    f = drill.facts
    c = f["counts"]
    print(f"\nRestore of a {f['backup_mb']:.0f} MB base backup plus {f['segments']} archived WAL segments:")
    for line in f["restore_log"]:
        print(f"  {line}")
    print(
        f"\nPITR DRILL PASS: restored to T={f['T'].isoformat()} in {f['restore_seconds']:.1f}s; "
        f"{c['present_before']}/{c['before']} movements acknowledged before T present, "
        f"{c['present_after']}/{c['after']} after T present, {c['wallets']} wallet balances equal "
        f"those at T, reconcile exit {f['reconcile'][0]} ({' '.join(f['reconcile'][1])}); "
        f"archive caught up in {f['archived']['seconds']:.1f}s, {f['pruned']} old WAL segments pruned; "
        f"total {total:.1f}s"
    )
    return 0


# --- The workload (runs inside Django, in a subprocess) ---------------------------------------------


def main_workload(args: argparse.Namespace) -> int:
    import django

    django.setup()
    from django.db import connection

    from transfers import services
    from transfers.errors import InsufficientFunds
    from users.models import User
    from wallets.services import wallet_create

    rng = random.Random(f"pitr-{args.phase}")  # noqa: S311 test data, not secrets
    record: dict = {"phase": args.phase, "movements": []}
    lock = threading.Lock()

    def server_now() -> str:
        with connection.cursor() as cursor:
            cursor.execute("SELECT clock_timestamp()")
            return cursor.fetchone()[0].isoformat()

    def acknowledge(transfer, started_at: str) -> None:
        # The service returned: the movement is committed (autocommit, the service's own transaction).
        entry = {
            "id": str(transfer.id),
            "kind": transfer.kind,
            "started_at": started_at,
            "acked_at": server_now(),
        }
        with lock:
            record["movements"].append(entry)

    if args.phase == "before":
        wallets = []
        for i in range(6):
            user = User(username=f"drill{i}", email=f"drill{i}@example.com")
            user.set_unusable_password()
            user.save()
            for currency in ("USD", "EUR"):
                wallet = wallet_create(owner_id=user.id, currency=currency, name=f"drill {currency}")
                wallets.append({"id": str(wallet.id), "owner_id": user.id, "currency": currency})
                started = server_now()
                deposit = services.deposit_create(wallet_id=wallet.id, owner_id=user.id, amount=100_000)
                acknowledge(deposit, started)
        record["wallets"] = wallets
        rounds = 40
    else:
        wallets = json.loads(Path(args.wallets).read_text())["wallets"]
        rounds = 20
        user = User(username="drill-late", email="drill-late@example.com")
        user.set_unusable_password()
        user.save()
        late = wallet_create(owner_id=user.id, currency="USD", name="opened after T")
        started = server_now()
        acknowledge(services.deposit_create(wallet_id=late.id, owner_id=user.id, amount=5_000), started)
        record["new_wallet_id"] = str(late.id)
        wallets = [*wallets, {"id": str(late.id), "owner_id": user.id, "currency": "USD"}]

    errors: list[BaseException] = []

    def worker(seed: int) -> None:
        local = random.Random(seed)  # noqa: S311 test data
        try:
            for _ in range(rounds):
                source = local.choice(wallets)
                started = server_now()
                try:
                    roll = local.random()
                    if roll < 0.1:
                        moved = services.withdrawal_create(
                            wallet_id=uuid.UUID(source["id"]),
                            owner_id=source["owner_id"],
                            amount=local.randint(1, 3_000),
                        )
                    elif roll < 0.2:
                        moved = services.deposit_create(
                            wallet_id=uuid.UUID(source["id"]),
                            owner_id=source["owner_id"],
                            amount=local.randint(1, 3_000),
                        )
                    else:
                        peers = [
                            w for w in wallets if w["currency"] == source["currency"] and w is not source
                        ]
                        destination = local.choice(peers)
                        moved = services.transfer_create(
                            source_wallet_id=uuid.UUID(source["id"]),
                            destination_wallet_id=uuid.UUID(destination["id"]),
                            initiated_by_id=source["owner_id"],
                            amount=local.randint(1, 20_000),
                        )
                except InsufficientFunds:
                    continue  # refused: nothing was written, nothing acknowledged
                acknowledge(moved, started)
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(rng.randrange(2**32),)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    Path(args.out).write_text(json.dumps(record))
    print(f"{args.phase}: {len(record['movements'])} movements acknowledged")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command")
    work = sub.add_parser("workload", help="internal: run movements inside Django")
    work.add_argument("--phase", choices=["before", "after"], required=True)
    work.add_argument("--out", required=True)
    work.add_argument("--wallets")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--budget", type=float, default=170, help="seconds the whole drill may take")
    parser.add_argument(
        "--sabotage",
        action="store_true",
        help="restore to the middle of the after-T traffic instead of T, to show the drill FAILs",
    )
    args = parser.parse_args()
    if args.command == "workload":
        return main_workload(args)
    return main_drill(args)


if __name__ == "__main__":
    # One command from anywhere: re-run under the project's virtualenv if this is not it.
    if VENV_PYTHON.exists() and Path(sys.prefix).resolve() != VENV_PYTHON.parent.parent.resolve():
        os.execv(str(VENV_PYTHON), [str(VENV_PYTHON), *sys.argv])  # noqa: S606 our own interpreter
    sys.exit(main())
