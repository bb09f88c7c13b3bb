"""Money-moving services: deposits, withdrawals and wallet-to-wallet transfers.

Every movement is one Transfer with two LedgerEntry legs that sum to zero.
The shape of each service:

1. Validate what needs no database (amount, same wallet) and, only when the
   request carries a reference, refuse one already used on the caller's wallet
   (one indexed read, before any lock, so it never lengthens the lock window).
2. In one transaction: resolve and lock the *user* wallets involved with one
   `SELECT ... FOR NO KEY UPDATE ... ORDER BY id` (a fixed order, so two
   transfers A->B and B->A cannot deadlock). The caller's wallet only matches
   if the caller owns it, so nobody can lock somebody else's source wallet.
   Check ownership, currency, status, funds and limits on the locked
   rows, then insert the transfer, both legs and the audit event and write the
   new balances in one statement (transfers/sql.py).
   System wallets are never locked or updated: their legs carry no running
   balance, so deposits into different wallets never wait for each other.
3. PostgreSQL re-checks the invariants at commit (migration transfers.0002):
   legs sum to zero and match the transfer, running balances chain, stored
   balances match the ledger, user balances stay >= 0, history is append-only.

Services own their transaction (`atomic(savepoint=False)` joins a caller's
transaction, which is how the idempotency record commits together with the
movement) and raise `wallets.errors.WalletError` subclasses on refusal.
"""

from __future__ import annotations

import functools
import time
import uuid
from dataclasses import dataclass
from uuid import UUID

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Case, Q, QuerySet, Value, When
from django.utils import timezone
from opentelemetry import trace

from audit.models import AuditEvent
from audit.services import audit_event
from foundation.metrics import registry as metrics
from transfers.models import LedgerEntry, Transfer
from transfers.sql import write_movement
from wallets.errors import (
    BalanceLimitExceeded,
    CurrencyMismatch,
    DuplicateReference,
    InsufficientFunds,
    SameWallet,
    WalletError,
    WalletNotActive,
    WalletNotFound,
)
from wallets.models import Wallet
from wallets.services import system_wallet_id

_AUDIT_ACTIONS = {
    Transfer.Kind.DEPOSIT: AuditEvent.Action.DEPOSIT,
    Transfer.Kind.WITHDRAWAL: AuditEvent.Action.WITHDRAWAL,
    Transfer.Kind.TRANSFER: AuditEvent.Action.TRANSFER,
}

# A user wallet's balance may not grow past this (minor units); keeps every sum
# far inside PostgreSQL's bigint whatever the currency.
MAX_WALLET_BALANCE = 10**18


@dataclass(frozen=True)
class _Movement:
    kind: str
    # The caller's own wallet: the source of a transfer or withdrawal, the destination of a deposit.
    own_wallet_id: UUID
    # A transfer's destination (any user's wallet); None for deposits and withdrawals,
    # whose other side is the currency's system wallet.
    other_wallet_id: UUID | None
    amount: int
    reference: str | None
    description: str
    initiated_by_id: int


def _check_amount(amount: int) -> None:
    # The API validates types; this guards every other caller (shell, tasks).
    if type(amount) is not int or not 0 < amount <= settings.MAX_MOVEMENT_AMOUNT:
        raise ValueError(f"amount must be an int in 1..{settings.MAX_MOVEMENT_AMOUNT}, got {amount!r}")


def _uuid(value: UUID | str) -> UUID:
    # Callers outside the API (shell, tasks) may pass ids as strings.
    return value if isinstance(value, UUID) else UUID(str(value))


def _check_active(wallet: Wallet, role: str) -> None:
    if wallet.status != Wallet.Status.ACTIVE:
        raise WalletNotActive(
            f"The {role} wallet is {wallet.status}.", wallet_id=str(wallet.id), wallet_status=wallet.status
        )


def _check_reference_free(*, wallet_id: UUID, owner_id: int, reference: str | None) -> None:
    """Refuse a reference already used on the caller's wallet; runs before any lock.

    Filtered on the owner too, so it says nothing about somebody else's wallet (the
    lock that follows answers "not found" for those). A race past this check is
    caught by the database's unique constraint at the write.
    """
    if reference is None:
        return
    original = find_reference_use(wallet_id=wallet_id, reference=reference, owner_id=owner_id)
    if original is not None:
        raise duplicate_reference_error(*original)


def duplicate_reference_error(original_transfer_id: UUID, currency: str = "") -> DuplicateReference:
    error = DuplicateReference(
        "This reference was already used on this wallet.",
        original_transfer_id=str(original_transfer_id),
    )
    error.currency = currency  # the wallet's, for the audit trail and metrics
    return error


def find_reference_use(
    *, wallet_id: UUID, reference: str, owner_id: int | None = None
) -> tuple[UUID, str] | None:
    """(id, currency) of the transfer that used `reference` on the wallet.

    With `owner_id`, only if that user owns the wallet.
    """
    found = Transfer.objects.filter(reference_wallet_id=wallet_id, reference=reference)
    if owner_id is not None:
        found = found.filter(reference_wallet__owner_id=owner_id)
    return found.values_list("id", "currency").first()


def _system_wallet(currency: str) -> Wallet:
    # A stand-in carrying only what the movement needs; the row is never locked.
    return Wallet(id=system_wallet_id(currency=currency), kind=Wallet.Kind.SYSTEM, currency=currency)


def _execute(m: _Movement) -> Transfer:
    """Lock, check, write. Runs inside the caller's transaction if there is one."""
    with transaction.atomic(savepoint=False):
        _check_reference_free(wallet_id=m.own_wallet_id, owner_id=m.initiated_by_id, reference=m.reference)
        source, destination = _lock(m)
        return _write(m, source, destination)


# In the model's field order, the order Model.from_db() expects values in.
_LOCKED_FIELDS = tuple(
    f.attname
    for f in Wallet._meta.concrete_fields
    if f.attname in {"id", "kind", "currency", "balance", "status", "owner_id", "name", "created_at"}
)
# Stand-ins that mark where each value goes in the compiled lock query's parameters.
_OWN, _OWNER, _OTHER = uuid.UUID(int=1), -424242, uuid.UUID(int=2)


def _locking(own: UUID, owner: int, other: UUID | None) -> QuerySet[Wallet]:
    """The caller's wallet if the caller owns it, and the other user wallet; locked, in id order."""
    wanted = Q(pk=own, owner_id=owner)
    if other is not None:
        wanted |= Q(pk=other)
    return Wallet.objects.select_for_update(no_key=True).filter(wanted, kind=Wallet.Kind.USER).order_by("pk")


@functools.cache
def _lock_query(with_other: bool, alias: str) -> tuple[str, tuple]:
    """The ORM's SQL for the lock, compiled once per process; its parameters as stand-ins."""
    query = _locking(_OWN, _OWNER, _OTHER if with_other else None).using(alias).values_list(*_LOCKED_FIELDS)
    return query.query.get_compiler(alias).as_sql()


def _lock_rows(m: _Movement) -> list[Wallet]:
    """SELECT ... FOR NO KEY UPDATE of the movement's user wallets, in id order.

    On PostgreSQL the statement is the ORM's own, compiled once per process (see
    _lock_query): the money path runs it on every request, and compiling it each time
    cost more Python than the rest of the lock. psycopg returns these columns as the
    model's Python types, so the rows become instances without converters. Elsewhere
    (the embedded SQLite default) the ORM runs it as usual.
    """
    if connection.vendor != "postgresql":
        return list(_locking(m.own_wallet_id, m.initiated_by_id, m.other_wallet_id).only(*_LOCKED_FIELDS))
    sql, template = _lock_query(m.other_wallet_id is not None, connection.alias)
    values = {_OWN: m.own_wallet_id, _OWNER: m.initiated_by_id, _OTHER: m.other_wallet_id}
    params = [values.get(p, p) for p in template]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return [Wallet.from_db(connection.alias, _LOCKED_FIELDS, row) for row in rows]


def _lock(m: _Movement) -> tuple[Wallet, Wallet]:
    """Lock the movement's user wallets and check them; return (source, destination).

    One `SELECT ... FOR NO KEY UPDATE ... ORDER BY id` both resolves and locks: the
    caller's wallet only matches if the caller owns it, so a request naming somebody
    else's wallet as its source locks nothing of theirs. Every check runs on the
    locked rows, so nothing can change between the check and the write.
    """
    started = time.perf_counter()
    try:
        locked = {w.id: w for w in _lock_rows(m)}
    finally:  # a lock timeout is the longest wait of all; observe it too
        metrics.observe_lock_wait(time.perf_counter() - started)
    own = locked.get(m.own_wallet_id)
    if m.kind == Transfer.Kind.TRANSFER:
        if own is None:
            raise WalletNotFound("No source wallet with this id belongs to you.")
        other = locked.get(m.other_wallet_id)
        if other is None:
            raise WalletNotFound("No destination wallet with this id exists.")
        if own.currency != other.currency:
            error = CurrencyMismatch(
                f"The source wallet holds {own.currency} and the destination {other.currency}."
            )
            error.currency = own.currency
            raise error
        source, destination = own, other
    else:
        if own is None:
            raise WalletNotFound("No wallet with this id belongs to you.")
        if m.kind == Transfer.Kind.DEPOSIT:
            source, destination = _system_wallet(own.currency), own
        else:
            source, destination = own, _system_wallet(own.currency)
    try:
        for wallet, role in ((source, "source"), (destination, "destination")):
            if not wallet.is_system:
                _check_active(wallet, role)
        if not source.is_system and source.balance < m.amount:
            raise InsufficientFunds(
                "The wallet's balance does not cover this amount.",
                wallet_id=str(source.id),
            )
        if not destination.is_system and destination.balance + m.amount > MAX_WALLET_BALANCE:
            raise BalanceLimitExceeded("The destination wallet cannot hold this much.")
    except WalletError as error:
        error.currency = own.currency
        raise
    return source, destination


def _write(m: _Movement, source: Wallet, destination: Wallet) -> Transfer:
    """Insert the transfer, both legs and the audit event; store the new balances."""
    if not source.is_system:
        source.balance -= m.amount
    if not destination.is_system:
        destination.balance += m.amount
    now = timezone.now()
    transfer = Transfer(
        id=uuid.uuid4(),
        kind=m.kind,
        source_wallet=source,
        destination_wallet=destination,
        amount=m.amount,
        currency=source.currency,
        reference=m.reference,
        reference_wallet_id=m.own_wallet_id,
        description=m.description,
        initiated_by_id=m.initiated_by_id,
        created_at=now,
    )
    if m.kind == Transfer.Kind.TRANSFER:
        out_type, in_type = LedgerEntry.Type.TRANSFER_OUT, LedgerEntry.Type.TRANSFER_IN
    elif m.kind == Transfer.Kind.DEPOSIT:
        out_type = in_type = LedgerEntry.Type.DEPOSIT
    else:
        out_type = in_type = LedgerEntry.Type.WITHDRAWAL
    entries = [
        LedgerEntry(
            transfer=transfer,
            wallet_id=source.id,
            type=out_type,
            amount=-m.amount,
            balance_after=None if source.is_system else source.balance,
            created_at=now,
        ),
        LedgerEntry(
            transfer=transfer,
            wallet_id=destination.id,
            type=in_type,
            amount=m.amount,
            balance_after=None if destination.is_system else destination.balance,
            created_at=now,
        ),
    ]
    changed = [w for w in (source, destination) if not w.is_system]
    for w in changed:
        w.updated_at = now
    audit = audit_event(
        action=_AUDIT_ACTIONS[m.kind],
        actor_id=m.initiated_by_id,
        target_type="transfer",
        target_id=transfer.id,
        amount=m.amount,
        currency=transfer.currency,
        details={
            "source_wallet_id": str(source.id),
            "destination_wallet_id": str(destination.id),
            "reference": m.reference,
        },
    )
    if connection.vendor == "postgresql":
        # One round trip while the locks are held (transfers/sql.py).
        write_movement(transfer=transfer, entries=entries, wallets=changed, audit=audit, now=now)
    else:
        transfer.save(force_insert=True)
        LedgerEntry.objects.bulk_create(entries)
        Wallet.objects.filter(pk__in=[w.id for w in changed]).update(
            balance=Case(*[When(pk=w.id, then=Value(w.balance)) for w in changed]),
            updated_at=now,
        )
        audit.save(force_insert=True)
    trace.get_current_span().set_attribute("money.currency", transfer.currency)
    transaction.on_commit(
        functools.partial(
            metrics.record_movement,
            kind=m.kind,
            currency=transfer.currency,
            outcome="completed",
            amount=m.amount,
        )
    )
    return transfer


def deposit_create(
    *,
    wallet_id: UUID,
    owner_id: int,
    amount: int,
    reference: str | None = None,
    description: str = "",
) -> Transfer:
    """Fund the caller's wallet from its currency's system wallet.

    Invariant: +amount on the wallet, -amount on the system wallet, one transfer.
    Locks: the user wallet only. Transaction: its own, or the caller's.
    Returns the transfer; `transfer.destination_wallet` holds the new balance.
    """
    _check_amount(amount)
    return _execute(
        _Movement(
            kind=Transfer.Kind.DEPOSIT,
            own_wallet_id=_uuid(wallet_id),
            other_wallet_id=None,
            amount=amount,
            reference=reference,
            description=description,
            initiated_by_id=owner_id,
        )
    )


def withdrawal_create(
    *,
    wallet_id: UUID,
    owner_id: int,
    amount: int,
    reference: str | None = None,
    description: str = "",
) -> Transfer:
    """Pay money out of the caller's wallet to its currency's system wallet.

    Invariant: the wallet's balance never goes below zero (checked on the locked
    row, and by the database). Locks: the user wallet only. Transaction: its own,
    or the caller's. `transfer.source_wallet` holds the new balance.
    """
    _check_amount(amount)
    return _execute(
        _Movement(
            kind=Transfer.Kind.WITHDRAWAL,
            own_wallet_id=_uuid(wallet_id),
            other_wallet_id=None,
            amount=amount,
            reference=reference,
            description=description,
            initiated_by_id=owner_id,
        )
    )


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

    Invariant: -amount on the source, +amount on the destination, the source
    never below zero. Locks: both wallets, in one statement, in primary-key
    order. Transaction: its own, or the caller's.
    """
    _check_amount(amount)
    source_wallet_id, destination_wallet_id = _uuid(source_wallet_id), _uuid(destination_wallet_id)
    if source_wallet_id == destination_wallet_id:
        raise SameWallet("A wallet cannot send money to itself.")
    return _execute(
        _Movement(
            kind=Transfer.Kind.TRANSFER,
            own_wallet_id=source_wallet_id,
            other_wallet_id=destination_wallet_id,
            amount=amount,
            reference=reference,
            description=description,
            initiated_by_id=initiated_by_id,
        )
    )
