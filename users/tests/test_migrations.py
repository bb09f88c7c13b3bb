"""users.0002 on a live table: case-insensitive usernames, or a clear refusal that changes nothing.

Scratch databases migrated by `manage.py` in subprocesses, as the deploy step runs it
(testing/scratch.py has the machinery; conftest.py the `scratch` fixture).
"""

from __future__ import annotations

import psycopg
import pytest

from testing.scratch import Scratch, applied, manage, migrate

INDEX = "users_user_username_ci_unique"
MIGRATION = "0002_username_ci_unique"


def add_users(db: Scratch, *usernames: str) -> dict[str, int]:
    with db.connect() as conn:
        return {
            name: conn.execute(
                "INSERT INTO users_user (password, is_superuser, username, first_name, last_name, email, "
                "is_staff, is_active, date_joined) VALUES ('!', false, %s, '', '', %s, false, true, now()) "
                "RETURNING id",
                [name, f"{name}-{i}@example.com"],
            ).fetchone()[0]
            for i, name in enumerate(usernames)
        }


def index_state(db: Scratch) -> bool | None:
    """None if the index does not exist, else whether it is valid."""
    with db.connect() as conn:
        row = conn.execute(
            "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE c.relname = %s",
            [INDEX],
        ).fetchone()
    return None if row is None else row[0]


def test_existing_case_duplicates_stop_the_migration_by_name_and_change_nothing(scratch):
    migrate(scratch.url, "users", "0001")
    ids = add_users(scratch, "Alice", "alice", "carol", "BOB", "ALICE", "bob")

    result = manage(scratch.url, "migrate", "users", "--noinput")

    assert result.returncode != 0
    assert (
        f"'Alice' (id {ids['Alice']}), 'alice' (id {ids['alice']}), 'ALICE' (id {ids['ALICE']})"
        in result.stderr
    )
    assert f"'BOB' (id {ids['BOB']}), 'bob' (id {ids['bob']})" in result.stderr
    assert "carol" not in result.stderr
    assert "users.0002 was not applied and changed nothing" in result.stderr
    assert "Traceback" not in result.stderr  # an operator's message, not a crash
    assert MIGRATION not in applied(scratch, "users")
    assert index_state(scratch) is None


def test_once_the_duplicates_are_renamed_the_migration_builds_the_index_even_over_a_failed_build(scratch):
    migrate(scratch.url, "users", "0001")
    ids = add_users(scratch, "Alice", "alice")
    # A concurrent build that failed on the duplicate (as a run racing a registration
    # would) leaves an invalid index of the same name behind.
    with scratch.connect(autocommit=True) as conn, pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute(f'CREATE UNIQUE INDEX CONCURRENTLY "{INDEX}" ON users_user ((lower(username)))')
    assert index_state(scratch) is False
    with scratch.connect() as conn:
        conn.execute("UPDATE users_user SET username = 'alice-2' WHERE id = %s", [ids["alice"]])

    migrate(scratch.url, "users")

    assert MIGRATION in applied(scratch, "users")
    assert index_state(scratch) is True
    with pytest.raises(psycopg.errors.UniqueViolation):
        add_users(scratch, "ALICE")
