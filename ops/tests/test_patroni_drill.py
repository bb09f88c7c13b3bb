"""The Patroni drill (ops/drills/patroni_drill.py), run for real.

It starts etcd x3, three PostgreSQL members under Patroni and PgBouncer on spare loopback
ports (ops/ha/cluster.py), the project's gunicorn on the multi-host DATABASE_URL, and
under transfer traffic kills the leader's postmaster, the leader's Patroni and the etcd
raft leader, then switches over. It needs the Debian packages patroni, etcd-server and
pgbouncer (`make drills` installs them with scripts/ensure_ha_tools.sh; without them
these tests skip, saying so), the PostgreSQL 15 server tools, Redis on 127.0.0.1:6379
and, as root, the `postgres` OS user. Selected with `-m drill` (`make drills`).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from testing.processes import run_script

DRILL = Path(__file__).resolve().parents[2] / "ops" / "drills" / "patroni_drill.py"
TIMEOUT_SECONDS = 330
TOOLS_MISSING = 3


def run_drill(tmp_path: Path, *args: str) -> tuple[int, str, dict]:
    figures_file = tmp_path / "patroni.json"
    code, output = run_script(
        DRILL, "--json", str(figures_file), *args, timeout=TIMEOUT_SECONDS, what="the Patroni drill"
    )
    if code == TOOLS_MISSING:
        pytest.skip(output.strip().splitlines()[-1])
    figures = json.loads(figures_file.read_text()) if figures_file.exists() else {}
    return code, output, figures


@pytest.mark.drill
def test_patroni_fails_over_three_ways_and_switches_over_losing_nothing(tmp_path):
    code, output, figures = run_drill(tmp_path)

    assert code == 0, output
    assert "RESULT: PASS" in output, output
    assert figures["passed"] is True and figures["problems"] == [], output
    assert figures["acknowledged"] == figures["ledger_transfers"] > 0
    assert figures["unresolved"] == 0
    assert figures["reconcile"].startswith("exit 0")
    assert figures["log_tracebacks"] == 0
    steps = figures["steps"]
    assert list(steps) == ["postmaster", "patroni", "etcd", "switchover"]
    for name, step in steps.items():
        # Writes came back (and, but for the etcd step, on another member) and the old
        # leader runs again as a replica of the new one; PgBouncer follows the leader.
        assert step["acknowledged"] > 0, name
        assert step["pgbouncer"] == f"on {step['new_leader']}", name
        if name == "etcd":
            assert step["new_leader"] == step["old_leader"]
        else:
            assert step["new_leader"] != step["old_leader"], name
            assert step["rejoined_s"] > 0, name
    # The PostgreSQL that went on as primary after its Patroni died wrote WAL the new leader
    # never had: it came back through pg_rewind.
    assert steps["patroni"]["pg_rewind"].startswith("ran"), steps["patroni"]
    # Every replica holds the leader's ledger.
    assert len(set(figures["ledger_per_member"].values())) == 1


@pytest.mark.drill
def test_patroni_drill_fails_when_synchronous_mode_is_not_strict(tmp_path):
    # Not strict, the killed Patroni starts again with synchronous_standby_names dropped,
    # which releases the commits its PostgreSQL was holding after the failover: they are
    # acknowledged, then thrown away by pg_rewind. The checks must see it.
    code, output, figures = run_drill(
        tmp_path, "--steps", "patroni", "--no-strict", "--patroni-down-seconds", "14"
    )

    assert code == 1, output
    assert "RESULT: FAIL" in output, output
    assert any("acknowledged transfers are missing" in p for p in figures["problems"]), output
