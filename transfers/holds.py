"""Holds: money reserved on a wallet, then captured, voided or expired.

A hold moves no money while pending: it adds its amount to the wallet's `held`, so
withdrawals, transfers and other holds can only use what is left (`available`). Its end
is one of:

- capture: a movement (transfers.services, `Movement.hold_id`) that moves all or part of
  the held amount to a wallet (a transfer) or out of the service (a withdrawal) and
  releases the whole hold in the same statement;
- void: the owner releases it (hold_void_prepare);
- expiry: the service releases it once `expires_at` has passed (holds_expire, run by
  Celery beat and `manage.py expire_holds`).

Every change locks the hold's wallet first (wallets.locks), then the hold row
(transfers.locks): one order for all of them, so a capture, a void and an expiry of the
same hold run one after the other and only the first finds it pending; the others answer
`hold_not_pending` with its final status. PostgreSQL checks at commit that the wallet's
`held` is the sum of its pending holds and that a hold changes once (transfers.0007).

Creating and voiding are prepared and written in two steps like movements
(`prepared.write(extra_rows=[...])`), so the idempotency record commits with them.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from django.conf import settings
from django.db import OperationalError, transaction
from django.db.models import Model
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import audit_event
from foundation.clock import utc_day
from foundation.db import is_lock_timeout
from foundation.errors import ValidationFailed
from foundation.metrics import registry as metrics
from transfers import statements
from transfers.errors import DuplicateReference, HoldNotFound
from transfers.events import hold_events
from transfers.locks import hold_lock
from transfers.models import Hold, Transfer
from transfers.selectors import find_hold_reference_use
from transfers.services import (
    Movement,
    hold_not_pending,
    insufficient_funds,
    movement_prepare,
    wallet_check_limits,
    wallet_check_status,
)
from transfers.statements import WalletUpdate
from wallets.errors import WalletError, WalletNotFound
from wallets.locks import wallets_lock_by_id, wallets_lock_for_movement
from wallets.models import Wallet

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class HoldCreate:
    """Reserve `amount` on the owner's wallet until `expires_at`."""

    wallet_id: UUID
    amount: int
    expires_at: datetime
    initiated_by_id: int
    reference: str | None = None
    description: str = ""

    kind = "hold"  # how the audit trail, the trace span and the metrics name it

    @property
    def own_wallet_id(self) -> UUID:
        return self.wallet_id

    @property
    def source_wallet_id(self) -> UUID:
        return self.wallet_id

    destination_wallet_id = None


@dataclass(frozen=True)
class HoldVoid:
    """Release a pending hold of the owner's wallet (`wallet_id` is the hold's)."""

    hold_id: UUID
    wallet_id: UUID
    initiated_by_id: int

    kind = "hold_void"
    amount = None
    reference = None
    destination_wallet_id = None

    @property
    def own_wallet_id(self) -> UUID:
        return self.wallet_id

    @property
    def source_wallet_id(self) -> UUID:
        return self.wallet_id


@dataclass(frozen=True)
class PreparedHoldChange:
    """A hold created or ended, checked under its wallet's lock; nothing written yet."""

    hold: Hold
    created: bool  # a new hold (inserted) or an ended one (updated)
    # The wallet, carrying its new `held`.
    wallet: Wallet
    audit: AuditEvent
    action: str  # for the metrics: created, voided or expired

    transfer_id = None

    @property
    def created_at(self) -> datetime:
        return self.hold.created_at if self.created else self.hold.finished_at

    def write(self, *, extra_rows: Sequence[Model] = (), body: bytes | None = None) -> Hold:
        """Write the hold (new, or its end), the audit event, the outbox's event
        (transfers.events), the wallet's `held` and `extra_rows` in one statement, in the
        transaction the change was prepared in. `body`: the hold as the request's answer
        rendered it, which the event reuses."""
        events = hold_events(
            action=self.action, hold=self.hold, wallet=self.wallet, created_at=self.created_at, body=body
        )
        statements.write(
            [*([self.hold] if self.created else []), self.audit, *events, *extra_rows],
            wallets=[WalletUpdate(self.wallet.id, held=self.wallet.held)],
            updates=[] if self.created else [self.hold],
            updated_at=self.created_at,
        )
        transaction.on_commit(
            functools.partial(
                metrics.record_hold, action=self.action, currency=self.hold.currency, outcome="completed"
            )
        )
        return self.hold


def hold_expiry(*, expires_at: datetime | None, expires_in_seconds: int | None, now: datetime) -> datetime:
    """When a new hold expires: the given time, or `expires_in_seconds` from now, or the
    default lifetime; never past HOLD_MAX_SECONDS from now. ValidationFailed otherwise."""
    if expires_at is not None and expires_in_seconds is not None:
        raise ValidationFailed({"expires_at": ["Give expires_at or expires_in_seconds, not both."]})
    if expires_at is None:
        expires_at = now + timedelta(seconds=expires_in_seconds or settings.HOLD_DEFAULT_SECONDS)
    if expires_at <= now:
        raise ValidationFailed({"expires_at": ["A hold must expire in the future."]})
    if expires_at > now + timedelta(seconds=settings.HOLD_MAX_SECONDS):
        raise ValidationFailed(
            {"expires_at": [f"A hold may last at most {settings.HOLD_MAX_SECONDS} seconds."]}
        )
    return expires_at


def hold_create_prepare(command: HoldCreate) -> PreparedHoldChange:
    """Check a new hold under its wallet's lock and build its rows; write nothing.

    Invariant: the wallet's available money (balance less holds) covers the amount, and
    the amount fits the wallet's limits (the daily total is counted when the hold is
    captured, not now). Locks: the wallet. Transaction: the caller's.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("hold_create_prepare() needs the caller's transaction")
    if type(command.amount) is not int or not 0 < command.amount <= settings.MAX_MOVEMENT_AMOUNT:
        raise ValueError(
            f"amount must be an int in 1..{settings.MAX_MOVEMENT_AMOUNT}, got {command.amount!r}"
        )
    if command.reference is not None:
        original = find_hold_reference_use(
            wallet_id=command.wallet_id, reference=command.reference, owner_id=command.initiated_by_id
        )
        if original is not None:
            raise duplicate_hold_reference_error(*original)
    wallet = _lock_own(command.wallet_id, command.initiated_by_id)
    now = timezone.now()
    try:
        if command.expires_at <= now:
            raise ValidationFailed({"expires_at": ["A hold must expire in the future."]})
        wallet_check_status(wallet, "hold's")
        if wallet.available < command.amount:
            raise insufficient_funds(wallet)
        wallet_check_limits(wallet, command.amount, utc_day(now))
    except WalletError as error:
        error.currency = wallet.currency
        raise
    hold = Hold(
        id=uuid.uuid4(),
        wallet_id=wallet.id,
        amount=command.amount,
        captured_amount=0,
        currency=wallet.currency,
        status=Hold.Status.PENDING,
        expires_at=command.expires_at,
        reference=command.reference,
        description=command.description,
        created_by_id=command.initiated_by_id,
        capture_transfer_id=None,
        created_at=now,
        finished_at=None,
    )
    wallet.held += command.amount
    wallet.updated_at = now
    audit = _audit(AuditEvent.Action.HOLD_CREATED, hold, command.initiated_by_id, now)
    audit.details["expires_at"] = command.expires_at.isoformat()
    return PreparedHoldChange(hold=hold, created=True, wallet=wallet, audit=audit, action="created")


def hold_void_prepare(command: HoldVoid) -> PreparedHoldChange:
    """Release a pending hold under its wallet's lock; write nothing.

    A frozen wallet, or one under review, may still release its holds. Locks: the
    wallet, then the hold. Transaction: the caller's.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("hold_void_prepare() needs the caller's transaction")
    wallet = _lock_own(command.wallet_id, command.initiated_by_id)
    hold = hold_lock(hold_id=command.hold_id, wallet_id=wallet.id)
    if hold is None:
        raise HoldNotFound("No hold with this id is on a wallet of yours.")
    try:
        return _end(hold, wallet, Hold.Status.VOIDED, actor_id=command.initiated_by_id, now=timezone.now())
    except WalletError as error:
        error.currency = wallet.currency
        raise


def holds_expire(*, now: datetime | None = None, batch_size: int | None = None) -> int:
    """Release every pending hold whose `expires_at` has passed; return how many expired.

    Each hold in a transaction of its own: lock its wallet, then the hold; one a capture
    or void ended first is left as it is. A wallet whose lock cannot be had within
    DB_LOCK_TIMEOUT_MS is skipped (logged); the next run takes it. Safe to run on several
    workers at once: each hold ends once.
    """
    now = now or timezone.now()
    batch_size = batch_size or settings.HOLD_EXPIRY_BATCH_SIZE
    expired = 0
    skipped: set[UUID] = set()
    while True:
        due = list(
            Hold.objects.filter(status=Hold.Status.PENDING, expires_at__lte=now)
            .exclude(id__in=skipped)
            .order_by("expires_at", "id")
            .values_list("id", "wallet_id")[:batch_size]
        )
        for hold_id, wallet_id in due:
            try:
                if _expire_one(hold_id, wallet_id, now):
                    expired += 1
            except OperationalError as exc:
                if not is_lock_timeout(exc):
                    raise
                logger.warning("hold %s not expired: its wallet %s stayed locked", hold_id, wallet_id)
                skipped.add(hold_id)
        if len(due) < batch_size:
            break
    if expired:
        logger.info("expired %d holds", expired)
    return expired


def hold_create(
    *,
    wallet_id: UUID,
    owner_id: int,
    amount: int,
    expires_at: datetime | None = None,
    reference: str | None = None,
    description: str = "",
) -> Hold:
    """Reserve `amount` on the owner's wallet until `expires_at` (default: HOLD_DEFAULT_SECONDS
    from now). Invariant, locks: hold_create_prepare. Transaction: its own, or the caller's."""
    with transaction.atomic(savepoint=False):
        now = timezone.now()
        command = HoldCreate(
            wallet_id=wallet_id,
            amount=amount,
            expires_at=hold_expiry(expires_at=expires_at, expires_in_seconds=None, now=now),
            initiated_by_id=owner_id,
            reference=reference,
            description=description,
        )
        return hold_create_prepare(command).write()


def hold_capture(
    *,
    hold_id: UUID,
    owner_id: int,
    amount: int | None = None,
    destination_wallet_id: UUID | None = None,
    description: str | None = None,
) -> Hold:
    """Capture a pending hold of the owner's wallet (capture_movement says how); return the
    captured hold. Transaction: its own, or the caller's."""
    movement = capture_movement(
        hold_id=hold_id,
        user_id=owner_id,
        amount=amount,
        destination_wallet_id=destination_wallet_id,
        description=description,
    )
    with transaction.atomic(savepoint=False):
        prepared = movement_prepare(movement)
        prepared.write()
    return prepared.hold


def hold_void(*, hold_id: UUID, owner_id: int) -> Hold:
    """Release a pending hold of the owner's wallet. Transaction: its own, or the caller's."""
    command = void_command(hold_id=hold_id, user_id=owner_id)
    with transaction.atomic(savepoint=False):
        return hold_void_prepare(command).write()


def capture_movement(
    *,
    hold_id: UUID,
    user_id: int,
    amount: int | None = None,
    destination_wallet_id: UUID | None = None,
    description: str | None = None,
) -> Movement:
    """The movement that captures a hold of the caller's wallet: `amount` (default: all of
    it) to `destination_wallet_id` (a transfer) or out of the service (a withdrawal).
    HoldNotFound unless the hold is on a wallet of the caller's."""
    hold = (
        Hold.objects.filter(pk=hold_id, wallet__owner_id=user_id)
        .values("wallet_id", "amount", "description")
        .first()
    )
    if hold is None:
        raise HoldNotFound("No hold with this id is on a wallet of yours.")
    return Movement(
        kind=Transfer.Kind.TRANSFER if destination_wallet_id is not None else Transfer.Kind.WITHDRAWAL,
        own_wallet_id=hold["wallet_id"],
        other_wallet_id=destination_wallet_id,
        amount=amount if amount is not None else hold["amount"],
        initiated_by_id=user_id,
        description=hold["description"] if description is None else description,
        hold_id=hold_id,
    )


def void_command(*, hold_id: UUID, user_id: int) -> HoldVoid:
    """The void of a hold of the caller's wallet. HoldNotFound unless it is theirs."""
    wallet_id = (
        Hold.objects.filter(pk=hold_id, wallet__owner_id=user_id).values_list("wallet_id", flat=True).first()
    )
    if wallet_id is None:
        raise HoldNotFound("No hold with this id is on a wallet of yours.")
    return HoldVoid(hold_id=hold_id, wallet_id=wallet_id, initiated_by_id=user_id)


def duplicate_hold_reference_error(original_hold_id: UUID, currency: str = "") -> DuplicateReference:
    error = DuplicateReference(
        "This reference was already used for a hold on this wallet.", original_hold_id=str(original_hold_id)
    )
    error.currency = currency
    return error


# --- the steps ---------------------------------------------------------------------


def _lock_own(wallet_id: UUID, owner_id: int) -> Wallet:
    locked = wallets_lock_for_movement(
        own_wallet_id=wallet_id, owner_id=owner_id, other_wallet_id=None, wait_ms=settings.DB_LOCK_ATTEMPT_MS
    )
    wallet = locked.get(wallet_id)
    if wallet is None:
        raise WalletNotFound("No wallet with this id belongs to you.")
    return wallet


def _expire_one(hold_id: UUID, wallet_id: UUID, now: datetime) -> bool:
    with transaction.atomic():
        wallet = wallets_lock_by_id(wallet_ids=[wallet_id], wait_ms=settings.DB_LOCK_TIMEOUT_MS).get(
            wallet_id
        )
        hold = hold_lock(hold_id=hold_id, wallet_id=wallet_id) if wallet is not None else None
        if hold is None or hold.status != Hold.Status.PENDING or hold.expires_at > now:
            return False  # a capture or void ended it first
        _end(hold, wallet, Hold.Status.EXPIRED, actor_id=None, now=timezone.now()).write()
    return True


def _end(
    hold: Hold, wallet: Wallet, status: str, *, actor_id: int | None, now: datetime
) -> PreparedHoldChange:
    """A pending hold voided or expired: its whole amount released from the wallet."""
    if hold.status != Hold.Status.PENDING:
        raise hold_not_pending(hold.status)
    hold.status = status
    hold.finished_at = now
    wallet.held -= hold.amount
    wallet.updated_at = now
    action = AuditEvent.Action.HOLD_VOIDED if status == Hold.Status.VOIDED else AuditEvent.Action.HOLD_EXPIRED
    audit = _audit(action, hold, actor_id, now)
    return PreparedHoldChange(hold=hold, created=False, wallet=wallet, audit=audit, action=status)


def _audit(action: str, hold: Hold, actor_id: int | None, now: datetime) -> AuditEvent:
    event = audit_event(
        action=action,
        actor_id=actor_id,
        actor_label="" if actor_id is not None else "hold expiry",
        target_type="hold",
        target_id=hold.id,
        amount=hold.amount,
        currency=hold.currency,
        details={"wallet_id": str(hold.wallet_id), "reference": hold.reference},
    )
    event.created_at = now
    return event
