"""Small helpers for reading what PostgreSQL (or SQLite) said when it refused."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import DatabaseError

DEADLOCK = "40P01"
SERIALIZATION_FAILURE = "40001"
LOCK_NOT_AVAILABLE = "55P03"
CHECK_VIOLATION = "23514"

# The ledger's deferred constraint triggers (transfers.0003); since transfers.0005 their
# errors name the trigger (CONSTRAINT) and the wallet or transfer (DETAIL).
LEDGER_CHECKS = frozenset({"transfer_balanced", "entry_balanced", "wallet_balance_matches_ledger"})


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


@dataclass(frozen=True)
class LedgerViolation:
    """What a ledger trigger said when it refused a commit."""

    check: str  # the constraint trigger's name, one of LEDGER_CHECKS
    message: str
    wallet_id: str | None  # the wallet whose balance or entries disagree, when the check is about one
    transfer_id: str | None


def ledger_violation(exc: BaseException) -> LedgerViolation | None:
    """The ledger invariant `exc` reports, or None if it is anything else.

    Column CHECK constraints raise the same SQLSTATE but name themselves, never a
    ledger trigger, so they stay what they are (a bug: 500).
    """
    cause = _pg_cause(exc)
    if cause is None or getattr(cause, "sqlstate", None) != CHECK_VIOLATION:
        return None
    check = getattr(cause.diag, "constraint_name", None)
    if check not in LEDGER_CHECKS:
        return None
    fields = dict(item.partition("=")[::2] for item in (cause.diag.message_detail or "").split())
    return LedgerViolation(
        check=check,
        message=cause.diag.message_primary or str(exc),
        wallet_id=fields.get("wallet_id") or None,
        transfer_id=fields.get("transfer_id") or None,
    )


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
