"""Test support: a real Celery worker process on a queue of this test run's own.

Used by the tests that need a task to go through the real Redis broker to a real
worker (transfers/tests/test_celery_worker.py, wallet_project/tests/test_tracing.py).
The worker reads this pytest process's test database, consumes a queue named after the
process, and is always stopped afterwards; Redis being unreachable fails the test.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
import redis
from django.conf import settings
from django.db import connection

from wallet_project.celery import app as celery_app

BASE_DIR = Path(__file__).resolve().parents[2]
READY_TIMEOUT = 30  # ping attempts of about a second each
STOP_TIMEOUT = 15


def database_url_for_this_run() -> str:
    """DATABASE_URL for the database this pytest process is using (test_<name>_<pid>)."""
    db = connection.settings_dict
    auth = quote(db["USER"] or "", safe="")
    if db["PASSWORD"]:
        auth += ":" + quote(db["PASSWORD"], safe="")
    host = db["HOST"] or "127.0.0.1"
    port = db["PORT"] or 5432
    return f"postgres://{auth}@{host}:{port}/{quote(db['NAME'], safe='')}"


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(nothing)"


@dataclass(frozen=True)
class RunningWorker:
    queue: str
    node: str
    stdout: Path
    stderr: Path


@contextmanager
def celery_worker(*, tag: str, output: Path, env: dict[str, str] | None = None) -> Iterator[RunningWorker]:
    """Start a solo-pool worker on a fresh queue, wait for its ping, stop it on exit."""
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_connect_timeout=2)
    try:
        broker.ping()
    except redis.exceptions.RedisError as exc:
        pytest.fail(f"Redis at {settings.CELERY_BROKER_URL} is required by the test suite: {exc}")
    assert not celery_app.conf.task_always_eager, "tasks must go through the broker, not run in-process"

    queue = f"{settings.CELERY_TASK_DEFAULT_QUEUE}-{tag}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    node = f"{queue}@{socket.gethostname()}"
    worker = RunningWorker(queue, node, output / "worker.out", output / "worker.log")
    full_env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "wallet_project.settings.test",
        "DATABASE_URL": database_url_for_this_run(),
        # "{queue}" in a value is this worker's queue (tasks that send tasks route them back here).
        **{name: value.replace("{queue}", queue) for name, value in (env or {}).items()},
    }
    command = [sys.executable, "-m", "celery", "-A", "wallet_project", "worker", "--pool=solo"]
    command += ["--concurrency=1", "-Q", queue, "-n", node, "-l", "info"]
    command += ["--without-gossip", "--without-mingle"]
    with worker.stdout.open("wb") as stdout, worker.stderr.open("wb") as stderr:
        process = subprocess.Popen(command, cwd=BASE_DIR, env=full_env, stdout=stdout, stderr=stderr)
    try:
        for _ in range(READY_TIMEOUT):
            if process.poll() is not None:
                pytest.fail(f"the Celery worker exited with {process.returncode}:\n{tail(worker.stderr)}")
            if celery_app.control.ping(destination=[node], timeout=1.0):
                break
        else:
            pytest.fail(f"no ping from the Celery worker within ~{READY_TIMEOUT}s:\n{tail(worker.stderr)}")
        yield worker
    finally:
        if process.poll() is None:
            process.terminate()  # warm shutdown
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_TIMEOUT)
        broker.delete(queue, f"_kombu.binding.{queue}")  # this run's queue is never used again
