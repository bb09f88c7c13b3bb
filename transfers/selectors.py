"""Reads on the ledger. Always from the database (never a cache)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from django.db.models import Q, QuerySet

from transfers.models import LedgerEntry, Transfer
from wallets.errors import TransferNotFound
from wallets.models import Wallet
from wallets.selectors import wallet_get


def wallet_history(
    *,
    wallet_id: UUID,
    owner_id: int,
    entry_type: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
) -> QuerySet[LedgerEntry]:
    """The caller's wallet's entries, newest first (keyset-paginated on id)."""
    wallet = wallet_get(wallet_id=wallet_id, owner_id=owner_id)
    entries = LedgerEntry.objects.filter(wallet_id=wallet.id).select_related("transfer")
    if entry_type:
        entries = entries.filter(type=entry_type)
    if created_after:
        entries = entries.filter(created_at__gte=created_after)
    if created_before:
        entries = entries.filter(created_at__lt=created_before)
    return entries.only(
        "id",
        "type",
        "amount",
        "balance_after",
        "transfer_id",
        "created_at",
        "transfer__reference",
        "transfer__description",
    )


def _visible_transfers(*, user_id: int) -> QuerySet[Transfer]:
    mine = Wallet.objects.filter(owner_id=user_id).values("id")
    return Transfer.objects.filter(Q(source_wallet_id__in=mine) | Q(destination_wallet_id__in=mine))


def transfer_list(*, user_id: int, wallet_id: UUID | None = None) -> QuerySet[Transfer]:
    """Transfers touching the caller's wallets, optionally one of them."""
    if wallet_id is not None:
        wallet = wallet_get(wallet_id=wallet_id, owner_id=user_id)
        return Transfer.objects.filter(Q(source_wallet_id=wallet.id) | Q(destination_wallet_id=wallet.id))
    return _visible_transfers(user_id=user_id)


def transfer_get(*, transfer_id: UUID, user_id: int) -> Transfer:
    transfer = _visible_transfers(user_id=user_id).filter(pk=transfer_id).first()
    if transfer is None:
        raise TransferNotFound("No transfer with this id involves your wallets.")
    return transfer
