"""Writes on wallets that move no money."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from uuid import UUID

from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import audit_record
from foundation.currencies import supported_currencies
from wallets.errors import UnsupportedCurrency, WalletNotFound
from wallets.models import Wallet

# The system and adjustment wallets' ids, by (kind, currency).
_house_wallet_ids: dict[tuple[str, str], UUID] = {}


def wallet_create(*, owner_id: int, currency: str, name: str = "") -> Wallet:
    """Open a user wallet. The balance starts at 0; only the ledger changes it."""
    if currency not in supported_currencies():
        raise UnsupportedCurrency(f"Currency {currency!r} is not supported.")
    with transaction.atomic():
        wallet = Wallet.objects.create(owner_id=owner_id, currency=currency, name=name)
        audit_record(
            action=AuditEvent.Action.WALLET_CREATED,
            actor_id=owner_id,
            target_type="wallet",
            target_id=wallet.id,
            currency=currency,
            details={"name": name},
        )
    return wallet


def wallet_update(*, wallet_id: UUID, owner_id: int, name: str) -> Wallet:
    """Rename the caller's wallet. Never touches the balance."""
    with transaction.atomic():
        updated = Wallet.objects.filter(pk=wallet_id, owner_id=owner_id, kind=Wallet.Kind.USER).update(
            name=name, updated_at=timezone.now()
        )
        if not updated:
            raise WalletNotFound("No wallet with this id belongs to you.")
        audit_record(
            action=AuditEvent.Action.WALLET_UPDATED,
            actor_id=owner_id,
            target_type="wallet",
            target_id=wallet_id,
            details={"name": name},
        )
    return Wallet.objects.get(pk=wallet_id)


def wallet_set_status(
    *, wallet_id: UUID, status: str, actor_id: int | None, name: str | None = None
) -> Wallet:
    """Freeze, close or reactivate a wallet (operators). Frozen and closed wallets move no money.

    `actor_id` is the operator (None only for the system itself). The audit event names
    them and each changed field's old and new value; a save that changes nothing
    writes nothing. The row is locked while its old values are read, so the event
    cannot describe a change another operator made in between.
    """
    if status not in Wallet.Status.values:
        raise ValueError(f"unknown wallet status {status!r}")
    wanted = {"status": status} if name is None else {"status": status, "name": name}
    with transaction.atomic():
        current = Wallet.objects.select_for_update(no_key=True).filter(pk=wallet_id).values(*wanted).first()
        if current is None:
            raise WalletNotFound("No such wallet.")
        changes = {
            field: {"old": current[field], "new": value}
            for field, value in wanted.items()
            if current[field] != value
        }
        if changes:
            Wallet.objects.filter(pk=wallet_id).update(
                **{field: change["new"] for field, change in changes.items()}, updated_at=timezone.now()
            )
            audit_record(
                action=AuditEvent.Action.WALLET_UPDATED,
                actor_id=actor_id,
                target_type="wallet",
                target_id=wallet_id,
                details=changes,
            )
    return Wallet.objects.get(pk=wallet_id)


def wallets_mark_reconciled(
    *, checked: Collection[UUID], inconsistent: Collection[UUID], found_at: datetime
) -> None:
    """Record what reconciliation found for `checked` wallets: flag those in `inconsistent`
    (keeping the time they were first found), clear the flag of the others.

    Only rows whose flag changes are written, and never their balance or updated_at.
    This is the one place a reconciliation finding changes a wallet, so a policy that
    acts on it (putting such wallets under review) belongs here.
    """
    flagged = [wallet_id for wallet_id in inconsistent if wallet_id in checked]
    if flagged:
        Wallet.objects.filter(pk__in=flagged, inconsistent_since__isnull=True).update(
            inconsistent_since=found_at
        )
    Wallet.objects.filter(pk__in=checked, inconsistent_since__isnull=False).exclude(pk__in=flagged).update(
        inconsistent_since=None
    )


def system_wallet_id(*, currency: str) -> UUID:
    """The id of the currency's system wallet (the outside world: deposits come from it,
    withdrawals go to it), created on first use."""
    return _house_wallet_id(Wallet.Kind.SYSTEM, currency)


def adjustment_wallet_id(*, currency: str) -> UUID:
    """The id of the currency's adjustment wallet (the other side of operators'
    corrections), created on first use."""
    return _house_wallet_id(Wallet.Kind.ADJUSTMENT, currency)


def _house_wallet_id(kind: str, currency: str) -> UUID:
    """The id of the currency's one wallet of `kind` (system or adjustment), created on first use.

    Cached per process once committed: such a wallet is never deleted and its id never
    changes. Called before any lock is taken. If two first movements in a new currency
    race, the second waits on the unique index for the first to commit, then reads its row.
    """
    cached = _house_wallet_ids.get((kind, currency))
    if cached is not None:
        return cached
    wallet = Wallet.objects.filter(kind=kind, currency=currency).first()
    if wallet is None:
        label = Wallet.Kind(kind).label
        try:
            with transaction.atomic():
                wallet = Wallet.objects.create(
                    kind=kind, owner=None, currency=currency, name=f"{label} {currency}"
                )
        except IntegrityError:  # another process created it first
            wallet = Wallet.objects.get(kind=kind, currency=currency)
    wallet_id = wallet.id
    # Remember the id only once the row is committed: created inside a money
    # transaction that rolls back, it would otherwise point at nothing.
    transaction.on_commit(lambda: _house_wallet_ids.__setitem__((kind, currency), wallet_id))
    return wallet_id


def clear_system_wallet_cache() -> None:
    _house_wallet_ids.clear()
