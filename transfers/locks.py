"""Row locks on holds: the one statement that locks a hold, after its wallet.

A capture (transfers.services), a void and an expiry (transfers.holds) each lock the
hold's wallet first (wallets.locks), then the hold: one order for all of them, so they
run one after the other on the same hold and only the first finds it pending.

Like the wallet lock, the statement is SQL written here rather than an ORM queryset (it
runs on every capture and void). It selects the columns the write statement inserts a
hold with (transfers.statements.HOLDS), so there is one column list for the hold;
transfers/tests/test_locks.py pins the text and holds the columns to the model.
"""

from __future__ import annotations

from uuid import UUID

from django.db import DEFAULT_DB_ALIAS, connection

from transfers.models import Hold
from transfers.statements import HOLDS

# What a locked hold is read with: every column, in the write statement's order.
HOLD_FIELDS = HOLDS.columns
# The hold by id, and only if it is on this wallet (the one whose lock the caller holds).
_COLUMNS = "SELECT " + ", ".join(HOLD_FIELDS)
LOCK_HOLD_SQL = _COLUMNS + " FROM transfers_hold WHERE id = %s AND wallet_id = %s FOR UPDATE"


def hold_lock(*, hold_id: UUID, wallet_id: UUID) -> Hold | None:
    """Lock a hold of the wallet (FOR UPDATE); None if the wallet has no such hold. Call with
    the wallet's row lock held, in the transaction that will change the hold."""
    with connection.cursor() as cursor:
        cursor.execute(LOCK_HOLD_SQL, [hold_id, wallet_id])
        row = cursor.fetchone()
    if row is None:
        return None
    return Hold.from_db(DEFAULT_DB_ALIAS, HOLD_FIELDS, row)
