"""Writes on wallets that move no money."""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from datetime import datetime
from uuid import UUID

from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import audit_record
from events.models import Event
from events.services import event_record
from foundation.currencies import supported_currencies
from wallets.errors import (
    InvalidLimit,
    ReviewStatusReserved,
    UnsupportedCurrency,
    WalletNotFound,
    WalletNotUnderReview,
    WalletStillInconsistent,
)
from wallets.models import Wallet
from wallets.serializers import wallet_data

logger = logging.getLogger(__name__)

# The statuses reconciliation takes a user wallet from to put it under review; a release
# gives it back the one it had (the wallet.under_review event records it).
REVIEWABLE_STATUSES = (Wallet.Status.ACTIVE, Wallet.Status.FROZEN)

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
    *, wallet_id: UUID, status: str | None = None, actor_id: int | None, name: str | None = None
) -> Wallet:
    """Freeze, close or reactivate a wallet, or rename it (operators). Frozen and closed
    wallets move no money. `None` leaves a field as it is.

    `actor_id` is the operator (None only for the system itself). The audit event names
    them and each changed field's old and new value; a save that changes nothing
    writes nothing. The row is locked while its old values are read, so the event
    cannot describe a change another operator made in between.

    Under review is not set or ended here: reconciliation puts a wallet under review
    (wallets_mark_reconciled) and only wallet_release takes it out, once the wallet is
    consistent again; anything else raises ReviewStatusReserved.
    """
    if status is not None and status not in Wallet.Status.values:
        raise ValueError(f"unknown wallet status {status!r}")
    wanted = {field: value for field, value in (("status", status), ("name", name)) if value is not None}
    with transaction.atomic():
        current = (
            Wallet.objects.select_for_update(no_key=True)
            .filter(pk=wallet_id)
            .values("status", *(field for field in wanted if field != "status"))
            .first()
        )
        if current is None:
            raise WalletNotFound("No such wallet.")
        changes = _changes(current, wanted)
        if "status" in changes and Wallet.Status.UNDER_REVIEW in (current["status"], status):
            raise ReviewStatusReserved(
                "Only reconciliation puts a wallet under review, and only a release (once "
                "reconciliation finds the wallet consistent) takes it out."
                if status == Wallet.Status.UNDER_REVIEW
                else "The wallet is under review: release it (once reconciliation finds it "
                "consistent) before changing its status.",
                wallet_id=str(wallet_id),
            )
        _write_changes(wallet_id, changes, actor_id)
    return Wallet.objects.get(pk=wallet_id)


def _changes(current: dict, wanted: dict) -> dict:
    """Each wanted field whose value differs from the locked row's: {field: {old, new}}."""
    return {
        field: {"old": current[field], "new": value}
        for field, value in wanted.items()
        if current[field] != value
    }


def _write_changes(wallet_id: UUID, changes: dict, actor_id: int | None) -> None:
    """Write an operator's `changes` to the locked wallet and audit them as `wallet.updated`
    (old and new values, the operator); nothing at all when nothing changed."""
    if not changes:
        return
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
    if "status" in changes:
        _status_event(wallet_id)


def _status_event(wallet_id: UUID) -> None:
    """The outbox event of a user wallet's new status (frozen, closed, reactivated, under
    review, released): the wallet as the API renders it, read in the transaction that
    changed it, under its row lock, like every event of the wallet. A system or
    adjustment wallet has no owner to tell."""
    wallet = Wallet.objects.get(pk=wallet_id)
    if wallet.kind != Wallet.Kind.USER:
        return
    event_record(
        type=Event.Type.WALLET_STATUS_CHANGED,
        wallet_id=wallet.id,
        owner_id=wallet.owner_id,
        created_at=wallet.updated_at,
        data=wallet_data(wallet),
    )


LIMIT_FIELDS = ("max_outgoing_amount", "max_outgoing_per_day")


def wallet_set_limits(
    *,
    wallet_id: UUID,
    max_outgoing_amount: int | None,
    max_outgoing_per_day: int | None,
    actor_id: int | None,
) -> Wallet:
    """Set a user wallet's limits on outgoing money (operators): the largest single
    movement and the largest total in one UTC day, in minor units; None: no limit.

    Each limit is a positive integer or None (InvalidLimit otherwise; PostgreSQL checks it
    too). Only user wallets have limits. Locks the row while its old values are read, as
    wallet_set_status does; the audit event (`wallet.updated`) names the operator and each
    changed limit's old and new value, and a call that changes nothing writes nothing.
    The money path reads the limits on the locked row, so a movement sees either the old
    limits or the new ones, never a mix.
    """
    wanted = {"max_outgoing_amount": max_outgoing_amount, "max_outgoing_per_day": max_outgoing_per_day}
    for field, value in wanted.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
            raise InvalidLimit(
                f"{field} must be a positive whole number of minor units, or empty for no limit.",
                field=field,
            )
    with transaction.atomic():
        current = (
            Wallet.objects.select_for_update(no_key=True).filter(pk=wallet_id).values("kind", *wanted).first()
        )
        if current is None:
            raise WalletNotFound("No such wallet.")
        changes = _changes(current, wanted)
        if changes and current["kind"] != Wallet.Kind.USER:
            raise InvalidLimit("Only user wallets have limits.", field=next(iter(changes)))
        _write_changes(wallet_id, changes, actor_id)
    return Wallet.objects.get(pk=wallet_id)


def wallet_release(*, wallet_id: UUID, actor_id: int | None) -> Wallet:
    """Release a wallet from review (operators), once it is consistent with its ledger again.

    The wallet must be under review (WalletNotUnderReview otherwise) and the latest
    reconciliation of it must have found it consistent: `inconsistent_since` empty
    (WalletStillInconsistent otherwise). So an operator corrects the wallet, runs
    `manage.py reconcile --wallet <id>` until it is clean, then releases it; a release
    can never put an inconsistent wallet back on the money path.

    It gets back the status it had when reconciliation put it under review (active, or
    frozen: a release never unfreezes a wallet an operator had frozen), as the
    `wallet.under_review` event recorded it; active if no event says otherwise. Locks the
    row; audited as `wallet.released` naming the operator, in the same transaction.
    """
    with transaction.atomic():
        current = (
            Wallet.objects.select_for_update(no_key=True)
            .filter(pk=wallet_id)
            .values("status", "inconsistent_since", "currency")
            .first()
        )
        if current is None:
            raise WalletNotFound("No such wallet.")
        if current["status"] != Wallet.Status.UNDER_REVIEW:
            raise WalletNotUnderReview(
                f"The wallet is {current['status']}, not under review: there is nothing to release.",
                wallet_id=str(wallet_id),
                wallet_status=current["status"],
            )
        if current["inconsistent_since"] is not None:
            raise WalletStillInconsistent(
                "Reconciliation has found the wallet inconsistent with its ledger since "
                f"{current['inconsistent_since'].isoformat()}. Correct it, run "
                f"`manage.py reconcile --wallet {wallet_id}` until it is clean, then release it.",
                wallet_id=str(wallet_id),
                inconsistent_since=current["inconsistent_since"].isoformat(),
            )
        restored = _status_before_review(wallet_id)
        Wallet.objects.filter(pk=wallet_id).update(status=restored, updated_at=timezone.now())
        audit_record(
            action=AuditEvent.Action.WALLET_RELEASED,
            actor_id=actor_id,
            target_type="wallet",
            target_id=wallet_id,
            currency=current["currency"],
            details={"status": {"old": Wallet.Status.UNDER_REVIEW.value, "new": restored}},
        )
        _status_event(wallet_id)
    return Wallet.objects.get(pk=wallet_id)


def _status_before_review(wallet_id: UUID) -> str:
    """The status the wallet had when it last went under review (the audit trail is written
    in the same transaction as the change, and is append-only)."""
    event = (
        AuditEvent.objects.filter(
            action=AuditEvent.Action.WALLET_UNDER_REVIEW, target_type="wallet", target_id=str(wallet_id)
        )
        .order_by("-created_at", "-id")
        .values_list("details", flat=True)
        .first()
    )
    old = (event or {}).get("status", {}).get("old")
    return old if old in REVIEWABLE_STATUSES else Wallet.Status.ACTIVE.value


def wallets_mark_reconciled(
    *,
    checked: Collection[UUID],
    inconsistent: Collection[UUID],
    found_at: datetime,
    findings: Mapping[UUID, Collection[str]] | None = None,
    run_id: int | None = None,
) -> list[UUID]:
    """Record what reconciliation found for `checked` wallets: flag those in `inconsistent`
    (keeping the time they were first found), clear the flag of the others, and put each
    flagged user wallet that is active or frozen under review. Returns the ids of the
    wallets it put under review.

    This is the one place a reconciliation finding changes a wallet. Under review, the
    money path refuses every movement touching the wallet (409 wallet_under_review) but
    operators' adjustments; an operator corrects it and, once a run finds it consistent,
    releases it (wallet_release). Closed wallets stay closed, wallets already under review
    stay so, and system and adjustment wallets are only flagged (they stand for the
    outside world and for corrections: refusing them would stop every deposit,
    withdrawal or adjustment in the currency).

    The flagged rows are locked in primary-key order and written in one transaction with
    one `wallet.under_review` event per wallet put under review (actor: none, the
    system), naming its old status and `findings` (discrepancy kinds per wallet) and
    `run_id`. The flag writes never touch a balance or updated_at; a status change sets
    updated_at, as every status change does.
    """
    flagged = sorted(wallet_id for wallet_id in inconsistent if wallet_id in checked)
    put_under_review: list[UUID] = []
    if flagged:
        with transaction.atomic():
            rows = list(
                Wallet.objects.select_for_update(no_key=True)
                .filter(pk__in=flagged)
                .order_by("pk")
                .values("id", "kind", "status", "currency", "inconsistent_since")
            )
            Wallet.objects.filter(pk__in=flagged, inconsistent_since__isnull=True).update(
                inconsistent_since=found_at
            )
            now = timezone.now()
            for row in rows:
                if row["kind"] != Wallet.Kind.USER or row["status"] not in REVIEWABLE_STATUSES:
                    continue
                Wallet.objects.filter(pk=row["id"]).update(status=Wallet.Status.UNDER_REVIEW, updated_at=now)
                kinds = sorted(set((findings or {}).get(row["id"], ())))
                audit_record(
                    action=AuditEvent.Action.WALLET_UNDER_REVIEW,
                    actor_id=None,
                    target_type="wallet",
                    target_id=row["id"],
                    currency=row["currency"],
                    details={
                        "status": {"old": row["status"], "new": Wallet.Status.UNDER_REVIEW.value},
                        "inconsistent_since": (row["inconsistent_since"] or found_at).isoformat(),
                        "discrepancies": kinds,
                        "reconciliation_run": run_id,
                    },
                )
                _status_event(row["id"])
                put_under_review.append(row["id"])
        for wallet_id in put_under_review:
            logger.warning(
                "wallet %s put under review: reconciliation run %s found it inconsistent (%s); "
                "see docs/operations.md",
                wallet_id,
                run_id,
                ", ".join(sorted(set((findings or {}).get(wallet_id, ())))) or "no detail",
            )
    Wallet.objects.filter(pk__in=checked, inconsistent_since__isnull=False).exclude(pk__in=flagged).update(
        inconsistent_since=None
    )
    return put_under_review


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
