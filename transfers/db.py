"""Small helpers for reading what PostgreSQL (or SQLite) said when it refused."""

from __future__ import annotations

from django.db import DatabaseError

DEADLOCK = "40P01"
SERIALIZATION_FAILURE = "40001"
LOCK_NOT_AVAILABLE = "55P03"


def _pg_cause(exc: BaseException):
    cause = exc.__cause__
    return cause if cause is not None and hasattr(cause, "diag") else None


def sqlstate(exc: BaseException) -> str | None:
    cause = _pg_cause(exc)
    return getattr(cause, "sqlstate", None) if cause is not None else None


def violated_constraint(exc: BaseException, *, table: str, name: str, columns: tuple[str, ...]) -> bool:
    """True if `exc` is a unique violation of constraint `name`.

    PostgreSQL names the constraint; SQLite only lists `table.column` pairs.
    """
    cause = _pg_cause(exc)
    if cause is not None:
        return getattr(cause.diag, "constraint_name", None) == name
    message = str(exc)
    return "UNIQUE constraint failed" in message and all(f"{table}.{c}" in message for c in columns)


def is_retryable(exc: DatabaseError) -> bool:
    """Deadlocks and serialization failures are safe to retry from the start."""
    if sqlstate(exc) in {DEADLOCK, SERIALIZATION_FAILURE}:
        return True
    return "database is locked" in str(exc)  # SQLite busy timeout


def is_lock_timeout(exc: DatabaseError) -> bool:
    return sqlstate(exc) == LOCK_NOT_AVAILABLE
