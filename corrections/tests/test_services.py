"""Proposing, approving and rejecting adjustments: the four-eyes rule, the permissions,
the posting, and the database's own guard on decisions."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps as django_apps
from django.contrib.auth.models import Group
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import Sum

from audit.models import AuditEvent
from corrections.errors import OperatorNotPermitted, ProposalNotFound, ProposalNotPending, SelfApproval
from corrections.models import AdjustmentProposal
from corrections.services import adjustment_approve, adjustment_propose, adjustment_reject
from foundation.db import sqlstate
from foundation.errors import ValidationFailed
from transfers.errors import InsufficientFunds, WalletNotActive
from transfers.models import LedgerEntry, Transfer
from transfers.services import withdrawal_create
from wallets.errors import WalletNotFound
from wallets.models import Wallet
from wallets.services import adjustment_wallet_id, system_wallet_id

pytestmark = pytest.mark.django_db

Status = AdjustmentProposal.Status
Action = AuditEvent.Action
RESTRICT_VIOLATION = "23001"


def propose(wallet, maker, amount=250, reason="Card scheme chargeback credited late"):
    return adjustment_propose(wallet_id=wallet.id, amount=amount, reason=reason, operator_id=maker.id)


def balance(wallet) -> int:
    return Wallet.objects.get(pk=wallet.pk).balance


def adjustments() -> int:
    return Transfer.objects.filter(kind=Transfer.Kind.ADJUSTMENT).count()


def events(action: str, proposal=None):
    found = AuditEvent.objects.filter(action=action).order_by("id")
    return found.filter(target_id=str(proposal.id)) if proposal is not None else found


# --- proposing ----------------------------------------------------------------------


def test_a_proposal_moves_nothing_and_is_audited_with_its_maker(wallet, maker):
    proposal = propose(wallet, maker, amount=-300, reason="  Duplicate deposit  ")

    stored = AdjustmentProposal.objects.get(pk=proposal.pk)
    assert (stored.status, stored.amount, stored.currency, stored.reason) == (
        Status.PROPOSED,
        -300,
        "USD",
        "Duplicate deposit",
    )
    assert (stored.proposed_by_id, stored.decided_by_id, stored.transfer_id) == (maker.id, None, None)
    assert balance(wallet) == 1_000
    assert adjustments() == 0
    [event] = events(Action.ADJUSTMENT_PROPOSED, proposal)
    assert (event.actor_id, event.amount, event.currency, event.outcome) == (maker.id, -300, "USD", "ok")
    assert event.details == {"wallet_id": str(wallet.id), "reason": "Duplicate deposit"}


def test_proposing_needs_the_permission_and_the_refusal_is_audited(wallet, checker):
    with pytest.raises(OperatorNotPermitted) as refused:
        propose(wallet, checker)

    assert refused.value.code == "operator_not_permitted"
    assert not AdjustmentProposal.objects.exists()
    [event] = events(Action.ADJUSTMENT_PROPOSED)
    assert (event.actor_id, event.outcome) == (checker.id, "operator_not_permitted")


def test_an_inactive_operator_cannot_propose(wallet, maker):
    maker.is_active = False
    maker.save(update_fields=["is_active"])

    with pytest.raises(OperatorNotPermitted):
        propose(wallet, maker)


@pytest.mark.parametrize(
    ("amount", "reason", "fields"),
    [
        (0, "reason", {"amount"}),
        (10**18 + 1, "reason", {"amount"}),
        (100, "   ", {"reason"}),
        (100, "x" * 256, {"reason"}),
        (True, "", {"amount", "reason"}),
    ],
)
def test_a_zero_amount_or_a_blank_reason_is_refused(wallet, maker, amount, reason, fields):
    with pytest.raises(ValidationFailed) as refused:
        propose(wallet, maker, amount=amount, reason=reason)

    assert set(refused.value.extra["errors"]) == fields
    assert not AdjustmentProposal.objects.exists()


def test_only_open_user_wallets_are_corrected(wallet, maker):
    with pytest.raises(WalletNotFound):
        propose(Wallet.objects.get(pk=system_wallet_id(currency="USD")), maker)
    Wallet.objects.filter(pk=wallet.pk).update(status=Wallet.Status.CLOSED)
    with pytest.raises(WalletNotActive):
        propose(wallet, maker)
    assert not AdjustmentProposal.objects.exists()


# --- approving ----------------------------------------------------------------------


@pytest.mark.parametrize("amount", [250, -400])
def test_an_approval_posts_one_adjustment_against_the_adjustment_wallet(wallet, maker, checker, amount):
    proposal = propose(wallet, maker, amount=amount)

    approved = adjustment_approve(
        proposal_id=proposal.id, operator_id=checker.id, note="checked the statement"
    )

    stored = AdjustmentProposal.objects.get(pk=proposal.pk)
    assert (stored.status, stored.decided_by_id, stored.decision_note) == (
        Status.APPROVED,
        checker.id,
        "checked the statement",
    )
    assert stored.decided_at is not None and stored.transfer_id == approved.transfer_id
    transfer = Transfer.objects.get(pk=stored.transfer_id)
    assert (transfer.kind, transfer.amount, transfer.initiated_by_id, transfer.description) == (
        Transfer.Kind.ADJUSTMENT,
        abs(amount),
        checker.id,
        proposal.reason,
    )
    house = adjustment_wallet_id(currency="USD")
    expected_ends = (house, wallet.id) if amount > 0 else (wallet.id, house)
    assert (transfer.source_wallet_id, transfer.destination_wallet_id) == expected_ends
    assert balance(wallet) == 1_000 + amount
    legs = LedgerEntry.objects.filter(transfer=transfer)
    assert legs.aggregate(total=Sum("amount"))["total"] == 0
    assert legs.get(wallet=wallet).amount == amount
    [decided] = events(Action.ADJUSTMENT_APPROVED, proposal)
    assert (decided.actor_id, decided.amount, decided.outcome) == (checker.id, amount, "ok")
    assert decided.details["transfer_id"] == str(transfer.id)
    assert decided.details["proposed_by"] == maker.id
    [posted] = AuditEvent.objects.filter(action=Action.ADJUSTMENT)
    assert posted.actor_id == checker.id


def test_nobody_approves_their_own_proposal_even_holding_both_permissions(wallet, make_operator):
    both = make_operator("propose_adjustment", "approve_adjustment")
    proposal = propose(wallet, both)

    for decide in (adjustment_approve, adjustment_reject):
        with pytest.raises(SelfApproval) as refused:
            decide(proposal_id=proposal.id, operator_id=both.id)
        assert refused.value.code == "self_approval_forbidden"

    assert AdjustmentProposal.objects.get(pk=proposal.pk).status == Status.PROPOSED
    assert balance(wallet) == 1_000 and adjustments() == 0
    outcomes = [e.outcome for e in events(Action.ADJUSTMENT_APPROVED, proposal)]
    assert outcomes == ["self_approval_forbidden"]
    assert [e.actor_id for e in events(Action.ADJUSTMENT_REJECTED, proposal)] == [both.id]


def test_deciding_needs_the_approve_permission(wallet, maker, make_operator):
    other_maker = make_operator("propose_adjustment")
    proposal = propose(wallet, maker)

    for decide in (adjustment_approve, adjustment_reject):
        with pytest.raises(OperatorNotPermitted):
            decide(proposal_id=proposal.id, operator_id=other_maker.id)

    assert AdjustmentProposal.objects.get(pk=proposal.pk).status == Status.PROPOSED
    assert adjustments() == 0


def test_a_superuser_may_decide_but_not_their_own(wallet, maker, make_user):
    boss = make_user("boss")
    boss.is_superuser = True
    boss.save(update_fields=["is_superuser"])
    own = propose(wallet, boss)
    with pytest.raises(SelfApproval):
        adjustment_approve(proposal_id=own.id, operator_id=boss.id)

    approved = adjustment_approve(proposal_id=propose(wallet, maker).id, operator_id=boss.id)

    assert approved.status == Status.APPROVED


def test_a_debit_beyond_the_balance_is_refused_at_approval_and_nothing_moves(wallet, maker, checker):
    proposal = propose(wallet, maker, amount=-600)
    # Proposed while covered; spent before the approval.
    withdrawal_create(wallet_id=wallet.id, owner_id=wallet.owner_id, amount=500)

    with pytest.raises(InsufficientFunds):
        adjustment_approve(proposal_id=proposal.id, operator_id=checker.id)

    stored = AdjustmentProposal.objects.get(pk=proposal.pk)
    assert (stored.status, stored.decided_by_id, stored.transfer_id) == (Status.PROPOSED, None, None)
    assert balance(wallet) == 500
    assert adjustments() == 0
    [refusal] = events(Action.ADJUSTMENT_APPROVED, proposal)
    assert (refusal.actor_id, refusal.outcome) == (checker.id, "insufficient_funds")
    # Still pending: a checker can reject it now.
    assert adjustment_reject(proposal_id=proposal.id, operator_id=checker.id).status == Status.REJECTED


def test_an_approval_of_a_wallet_closed_since_is_refused(wallet, maker, checker):
    proposal = propose(wallet, maker, amount=100)
    Wallet.objects.filter(pk=wallet.pk).update(status=Wallet.Status.CLOSED)

    with pytest.raises(WalletNotActive):
        adjustment_approve(proposal_id=proposal.id, operator_id=checker.id)

    assert AdjustmentProposal.objects.get(pk=proposal.pk).status == Status.PROPOSED
    assert adjustments() == 0


# --- rejecting, and decisions are final ---------------------------------------------


def test_a_rejection_moves_nothing_and_keeps_its_note(wallet, maker, checker):
    proposal = propose(wallet, maker)

    rejected = adjustment_reject(proposal_id=proposal.id, operator_id=checker.id, note=" wrong wallet ")

    stored = AdjustmentProposal.objects.get(pk=rejected.pk)
    assert (stored.status, stored.decided_by_id, stored.decision_note, stored.transfer_id) == (
        Status.REJECTED,
        checker.id,
        "wrong wallet",
        None,
    )
    assert balance(wallet) == 1_000 and adjustments() == 0
    [event] = events(Action.ADJUSTMENT_REJECTED, proposal)
    assert (event.actor_id, event.outcome, event.details["note"]) == (checker.id, "ok", "wrong wallet")


@pytest.mark.parametrize("first", [adjustment_approve, adjustment_reject])
def test_a_decided_proposal_cannot_be_decided_again(wallet, maker, checker, make_operator, first):
    second_checker = make_operator("approve_adjustment")
    proposal = propose(wallet, maker)
    first(proposal_id=proposal.id, operator_id=checker.id)
    decided = AdjustmentProposal.objects.get(pk=proposal.pk)

    for decide in (adjustment_approve, adjustment_reject):
        with pytest.raises(ProposalNotPending) as refused:
            decide(proposal_id=proposal.id, operator_id=second_checker.id)
        assert (refused.value.code, refused.value.status) == ("proposal_not_pending", 409)

    again = AdjustmentProposal.objects.get(pk=proposal.pk)
    assert (again.status, again.decided_by_id, again.transfer_id) == (
        decided.status,
        checker.id,
        decided.transfer_id,
    )
    assert balance(wallet) == 1_000 + (250 if first is adjustment_approve else 0)


def test_an_unknown_proposal_is_not_found(checker):
    for proposal_id in ("00000000-0000-0000-0000-000000000000", "not-a-uuid"):
        with pytest.raises(ProposalNotFound):
            adjustment_approve(proposal_id=proposal_id, operator_id=checker.id)


# --- the database's guard -------------------------------------------------------------


def run_sql(statement: str, params: list) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement, params)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE corrections_adjustmentproposal SET decision_note = 'edited' WHERE id = %s",
        "UPDATE corrections_adjustmentproposal SET status = 'proposed', decided_by_id = NULL, "
        "decided_at = NULL, transfer_id = NULL WHERE id = %s",
        "UPDATE corrections_adjustmentproposal SET amount = amount * 10 WHERE id = %s",
        "DELETE FROM corrections_adjustmentproposal WHERE id = %s",
    ],
    ids=["note", "reopen", "amount", "delete"],
)
@pytest.mark.parametrize("decision", [adjustment_approve, adjustment_reject])
def test_the_database_refuses_any_change_to_a_decided_proposal(wallet, maker, checker, decision, statement):
    proposal = propose(wallet, maker)
    decision(proposal_id=proposal.id, operator_id=checker.id)
    before = AdjustmentProposal.objects.filter(pk=proposal.pk).values().get()

    with pytest.raises(DatabaseError) as refused:
        run_sql(statement, [proposal.id])

    assert sqlstate(refused.value) == RESTRICT_VIOLATION
    assert AdjustmentProposal.objects.filter(pk=proposal.pk).values().get() == before


@pytest.mark.parametrize(
    ("statement", "extra"),
    [
        ("UPDATE corrections_adjustmentproposal SET amount = -amount WHERE id = %s", []),
        ("UPDATE corrections_adjustmentproposal SET wallet_id = %s WHERE id = %s", ["other_wallet"]),
        ("UPDATE corrections_adjustmentproposal SET proposed_by_id = %s WHERE id = %s", ["checker"]),
        ("UPDATE corrections_adjustmentproposal SET reason = 'something else' WHERE id = %s", []),
        ("DELETE FROM corrections_adjustmentproposal WHERE id = %s", []),
    ],
    ids=["amount", "wallet", "proposed_by", "reason", "delete"],
)
def test_the_database_refuses_changing_what_was_proposed(
    wallet, maker, checker, make_wallet, customer, statement, extra
):
    proposal = propose(wallet, maker)
    values = {"other_wallet": make_wallet(customer).id, "checker": checker.id}
    params = [values[name] for name in extra] + [proposal.id]

    with pytest.raises(DatabaseError) as refused:
        run_sql(statement, params)

    assert sqlstate(refused.value) == RESTRICT_VIOLATION
    stored = AdjustmentProposal.objects.get(pk=proposal.pk)
    assert (stored.amount, stored.wallet_id, stored.proposed_by_id) == (250, wallet.id, maker.id)


def test_the_database_lets_a_pending_proposal_be_decided(wallet, maker, checker):
    proposal = propose(wallet, maker)

    run_sql(
        "UPDATE corrections_adjustmentproposal SET status = 'rejected', decided_by_id = %s, "
        "decided_at = now() WHERE id = %s",
        [checker.id, proposal.id],
    )

    assert AdjustmentProposal.objects.get(pk=proposal.pk).status == Status.REJECTED


@pytest.mark.parametrize(
    ("assignments", "constraint"),
    [
        ("status = 'rejected', decided_by_id = proposed_by_id, decided_at = now()", "proposal_four_eyes"),
        (
            "status = 'approved', decided_by_id = %(checker)s, decided_at = now()",
            "proposal_approved_has_transfer",
        ),
        ("status = 'rejected', decided_by_id = %(checker)s", "proposal_decided_fields"),
        ("decided_by_id = %(checker)s, decided_at = now()", "proposal_decided_fields"),
    ],
)
def test_the_database_checks_the_decision(wallet, maker, checker, assignments, constraint):
    proposal = propose(wallet, maker)
    statement = f"UPDATE corrections_adjustmentproposal SET {assignments} WHERE id = %(id)s"  # nosec B608

    with pytest.raises(IntegrityError) as refused:
        run_sql(statement, {"checker": checker.id, "id": proposal.id})

    assert refused.value.__cause__.diag.constraint_name == constraint
    assert AdjustmentProposal.objects.get(pk=proposal.pk).status == Status.PROPOSED


@pytest.mark.parametrize(
    ("amount", "reason", "constraint"),
    [(0, "a reason", "proposal_amount_nonzero"), (5, " \t ", "proposal_reason_nonblank")],
)
def test_the_database_checks_what_is_proposed(wallet, maker, amount, reason, constraint):
    with pytest.raises(IntegrityError) as refused, transaction.atomic():
        AdjustmentProposal.objects.create(
            wallet=wallet, amount=amount, currency="USD", reason=reason, proposed_by=maker
        )

    assert refused.value.__cause__.diag.constraint_name == constraint


# --- operator groups ----------------------------------------------------------------


def test_the_operator_groups_carry_one_role_each():
    migration = importlib.import_module("corrections.migrations.0003_operator_groups")
    migration.create_groups(django_apps, None)  # what the migration ran (idempotent)

    def codenames(name: str) -> set[str]:
        return set(Group.objects.get(name=name).permissions.values_list("codename", flat=True))

    assert codenames("Adjustment makers") == {"propose_adjustment", "view_adjustmentproposal"}
    assert codenames("Adjustment checkers") == {"approve_adjustment", "view_adjustmentproposal"}


def test_a_maker_and_a_checker_from_the_groups_can_do_their_step(wallet, make_user):
    migration = importlib.import_module("corrections.migrations.0003_operator_groups")
    migration.create_groups(django_apps, None)
    maker, checker = make_user(), make_user()
    maker.groups.add(Group.objects.get(name="Adjustment makers"))
    checker.groups.add(Group.objects.get(name="Adjustment checkers"))

    proposal = propose(wallet, maker)
    with pytest.raises(OperatorNotPermitted):
        propose(wallet, checker)
    with pytest.raises(OperatorNotPermitted):
        adjustment_approve(proposal_id=proposal.id, operator_id=maker.id)

    assert adjustment_approve(proposal_id=proposal.id, operator_id=checker.id).status == Status.APPROVED
