"""Reads on wallets.

Wallet metadata (owner, kind, currency, name, status, created_at) is cached
(foundation.cache) because it rarely changes and ownership checks on read
paths need it; the balance is always read from the database. Money services do
not use these selectors: they read and lock the rows themselves.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.db.models import QuerySet

from foundation.cache import cached
from wallets.errors import WalletNotFound
from wallets.models import Wallet

WALLET_META = "wallet-meta"
# Short on purpose: if Redis is unreachable at the moment a change commits, the
# invalidation is lost and the old name/status could be shown for at most this long.
META_TIMEOUT = 60
_META_FIELDS = ("id", "owner_id", "kind", "currency", "name", "status", "created_at")


def wallet_list(*, owner_id: int) -> QuerySet[Wallet]:
    # Not cached: every item carries a balance, and the list is one indexed query.
    return Wallet.objects.filter(owner_id=owner_id, kind=Wallet.Kind.USER)


def wallet_meta(*, wallet_id: UUID) -> dict[str, Any] | None:
    """The wallet's metadata, from the cache when possible; None if there is no such wallet."""
    return cached(
        WALLET_META,
        wallet_id,
        lambda: Wallet.objects.filter(pk=wallet_id).values(*_META_FIELDS).first(),
        timeout=META_TIMEOUT,
    )


def wallet_check_owner(*, wallet_id: UUID, owner_id: int) -> dict[str, Any]:
    """The caller's wallet's metadata, or WalletNotFound (also for someone else's wallet)."""
    meta = wallet_meta(wallet_id=wallet_id)
    if meta is None or meta["owner_id"] != owner_id or meta["kind"] != Wallet.Kind.USER:
        raise WalletNotFound("No wallet with this id belongs to you.")
    return meta


def wallet_get(*, wallet_id: UUID, owner_id: int) -> Wallet:
    """The caller's wallet: metadata from the cache, balance fresh from the database."""
    meta = wallet_check_owner(wallet_id=wallet_id, owner_id=owner_id)
    row = Wallet.objects.filter(pk=wallet_id).values("balance", "updated_at").first()
    if row is None:
        raise WalletNotFound("No wallet with this id belongs to you.")
    return Wallet(**meta, **row)
