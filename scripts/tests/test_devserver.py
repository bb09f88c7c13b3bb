"""`make run`'s launcher (scripts/devserver.py): embedded PostgreSQL, migrated, served, stopped.

Runs the real script in a subprocess on a spare port with its data in a temporary
folder: the ledger's triggers exist (it is PostgreSQL, not a stand-in), money moves
through the API, Ctrl-C (SIGINT) stops the web server and the database, and a
second start reuses the data. With DATABASE_URL set, that database is served and no
embedded PostgreSQL starts; `make run`'s HOST and PORT reach the script.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import psycopg
import pytest
import requests

from testing.scratch import applied

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _postmasters(data_dir: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        if proc.info["name"] == "postgres" and str(data_dir) in " ".join(proc.info["cmdline"] or []):
            found.append(proc)
    return found


class DevServer:
    def __init__(self, data_dir: Path, database_url: str = "") -> None:
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "DEV_PGDATA": str(data_dir), "DATABASE_URL": database_url}
        # `make run`'s defaults: settings chosen by the launcher, no Redis (process memory).
        for name in ("DJANGO_SETTINGS_MODULE", "REDIS_URL"):
            env.pop(name, None)
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "scripts" / "devserver.py"), "127.0.0.1", str(self.port)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # Ctrl-C reaches the whole group, as in a terminal
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"devserver exited early:\n{self.process.stdout.read()}")
            try:
                if requests.get(f"{self.base}/readyz", timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.5)
        self.stop()
        pytest.fail("devserver did not become ready in 120 s")

    def post(self, path: str, body: dict, token: str | None = None) -> requests.Response:
        headers = {"Content-Type": "application/json", "Idempotency-Key": str(uuid.uuid4())}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return requests.post(f"{self.base}/api/v1/{path}", data=json.dumps(body), headers=headers, timeout=10)

    def stop(self) -> str:
        os.killpg(self.process.pid, signal.SIGINT)
        try:
            output, _ = self.process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            output, _ = self.process.communicate()
        return output


def test_make_run_serves_on_embedded_postgres_and_keeps_its_data(tmp_path):
    data_dir = tmp_path / "pgdata"
    server = DevServer(data_dir)
    try:
        assert _postmasters(data_dir), "no embedded postgres process for the data folder"
        name = f"dev{uuid.uuid4().hex[:8]}"
        password = "correct-horse-42"
        assert server.post(
            "auth/register", {"username": name, "email": f"{name}@x.test", "password": password}
        ).ok
        token = server.post("auth/token", {"username": name, "password": password}).json()["access"]
        wallet = server.post("wallets", {"currency": "USD"}, token).json()
        deposit = server.post(f"wallets/{wallet['id']}/deposits", {"amount": 2500}, token)
        assert deposit.status_code == 201, deposit.text
        assert deposit.json()["wallet"]["balance"] == 2500
    finally:
        output = server.stop()
    assert "Embedded PostgreSQL" in output
    deadline = time.monotonic() + 20
    while _postmasters(data_dir) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _postmasters(data_dir), "Ctrl-C left the embedded PostgreSQL running"

    # A second start reuses the data: the wallet and its balance are still there,
    # and the ledger's triggers are installed (real PostgreSQL, real invariants).
    server = DevServer(data_dir)
    try:
        token = server.post("auth/token", {"username": name, "password": password}).json()["access"]
        again = requests.get(
            f"{server.base}/api/v1/wallets/{wallet['id']}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert again.json()["balance"] == 2500
        # postmaster.pid's fifth line is the socket directory the server listens in.
        socket_dir = (data_dir / "postmaster.pid").read_text().splitlines()[4]
        with psycopg.connect(host=socket_dir, user="postgres", dbname="wallet") as conn:
            found = conn.execute(
                "SELECT count(*) FROM pg_trigger WHERE tgname = 'transfer_balanced'"
            ).fetchone()
        assert found == (1,)
    finally:
        server.stop()


def test_database_url_is_served_instead_of_an_embedded_postgres(tmp_path, scratch):
    data_dir = tmp_path / "pgdata"
    server = DevServer(data_dir, database_url=scratch.url)  # returns once /readyz answers 200
    try:
        assert not _postmasters(data_dir), "an embedded postgres started although DATABASE_URL was set"
        assert "0001_initial" in applied(scratch, "transfers"), "devserver migrated another database"
    finally:
        output = server.stop()
    assert "Embedded PostgreSQL" not in output, output
    assert not data_dir.exists(), "the embedded PostgreSQL's data folder was created"


def _make_run_line(**env: str) -> str:
    environment = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "MAKEFLAGS")}
    recipe = subprocess.run(
        ["make", "-n", "run", "PORT=8123", "HOST=0.0.0.0"],
        cwd=ROOT,
        env={**environment, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.splitlines()
    [line] = [line for line in recipe if "scripts/devserver.py" in line]
    return line


def test_make_run_passes_host_and_port_and_only_a_users_own_database_url():
    line = _make_run_line()
    assert line.endswith("scripts/devserver.py 0.0.0.0 8123"), line
    # The Makefile's default DATABASE_URL is for `make test`: `make run` gets an empty one
    # (the embedded PostgreSQL), unless the user set one in the environment.
    assert line.startswith('DATABASE_URL="" '), line

    line = _make_run_line(DATABASE_URL="postgres://someone@db.example:5432/theirs")
    assert line.startswith('DATABASE_URL="postgres://someone@db.example:5432/theirs" '), line
    assert line.endswith("scripts/devserver.py 0.0.0.0 8123"), line
