"""Row locks on wallets: the one place the money path locks them, always in id order.

Every money movement locks the user wallets it touches with one statement,
`SELECT ... FOR NO KEY UPDATE ... ORDER BY id`. One fixed order means two transfers
A->B and B->A can never deadlock. `FOR NO KEY UPDATE` (not `FOR UPDATE`) still lets
other transactions insert rows that reference the wallet (ledger entries, transfers),
which only need `FOR KEY SHARE`. The caller's own wallet only matches if the caller owns
it, so a request naming somebody else's wallet as its source locks nothing of theirs.
System wallets are never locked: they keep no row balance.

The statement is SQL written here rather than an ORM queryset: the money path runs it
on every request and compiling a queryset each time cost more Python than the rest of
the lock (wallets/tests/test_locks.py pins its text and its columns).
"""

from __future__ import annotations

from uuid import UUID

from django.db import DEFAULT_DB_ALIAS, connection

from wallets.models import Wallet

# What the money path reads of a locked wallet: its checks (owner, kind, currency,
# status, balance) and the wallet's part of the response. The statements below select
# exactly these, in this order (wallets/tests/test_locks.py holds them to it).
LOCKED_FIELDS = ("id", "owner_id", "kind", "currency", "name", "balance", "status", "created_at")

# The caller's wallet, if the caller owns it.
LOCK_OWN_SQL = (
    "SELECT id, owner_id, kind, currency, name, balance, status, created_at FROM wallets_wallet"
    " WHERE kind = 'user' AND (id = %s AND owner_id = %s) ORDER BY id FOR NO KEY UPDATE"
)
# The caller's wallet, if the caller owns it, and another user wallet (a transfer's destination).
LOCK_OWN_AND_OTHER_SQL = (
    "SELECT id, owner_id, kind, currency, name, balance, status, created_at FROM wallets_wallet"
    " WHERE kind = 'user' AND ((id = %s AND owner_id = %s) OR id = %s) ORDER BY id FOR NO KEY UPDATE"
)


def wallets_lock_for_movement(
    *, own_wallet_id: UUID, owner_id: int, other_wallet_id: UUID | None
) -> dict[UUID, Wallet]:
    """Lock the caller's wallet (if theirs) and the other user wallet, in id order; {id: wallet}.

    Call inside a transaction: the locks last until it ends. A wallet that is missing,
    is not a user wallet, or (the caller's) belongs to someone else is simply absent.
    """
    if other_wallet_id is None:
        sql, params = LOCK_OWN_SQL, [own_wallet_id, owner_id]
    else:
        sql, params = LOCK_OWN_AND_OTHER_SQL, [own_wallet_id, owner_id, other_wallet_id]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    # psycopg returns these columns as the model's Python types, so no converters are needed.
    return {row[0]: Wallet.from_db(DEFAULT_DB_ALIAS, LOCKED_FIELDS, row) for row in rows}
