"""Reads on wallets. Balances always come from the database, never a cache."""

from __future__ import annotations

from uuid import UUID

from django.db.models import QuerySet, Sum

from wallets.errors import WalletNotFound
from wallets.models import Wallet


def wallet_list(*, owner_id: int) -> QuerySet[Wallet]:
    return Wallet.objects.filter(owner_id=owner_id, kind=Wallet.Kind.USER)


def wallet_get(*, wallet_id: UUID, owner_id: int) -> Wallet:
    """The caller's wallet, or WalletNotFound (also for someone else's wallet)."""
    wallet = Wallet.objects.filter(pk=wallet_id, owner_id=owner_id, kind=Wallet.Kind.USER).first()
    if wallet is None:
        raise WalletNotFound("No wallet with this id belongs to you.")
    return wallet


def system_wallet_balance(*, wallet_id: UUID) -> int:
    """A system wallet's balance is the sum of its entries (it keeps no row balance)."""
    from transfers.models import LedgerEntry

    return LedgerEntry.objects.filter(wallet_id=wallet_id).aggregate(total=Sum("amount"))["total"] or 0
