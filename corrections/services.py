"""Operators' corrections under the four-eyes rule: propose, then approve or reject.

A proposal moves no money. Only an approval posts the adjustment
(transfers.services.adjustment_post: a double-entry movement of kind `adjustment`
against the currency's adjustment wallet), in the approval's own transaction, so a
proposal is approved if and only if its adjustment exists. Whoever proposed may not
decide; each step needs its permission (`corrections.propose_adjustment`,
`corrections.approve_adjustment`, checked on the operator's row as it is now). Every
step is audited with the operator's id, a refused decision too (its outcome is the
refusal's code). The admin and the management commands call these and nothing else.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from uuid import UUID

from django.conf import settings
from django.db import IntegrityError, OperationalError, transaction
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import audit_record
from corrections.errors import (
    OperatorNotPermitted,
    ProposalNotFound,
    ProposalNotPending,
    SelfApproval,
)
from corrections.models import AdjustmentProposal
from foundation.db import is_cancelled, is_lock_timeout
from foundation.errors import ServiceError, ValidationFailed
from transfers.errors import LedgerInconsistent, ServiceBusy, WalletNotActive
from transfers.ledger_errors import ledger_violation
from transfers.services import MAX_WALLET_BALANCE, adjustment_post
from users.models import User
from wallets.errors import WalletNotFound
from wallets.models import Wallet

logger = logging.getLogger(__name__)

PROPOSE_PERMISSION = "corrections.propose_adjustment"
APPROVE_PERMISSION = "corrections.approve_adjustment"
TARGET_TYPE = "adjustment_proposal"
REASON_MAX_LENGTH = AdjustmentProposal._meta.get_field("reason").max_length
NOTE_MAX_LENGTH = AdjustmentProposal._meta.get_field("decision_note").max_length

Status = AdjustmentProposal.Status
Action = AuditEvent.Action


def operator_may(*, operator: User, permission: str) -> bool:
    """Whether an active operator holds the permission (directly, by group, or as superuser)."""
    return operator.is_active and operator.has_perm(permission)


def adjustment_propose(
    *, wallet_id: UUID | str, amount: int, reason: str, operator_id: int
) -> AdjustmentProposal:
    """Propose crediting (`amount` > 0) or debiting (`amount` < 0) a user wallet, in minor units.

    Moves no money: a different operator approves it (adjustment_approve). Refused (see
    adjustment_propose_check): an operator without `propose_adjustment`, a zero or
    out-of-range amount, a blank reason, a wallet that is not a user wallet or is closed.
    Whether a debit is covered is decided at approval, on the locked wallet.
    Transaction: its own (the proposal and its audit event commit together).
    """
    operator, wallet, reason = _checked_proposal(wallet_id, amount, reason, operator_id, audit=True)
    with transaction.atomic():
        proposal = AdjustmentProposal.objects.create(
            wallet=wallet, amount=amount, currency=wallet.currency, reason=reason, proposed_by=operator
        )
        audit_record(
            action=Action.ADJUSTMENT_PROPOSED,
            actor_id=operator.id,
            target_type=TARGET_TYPE,
            target_id=proposal.id,
            amount=amount,
            currency=wallet.currency,
            details={"wallet_id": str(wallet.id), "reason": reason},
        )
    return proposal


def adjustment_propose_check(*, wallet_id: UUID | str, amount: int, reason: str, operator_id: int) -> None:
    """Raise what adjustment_propose would refuse these with; write nothing (the admin's
    add form shows the refusal on the form)."""
    _checked_proposal(wallet_id, amount, reason, operator_id, audit=False)


def _checked_proposal(
    wallet_id: UUID | str, amount: int, reason: str, operator_id: int, *, audit: bool
) -> tuple[User, Wallet, str]:
    errors: dict[str, list[str]] = {}
    if type(amount) is not int or amount == 0:
        errors["amount"] = ["A non-zero whole number of minor units (negative for a debit)."]
    elif abs(amount) > MAX_WALLET_BALANCE:
        errors["amount"] = [f"At most {MAX_WALLET_BALANCE} minor units either way."]
    reason = reason.strip() if isinstance(reason, str) else ""
    if not reason:
        errors["reason"] = ["A reason is required."]
    elif len(reason) > REASON_MAX_LENGTH:
        errors["reason"] = [f"At most {REASON_MAX_LENGTH} characters."]
    wallet_uuid = _uuid(wallet_id)
    if wallet_uuid is None:
        errors["wallet"] = ["A wallet id (UUID)."]
    if errors:
        raise ValidationFailed(errors)

    operator = _operator(operator_id)
    try:
        if not operator_may(operator=operator, permission=PROPOSE_PERMISSION):
            raise OperatorNotPermitted("Proposing an adjustment needs the propose_adjustment permission.")
        wallet = Wallet.objects.filter(pk=wallet_uuid, kind=Wallet.Kind.USER).first()
        if wallet is None:
            raise WalletNotFound("No user wallet with this id.")
        if wallet.status == Wallet.Status.CLOSED:
            raise WalletNotActive("A closed wallet is not corrected.")
    except ServiceError as error:
        if audit:
            _audit_refusal(
                Action.ADJUSTMENT_PROPOSED,
                operator.id,
                "",
                error,
                amount=amount,
                details={"wallet_id": str(wallet_uuid)},
            )
        raise
    return operator, wallet, reason


def adjustment_approve(*, proposal_id: UUID | str, operator_id: int, note: str = "") -> AdjustmentProposal:
    """Approve a pending proposal and post its adjustment; return the approved proposal.

    Invariant: a proposal is approved at most once, by an operator with
    `approve_adjustment` who did not propose it, and is approved if and only if its
    adjustment transfer exists. A debit beyond the wallet's available money
    (insufficient_funds) or a closed wallet is refused and nothing changes: the
    proposal stays pending. Locks: the proposal's row (FOR UPDATE: a second approval
    waits, then finds it decided: proposal_not_pending), then the wallet
    (adjustment_post). Transaction: its own, tried again while the wallet's lock is
    busy, until DB_LOCK_TIMEOUT_MS (then service_busy).
    """
    return _decide(proposal_id, operator_id, Status.APPROVED, note)


def adjustment_reject(*, proposal_id: UUID | str, operator_id: int, note: str = "") -> AdjustmentProposal:
    """Reject a pending proposal; nothing moves. Same rules as adjustment_approve (the
    permission, the four-eyes rule, decisions are final). Locks: the proposal's row.
    Transaction: its own."""
    return _decide(proposal_id, operator_id, Status.REJECTED, note)


def _decide(proposal_id: UUID | str, operator_id: int, decision: str, note: str) -> AdjustmentProposal:
    action = Action.ADJUSTMENT_APPROVED if decision == Status.APPROVED else Action.ADJUSTMENT_REJECTED
    note = note.strip() if isinstance(note, str) else ""
    if len(note) > NOTE_MAX_LENGTH:
        raise ValidationFailed({"note": [f"At most {NOTE_MAX_LENGTH} characters."]})
    proposal_uuid = _uuid(proposal_id)
    operator = _operator(operator_id)
    try:
        if proposal_uuid is None:
            raise ProposalNotFound("No adjustment proposal with this id.")
        if not operator_may(operator=operator, permission=APPROVE_PERMISSION):
            raise OperatorNotPermitted("Deciding an adjustment needs the approve_adjustment permission.")
        try:
            return _with_lock_retries(lambda: _decide_once(proposal_uuid, operator, decision, note, action))
        except IntegrityError as exc:
            raise _ledger_refusal(exc) from exc
    except ServiceError as error:
        _audit_refusal(action, operator.id, proposal_uuid or proposal_id, error)
        raise


def _decide_once(
    proposal_id: UUID, operator: User, decision: str, note: str, action: str
) -> AdjustmentProposal:
    with transaction.atomic():
        proposal = AdjustmentProposal.objects.select_for_update().filter(pk=proposal_id).first()
        if proposal is None:
            raise ProposalNotFound("No adjustment proposal with this id.")
        if proposal.status != Status.PROPOSED:
            raise ProposalNotPending(
                f"This proposal was already {proposal.status}; decisions are final.", status=proposal.status
            )
        if proposal.proposed_by_id == operator.id:
            raise SelfApproval("The operator who proposed an adjustment cannot decide it.")
        if decision == Status.APPROVED:
            proposal.transfer = adjustment_post(
                wallet_id=proposal.wallet_id,
                amount=proposal.amount,
                operator_id=operator.id,
                reason=proposal.reason,
            )
        proposal.status = decision
        proposal.decided_by = operator
        proposal.decided_at = timezone.now()
        proposal.decision_note = note
        proposal.save(update_fields=["status", "decided_by", "decided_at", "decision_note", "transfer"])
        details = {"wallet_id": str(proposal.wallet_id), "proposed_by": proposal.proposed_by_id}
        if proposal.transfer_id is not None:
            details["transfer_id"] = str(proposal.transfer_id)
        if note:
            details["note"] = note
        audit_record(
            action=action,
            actor_id=operator.id,
            target_type=TARGET_TYPE,
            target_id=proposal.id,
            amount=proposal.amount,
            currency=proposal.currency,
            details=details,
        )
    return proposal


def _with_lock_retries(attempt):
    """Run `attempt` (a transaction of its own) again while a row it needs is busy.

    The wallet's lock is waited for in attempts of DB_LOCK_ATTEMPT_MS (wallets.locks), as
    on the money path; between them this holds no lock. Inside a caller's transaction
    there is nothing to retry: one attempt.
    """
    if transaction.get_connection().in_atomic_block:
        return attempt()
    deadline = time.monotonic() + settings.DB_LOCK_TIMEOUT_MS / 1000
    while True:
        try:
            return attempt()
        except OperationalError as exc:
            if not (is_lock_timeout(exc) or is_cancelled(exc)):
                raise
            # A random pause (not a secret), so competing retries spread out.
            pause = random.uniform(0.005, 0.05)  # noqa: S311  # nosec B311
            if time.monotonic() + pause >= deadline:
                raise ServiceBusy("The wallet or the proposal is busy; retry shortly.") from exc
            time.sleep(pause)


def _ledger_refusal(exc: IntegrityError) -> LedgerInconsistent:
    """The ledger's triggers refused the approval's commit: the wallet disagrees with its
    ledger (docs/operations.md). Nothing was posted and the proposal is still pending."""
    violation = ledger_violation(exc)
    if violation is None:
        raise exc  # not the ledger's refusal: a bug
    logger.error(
        "ledger invariant %s refused an adjustment at commit; wallet %s needs an operator "
        "(docs/operations.md): %s",
        violation.check,
        violation.wallet_id or "unknown",
        violation.message,
        extra={"wallet_id": violation.wallet_id},
    )
    return LedgerInconsistent("The wallet disagrees with its ledger; nothing was posted. Repair it first.")


def _audit_refusal(
    action: str, operator_id: int, target_id: object, error: ServiceError, *, details=None, **fields
) -> None:
    """A refused step, audited after its transaction rolled back (the refusal itself changed nothing)."""
    with transaction.atomic():
        audit_record(
            action=action,
            actor_id=operator_id,
            target_type=TARGET_TYPE,
            target_id=target_id,
            outcome=error.code,
            details={**(details or {}), "detail": error.detail},
            **fields,
        )


def _operator(operator_id: int) -> User:
    operator = User.objects.filter(pk=operator_id).first()
    if operator is None:
        raise OperatorNotPermitted("No such operator.")
    return operator


def _uuid(value: UUID | str) -> UUID | None:
    if isinstance(value, UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None
