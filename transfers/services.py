"""Money-moving services: deposits, withdrawals, transfers, refunds, hold captures and
operators' adjustments.

Every movement is one Transfer with two LedgerEntry legs that sum to zero. A caller
describes it as a `Movement` and moves it in two explicit steps, inside one
transaction of its own:

1. `prepared = movement_prepare(movement)`: refuse what needs no lock (a bad amount,
   the same wallet twice, a reference already used on the caller's wallet: one indexed
   read, before any lock, so it never lengthens the lock window); lock the user
   wallets involved (wallets.locks: one `SELECT ... FOR NO KEY UPDATE ... ORDER BY id`,
   which also checks the caller owns their wallet), then the hold a capture captures
   (transfers.locks); check currency, status, funds (what is available: balance less
   pending holds), operators' limits, a refund's remaining amount and the balance cap on
   the locked rows; build the transfer, its legs, the audit events, the hold's new state
   and the wallets' new balances. Nothing is written yet.
2. `prepared.write(extra_rows=[...])`: one statement writes all of it, plus the rows the
   caller adds (the idempotency record, so it commits with the movement), while the
   locks are held (transfers.statements).

`movement_execute` does both in a transaction of its own, for callers with nothing to
add (commands, tasks, the shell); `deposit_create`, `withdrawal_create`,
`transfer_create` and `adjustment_post` are its typed front doors. Holds themselves
(create, void, expire) are in transfers.holds; a capture is a movement with `hold_id`.

System and adjustment wallets (one of each per currency) are never locked or updated:
their legs carry no running balance, so deposits into different wallets never wait
for each other. PostgreSQL re-checks every invariant at commit (transfers.0003, 0007):
legs sum to zero and match the transfer, running balances chain, stored balances match
the ledger, a wallet's `held` is the sum of its pending holds, refunds never exceed
their transfer, user balances stay >= held >= 0, history is append-only. Refusals raise
`wallets.errors.WalletError` subclasses (transfers.errors).
"""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from uuid import UUID

from django.conf import settings
from django.db import transaction
from django.db.models import Model
from django.utils import timezone
from opentelemetry import trace

from audit.models import AuditEvent
from audit.services import audit_event
from foundation.clock import utc_day
from foundation.metrics import registry as metrics
from transfers import ledger_chain, statements
from transfers.errors import (
    BalanceLimitExceeded,
    CaptureExceedsHold,
    CurrencyMismatch,
    DuplicateReference,
    HoldNotPending,
    InsufficientFunds,
    LimitExceeded,
    RefundExceedsTransfer,
    SameWallet,
    TransferNotRefundable,
    WalletNotActive,
    WalletUnderReview,
)
from transfers.events import movement_events
from transfers.locks import hold_lock
from transfers.models import Hold, LedgerEntry, Transfer
from transfers.selectors import find_reference_use, refundable_transfer, refunded_amount
from transfers.statements import WalletUpdate
from wallets.errors import WalletError, WalletNotFound
from wallets.locks import wallets_lock_by_id, wallets_lock_for_movement
from wallets.models import Wallet
from wallets.services import adjustment_wallet_id, system_wallet_id

# A user wallet's balance may not grow past this (minor units); keeps every sum
# far inside PostgreSQL's bigint whatever the currency.
MAX_WALLET_BALANCE = 10**18

Kind = Transfer.Kind
_AUDIT_ACTIONS = {
    Kind.DEPOSIT: AuditEvent.Action.DEPOSIT,
    Kind.WITHDRAWAL: AuditEvent.Action.WITHDRAWAL,
    Kind.TRANSFER: AuditEvent.Action.TRANSFER,
    Kind.REFUND: AuditEvent.Action.REFUND,
    Kind.ADJUSTMENT: AuditEvent.Action.ADJUSTMENT,
}
_ENTRY_TYPES = {  # (source leg, destination leg)
    Kind.DEPOSIT: (LedgerEntry.Type.DEPOSIT, LedgerEntry.Type.DEPOSIT),
    Kind.WITHDRAWAL: (LedgerEntry.Type.WITHDRAWAL, LedgerEntry.Type.WITHDRAWAL),
    Kind.TRANSFER: (LedgerEntry.Type.TRANSFER_OUT, LedgerEntry.Type.TRANSFER_IN),
    Kind.REFUND: (LedgerEntry.Type.REFUND_OUT, LedgerEntry.Type.REFUND_IN),
    Kind.ADJUSTMENT: (LedgerEntry.Type.ADJUSTMENT, LedgerEntry.Type.ADJUSTMENT),
}
# Kinds whose money leaving a wallet counts toward its operators' limits. A refund only
# returns what the wallet received; an adjustment is the operators' own correction.
_LIMITED_KINDS = frozenset({Kind.TRANSFER, Kind.WITHDRAWAL})


@dataclass(frozen=True)
class Movement:
    """One movement of money as its initiator asks for it.

    `own_wallet_id` is the wallet the request is about: the source of a transfer,
    withdrawal, refund or capture, the destination of a deposit, the corrected wallet of
    an adjustment. `other_wallet_id` is the user wallet on the other side of a transfer
    (any user's) or a refund (the original transfer's source); deposits and withdrawals
    have the currency's system wallet on the other side, adjustments its adjustment
    wallet. The audit trail, the trace span and the metrics describe a movement from
    these fields.

    - `refund_of_id`: a refund's original transfer (kind REFUND).
    - `hold_id`: the hold a capture captures (kind TRANSFER or WITHDRAWAL); the hold's
      amount is released in the same write, so its reserved money pays for the capture.
    - `credit`: an adjustment adds to the wallet (True) or takes from it (False).
    - `by_operator`: an operator's movement on somebody's wallet (adjustments): the lock
      does not ask for ownership, and a frozen wallet or one under review may be
      corrected (a closed one may not).
    """

    kind: Transfer.Kind
    own_wallet_id: UUID
    other_wallet_id: UUID | None
    amount: int
    initiated_by_id: int
    reference: str | None = None
    description: str = ""
    refund_of_id: UUID | None = None
    hold_id: UUID | None = None
    credit: bool = False
    by_operator: bool = False

    @property
    def source_wallet_id(self) -> UUID | None:
        """The user wallet money leaves (None: it leaves the system or adjustment wallet)."""
        if self.kind == Kind.DEPOSIT or (self.kind == Kind.ADJUSTMENT and self.credit):
            return None
        return self.own_wallet_id

    @property
    def destination_wallet_id(self) -> UUID | None:
        """The user wallet money reaches (None: it reaches the system or adjustment wallet)."""
        if self.kind in (Kind.TRANSFER, Kind.REFUND):
            return self.other_wallet_id
        if self.kind == Kind.DEPOSIT or (self.kind == Kind.ADJUSTMENT and self.credit):
            return self.own_wallet_id
        return None


@dataclass(frozen=True)
class PreparedMovement:
    """A movement checked under its row locks, with every row built and nothing written."""

    movement: Movement
    transfer: Transfer
    entries: tuple[LedgerEntry, LedgerEntry]
    # The user wallets that change, carrying their new balance (and held, outgoing total).
    changed_wallets: tuple[Wallet, ...]
    wallet_updates: tuple[WalletUpdate, ...]
    audits: tuple[AuditEvent, ...]
    # A capture's hold, in its new (captured) state.
    hold: Hold | None = None

    @property
    def own_wallet(self) -> Wallet:
        """The initiator's wallet, with its balance after the movement."""
        return next(w for w in self.changed_wallets if w.id == self.movement.own_wallet_id)

    @property
    def transfer_id(self) -> UUID:
        return self.transfer.id

    @property
    def created_at(self) -> datetime:
        return self.transfer.created_at

    def write(self, *, extra_rows: Sequence[Model] = (), body: bytes | None = None) -> Transfer:
        """Write the transfer, its legs, the audit events, the outbox's events
        (transfers.events), the hold's change, the wallets' new state and `extra_rows`
        (unsaved instances of models transfers.statements knows) in one statement.
        `body`: the answer already rendered for the request, which the events reuse.

        Call once, in the transaction movement_prepare ran in: its locks make the
        balances right.
        """
        events = movement_events(
            transfer=self.transfer,
            changed_wallets=self.changed_wallets,
            own_wallet=self.own_wallet,
            hold=self.hold,
            body=body,
        )
        statements.write(
            [self.transfer, *self.entries, *self.audits, *events, *extra_rows],
            wallets=self.wallet_updates,
            updates=[self.hold] if self.hold is not None else [],
            updated_at=self.transfer.created_at,
        )
        trace.get_current_span().set_attribute("money.currency", self.transfer.currency)
        transaction.on_commit(
            functools.partial(
                metrics.record_movement,
                kind=self.transfer.kind,
                currency=self.transfer.currency,
                outcome="completed",
                amount=self.transfer.amount,
            )
        )
        if self.hold is not None:
            transaction.on_commit(
                functools.partial(
                    metrics.record_hold, action="captured", currency=self.hold.currency, outcome="completed"
                )
            )
        return self.transfer


def movement_prepare(movement: Movement) -> PreparedMovement:
    """Check the movement under row locks and build its rows; write nothing.

    Invariant: no user wallet's balance goes below its held money (nor below zero) or
    above MAX_WALLET_BALANCE, no limit is exceeded, a transfer's refunds never add up to
    more than it moved, a hold is captured once: all checked on the locked rows.
    Locks: the movement's user wallets, in one statement in id order (wallets.locks),
    then a capture's hold row, until the caller's transaction ends.
    Transaction: the caller's; it must be open (the locks need it).
    Raises WalletError subclasses for refusals; a refusal found after a wallet was read
    carries that wallet's `currency`, for the audit trail and the metrics.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("movement_prepare() needs the caller's transaction (transaction.atomic())")
    _check_amount(movement.amount)
    if movement.other_wallet_id is not None and movement.own_wallet_id == movement.other_wallet_id:
        raise SameWallet("A wallet cannot send money to itself.")
    _check_reference_free(movement)
    own, other = _lock(movement)
    now = timezone.now()
    try:
        hold = _lock_hold(movement, own, now) if movement.hold_id is not None else None
        source, destination = _check(movement, own, other, hold, now)
    except WalletError as error:
        error.currency = own.currency
        raise
    return _build(movement, source, destination, hold, now)


def movement_execute(movement: Movement) -> Transfer:
    """Prepare and write a movement in a transaction of its own (or the caller's, if open)."""
    with transaction.atomic(savepoint=False):
        return movement_prepare(movement).write()


def deposit_create(
    *, wallet_id: UUID, owner_id: int, amount: int, reference: str | None = None, description: str = ""
) -> Transfer:
    """Fund the caller's wallet from its currency's system wallet.

    Invariant: +amount on the wallet, -amount on the system wallet, one transfer.
    Locks: the user wallet only. Transaction: its own, or the caller's.
    """
    return _own_wallet_movement(Kind.DEPOSIT, wallet_id, owner_id, amount, reference, description)


def withdrawal_create(
    *, wallet_id: UUID, owner_id: int, amount: int, reference: str | None = None, description: str = ""
) -> Transfer:
    """Pay money out of the caller's wallet to its currency's system wallet.

    Invariant: the wallet's available money (balance less holds) covers the amount
    (checked on the locked row, and by the database). Locks: the user wallet only.
    Transaction: its own, or the caller's.
    """
    return _own_wallet_movement(Kind.WITHDRAWAL, wallet_id, owner_id, amount, reference, description)


def transfer_create(
    *,
    source_wallet_id: UUID,
    destination_wallet_id: UUID,
    initiated_by_id: int,
    amount: int,
    reference: str | None = None,
    description: str = "",
) -> Transfer:
    """Move money from the caller's wallet to any user wallet of the same currency.

    Invariant: -amount on the source, +amount on the destination, the source's
    available money covers it. Locks: both wallets, in one statement, in primary-key
    order. Transaction: its own, or the caller's.
    """
    return movement_execute(
        Movement(
            kind=Kind.TRANSFER,
            own_wallet_id=_uuid(source_wallet_id),
            other_wallet_id=_uuid(destination_wallet_id),
            amount=amount,
            initiated_by_id=initiated_by_id,
            reference=reference,
            description=description,
        )
    )


def adjustment_post(*, wallet_id: UUID, amount: int, operator_id: int, reason: str) -> Transfer:
    """Post an operator's correction: +amount (a credit) or -amount (a debit, `amount` < 0)
    on a user wallet, against its currency's adjustment wallet.

    Invariant: a debit never takes the wallet below its held money; a closed wallet is
    not corrected. Locks: the user wallet. Transaction: the caller's if open (the
    corrections app approves and posts in one), else its own. Who may post is the
    caller's business (corrections.services checks the approval).
    """
    return movement_execute(
        Movement(
            kind=Kind.ADJUSTMENT,
            own_wallet_id=_uuid(wallet_id),
            other_wallet_id=None,
            amount=abs(amount) if type(amount) is int else amount,
            initiated_by_id=operator_id,
            description=reason,
            credit=type(amount) is int and amount > 0,
            by_operator=True,
        )
    )


def refund_create(
    *,
    transfer_id: UUID,
    owner_id: int,
    amount: int | None = None,
    reason: str = "",
    reference: str | None = None,
) -> Transfer:
    """Refund a transfer the owner received (refund_movement says how); return the refund.
    Transaction: its own, or the caller's."""
    return movement_execute(
        refund_movement(
            transfer_id=transfer_id, user_id=owner_id, amount=amount, reason=reason, reference=reference
        )
    )


def refund_movement(
    *,
    transfer_id: UUID,
    user_id: int,
    amount: int | None = None,
    reason: str = "",
    reference: str | None = None,
) -> Movement:
    """The refund of a transfer the caller received: `amount` (default: all that is left
    to refund) from the transfer's destination back to its source.

    TransferNotFound unless the caller owns the transfer's destination;
    TransferNotRefundable unless it is a transfer between wallets. Whether enough is left
    to refund is decided under the refunder's wallet lock (movement_prepare), which every
    refund of this transfer takes, so concurrent refunds never add up to more than it.
    """
    original = refundable_transfer(transfer_id=_uuid(transfer_id), user_id=user_id)
    if original.kind != Kind.TRANSFER:
        raise TransferNotRefundable(f"A {original.kind} cannot be refunded; only transfers between wallets.")
    if amount is None:
        # All that is left as of now; if nothing is, the full amount, which the locked
        # check refuses with refund_exceeds_transfer (and the answer is stored).
        amount = (original.amount - original.refunded_amount) or original.amount
    return Movement(
        kind=Kind.REFUND,
        own_wallet_id=original.destination_wallet_id,
        other_wallet_id=original.source_wallet_id,
        amount=amount,
        initiated_by_id=user_id,
        reference=reference,
        description=reason,
        refund_of_id=original.id,
    )


def duplicate_reference_error(original_transfer_id: UUID, currency: str = "") -> DuplicateReference:
    error = DuplicateReference(
        "This reference was already used on this wallet.", original_transfer_id=str(original_transfer_id)
    )
    error.currency = currency  # the wallet's, for the audit trail and metrics
    return error


def wallet_check_status(wallet: Wallet, role: str, *, by_operator: bool = False) -> None:
    """Refuse a movement touching a wallet that is not active (for an operator's
    correction: that is closed). `role` names it in the answer (source, destination, ...)."""
    if wallet.status == Wallet.Status.ACTIVE:
        return
    if by_operator and wallet.status != Wallet.Status.CLOSED:
        return
    if wallet.status == Wallet.Status.UNDER_REVIEW:
        raise WalletUnderReview(
            f"The {role} wallet is under review: an operator must check it before it moves money.",
            wallet_id=str(wallet.id),
        )
    raise WalletNotActive(
        f"The {role} wallet is {wallet.status}.", wallet_id=str(wallet.id), wallet_status=wallet.status
    )


def wallet_check_limits(wallet: Wallet, amount: int, day: date) -> None:
    """Refuse `amount` leaving the wallet if it breaks a limit: the single-movement maximum,
    or the UTC day's total (what already left on `day` plus this)."""
    remaining = wallet.remaining_on(day)
    if wallet.max_outgoing_amount is not None and amount > wallet.max_outgoing_amount:
        raise LimitExceeded(
            "The amount is more than this wallet may send in one movement.",
            limit="per_movement",
            max=wallet.max_outgoing_amount,
            # What one movement may take now: nothing once the day is spent (0, not "no limit").
            remaining=wallet.max_outgoing_amount
            if remaining is None
            else min(wallet.max_outgoing_amount, remaining),
        )
    if remaining is not None and amount > remaining:
        raise LimitExceeded(
            "The amount is more than this wallet may still send today (UTC).",
            limit="per_day",
            max=wallet.max_outgoing_per_day,
            remaining=remaining,
        )


def insufficient_funds(wallet: Wallet) -> InsufficientFunds:
    return InsufficientFunds(
        "The wallet's available balance does not cover this amount.",
        wallet_id=str(wallet.id),
        available=wallet.available,
    )


# --- the steps ---------------------------------------------------------------------


def _own_wallet_movement(
    kind: Transfer.Kind, wallet_id: UUID, owner_id: int, amount: int, reference: str | None, description: str
) -> Transfer:
    return movement_execute(
        Movement(
            kind=kind,
            own_wallet_id=_uuid(wallet_id),
            other_wallet_id=None,
            amount=amount,
            initiated_by_id=owner_id,
            reference=reference,
            description=description,
        )
    )


def _uuid(value: UUID | str) -> UUID:
    # Callers outside the API (shell, tasks) may pass ids as strings.
    return value if isinstance(value, UUID) else UUID(str(value))


def _check_amount(amount: int) -> None:
    # The API validates types; this guards every other caller (shell, tasks).
    if type(amount) is not int or not 0 < amount <= settings.MAX_MOVEMENT_AMOUNT:
        raise ValueError(f"amount must be an int in 1..{settings.MAX_MOVEMENT_AMOUNT}, got {amount!r}")


def _check_reference_free(movement: Movement) -> None:
    """Refuse a reference already used on the caller's wallet; runs before any lock.

    Filtered on the owner too, so it says nothing about somebody else's wallet (the
    lock that follows answers "not found" for those). A race past this check is caught
    by the database's unique constraint at the write (transfers.idempotency).
    """
    if movement.reference is None:
        return
    original = find_reference_use(
        wallet_id=movement.own_wallet_id, reference=movement.reference, owner_id=movement.initiated_by_id
    )
    if original is not None:
        raise duplicate_reference_error(*original)


def _house_wallet(kind: Transfer.Kind, currency: str) -> Wallet:
    # A stand-in carrying only what the movement needs; the row is never locked.
    if kind == Kind.ADJUSTMENT:
        return Wallet(
            id=adjustment_wallet_id(currency=currency), kind=Wallet.Kind.ADJUSTMENT, currency=currency
        )
    return Wallet(id=system_wallet_id(currency=currency), kind=Wallet.Kind.SYSTEM, currency=currency)


def _lock(movement: Movement) -> tuple[Wallet, Wallet | None]:
    """Lock the movement's user wallets; return (own, other user wallet or None)."""
    started = time.perf_counter()
    try:
        if movement.by_operator:
            locked = wallets_lock_by_id(
                wallet_ids=[movement.own_wallet_id], wait_ms=settings.DB_LOCK_ATTEMPT_MS
            )
        else:
            locked = wallets_lock_for_movement(
                own_wallet_id=movement.own_wallet_id,
                owner_id=movement.initiated_by_id,
                other_wallet_id=movement.other_wallet_id,
                wait_ms=settings.DB_LOCK_ATTEMPT_MS,
            )
    finally:  # a lock timeout is the longest wait of all; observe it too
        metrics.observe_lock_wait(time.perf_counter() - started)
    own = locked.get(movement.own_wallet_id)
    if own is None:
        if movement.kind in (Kind.TRANSFER, Kind.REFUND):
            raise WalletNotFound("No source wallet with this id belongs to you.")
        raise WalletNotFound(
            "No wallet with this id belongs to you." if not movement.by_operator else "No such wallet."
        )
    if movement.other_wallet_id is None:
        return own, None
    other = locked.get(movement.other_wallet_id)
    if other is None:
        raise WalletNotFound("No destination wallet with this id exists.")
    return own, other


def _lock_hold(movement: Movement, own: Wallet, now: datetime) -> Hold:
    """Lock the captured hold, after its wallet (the fixed order: wallets, then holds;
    transfers.locks), and check it is still pending and covers the amount."""
    hold = hold_lock(hold_id=movement.hold_id, wallet_id=own.id)
    if hold is None:  # the caller read it before locking; holds are never deleted
        raise RuntimeError(f"hold {movement.hold_id} vanished from wallet {own.id}")
    if hold.status != Hold.Status.PENDING:
        raise hold_not_pending(hold.status)
    if hold.expires_at <= now:
        # Lapsed: the expiry task will release it; it can no longer be captured.
        raise hold_not_pending(Hold.Status.EXPIRED)
    if movement.amount > hold.amount:
        raise CaptureExceedsHold("A capture takes at most the held amount.", hold_amount=hold.amount)
    return hold


def hold_not_pending(status: str) -> HoldNotPending:
    return HoldNotPending(f"The hold is {status}; only a pending hold can change.", hold_status=status)


def _check(
    movement: Movement, own: Wallet, other: Wallet | None, hold: Hold | None, now: datetime
) -> tuple[Wallet, Wallet]:
    """Check the locked wallets for the movement; return (source, destination)."""
    kind = movement.kind
    if other is not None and own.currency != other.currency:
        raise CurrencyMismatch(
            f"The source wallet holds {own.currency} and the destination {other.currency}."
        )
    if kind in (Kind.TRANSFER, Kind.REFUND):
        source, destination = own, other
    elif kind == Kind.DEPOSIT or (kind == Kind.ADJUSTMENT and movement.credit):
        source, destination = _house_wallet(kind, own.currency), own
    else:
        source, destination = own, _house_wallet(kind, own.currency)
    for wallet, role in ((source, "source"), (destination, "destination")):
        if not wallet.is_system:
            wallet_check_status(wallet, role, by_operator=movement.by_operator)
    if movement.refund_of_id is not None:
        _check_refundable(movement)
    amount = movement.amount
    if not source.is_system:
        released = hold.amount if hold is not None else 0
        if source.available + released < amount:
            raise insufficient_funds(source)
        if kind in _LIMITED_KINDS:
            wallet_check_limits(source, amount, utc_day(now))
    if not destination.is_system and destination.balance + amount > MAX_WALLET_BALANCE:
        raise BalanceLimitExceeded("The destination wallet cannot hold this much.")
    return source, destination


def _check_refundable(movement: Movement) -> None:
    """A refund's transfer keeps enough unrefunded; read under the refunder's wallet lock,
    which every refund of the transfer takes (it is the transfer's destination)."""
    original_amount, refunded = refunded_amount(transfer_id=movement.refund_of_id)
    refundable = original_amount - refunded
    if movement.amount > refundable:
        raise RefundExceedsTransfer(
            f"Only {refundable} of this transfer is left to refund.", refundable=refundable
        )


def _build(
    movement: Movement, source: Wallet, destination: Wallet, hold: Hold | None, now: datetime
) -> PreparedMovement:
    """The transfer, both legs, the audit events, a captured hold's new state, and the
    wallets' new state on the wallet objects."""
    amount = movement.amount
    transfer = Transfer(
        id=uuid.uuid4(),
        kind=movement.kind,
        source_wallet=source,
        destination_wallet=destination,
        amount=amount,
        currency=source.currency,
        reference=movement.reference,
        reference_wallet_id=movement.own_wallet_id,
        description=movement.description,
        initiated_by_id=movement.initiated_by_id,
        refund_of_id=movement.refund_of_id,
        created_at=now,
    )
    transfer.refunded_amount = 0  # shown by the API; a new transfer has no refunds
    held = outgoing = None
    if not source.is_system:
        source.balance -= amount
        if hold is not None:
            source.held -= hold.amount
            held = source.held
        if movement.kind in _LIMITED_KINDS:
            day = utc_day(now)
            source.outgoing_today = source.outgoing_on(day) + amount
            source.outgoing_day = day
            outgoing = (day, source.outgoing_today)
    if not destination.is_system:
        destination.balance += amount
    out_type, in_type = _ENTRY_TYPES[movement.kind]
    entries = (
        LedgerEntry(
            transfer=transfer,
            wallet_id=source.id,
            type=out_type,
            amount=-amount,
            balance_after=None if source.is_system else source.balance,
            created_at=now,
        ),
        LedgerEntry(
            transfer=transfer,
            wallet_id=destination.id,
            type=in_type,
            amount=amount,
            balance_after=None if destination.is_system else destination.balance,
            created_at=now,
        ),
    )
    # Each user leg extends its wallet's hash chain from the head read under the lock.
    updates = []
    if not source.is_system:
        head = ledger_chain.link(source, entries[0])
        updates.append(
            WalletUpdate(source.id, balance=source.balance, held=held, outgoing=outgoing, head=head)
        )
    if not destination.is_system:
        head = ledger_chain.link(destination, entries[1])
        updates.append(WalletUpdate(destination.id, balance=destination.balance, head=head))
    details = {
        "source_wallet_id": str(source.id),
        "destination_wallet_id": str(destination.id),
        "reference": movement.reference,
    }
    if movement.refund_of_id is not None:
        details["refund_of"] = str(movement.refund_of_id)
    if hold is not None:
        details["hold_id"] = str(hold.id)
    audits = [
        audit_event(
            action=_AUDIT_ACTIONS[movement.kind],
            actor_id=movement.initiated_by_id,
            target_type="transfer",
            target_id=transfer.id,
            amount=amount,
            currency=transfer.currency,
            details=details,
        )
    ]
    if hold is not None:
        hold.status = Hold.Status.CAPTURED
        hold.captured_amount = amount
        hold.capture_transfer_id = transfer.id
        hold.finished_at = now
        audits.append(
            audit_event(
                action=AuditEvent.Action.HOLD_CAPTURED,
                actor_id=movement.initiated_by_id,
                target_type="hold",
                target_id=hold.id,
                amount=amount,
                currency=hold.currency,
                details={
                    "transfer_id": str(transfer.id),
                    "held": str(hold.amount),
                    "released": str(hold.amount - amount),
                },
            )
        )
    for event in audits:
        event.created_at = now  # one time for the whole movement (and one parameter: statements)
    changed = tuple(w for w in (source, destination) if not w.is_system)
    for wallet in changed:
        wallet.updated_at = now
    return PreparedMovement(
        movement=movement,
        transfer=transfer,
        entries=entries,
        changed_wallets=changed,
        wallet_updates=tuple(updates),
        audits=tuple(audits),
        hold=hold,
    )
