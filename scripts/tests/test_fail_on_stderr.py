"""`make test`'s bandit step (scripts/fail_on_stderr.sh) fails on a warning, and its
makemigrations step on a RuntimeWarning: both tools print those and still exit 0."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

from testing.scratch import database_url, subprocess_env

ROOT = Path(__file__).resolve().parents[2]
WRAPPER = ROOT / "scripts" / "fail_on_stderr.sh"
BANDIT = Path(sys.executable).parent / "bandit"


def wrapped(*command: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(WRAPPER), *command], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_a_command_that_writes_to_stderr_fails_even_when_it_exits_0():
    result = wrapped(*python("import sys; print('out'); print('careful', file=sys.stderr)"))

    assert result.returncode == 1
    assert result.stdout == "out\n"
    assert result.stderr.startswith("careful\n") and "treated as a failure" in result.stderr


def test_a_quiet_command_keeps_its_own_exit_status():
    assert wrapped(*python("print('fine')")).returncode == 0
    assert wrapped(*python("import sys; sys.exit(3)")).returncode == 3


def test_bandit_warning_about_a_malformed_nosec_fails_the_step(tmp_path):
    (tmp_path / "clean.py").write_text("import os\n\nprint(os.getcwd())\n")
    assert wrapped(str(BANDIT), "-r", ".", "-q", cwd=tmp_path).returncode == 0

    (tmp_path / "noisy.py").write_text("import os\n\nprint(os.getcwd())  # nosec: B999 not-a-test\n")
    result = wrapped(str(BANDIT), "-r", ".", "-q", cwd=tmp_path)

    assert result.returncode == 1
    assert "B999 is not a test name or id" in result.stderr


def test_make_test_runs_bandit_through_the_wrapper_and_makemigrations_with_runtime_warnings_as_errors():
    recipe = subprocess.run(
        ["make", "-n", "test"],
        cwd=ROOT,
        env={**os.environ, "MAKEFLAGS": ""},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.splitlines()

    assert "scripts/fail_on_stderr.sh .venv/bin/bandit -c bandit.yaml -r . -q" in recipe
    [makemigrations] = [line for line in recipe if "makemigrations" in line]
    assert makemigrations.startswith(
        ".venv/bin/python -W error::RuntimeWarning manage.py makemigrations --check"
    )


def test_makemigrations_check_fails_on_the_warning_of_a_missing_database():
    # Django only warns (RuntimeWarning) when it cannot read the migration history, and
    # `makemigrations --check` then exits 0: the warning the issue saw in `make test`.
    missing = database_url(f"wallet_missing_{uuid.uuid4().hex[:8]}")
    command = [
        "manage.py",
        "makemigrations",
        "--check",
        "--dry-run",
        "--settings=wallet_project.settings.test",
    ]
    run = dict(
        cwd=ROOT, env=subprocess_env(missing), capture_output=True, text=True, timeout=120, check=False
    )

    assert subprocess.run([sys.executable, *command], **run).returncode == 0
    strict = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", *command], **run)

    assert strict.returncode == 1
    assert "RuntimeWarning: Got an error checking a consistent migration history" in strict.stderr
