"""The README's walk through the API can be pasted twice in a row, and every step answers.

The block is taken from README.md as it stands (the `sh` block under "A walk through the
API"), pointed at `make run`'s launcher (scripts/devserver.py) on a spare port, and run
twice with bash. DATABASE_URL names this test's own database, so the launcher starts no
embedded PostgreSQL; it migrates (nothing to do) and serves as `make run` does.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connection

from scripts.tests.test_devserver import ROOT, DevServer

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


def database_url() -> str:
    """This test's database (pytest-django's), as a DATABASE_URL."""
    db = connection.settings_dict
    password = f":{db['PASSWORD']}" if db["PASSWORD"] else ""
    return f"postgres://{db['USER']}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def server(tmp_path) -> Iterator[DevServer]:
    running = DevServer(tmp_path / "unused", database_url=database_url())
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
