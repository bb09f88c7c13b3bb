"""Idempotency-Key handling for money-moving requests.

Follows the IETF draft "The Idempotency-Key HTTP Header Field" and Stripe's
semantics:

- a key (1-255 printable ASCII characters) is scoped to the user and bound to
  method + path + a SHA-256 of the canonical JSON body;
- the record is inserted in the *same* transaction as the movement, so a crash
  can never leave one without the other;
- a finished request replays its stored status and body byte for byte;
- a concurrent duplicate never executes twice: PostgreSQL's unique index makes
  the second INSERT wait for the first transaction, then fail, which rolls the
  duplicate's work back, and the stored response is replayed ("wait and replay");
- successes and final business errors are stored; validation errors are not;
- a movement PostgreSQL refuses at commit because a ledger invariant failed (a
  wallet's balance disagrees with its entries) answers 409 `ledger_inconsistent`
  and is not stored either: it is not the movement's final answer, and the same
  key must work once an operator has repaired the wallet. It is logged at ERROR,
  counted and audited.

Every refusal the caller gets (stored business errors, `idempotency_key_reused`,
`ledger_inconsistent`) is audited as `money.failed` with its code as the outcome.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import re
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import audit_record
from foundation.db import is_cancelled, is_connection_lost, is_lock_timeout, is_retryable, violated_constraint
from foundation.errors import render_problem, service_error_body
from foundation.metrics import registry as metrics
from transfers import services
from transfers.errors import (
    IdempotencyKeyInUse,
    IdempotencyKeyInvalid,
    IdempotencyKeyRequired,
    IdempotencyKeyReused,
    LedgerInconsistent,
    ServiceBusy,
)
from transfers.holds import (
    HoldCreate,
    HoldVoid,
    duplicate_hold_reference_error,
    hold_create_prepare,
    hold_void_prepare,
)
from transfers.ledger_errors import LedgerViolation, ledger_violation
from transfers.models import IdempotencyRecord
from transfers.selectors import find_hold_reference_use, find_reference_use
from transfers.serializers import response_body
from transfers.services import Movement
from wallets.errors import WalletError
from wallets.models import Wallet

logger = logging.getLogger(__name__)

KEY_PATTERN = re.compile(r"^[\x20-\x7e]{1,255}$")
IDEMPOTENCY_CONSTRAINT = "idempotency_key_unique_per_user"
REFERENCE_CONSTRAINT = "transfer_reference_unique_per_wallet"
HOLD_REFERENCE_CONSTRAINT = "hold_reference_unique_per_wallet"
CREATED = 201

# What the executor runs: a movement (a deposit, withdrawal, transfer, refund or a hold's
# capture), a new hold, or a hold's void. Each is prepared under its locks, answered,
# and written with its idempotency record in one statement.
Command = Movement | HoldCreate | HoldVoid


@dataclass(frozen=True)
class IdempotentRequest:
    """Who sent the key, the key, and what it is bound to (method, path, body hash)."""

    user_id: int
    key: str
    method: str
    path: str
    request_hash: str


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: bytes
    replayed: bool


def validate_key(raw: str | None) -> str:
    if raw is None or raw == "":
        raise IdempotencyKeyRequired(
            "Money-moving requests need an Idempotency-Key header (1-255 printable characters)."
        )
    # fullmatch: with match(), `$` would let a final newline through.
    if not KEY_PATTERN.fullmatch(raw):
        raise IdempotencyKeyInvalid("Idempotency-Key must be 1-255 printable ASCII characters.")
    return raw


def request_hash(data: Any) -> str:
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def normalize_path(path: str) -> str:
    return path.rstrip("/") or "/"


def execute_idempotent(req: IdempotentRequest, command: Command, *, status: int = CREATED) -> StoredResponse:
    """Run `command` at most once per (user, key) and return the stored response (`status`
    and the command's answer when it succeeds).

    Deadlocks and serialization failures are retried at once. A wallet's row lock is
    waited for in attempts of DB_LOCK_ATTEMPT_MS (wallets.locks), with a short, jittered
    pause between them in which this request holds no lock, until DB_LOCK_TIMEOUT_MS has
    passed: then 503 service_busy. A lost database connection (a failover, a restart) is
    retried on a fresh connection after a short back-off: because the record commits
    with the movement, a retry after an unknown COMMIT outcome either replays the
    committed result or moves the money for the first time, never twice.
    """
    attempts = settings.MONEY_TX_RETRIES + 1
    reconnects = 0
    attempt = 0
    lock_deadline = time.monotonic() + settings.DB_LOCK_TIMEOUT_MS / 1000
    while True:
        attempt += 1
        try:
            return _execute_once(req, command, status)
        except (OperationalError, InterfaceError) as exc:
            if isinstance(exc, OperationalError) and (is_lock_timeout(exc) or is_cancelled(exc)):
                # A random pause (not a secret), so retries of several requests spread out.
                pause = random.uniform(0.005, 0.05)  # noqa: S311  # nosec B311
                if time.monotonic() + pause >= lock_deadline:
                    raise ServiceBusy("The wallet is busy; retry shortly.") from exc
                metrics.record_lock_retry()
                time.sleep(pause)
                continue
            # InterfaceError: the connection was already closed under us.
            lost = isinstance(exc, InterfaceError) or is_connection_lost(exc)
            if lost and reconnects < settings.DB_RECONNECT_ATTEMPTS:
                reconnects += 1
                delay = settings.DB_RECONNECT_BACKOFF_SECONDS * (2 ** (reconnects - 1))
                logger.warning("database connection lost (%s); reconnecting in %.2fs", exc, delay)
                connection.close()
                time.sleep(delay)
                continue
            if not lost and is_retryable(exc) and attempt < attempts:
                logger.warning("retrying money transaction after %s (attempt %d)", exc, attempt)
                continue
            raise


def _execute_once(req: IdempotentRequest, command: Command, status: int) -> StoredResponse:
    """One attempt: prepare the command, render its answer, write both in one statement.

    No lookup first. The record is written by the command's own statement, so a
    repeated key fails that statement on the unique index (after waiting for the first
    request's transaction, if it is still open), the repeat's work is rolled back, and
    the stored response is replayed. A refusal is stored the same way (_store_refusal).
    A fresh request, the common case, saves a round trip; a repeat costs an attempt.
    """
    try:
        with transaction.atomic():
            prepared = _prepare(command)
            body = response_body(prepared)
            record = _record(req, status, body, transfer_id=prepared.transfer_id)
            record.created_at = prepared.created_at  # the change's time
            prepared.write(extra_rows=[record], body=body)
        return StoredResponse(status=status, body=body, replayed=False)
    except WalletError as error:
        return _store_refusal(req, command, error)
    except IntegrityError as exc:
        constraint = violated_constraint(exc)
        if constraint == IDEMPOTENCY_CONSTRAINT:
            return _replay_stored(req, command)
        # Another request took the reference between our check and our write.
        if constraint == REFERENCE_CONSTRAINT and isinstance(command, Movement) and command.reference:
            original = find_reference_use(wallet_id=command.own_wallet_id, reference=command.reference)
            if original is not None:
                return _store_refusal(req, command, services.duplicate_reference_error(*original))
        if constraint == HOLD_REFERENCE_CONSTRAINT and isinstance(command, HoldCreate) and command.reference:
            original = find_hold_reference_use(wallet_id=command.wallet_id, reference=command.reference)
            if original is not None:
                return _store_refusal(req, command, duplicate_hold_reference_error(*original))
        violation = ledger_violation(exc)
        if violation is not None:
            return _refuse_inconsistent(req, command, violation)
        raise


def _prepare(command: Command):
    if isinstance(command, Movement):
        return services.movement_prepare(command)
    if isinstance(command, HoldCreate):
        return hold_create_prepare(command)
    return hold_void_prepare(command)


def _record_outcome(command: Command, *, outcome: str, currency: str) -> None:
    """Count a refused command (a completed one is counted by its write, on commit)."""
    if isinstance(command, Movement):
        metrics.record_movement(kind=command.kind, currency=currency, outcome=outcome, amount=command.amount)
        if command.hold_id is not None:
            metrics.record_hold(action="captured", currency=currency, outcome=outcome)
    else:
        action = "created" if isinstance(command, HoldCreate) else "voided"
        metrics.record_hold(action=action, currency=currency, outcome=outcome)


def _record(req: IdempotentRequest, status: int, body: bytes, transfer_id: Any = None) -> IdempotencyRecord:
    return IdempotencyRecord(
        user_id=req.user_id,
        key=req.key,
        method=req.method,
        path=req.path,
        request_hash=req.request_hash,
        status_code=status,
        response_body=body,
        transfer_id=transfer_id,
        created_at=timezone.now(),
    )


def _replay_stored(req: IdempotentRequest, command: Command) -> StoredResponse:
    record = IdempotencyRecord.objects.filter(user_id=req.user_id, key=req.key).first()
    if record is None:  # the other request rolled back after all; ask the client to retry
        metrics.record_idempotency("in_use")
        raise IdempotencyKeyInUse("A request with this key is in progress; retry shortly.")
    if (record.method, record.path, record.request_hash) != (req.method, req.path, req.request_hash):
        metrics.record_idempotency("reused")
        error = IdempotencyKeyReused("This Idempotency-Key was already used for a different request.")
        with transaction.atomic():  # the movement's own transaction has rolled back
            _audit_refusal(req, command, error)
        raise error
    metrics.record_idempotency("replayed")
    return StoredResponse(status=record.status_code, body=bytes(record.response_body), replayed=True)


def _store_refusal(req: IdempotentRequest, command: Command, error: WalletError) -> StoredResponse:
    """A final business refusal: stored under the key (so a retry replays it) and audited."""
    body = render_problem(service_error_body(error))
    try:
        with transaction.atomic():
            _record(req, error.status, body).save(force_insert=True)
            _audit_refusal(req, command, error)
    except IntegrityError as exc:
        if violated_constraint(exc) == IDEMPOTENCY_CONSTRAINT:
            return _replay_stored(req, command)
        raise
    # Counted once stored, so a repeat that is refused again (and replays) is not counted twice.
    _record_outcome(command, outcome=error.code, currency=getattr(error, "currency", ""))
    return StoredResponse(status=error.status, body=body, replayed=False)


def _audit_refusal(req: IdempotentRequest, command: Command, error: WalletError, **extra: Any) -> None:
    """A `money.failed` event for a refused command; call inside a transaction."""
    details = {
        "kind": command.kind,
        "amount": command.amount,
        "source_wallet_id": command.source_wallet_id,
        "destination_wallet_id": command.destination_wallet_id,
        "reference": command.reference,
        "refund_of": getattr(command, "refund_of_id", None),
        "hold_id": getattr(command, "hold_id", None),
        **extra,
    }
    audit_record(
        action=AuditEvent.Action.MONEY_FAILED,
        actor_id=req.user_id,
        target_type="wallet",
        target_id=command.own_wallet_id,
        amount=command.amount,
        # Known once the wallets were read; a refusal before that (not found, same wallet,
        # key reused) names no currency rather than guess one.
        currency=getattr(error, "currency", "") or "",
        outcome=error.code,
        details={**{k: str(v) for k, v in details.items() if v is not None}, "detail": error.detail},
    )


def _refuse_inconsistent(
    req: IdempotentRequest, command: Command, violation: LedgerViolation
) -> StoredResponse:
    """A ledger trigger refused the commit, so nothing moved. Answer, log, count and audit it.

    Not stored under the key (see the module docstring). The answer does not name the
    wallet: it may be the destination, somebody else's.
    """
    error = LedgerInconsistent(
        "A wallet in this movement is under review, so nothing was moved. "
        "Retry later with the same Idempotency-Key."
    )
    looked_up = violation.wallet_id or command.own_wallet_id
    error.currency = Wallet.objects.filter(pk=looked_up).values_list("currency", flat=True).first() or ""
    logger.error(
        "ledger invariant %s refused a %s at commit; wallet %s needs an operator (docs/operations.md): %s",
        violation.check,
        command.kind,
        violation.wallet_id or "unknown",
        violation.message,
        extra={"wallet_id": violation.wallet_id, "transfer_id": violation.transfer_id},
    )
    metrics.record_ledger_violation(violation.check)
    _record_outcome(command, outcome=error.code, currency=error.currency)
    with transaction.atomic():
        _audit_refusal(
            req,
            command,
            error,
            check=violation.check,
            inconsistent_wallet_id=violation.wallet_id,
            database_message=violation.message,
        )
    return StoredResponse(status=error.status, body=render_problem(service_error_body(error)), replayed=False)


def idempotency_cleanup(
    *, older_than_hours: int | None = None, batch_size: int | None = None, dry_run: bool = False
) -> int:
    """Delete idempotency records older than the TTL; return how many (would) go.

    Deletes in primary-key batches, each its own short transaction, so the table
    is never locked as a whole and no transaction runs long. Transfers, and with
    them the permanent uniqueness of client references, are untouched.
    """
    hours = older_than_hours if older_than_hours is not None else settings.IDEMPOTENCY_KEY_TTL_HOURS
    batch_size = batch_size or settings.IDEMPOTENCY_CLEANUP_BATCH_SIZE
    cutoff = timezone.now() - timedelta(hours=hours)
    expired = IdempotencyRecord.objects.filter(created_at__lt=cutoff)
    if dry_run:
        return expired.count()
    deleted = 0
    while True:
        ids = list(expired.order_by("id").values_list("id", flat=True)[:batch_size])
        if not ids:
            break
        with transaction.atomic():
            count, _ = IdempotencyRecord.objects.filter(id__in=ids, created_at__lt=cutoff).delete()
        deleted += count
        if len(ids) < batch_size:
            break
    logger.info("deleted %d idempotency records older than %d hours", deleted, hours)
    return deleted
