"""The pieces of ops/ha that run without a cluster: the PgBouncer callback and the skip.

The cluster itself is exercised by the Patroni drill (test_patroni_drill.py, `make drills`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FOLLOW = REPO / "ops" / "ha" / "pgbouncer_follow.sh"
DRILL = REPO / "ops" / "drills" / "patroni_drill.py"


def follow(tmp_path: Path, role: str) -> subprocess.CompletedProcess:
    # No pgbouncer.pid in the directory: the callback rewrites the file and tells no one.
    return subprocess.run(
        [
            str(FOLLOW),
            "127.0.0.1",
            "55433",
            str(tmp_path),
            "56432",
            "/bin/false",
            "on_role_change",
            role,
            "s",
        ],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )


def test_the_callback_points_pgbouncer_at_a_member_that_becomes_primary(tmp_path):
    (tmp_path / "databases.ini").write_text("wallet = host=127.0.0.1 port=55432 dbname=wallet\n")

    done = follow(tmp_path, "master")

    assert done.returncode == 0, done.stderr
    assert (tmp_path / "databases.ini").read_text() == "wallet = host=127.0.0.1 port=55433 dbname=wallet\n"
    assert list(tmp_path.iterdir()) == [tmp_path / "databases.ini"]  # no temp file left


def test_the_callback_leaves_pgbouncer_alone_when_a_member_becomes_a_replica(tmp_path):
    (tmp_path / "databases.ini").write_text("wallet = host=127.0.0.1 port=55432 dbname=wallet\n")

    for role in ("replica", "demoted", "uninitialized"):
        assert follow(tmp_path, role).returncode == 0

    assert (tmp_path / "databases.ini").read_text() == "wallet = host=127.0.0.1 port=55432 dbname=wallet\n"


def test_the_patroni_drill_skips_saying_what_is_missing():
    done = subprocess.run(
        [sys.executable, str(DRILL)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PG_BIN": "/nonexistent"},
    )

    assert done.returncode == 3, done.stdout + done.stderr
    # Which Debian packages are also missing depends on the machine (make drills installs
    # them); the PostgreSQL server tools are missing here whatever else is.
    assert done.stdout.startswith("SKIP: missing "), done.stdout
    assert "postgresql-15 (no /nonexistent/initdb)" in done.stdout
    assert "scripts/ensure_ha_tools.sh" in done.stdout
