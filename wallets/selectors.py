"""Reads on wallets, from the database.

Nothing here is cached: a wallet's read needs its balance, which is never cached, and
the row with it is one indexed query; an ownership check is one primary-key look-up,
as cheap as a cache read and never stale. (Each API request's one Redis round trip
serves its authentication and quotas: foundation.views.) Money services do not use
these selectors: they read and lock the rows themselves (wallets.locks).
"""

from __future__ import annotations

from uuid import UUID

from django.db.models import QuerySet

from wallets.errors import WalletNotFound
from wallets.models import Wallet


def wallet_list(*, owner_id: int) -> QuerySet[Wallet]:
    return Wallet.objects.filter(owner_id=owner_id, kind=Wallet.Kind.USER)


def wallet_check_owner(*, wallet_id: UUID, owner_id: int) -> None:
    """WalletNotFound unless the caller owns this user wallet (someone else's is "not found" too)."""
    if not Wallet.objects.filter(pk=wallet_id, owner_id=owner_id, kind=Wallet.Kind.USER).exists():
        raise WalletNotFound("No wallet with this id belongs to you.")


def wallet_get(*, wallet_id: UUID, owner_id: int) -> Wallet:
    """The caller's wallet, balance included, in one indexed query."""
    wallet = Wallet.objects.filter(pk=wallet_id, owner_id=owner_id, kind=Wallet.Kind.USER).first()
    if wallet is None:
        raise WalletNotFound("No wallet with this id belongs to you.")
    return wallet
