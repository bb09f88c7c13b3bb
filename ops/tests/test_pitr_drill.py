"""The point-in-time recovery drill (ops/drills/pitr_drill.py), run for real.

It starts its own throwaway PostgreSQL clusters on spare loopback ports, so it needs
the PostgreSQL server tools (initdb, pg_ctl, pg_basebackup ...) and, as root, the
`postgres` OS user; it never touches the database the rest of the suite uses.
Selected with `-m drill` (`make drills`).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from testing.processes import run_script

DRILL = Path(__file__).resolve().parents[2] / "ops" / "drills" / "pitr_drill.py"
TIMEOUT_SECONDS = 300


def run_drill(*args: str) -> tuple[int, str]:
    return run_script(DRILL, *args, timeout=TIMEOUT_SECONDS, what="the PITR drill")


@pytest.mark.drill
def test_pitr_drill_restores_exactly_the_ledger_acknowledged_before_t():
    code, output = run_drill()

    assert code == 0, output
    summary = re.search(
        r"PITR DRILL PASS: .* (\d+)/(\d+) movements acknowledged before T present, "
        r"(\d+)/(\d+) after T present, .* reconcile exit 0 ",
        output,
    )
    assert summary, output
    present_before, before, present_after, after = map(int, summary.groups())
    assert present_before == before > 0
    assert present_after == 0 < after


@pytest.mark.drill
def test_pitr_drill_fails_when_the_restore_goes_past_t():
    # The same drill restoring to the middle of the after-T traffic must say FAIL:
    # the checks above are able to fail.
    code, output = run_drill("--sabotage")

    assert code == 1, output
    assert "PITR DRILL FAIL:" in output, output
    assert "movements made after T are present" in output, output
