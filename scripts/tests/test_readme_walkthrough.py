"""The README's walk through the API can be pasted twice in a row, and every step answers.

The block is taken from README.md as it stands (the `sh` block under "A walk through the
API"), pointed at `make run`'s launcher (scripts/devserver.py) on a spare port, and run
twice with bash. DATABASE_URL names this test's own database, so the launcher starts no
embedded PostgreSQL; it migrates (nothing to do) and serves as `make run` does.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from django.db import connection

from scripts.tests.test_devserver import ROOT, DevServer, _free_port

pytestmark = [
    pytest.mark.django_db(transaction=True),  # the server's writes are seen, then flushed
    pytest.mark.skipif(not (shutil.which("curl") and shutil.which("bash")), reason="needs curl and bash"),
]

README = ROOT / "README.md"
HEADING = "## A walk through the API"
ORIGIN = "http://127.0.0.1:8000"


def walkthrough() -> str:
    """The first `sh` block after the walk-through's heading."""
    text = README.read_text()
    assert HEADING in text, f"README.md has no {HEADING!r} section"
    found = re.search(r"```sh\n(.*?)\n```", text[text.index(HEADING) :], re.S)
    assert found, "the walk-through has no sh block"
    return found.group(1)


class ExistingDatabaseServer(DevServer):
    """scripts/devserver.py on a spare port and an existing database (nothing embedded);
    stop() as for DevServer."""

    def __init__(self, database_url: str) -> None:
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "DATABASE_URL": database_url}
        # `make run`'s defaults: no Redis (process memory), settings chosen by the launcher.
        for name in ("DJANGO_SETTINGS_MODULE", "REDIS_URL"):
            env.pop(name, None)
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "scripts" / "devserver.py"), "127.0.0.1", str(self.port)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"devserver exited early:\n{self.process.stdout.read()}")
            try:
                if requests.get(f"{self.base}/readyz", timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        pytest.fail(f"devserver did not become ready in 60 s:\n{self.stop()}")


def database_url() -> str:
    """This test's database (pytest-django's), as a DATABASE_URL."""
    db = connection.settings_dict
    password = f":{db['PASSWORD']}" if db["PASSWORD"] else ""
    return f"postgres://{db['USER']}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def server() -> Iterator[ExistingDatabaseServer]:
    running = ExistingDatabaseServer(database_url())
    yield running
    output = running.stop()
    assert "Traceback" not in output, output[-3000:]  # the server and the webhook sender logged no error


def paste(block: str, cwd: Path) -> subprocess.CompletedProcess:
    # -e and pipefail: a step whose answer has no id (`| json id` fails) stops the paste;
    # --fail-with-body: any HTTP error is a failed curl, and its problem is still printed.
    script = block.replace("curl -s ", "curl -sS --fail-with-body ")
    return subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", script],
        cwd=cwd,  # the statement's CSV lands here
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_walkthrough_runs_twice_without_an_error(server, tmp_path):
    block = walkthrough()
    assert ORIGIN in block and "$RUN" in block  # what this test replaces, and what makes names unique
    block = block.replace(ORIGIN, server.base)

    for attempt in (1, 2):
        (tmp_path / "statement.csv").unlink(missing_ok=True)
        run = paste(block, tmp_path)
        output = run.stdout
        assert run.returncode == 0, (attempt, run.returncode, run.stderr, output[-2000:])
        assert run.stderr == "", (attempt, run.stderr)
        # No problem+json answer anywhere (their bodies carry a numeric status).
        assert not re.search(r'"status":\s*\d', output), (attempt, output)
        # What the README's comments promise, step by step.
        assert "HTTP/1.1 201 Created" in output, output
        assert re.search(r"^idempotent-replayed: true", output, re.M | re.I), output
        assert '"balance":1000,"held":600,"available":400' in output.replace(" ", ""), output
        assert '"refunded_amount":150' in output.replace(" ", ""), output
        assert '"balance":750,"held":0,"available":750' in output.replace(" ", ""), output
        assert output.rstrip().endswith("204"), output[-300:]
        assert (tmp_path / "statement.csv").read_text().startswith("record,"), "no CSV statement"
