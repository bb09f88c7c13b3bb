"""Writing the audit trail (audit.services), called directly: the fields and the request context."""

from __future__ import annotations

import pytest
from django.db import transaction

from audit.models import AuditEvent
from audit.services import audit_event, audit_record
from foundation import context

CONTEXT = {
    context.request_id_var: "req-42",
    context.client_ip_var: "2001:DB8:0:0::7",
    context.user_agent_var: "audit-test/2.0",
    context.user_id_var: 4242,
}


@pytest.fixture
def request_context():
    """The context RequestContextMiddleware sets for a request, reset afterwards."""
    tokens = [(var, var.set(value)) for var, value in CONTEXT.items()]
    yield
    for var, token in reversed(tokens):
        var.reset(token)


def test_an_event_takes_the_client_and_the_request_from_the_context(request_context):
    event = audit_event(action=AuditEvent.Action.LOGOUT, target_type="user", target_id=7)

    assert event.pk is None  # built, not written
    assert (event.client_ip, event.user_agent, event.request_id) == (
        "2001:db8::7",
        "audit-test/2.0",
        "req-42",
    )
    assert event.actor_id == 4242  # the request's user, unless the caller names one
    assert (event.target_type, event.target_id, event.outcome, event.details) == ("user", "7", "ok", {})


def test_an_explicit_actor_wins_over_the_requests_user(request_context):
    assert audit_event(action=AuditEvent.Action.LOGOUT, actor_id=9).actor_id == 9


def test_outside_a_request_the_context_fields_are_empty():
    event = audit_event(action=AuditEvent.Action.WALLET_CREATED)

    assert (event.actor_id, event.client_ip, event.user_agent, event.request_id) == (None, None, "", "")


@pytest.mark.parametrize("address", ["not-an-ip", "", "999.1.1.1", "10.0.0.1, 10.0.0.2"])
def test_a_client_address_that_is_no_ip_is_left_out(address):
    token = context.client_ip_var.set(address)
    try:
        assert audit_event(action=AuditEvent.Action.LOGIN_FAILED).client_ip is None
    finally:
        context.client_ip_var.reset(token)


def test_long_values_are_cut_to_their_columns():
    token = context.user_agent_var.set("a" * 600)
    try:
        event = audit_event(
            action=AuditEvent.Action.LOGIN_FAILED,
            actor_label="n" * 200,
            target_id="t" * 100,
            outcome="o" * 100,
        )
    finally:
        context.user_agent_var.reset(token)

    assert (len(event.actor_label), len(event.target_id), len(event.outcome), len(event.user_agent)) == (
        150,
        64,
        64,
        512,
    )


@pytest.mark.django_db
def test_audit_record_appends_the_event_with_every_field(request_context):
    recorded = audit_record(
        action=AuditEvent.Action.MONEY_FAILED,
        target_type="wallet",
        target_id="w-1",
        amount=1500,
        currency="EUR",
        outcome="insufficient_funds",
        details={"kind": "withdrawal"},
    )

    stored = AuditEvent.objects.get(pk=recorded.pk)
    assert (stored.action, stored.actor_id, stored.target_type, stored.target_id) == (
        "money.failed",
        4242,
        "wallet",
        "w-1",
    )
    assert (stored.amount, stored.currency, stored.outcome, stored.details) == (
        1500,
        "EUR",
        "insufficient_funds",
        {"kind": "withdrawal"},
    )
    assert (stored.client_ip, stored.user_agent, stored.request_id) == (
        "2001:db8::7",
        "audit-test/2.0",
        "req-42",
    )


@pytest.mark.django_db
def test_an_event_recorded_in_a_transaction_that_rolls_back_is_gone():
    with pytest.raises(RuntimeError), transaction.atomic():
        recorded = audit_record(action=AuditEvent.Action.WALLET_CREATED)
        raise RuntimeError("the action failed")

    assert not AuditEvent.objects.filter(pk=recorded.pk).exists()
