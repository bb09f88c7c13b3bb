"""Running a drill or another script to its end from a test, bounded in time."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

GRACE_SECONDS = 60


def run_script(script: Path, *args: str, timeout: float, what: str) -> tuple[int, str]:
    """Run `script` with this Python; its exit code and output (stdout and stderr).

    Popen rather than run(timeout=): on a timeout the script gets SIGTERM and
    GRACE_SECONDS to stop what it started (clusters, servers) and remove its directories
    before it is killed, and the test fails with what it printed."""
    process = subprocess.Popen(
        [sys.executable, str(script), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGTERM)
        try:
            output, _ = process.communicate(timeout=GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
        pytest.fail(f"{what} did not finish within {timeout}s:\n{output}")
    return process.returncode, output
