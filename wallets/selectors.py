"""Reads on wallets, from the database.

Nothing here is cached: a wallet's read needs its balance, which is never cached, and
the row with it is one indexed query; an ownership check is one primary-key look-up,
as cheap as a cache read and never stale. (Each API request's one Redis round trip
serves its authentication and quotas: foundation.views.) Money services do not use
these selectors: they read and lock the rows themselves (wallets.locks).
"""

from __future__ import annotations

from uuid import UUID

from django.db import DEFAULT_DB_ALIAS, connection
from django.db.models import QuerySet

from wallets.errors import WalletNotFound
from wallets.models import Wallet


def wallet_list(*, owner_id: int) -> QuerySet[Wallet]:
    return Wallet.objects.filter(owner_id=owner_id, kind=Wallet.Kind.USER)


# What every read of a wallet row selects, in the model's order: its owner, kind,
# currency and name, its money (balance, held), status and limits, and when it was made.
# The endpoints' read adds when it last changed (WALLET_FIELDS); the money path's lock adds
# the head of its hash chain instead (wallets.locks.LOCKED_FIELDS).
WALLET_COLUMNS = (
    "id",
    "owner_id",
    "kind",
    "currency",
    "name",
    "balance",
    "held",
    "status",
    "max_outgoing_amount",
    "max_outgoing_per_day",
    "outgoing_day",
    "outgoing_today",
    "created_at",
)

# The two reads every wallet endpoint makes, written as SQL: building the same query with
# the ORM cost four times the CPU of running it (bench/inprocess.py; docs/performance.md).
# wallets/tests/test_selectors.py holds them to the model.
WALLET_FIELDS = (*WALLET_COLUMNS, "updated_at")
_COLUMNS = "SELECT " + ", ".join(WALLET_FIELDS)
OWNED_WALLET_SQL = _COLUMNS + " FROM wallets_wallet WHERE id = %s AND owner_id = %s AND kind = 'user'"
OWNS_WALLET_SQL = "SELECT 1 FROM wallets_wallet WHERE id = %s AND owner_id = %s AND kind = 'user'"


def wallet_check_owner(*, wallet_id: UUID, owner_id: int) -> None:
    """WalletNotFound unless the caller owns this user wallet (someone else's is "not found" too)."""
    with connection.cursor() as cursor:
        cursor.execute(OWNS_WALLET_SQL, [wallet_id, owner_id])
        if cursor.fetchone() is None:
            raise WalletNotFound("No wallet with this id belongs to you.")


def wallet_get(*, wallet_id: UUID, owner_id: int) -> Wallet:
    """The caller's wallet, balance included, in one indexed query."""
    with connection.cursor() as cursor:
        cursor.execute(OWNED_WALLET_SQL, [wallet_id, owner_id])
        row = cursor.fetchone()
    if row is None:
        raise WalletNotFound("No wallet with this id belongs to you.")
    return Wallet.from_db(DEFAULT_DB_ALIAS, WALLET_FIELDS, row)
