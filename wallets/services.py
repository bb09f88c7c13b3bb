"""Writes on wallets that move no money."""

from __future__ import annotations

from uuid import UUID

from django.db import IntegrityError, transaction

from wallets.currencies import supported_currencies
from wallets.errors import UnsupportedCurrency
from wallets.models import Wallet

_system_wallet_ids: dict[str, UUID] = {}


def wallet_create(*, owner_id: int, currency: str, name: str = "") -> Wallet:
    """Open a user wallet. The balance starts at 0; only the ledger changes it."""
    if currency not in supported_currencies():
        raise UnsupportedCurrency(f"Currency {currency!r} is not supported.")
    return Wallet.objects.create(owner_id=owner_id, currency=currency, name=name)


def system_wallet_id(*, currency: str) -> UUID:
    """The id of the currency's system wallet (the outside world), created on first use.

    Cached per process: a system wallet is never deleted and its id never changes.
    Called before any lock is taken.
    """
    cached = _system_wallet_ids.get(currency)
    if cached is not None:
        return cached
    wallet = Wallet.objects.filter(kind=Wallet.Kind.SYSTEM, currency=currency).first()
    if wallet is None:
        try:
            with transaction.atomic():
                wallet = Wallet.objects.create(
                    kind=Wallet.Kind.SYSTEM, owner=None, currency=currency, name=f"System {currency}"
                )
        except IntegrityError:  # another process created it first
            wallet = Wallet.objects.get(kind=Wallet.Kind.SYSTEM, currency=currency)
    _system_wallet_ids[currency] = wallet.id
    return wallet.id


def clear_system_wallet_cache() -> None:
    _system_wallet_ids.clear()
