"""What PostgreSQL says when the ledger's own triggers refuse a commit."""

from __future__ import annotations

from dataclasses import dataclass

from foundation.db import CHECK_VIOLATION, pg_error

# The ledger's deferred constraint triggers (transfers.0003); since transfers.0005 their
# errors name the trigger (CONSTRAINT) and the wallet or transfer (DETAIL).
LEDGER_CHECKS = frozenset(
    {
        "transfer_balanced",
        "entry_balanced",
        "wallet_balance_matches_ledger",
        # transfers.0007: a wallet's held money and its pending holds
        "hold_matches_wallet",
        "wallet_held_matches_holds",
    }
)


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
    cause = pg_error(exc)
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
