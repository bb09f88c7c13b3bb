"""The corrections admin: a maker proposes with the add form, a checker decides with the
page's buttons or the list's actions; refusals are messages, and each operator sees only
what their permission allows."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import ADDITION, LogEntry
from django.contrib.messages import get_messages
from django.test import Client

from audit.models import AuditEvent
from conftest import admin_page
from corrections.models import AdjustmentProposal
from corrections.services import adjustment_approve, adjustment_propose
from transfers.models import Transfer
from wallets.models import Wallet

pytestmark = pytest.mark.django_db

LIST = "/admin/corrections/adjustmentproposal/"
ADD = LIST + "add/"
Status = AdjustmentProposal.Status


def client_of(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def change_url(proposal) -> str:
    return f"{LIST}{proposal.id}/change/"


def decide_url(proposal) -> str:
    return f"{LIST}{proposal.id}/decide/"


def texts(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def propose(wallet, maker, amount=400):
    return adjustment_propose(
        wallet_id=wallet.id, amount=amount, reason="Bank fee reversed", operator_id=maker.id
    )


# --- proposing ------------------------------------------------------------------------


def test_a_maker_proposes_with_the_add_form_as_themselves(wallet, maker, checker):
    client = client_of(maker)
    page = admin_page(client, ADD)
    assert 'name="proposed_by"' not in page and 'name="status"' not in page

    response = client.post(
        ADD,
        # A forged proposer is no field of the form: ignored.
        {"wallet": str(wallet.id), "amount": "-150", "reason": "Duplicate top-up", "proposed_by": checker.id},
    )

    assert response.status_code == 302, response.content[:2000]
    proposal = AdjustmentProposal.objects.get()
    assert (proposal.proposed_by_id, proposal.status, proposal.amount, proposal.currency) == (
        maker.id,
        Status.PROPOSED,
        -150,
        "USD",
    )
    assert response["Location"] == change_url(proposal) or response["Location"] == LIST
    assert Wallet.objects.get(pk=wallet.pk).balance == 1_000
    [event] = AuditEvent.objects.filter(action=AuditEvent.Action.ADJUSTMENT_PROPOSED)
    assert (event.actor_id, event.target_id) == (maker.id, str(proposal.id))
    assert LogEntry.objects.filter(action_flag=ADDITION, object_id=str(proposal.id), user=maker).exists()


@pytest.mark.parametrize("button", ["_save", "_continue"])
def test_after_adding_the_admin_names_and_links_the_proposal_the_service_made(wallet, maker, button):
    response = client_of(maker).post(
        ADD, {"wallet": str(wallet.id), "amount": "250", "reason": "Fee refund", button: "1"}
    )

    proposal = AdjustmentProposal.objects.get()
    # "Save and continue" goes to the new proposal's own page; "Save" to the list.
    assert response["Location"] == (change_url(proposal) if button == "_continue" else LIST)
    # The message and the admin's log name the stored row (its currency comes from the service).
    assert texts(response) == [f"The adjustment proposal “{proposal}” was added successfully."]
    assert "USD" in str(proposal)
    [entry] = LogEntry.objects.filter(action_flag=ADDITION)
    assert (entry.object_id, entry.object_repr) == (str(proposal.id), str(proposal))


@pytest.mark.parametrize(
    ("amount", "reason", "message"),
    [("0", "A reason", "non-zero"), ("100", "   ", "This field is required"), ("-5", "Closed", "closed")],
)
def test_the_add_form_shows_refusals_and_saves_nothing(wallet, maker, amount, reason, message):
    if reason == "Closed":
        Wallet.objects.filter(pk=wallet.pk).update(status=Wallet.Status.CLOSED)

    response = client_of(maker).post(ADD, {"wallet": str(wallet.id), "amount": amount, "reason": reason})

    assert response.status_code == 200
    page = response.content.decode()
    assert message in page and "is violated" not in page  # the service's words, not a constraint's name
    assert not AdjustmentProposal.objects.exists()


def test_a_checker_without_the_propose_permission_cannot_add(checker):
    client = client_of(checker)

    assert client.get(ADD).status_code == 403
    assert "addlink" not in admin_page(client, "/admin/")


# --- deciding -------------------------------------------------------------------------


def test_a_checker_approves_with_the_list_action(wallet, maker, checker):
    proposal = propose(wallet, maker)

    response = client_of(checker).post(
        LIST, {"action": "approve_selected", "_selected_action": [str(proposal.id)]}, follow=True
    )

    assert response.status_code == 200
    stored = AdjustmentProposal.objects.get(pk=proposal.pk)
    assert (stored.status, stored.decided_by_id) == (Status.APPROVED, checker.id)
    assert Transfer.objects.get(pk=stored.transfer_id).kind == Transfer.Kind.ADJUSTMENT
    assert Wallet.objects.get(pk=wallet.pk).balance == 1_400
    assert any("approved" in text for text in texts(response))


def test_an_action_refusal_is_a_message_and_moves_nothing(wallet, maker, checker):
    covered, overdraft = propose(wallet, maker, amount=100), propose(wallet, maker, amount=-5_000)

    response = client_of(checker).post(
        LIST,
        {"action": "approve_selected", "_selected_action": [str(covered.id), str(overdraft.id)]},
        follow=True,
    )

    assert AdjustmentProposal.objects.get(pk=covered.pk).status == Status.APPROVED
    assert AdjustmentProposal.objects.get(pk=overdraft.pk).status == Status.PROPOSED
    assert Wallet.objects.get(pk=wallet.pk).balance == 1_100
    assert any("insufficient_funds" in text for text in texts(response))


def test_the_proposers_own_approval_is_refused_with_a_message(wallet, make_operator):
    both = make_operator("propose_adjustment", "approve_adjustment")
    proposal = propose(wallet, both)

    response = client_of(both).post(
        LIST, {"action": "approve_selected", "_selected_action": [str(proposal.id)]}, follow=True
    )

    assert any("self_approval_forbidden" in text for text in texts(response))
    assert AdjustmentProposal.objects.get(pk=proposal.pk).status == Status.PROPOSED
    assert 'value="approve"' not in admin_page(client_of(both), change_url(proposal))


def test_a_maker_sees_no_decision_actions_or_buttons_and_cannot_post_one(wallet, maker):
    proposal = propose(wallet, maker)
    client = client_of(maker)

    listing = admin_page(client, LIST)
    page = admin_page(client, change_url(proposal))

    assert str(proposal.id)[:8] in listing
    assert "approve_selected" not in listing and "reject_selected" not in listing
    assert 'value="approve"' not in page
    assert client.post(decide_url(proposal), {"decision": "approve"}).status_code == 403
    response = client.post(LIST, {"action": "approve_selected", "_selected_action": [str(proposal.id)]})
    assert response.status_code in (200, 302)
    assert AdjustmentProposal.objects.get(pk=proposal.pk).status == Status.PROPOSED


def test_a_checker_sees_the_actions_and_the_buttons_of_a_pending_proposal(wallet, maker, checker):
    proposal = propose(wallet, maker)
    client = client_of(checker)

    assert "approve_selected" in admin_page(client, LIST)
    page = admin_page(client, change_url(proposal))
    assert 'value="approve"' in page and 'value="reject"' in page

    adjustment_approve(proposal_id=proposal.id, operator_id=checker.id)
    assert 'value="approve"' not in admin_page(client, change_url(proposal))


def test_the_reject_button_keeps_the_note(wallet, maker, checker):
    proposal = propose(wallet, maker)

    response = client_of(checker).post(
        decide_url(proposal), {"decision": "reject", "note": "No ticket"}, follow=True
    )

    stored = AdjustmentProposal.objects.get(pk=proposal.pk)
    assert (stored.status, stored.decided_by_id, stored.decision_note) == (
        Status.REJECTED,
        checker.id,
        "No ticket",
    )
    assert response.redirect_chain[-1][0] == change_url(proposal)
    assert any("rejected" in text for text in texts(response))
    assert Wallet.objects.get(pk=wallet.pk).balance == 1_000


def test_the_approve_button_posts_and_a_second_press_is_refused(wallet, maker, checker):
    proposal = propose(wallet, maker)
    client = client_of(checker)

    client.post(decide_url(proposal), {"decision": "approve"})
    response = client.post(decide_url(proposal), {"decision": "approve"}, follow=True)

    assert AdjustmentProposal.objects.get(pk=proposal.pk).status == Status.APPROVED
    assert Transfer.objects.filter(kind=Transfer.Kind.ADJUSTMENT).count() == 1
    assert Wallet.objects.get(pk=wallet.pk).balance == 1_400
    assert any("proposal_not_pending" in text for text in texts(response))


def test_nothing_about_a_proposal_is_edited_or_deleted_in_the_admin(wallet, maker, checker, admin_client):
    proposal = propose(wallet, maker)

    response = admin_client.post(
        change_url(proposal), {"wallet": str(wallet.id), "amount": "9", "reason": "x"}
    )
    assert response.status_code == 403
    assert admin_client.post(f"{LIST}{proposal.id}/delete/", {"post": "yes"}).status_code == 403
    assert AdjustmentProposal.objects.get(pk=proposal.pk).amount == 400
