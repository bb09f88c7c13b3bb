"""Row locks on wallets: the one place the money path locks them, always in id order.

Every money movement locks the user wallets it touches with one statement,
`SELECT ... FOR NO KEY UPDATE ... ORDER BY id`. One fixed order means two transfers
A->B and B->A can never deadlock. `FOR NO KEY UPDATE` (not `FOR UPDATE`) still lets
other transactions insert rows that reference the wallet (ledger entries, transfers),
which only need `FOR KEY SHARE`. The caller's own wallet only matches if the caller owns
it, so a request naming somebody else's wallet as its source locks nothing of theirs.
System and adjustment wallets are never locked: they keep no row balance. An operator's
correction (corrections app) and the hold expiry task act on a wallet they do not own:
they lock it by id alone (LOCK_BY_ID_SQL).

The statement is SQL written here rather than an ORM queryset: the money path runs it
on every request and compiling a queryset each time cost more Python than the rest of
the lock (wallets/tests/test_locks.py pins its text and its columns).
"""

from __future__ import annotations

from uuid import UUID

from django.db import DEFAULT_DB_ALIAS, connection

from wallets.models import Wallet
from wallets.selectors import WALLET_COLUMNS

# What the money path reads of a locked wallet: its checks (owner, kind, currency,
# status, balance, held, limits and today's outgoing total), the wallet's part of the
# response (the columns every read of a wallet selects: wallets.selectors.WALLET_COLUMNS),
# and the head of its hash chain (the next entry links to it). The statements below select
# exactly these, in this order (wallets/tests/test_locks.py holds them to it).
LOCKED_FIELDS = (*WALLET_COLUMNS, "head_hash", "entry_count")

# Each statement first sets, for its transaction, how long it may wait for a lock
# (set_config(..., true) is SET LOCAL): a money request waits in short attempts and lets
# go of what it holds between them (transfers.idempotency), so a row locked for long does
# not make every other wallet wait behind the requests queued on it. The CTE is joined in,
# so it has run before any row reaches the lock.
_ATTEMPT = "WITH attempt AS MATERIALIZED (SELECT set_config('lock_timeout', %s, true))"
_COLUMNS = " SELECT " + ", ".join(f"w.{name}" for name in LOCKED_FIELDS)
# The caller's wallet, if the caller owns it.
LOCK_OWN_SQL = (
    _ATTEMPT
    + _COLUMNS
    + " FROM wallets_wallet w, attempt WHERE w.kind = 'user' AND (w.id = %s AND w.owner_id = %s)"
    " ORDER BY w.id FOR NO KEY UPDATE OF w"
)
# The caller's wallet, if the caller owns it, and another user wallet (a transfer's destination).
LOCK_OWN_AND_OTHER_SQL = (
    _ATTEMPT + _COLUMNS + " FROM wallets_wallet w, attempt WHERE w.kind = 'user'"
    " AND ((w.id = %s AND w.owner_id = %s) OR w.id = %s) ORDER BY w.id FOR NO KEY UPDATE OF w"
)

# User wallets by id alone, whoever owns them (operators' corrections, the expiry task).
LOCK_BY_ID_SQL = (
    _ATTEMPT + _COLUMNS + " FROM wallets_wallet w, attempt WHERE w.kind = 'user' AND w.id = ANY(%s)"
    " ORDER BY w.id FOR NO KEY UPDATE OF w"
)


def wallets_lock_for_movement(
    *, own_wallet_id: UUID, owner_id: int, other_wallet_id: UUID | None, wait_ms: int
) -> dict[UUID, Wallet]:
    """Lock the caller's wallet (if theirs) and the other user wallet, in id order; {id: wallet}.

    Call inside a transaction: the locks last until it ends. A wallet that is missing,
    is not a user wallet, or (the caller's) belongs to someone else is simply absent.
    Waits at most `wait_ms` for a lock (then PostgreSQL raises lock_not_available).
    """
    wait = f"{int(wait_ms)}ms"
    if other_wallet_id is None:
        sql, params = LOCK_OWN_SQL, [wait, own_wallet_id, owner_id]
    else:
        sql, params = LOCK_OWN_AND_OTHER_SQL, [wait, own_wallet_id, owner_id, other_wallet_id]
    return _locked(sql, params)


def wallets_lock_by_id(*, wallet_ids: list[UUID], wait_ms: int) -> dict[UUID, Wallet]:
    """Lock these user wallets, whoever owns them, in id order; {id: wallet}.

    For callers that act on somebody's wallet as the service or an operator, never on a
    request of its owner's. Same contract as wallets_lock_for_movement otherwise.
    """
    return _locked(LOCK_BY_ID_SQL, [f"{int(wait_ms)}ms", list(wallet_ids)])


def _locked(sql: str, params: list) -> dict[UUID, Wallet]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    # psycopg returns these columns as the model's Python types, so no converters are needed.
    return {row[0]: Wallet.from_db(DEFAULT_DB_ALIAS, LOCKED_FIELDS, row) for row in rows}
