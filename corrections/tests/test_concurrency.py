"""Decisions under real concurrency: threads with their own PostgreSQL connections,
really committing (`transaction=True`, so the ledger's deferred checks run too, which
the last test relies on). The assertions are on the database's final state, never on
timings."""

from __future__ import annotations

from collections import Counter

import pytest
from django.db import connection, transaction
from django.db.models import Sum

from audit.models import AuditEvent
from corrections.errors import ProposalNotPending
from corrections.models import AdjustmentProposal
from corrections.services import adjustment_approve, adjustment_propose, adjustment_reject
from foundation.errors import ServiceError
from testing.threads import Threads, held_in_transaction, lock_waiters, run_concurrently, wait_until
from transfers.errors import LedgerInconsistent
from transfers.models import LedgerEntry, Transfer
from wallets.models import Wallet

pytestmark = pytest.mark.django_db(transaction=True)

Status = AdjustmentProposal.Status


def attempt(decide, proposal_id, operator_id):
    """A job for one thread: the decision, or the code it was refused with."""

    def job():
        try:
            return decide(proposal_id=proposal_id, operator_id=operator_id).status
        except ServiceError as error:
            return error.code

    return job


def adjustments(wallet: Wallet) -> list[Transfer]:
    return list(
        Transfer.objects.filter(kind=Transfer.Kind.ADJUSTMENT, reference_wallet=wallet).order_by("created_at")
    )


def test_two_approvals_at_once_post_exactly_one_adjustment(wallet, maker, checker, make_operator):
    second = make_operator("approve_adjustment")
    proposal = adjustment_propose(
        wallet_id=wallet.id, amount=700, reason="Lost deposit", operator_id=maker.id
    )

    # Both approvals queue on the proposal's row while another transaction holds it,
    # then race for it the moment it is let go.
    def hold_row():
        AdjustmentProposal.objects.select_for_update().get(pk=proposal.pk)

    with held_in_transaction(hold_row):
        threads = Threads(
            [
                attempt(adjustment_approve, proposal.id, checker.id),
                attempt(adjustment_approve, proposal.id, second.id),
            ]
        ).start()
        wait_until(lambda: lock_waiters() >= 2, "both approvals wait for the proposal's row")
    outcomes = Counter(threads.join())

    assert outcomes == Counter({Status.APPROVED: 1, ProposalNotPending.code: 1})
    stored = AdjustmentProposal.objects.get(pk=proposal.pk)
    [posted] = adjustments(wallet)
    assert (stored.status, stored.transfer_id) == (Status.APPROVED, posted.id)
    assert posted.initiated_by_id == stored.decided_by_id
    assert Wallet.objects.get(pk=wallet.pk).balance == 1_000 + 700
    assert LedgerEntry.objects.filter(wallet=wallet).aggregate(total=Sum("amount"))["total"] == 1_000 + 700


def test_many_approvals_released_together_post_once(wallet, maker, make_operator):
    checkers = [make_operator("approve_adjustment") for _ in range(4)]
    proposal = adjustment_propose(
        wallet_id=wallet.id, amount=-250, reason="Fee refunded twice", operator_id=maker.id
    )

    outcomes = Counter(run_concurrently([attempt(adjustment_approve, proposal.id, c.id) for c in checkers]))

    assert outcomes == Counter({Status.APPROVED: 1, ProposalNotPending.code: 3})
    assert len(adjustments(wallet)) == 1
    assert Wallet.objects.get(pk=wallet.pk).balance == 1_000 - 250


def test_an_approval_and_a_rejection_at_once_decide_once(wallet, maker, checker, make_operator):
    second = make_operator("approve_adjustment")
    proposal = adjustment_propose(
        wallet_id=wallet.id, amount=300, reason="Goodwill credit", operator_id=maker.id
    )

    outcomes = Counter(
        run_concurrently(
            [
                attempt(adjustment_approve, proposal.id, checker.id),
                attempt(adjustment_reject, proposal.id, second.id),
            ]
        )
    )

    stored = AdjustmentProposal.objects.get(pk=proposal.pk)
    assert outcomes == Counter({stored.status: 1, ProposalNotPending.code: 1})
    posted = adjustments(wallet)
    if stored.status == Status.APPROVED:
        assert [t.id for t in posted] == [stored.transfer_id]
        assert Wallet.objects.get(pk=wallet.pk).balance == 1_300
    else:
        assert posted == [] and Wallet.objects.get(pk=wallet.pk).balance == 1_000


def test_two_debits_each_covered_alone_never_overdraw_the_wallet(wallet, maker, checker, make_operator):
    second = make_operator("approve_adjustment")
    debits = [
        adjustment_propose(wallet_id=wallet.id, amount=-600, reason=f"Debit {n}", operator_id=maker.id)
        for n in range(2)
    ]

    outcomes = Counter(
        run_concurrently(
            [
                attempt(adjustment_approve, debits[0].id, checker.id),
                attempt(adjustment_approve, debits[1].id, second.id),
            ]
        )
    )

    assert outcomes == Counter({Status.APPROVED: 1, "insufficient_funds": 1})
    assert Wallet.objects.get(pk=wallet.pk).balance == 400
    statuses = Counter(AdjustmentProposal.objects.values_list("status", flat=True))
    assert statuses == Counter({Status.APPROVED: 1, Status.PROPOSED: 1})
    assert len(adjustments(wallet)) == 1


def test_an_approval_on_a_wallet_that_disagrees_with_its_ledger_is_refused_and_stays_pending(
    wallet, maker, checker
):
    proposal = adjustment_propose(wallet_id=wallet.id, amount=100, reason="Goodwill", operator_id=maker.id)
    # A balance changed behind the triggers (docs/operations.md): the commit is refused.
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")
        try:
            cursor.execute("UPDATE wallets_wallet SET balance = 5000 WHERE id = %s", [wallet.id])
        finally:
            cursor.execute("SET session_replication_role = origin")

    with pytest.raises(LedgerInconsistent):
        adjustment_approve(proposal_id=proposal.id, operator_id=checker.id)

    stored = AdjustmentProposal.objects.get(pk=proposal.pk)
    assert (stored.status, stored.transfer_id) == (Status.PROPOSED, None)
    assert adjustments(wallet) == []
    refusal = AuditEvent.objects.get(action=AuditEvent.Action.ADJUSTMENT_APPROVED, target_id=str(proposal.id))
    assert refusal.outcome == "ledger_inconsistent"
