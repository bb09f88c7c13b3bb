"""Reading what PostgreSQL said when it refused: SQLSTATEs and constraint names (psycopg's diagnostics)."""

from __future__ import annotations

from typing import Any

from django.db import DatabaseError

DEADLOCK = "40P01"
SERIALIZATION_FAILURE = "40001"
LOCK_NOT_AVAILABLE = "55P03"
QUERY_CANCELED = "57014"
CHECK_VIOLATION = "23514"
UNIQUE_VIOLATION = "23505"

# Connection exceptions (class 08), the server shutting down or starting up
# (57P01-57P03), and a write reaching a standby (25006, read_only_sql_transaction).
_CONNECTION_STATES = {"57P01", "57P02", "57P03", "25006"}


def pg_error(exc: BaseException) -> Any | None:
    """The psycopg error Django's exception wraps (it has `sqlstate` and `diag`), or None."""
    cause = exc.__cause__
    return cause if cause is not None and hasattr(cause, "diag") else None


def sqlstate(exc: BaseException) -> str | None:
    cause = pg_error(exc)
    return getattr(cause, "sqlstate", None) if cause is not None else None


def violated_constraint(exc: BaseException) -> str | None:
    """The name of the constraint PostgreSQL reports as violated, or None."""
    cause = pg_error(exc)
    return getattr(cause.diag, "constraint_name", None) if cause is not None else None


def is_retryable(exc: DatabaseError) -> bool:
    """Deadlocks and serialization failures are safe to retry from the start."""
    return sqlstate(exc) in {DEADLOCK, SERIALIZATION_FAILURE}


def is_lock_timeout(exc: DatabaseError) -> bool:
    return sqlstate(exc) == LOCK_NOT_AVAILABLE


def is_cancelled(exc: DatabaseError) -> bool:
    """A statement cancelled: by a statement timeout, an operator's pg_cancel_backend(), or a
    lock timeout that fired just as the lock was granted (PostgreSQL then reports a plain
    cancel). The transaction is rolled back: work that is safe to repeat may try again."""
    return sqlstate(exc) == QUERY_CANCELED


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
