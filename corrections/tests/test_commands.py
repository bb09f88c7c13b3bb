"""manage.py propose_adjustment / approve_adjustment / reject_adjustment: the services'
rules for scripted use, each refusal a CommandError naming its code."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from audit.models import AuditEvent
from corrections.models import AdjustmentProposal
from transfers.models import Transfer
from wallets.models import Wallet

pytestmark = pytest.mark.django_db

Status = AdjustmentProposal.Status


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def propose(wallet, operator: str = "maker", amount: str = "-250") -> AdjustmentProposal:
    output = run(
        "propose_adjustment",
        "--wallet",
        str(wallet.id),
        "--amount",
        amount,
        "--reason",
        "Reversal of a duplicate deposit",
        "--operator",
        operator,
    )
    proposal = AdjustmentProposal.objects.get()
    assert output.startswith(f"Proposal {proposal.id}: ") and output.rstrip().endswith("awaiting approval.")
    return proposal


def test_propose_then_approve_posts_the_adjustment_as_the_named_operators(wallet, maker, checker):
    proposal = propose(wallet)
    assert (proposal.proposed_by_id, proposal.status, proposal.amount) == (maker.id, Status.PROPOSED, -250)
    assert Wallet.objects.get(pk=wallet.pk).balance == 1_000

    output = run("approve_adjustment", str(proposal.id), "--operator", "CHECKER", "--note", "ticket 42")

    stored = AdjustmentProposal.objects.get(pk=proposal.pk)
    assert (stored.status, stored.decided_by_id, stored.decision_note) == (
        Status.APPROVED,
        checker.id,
        "ticket 42",
    )
    assert f"posted as transfer {stored.transfer_id}" in output
    assert Transfer.objects.get(pk=stored.transfer_id).initiated_by_id == checker.id
    assert Wallet.objects.get(pk=wallet.pk).balance == 750
    actors = dict(
        AuditEvent.objects.filter(target_id=str(proposal.id)).values_list("action", "actor_id").order_by("id")
    )
    assert actors == {
        AuditEvent.Action.ADJUSTMENT_PROPOSED: maker.id,
        AuditEvent.Action.ADJUSTMENT_APPROVED: checker.id,
    }


def test_reject_with_a_note(wallet, maker, checker):
    proposal = propose(wallet)

    output = run("reject_adjustment", str(proposal.id), "--operator", "checker", "--note", "not ours")

    assert output.strip() == f"Proposal {proposal.id} rejected."
    stored = AdjustmentProposal.objects.get(pk=proposal.pk)
    assert (stored.status, stored.decision_note, stored.transfer_id) == (Status.REJECTED, "not ours", None)
    assert Wallet.objects.get(pk=wallet.pk).balance == 1_000


@pytest.mark.parametrize("command", ["approve_adjustment", "reject_adjustment"])
def test_the_proposer_cannot_decide(wallet, make_operator, command):
    make_operator("propose_adjustment", "approve_adjustment", username="both")
    proposal = propose(wallet, operator="both")

    with pytest.raises(CommandError, match="self_approval_forbidden"):
        run(command, str(proposal.id), "--operator", "both")

    assert AdjustmentProposal.objects.get(pk=proposal.pk).status == Status.PROPOSED


def test_each_step_needs_its_permission(wallet, maker, checker):
    with pytest.raises(CommandError, match="operator_not_permitted"):
        run(
            "propose_adjustment",
            "--wallet",
            str(wallet.id),
            "--amount",
            "5",
            "--reason",
            "x",
            "--operator",
            "checker",
        )
    proposal = propose(wallet)
    with pytest.raises(CommandError, match="operator_not_permitted"):
        run("approve_adjustment", str(proposal.id), "--operator", "maker")

    assert AdjustmentProposal.objects.get(pk=proposal.pk).status == Status.PROPOSED


def test_a_debit_beyond_the_balance_is_refused_at_approval(wallet, maker, checker):
    proposal = propose(wallet, amount="-1001")

    with pytest.raises(CommandError, match="insufficient_funds"):
        run("approve_adjustment", str(proposal.id), "--operator", "checker")

    assert AdjustmentProposal.objects.get(pk=proposal.pk).status == Status.PROPOSED
    assert Wallet.objects.get(pk=wallet.pk).balance == 1_000
    assert not Transfer.objects.filter(kind=Transfer.Kind.ADJUSTMENT).exists()


def test_a_second_decision_is_refused(wallet, maker, checker, make_operator):
    make_operator("approve_adjustment", username="second")
    proposal = propose(wallet)
    run("approve_adjustment", str(proposal.id), "--operator", "checker")

    with pytest.raises(CommandError, match="proposal_not_pending"):
        run("reject_adjustment", str(proposal.id), "--operator", "second")

    assert Wallet.objects.get(pk=wallet.pk).balance == 750


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["approve_adjustment", "not-a-proposal", "--operator", "checker"], r"not_found"),
        (
            ["approve_adjustment", "00000000-0000-0000-0000-000000000000", "--operator", "nobody"],
            "No operator",
        ),
        (
            [
                "propose_adjustment",
                "--wallet",
                "nope",
                "--amount",
                "0",
                "--reason",
                " ",
                "--operator",
                "maker",
            ],
            r"validation_error.*amount:.*reason:.*wallet:",
        ),
    ],
)
def test_bad_input_is_a_clear_command_error(maker, checker, args, message):
    with pytest.raises(CommandError, match=message):
        run(*args)

    assert not AdjustmentProposal.objects.exists()
