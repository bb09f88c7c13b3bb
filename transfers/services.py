"""Money-moving services: deposits, withdrawals and wallet-to-wallet transfers.

Every movement is one Transfer with two LedgerEntry legs that sum to zero. A caller
describes it as a `Movement` and moves it in two explicit steps, inside one
transaction of its own:

1. `prepared = movement_prepare(movement)`: refuse what needs no lock (a bad amount,
   the same wallet twice, a reference already used on the caller's wallet: one indexed
   read, before any lock, so it never lengthens the lock window); lock the user
   wallets involved (wallets.locks: one `SELECT ... FOR NO KEY UPDATE ... ORDER BY id`,
   which also checks the caller owns their wallet); check currency, status, funds and
   the balance limit on the locked rows; build the transfer, its legs, the audit event
   and the new balances. Nothing is written yet.
2. `prepared.write(extra_rows=[...])`: one statement writes all of it, plus the rows the
   caller adds (the idempotency record, so it commits with the movement), while the
   locks are held (transfers.statements).

`movement_execute` does both in a transaction of its own, for callers with nothing to
add (commands, tasks, the shell); `deposit_create`, `withdrawal_create` and
`transfer_create` are its typed front doors.

System wallets (one per currency: the outside world) are never locked or updated:
their legs carry no running balance, so deposits into different wallets never wait
for each other. PostgreSQL re-checks every invariant at commit (transfers.0003):
legs sum to zero and match the transfer, running balances chain, stored balances match
the ledger, user balances stay >= 0, history is append-only. Refusals raise
`wallets.errors.WalletError` subclasses (transfers.errors).
"""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

from django.conf import settings
from django.db import transaction
from django.db.models import Model
from django.utils import timezone
from opentelemetry import trace

from audit.models import AuditEvent
from audit.services import audit_event
from foundation.metrics import registry as metrics
from transfers import statements
from transfers.errors import (
    BalanceLimitExceeded,
    CurrencyMismatch,
    DuplicateReference,
    InsufficientFunds,
    SameWallet,
    WalletNotActive,
)
from transfers.models import LedgerEntry, Transfer
from transfers.selectors import find_reference_use
from wallets.errors import WalletError, WalletNotFound
from wallets.locks import wallets_lock_for_movement
from wallets.models import Wallet
from wallets.services import system_wallet_id

# A user wallet's balance may not grow past this (minor units); keeps every sum
# far inside PostgreSQL's bigint whatever the currency.
MAX_WALLET_BALANCE = 10**18

_AUDIT_ACTIONS = {
    Transfer.Kind.DEPOSIT: AuditEvent.Action.DEPOSIT,
    Transfer.Kind.WITHDRAWAL: AuditEvent.Action.WITHDRAWAL,
    Transfer.Kind.TRANSFER: AuditEvent.Action.TRANSFER,
}
_ENTRY_TYPES = {  # (source leg, destination leg)
    Transfer.Kind.DEPOSIT: (LedgerEntry.Type.DEPOSIT, LedgerEntry.Type.DEPOSIT),
    Transfer.Kind.WITHDRAWAL: (LedgerEntry.Type.WITHDRAWAL, LedgerEntry.Type.WITHDRAWAL),
    Transfer.Kind.TRANSFER: (LedgerEntry.Type.TRANSFER_OUT, LedgerEntry.Type.TRANSFER_IN),
}


@dataclass(frozen=True)
class Movement:
    """One movement of money as its initiator asks for it.

    `own_wallet_id` is the initiator's wallet: the source of a transfer or withdrawal,
    the destination of a deposit. `other_wallet_id` is a transfer's destination (any
    user's wallet); deposits and withdrawals have the currency's system wallet on the
    other side. The audit trail, the trace span and the metrics all describe a movement
    from these fields.
    """

    kind: Transfer.Kind
    own_wallet_id: UUID
    other_wallet_id: UUID | None
    amount: int
    initiated_by_id: int
    reference: str | None = None
    description: str = ""

    @property
    def source_wallet_id(self) -> UUID | None:
        """The user wallet money leaves (None for a deposit: it leaves the system wallet)."""
        return None if self.kind == Transfer.Kind.DEPOSIT else self.own_wallet_id

    @property
    def destination_wallet_id(self) -> UUID | None:
        """The user wallet money reaches (None for a withdrawal: it reaches the system wallet)."""
        if self.kind == Transfer.Kind.TRANSFER:
            return self.other_wallet_id
        return self.own_wallet_id if self.kind == Transfer.Kind.DEPOSIT else None


@dataclass(frozen=True)
class PreparedMovement:
    """A movement checked under its row locks, with every row built and nothing written."""

    movement: Movement
    transfer: Transfer
    entries: tuple[LedgerEntry, LedgerEntry]
    # The user wallets whose balance changes, carrying their new balance.
    changed_wallets: tuple[Wallet, ...]
    audit: AuditEvent

    @property
    def own_wallet(self) -> Wallet:
        """The initiator's wallet, with its balance after the movement."""
        return next(w for w in self.changed_wallets if w.id == self.movement.own_wallet_id)

    def write(self, *, extra_rows: Sequence[Model] = ()) -> Transfer:
        """Write the transfer, its legs, the audit event, the new balances and `extra_rows`
        (unsaved instances of models transfers.statements knows) in one statement.

        Call once, in the transaction movement_prepare ran in: its locks make the
        balances right.
        """
        now = self.transfer.created_at
        statements.write(
            [self.transfer, *self.entries, self.audit, *extra_rows],
            balances=[(wallet.id, wallet.balance) for wallet in self.changed_wallets],
            updated_at=now,
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
        return self.transfer


def movement_prepare(movement: Movement) -> PreparedMovement:
    """Check the movement under row locks and build its rows; write nothing.

    Invariant: the source never goes below zero and no user wallet above
    MAX_WALLET_BALANCE, checked on the locked rows. Locks: the movement's user wallets,
    in one statement in id order (wallets.locks), until the caller's transaction ends.
    Transaction: the caller's; it must be open (the locks need it).
    Raises WalletError subclasses for refusals; a refusal found after a wallet was read
    carries that wallet's `currency`, for the audit trail and the metrics.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("movement_prepare() needs the caller's transaction (transaction.atomic())")
    _check_amount(movement.amount)
    if movement.kind == Transfer.Kind.TRANSFER and movement.own_wallet_id == movement.other_wallet_id:
        raise SameWallet("A wallet cannot send money to itself.")
    _check_reference_free(movement)
    source, destination = _lock_and_check(movement)
    return _build(movement, source, destination)


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
    return _own_wallet_movement(Transfer.Kind.DEPOSIT, wallet_id, owner_id, amount, reference, description)


def withdrawal_create(
    *, wallet_id: UUID, owner_id: int, amount: int, reference: str | None = None, description: str = ""
) -> Transfer:
    """Pay money out of the caller's wallet to its currency's system wallet.

    Invariant: the wallet's balance never goes below zero (checked on the locked row,
    and by the database). Locks: the user wallet only. Transaction: its own, or the
    caller's.
    """
    return _own_wallet_movement(Transfer.Kind.WITHDRAWAL, wallet_id, owner_id, amount, reference, description)


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

    Invariant: -amount on the source, +amount on the destination, the source never
    below zero. Locks: both wallets, in one statement, in primary-key order.
    Transaction: its own, or the caller's.
    """
    return movement_execute(
        Movement(
            kind=Transfer.Kind.TRANSFER,
            own_wallet_id=_uuid(source_wallet_id),
            other_wallet_id=_uuid(destination_wallet_id),
            amount=amount,
            initiated_by_id=initiated_by_id,
            reference=reference,
            description=description,
        )
    )


def duplicate_reference_error(original_transfer_id: UUID, currency: str = "") -> DuplicateReference:
    error = DuplicateReference(
        "This reference was already used on this wallet.", original_transfer_id=str(original_transfer_id)
    )
    error.currency = currency  # the wallet's, for the audit trail and metrics
    return error


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


def _system_wallet(currency: str) -> Wallet:
    # A stand-in carrying only what the movement needs; the row is never locked.
    return Wallet(id=system_wallet_id(currency=currency), kind=Wallet.Kind.SYSTEM, currency=currency)


def _lock_and_check(movement: Movement) -> tuple[Wallet, Wallet]:
    """Lock the movement's user wallets and check them; return (source, destination)."""
    started = time.perf_counter()
    try:
        locked = wallets_lock_for_movement(
            own_wallet_id=movement.own_wallet_id,
            owner_id=movement.initiated_by_id,
            other_wallet_id=movement.other_wallet_id,
            wait_ms=settings.DB_LOCK_ATTEMPT_MS,
        )
    finally:  # a lock timeout is the longest wait of all; observe it too
        metrics.observe_lock_wait(time.perf_counter() - started)
    own = locked.get(movement.own_wallet_id)
    if movement.kind == Transfer.Kind.TRANSFER:
        if own is None:
            raise WalletNotFound("No source wallet with this id belongs to you.")
        other = locked.get(movement.other_wallet_id)
        if other is None:
            raise WalletNotFound("No destination wallet with this id exists.")
        if own.currency != other.currency:
            error = CurrencyMismatch(
                f"The source wallet holds {own.currency} and the destination {other.currency}."
            )
            error.currency = own.currency
            raise error
        source, destination = own, other
    elif own is None:
        raise WalletNotFound("No wallet with this id belongs to you.")
    elif movement.kind == Transfer.Kind.DEPOSIT:
        source, destination = _system_wallet(own.currency), own
    else:
        source, destination = own, _system_wallet(own.currency)
    try:
        for wallet, role in ((source, "source"), (destination, "destination")):
            if not wallet.is_system and wallet.status != Wallet.Status.ACTIVE:
                raise WalletNotActive(
                    f"The {role} wallet is {wallet.status}.",
                    wallet_id=str(wallet.id),
                    wallet_status=wallet.status,
                )
        if not source.is_system and source.balance < movement.amount:
            raise InsufficientFunds(
                "The wallet's balance does not cover this amount.", wallet_id=str(source.id)
            )
        if not destination.is_system and destination.balance + movement.amount > MAX_WALLET_BALANCE:
            raise BalanceLimitExceeded("The destination wallet cannot hold this much.")
    except WalletError as error:
        error.currency = own.currency
        raise
    return source, destination


def _build(movement: Movement, source: Wallet, destination: Wallet) -> PreparedMovement:
    """The transfer, both legs and the audit event, and the new balances on the wallet objects."""
    amount = movement.amount
    if not source.is_system:
        source.balance -= amount
    if not destination.is_system:
        destination.balance += amount
    now = timezone.now()
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
        created_at=now,
    )
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
    audit = audit_event(
        action=_AUDIT_ACTIONS[movement.kind],
        actor_id=movement.initiated_by_id,
        target_type="transfer",
        target_id=transfer.id,
        amount=amount,
        currency=transfer.currency,
        details={
            "source_wallet_id": str(source.id),
            "destination_wallet_id": str(destination.id),
            "reference": movement.reference,
        },
    )
    audit.created_at = now  # one time for the whole movement (and one parameter: statements)
    changed = tuple(w for w in (source, destination) if not w.is_system)
    for wallet in changed:
        wallet.updated_at = now
    return PreparedMovement(
        movement=movement, transfer=transfer, entries=entries, changed_wallets=changed, audit=audit
    )
