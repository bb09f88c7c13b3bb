"""`make run`'s launcher (scripts/devserver.py): embedded PostgreSQL, migrated, served, stopped.

Runs the real script in a subprocess on a spare port with its data in a temporary
folder: the ledger's triggers exist (it is PostgreSQL, not a stand-in), money moves
through the API, Ctrl-C (SIGINT) stops the web server and the database, and a
second start reuses the data.
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
    def __init__(self, data_dir: Path) -> None:
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "DEV_PGDATA": str(data_dir), "DATABASE_URL": ""}
        env.pop("DJANGO_SETTINGS_MODULE", None)
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
