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


# Connection exceptions (class 08), the server shutting down or starting up
# (57P01-57P03), and a write reaching a standby (25006, read_only_sql_transaction).
_CONNECTION_STATES = {"57P01", "57P02", "57P03", "25006"}


def is_connection_lost(exc: DatabaseError) -> bool:
    """True when the statement failed because the connection (or its server) went away.

    Such a failure is safe to retry on a new connection only where the work is
    idempotent by construction (the money path, keyed by Idempotency-Key).
    """
    state = sqlstate(exc)
    if state is not None:
        return state.startswith("08") or state in _CONNECTION_STATES
    message = str(exc).lower()
    return any(
        hint in message
        for hint in ("server closed the connection", "connection is closed", "terminating connection",
                     "could not connect", "connection refused", "consuming input failed", "connection failed")
    )  # fmt: skip
