"""webhooks.services: endpoints created, changed, deleted and re-keyed, disabled when failing,
and deliveries sent again; each change audited in its transaction."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from webhooks import services
from webhooks.dispatch import fan_out_settled
from webhooks.errors import WebhookEndpointLimit, WebhookEndpointNotFound, WebhookUrlForbidden
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.secrets import secret_decrypt

pytestmark = pytest.mark.django_db
PUBLIC = "https://93.184.215.14/hooks"
Action = AuditEvent.Action
Status = WebhookDelivery.Status


def audited(action: str, endpoint: WebhookEndpoint) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action, target_id=str(endpoint.id)).order_by("id"))


@pytest.fixture
def alice(make_user):
    return make_user("alice")


@pytest.fixture
def endpoint(alice) -> WebhookEndpoint:
    created, _ = services.endpoint_create(owner_id=alice.id, url=PUBLIC, event_types=["*"])
    return created


@pytest.fixture
def pending(alice, endpoint, make_wallet) -> WebhookDelivery:
    """A pending delivery of a deposit to `endpoint`."""
    make_wallet(alice, balance=250)
    fan_out_settled()
    return WebhookDelivery.objects.get(endpoint=endpoint)


# --- endpoint_create ---------------------------------------------------------------------


def test_create_returns_the_secret_once_and_stores_it_encrypted(alice):
    endpoint, secret = services.endpoint_create(
        owner_id=alice.id, url=PUBLIC, event_types=["deposit.created"], description="books"
    )
    stored = WebhookEndpoint.objects.get(pk=endpoint.pk)
    assert secret.startswith("whsec_")
    assert secret not in stored.secret_encrypted
    assert secret_decrypt(stored.secret_encrypted) == secret
    assert (stored.owner_id, stored.url, stored.event_types, stored.description) == (
        alice.id, PUBLIC, ["deposit.created"], "books",
    )  # fmt: skip
    assert (stored.enabled, stored.disabled_reason) == (True, "")
    (event,) = audited(Action.WEBHOOK_ENDPOINT_CREATED, endpoint)
    assert event.actor_id == alice.id
    assert event.details == {"url": PUBLIC, "event_types": ["deposit.created"]}
    assert secret not in str(event.details)


def test_an_endpoint_created_disabled_was_disabled_by_its_owner(alice):
    endpoint, _ = services.endpoint_create(owner_id=alice.id, url=PUBLIC, event_types=["*"], enabled=False)
    assert (endpoint.enabled, endpoint.disabled_reason) == (False, "owner")


def test_create_refuses_more_endpoints_than_the_limit(alice, make_user, settings):
    settings.WEBHOOK_MAX_ENDPOINTS_PER_USER = 2
    first, _ = services.endpoint_create(owner_id=alice.id, url=PUBLIC, event_types=["*"])
    services.endpoint_create(owner_id=alice.id, url=PUBLIC, event_types=["*"])
    with pytest.raises(WebhookEndpointLimit):
        services.endpoint_create(owner_id=alice.id, url=PUBLIC, event_types=["*"])
    services.endpoint_create(owner_id=make_user().id, url=PUBLIC, event_types=["*"])  # per user
    services.endpoint_delete(endpoint_id=first.id, owner_id=alice.id)
    services.endpoint_create(owner_id=alice.id, url=PUBLIC, event_types=["*"])  # deleted ones do not count
    assert WebhookEndpoint.objects.filter(owner=alice).count() == 3


def test_create_refuses_a_private_address(alice, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = False
    with pytest.raises(WebhookUrlForbidden):
        services.endpoint_create(owner_id=alice.id, url="https://127.0.0.1/hooks", event_types=["*"])
    assert not WebhookEndpoint.objects.exists()


# --- endpoint_update ---------------------------------------------------------------------


def test_update_audits_each_changed_field_with_its_old_and_new_value(alice, endpoint, make_user):
    operator = make_user("operator")
    services.endpoint_update(
        endpoint_id=endpoint.id, owner_id=alice.id, actor_id=operator.id, description="new", event_types=["*"]
    )
    assert WebhookEndpoint.objects.get(pk=endpoint.pk).description == "new"
    (event,) = audited(Action.WEBHOOK_ENDPOINT_UPDATED, endpoint)
    assert event.actor_id == operator.id
    assert event.details["changes"] == {
        "description": {"old": "", "new": "new"}
    }  # event_types did not change


def test_an_update_that_changes_nothing_writes_nothing(alice, endpoint):
    services.endpoint_update(endpoint_id=endpoint.id, owner_id=alice.id, description="")
    assert audited(Action.WEBHOOK_ENDPOINT_UPDATED, endpoint) == []


def test_enabling_again_resumes_pending_deliveries_at_once(alice, endpoint, pending):
    later = timezone.now() + timedelta(hours=3)
    WebhookDelivery.objects.filter(pk=pending.pk).update(
        next_attempt_at=later, first_attempted_at=timezone.now()
    )
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(failing_since=timezone.now())

    disabled = services.endpoint_update(endpoint_id=endpoint.id, owner_id=alice.id, enabled=False)
    assert (disabled.enabled, disabled.disabled_reason) == (False, "owner")
    before = timezone.now()
    enabled = services.endpoint_update(endpoint_id=endpoint.id, owner_id=alice.id, enabled=True)

    assert (enabled.enabled, enabled.disabled_reason, enabled.failing_since) == (True, "", None)
    pending.refresh_from_db()
    assert before <= pending.next_attempt_at <= timezone.now()
    assert pending.first_attempted_at is None  # a fresh retry window


def test_only_the_owner_changes_an_endpoint(endpoint, make_user):
    with pytest.raises(WebhookEndpointNotFound):
        services.endpoint_update(endpoint_id=endpoint.id, owner_id=make_user().id, description="mine now")
    assert WebhookEndpoint.objects.get(pk=endpoint.pk).description == ""


# --- endpoint_delete ---------------------------------------------------------------------


def test_delete_keeps_the_row_and_cancels_pending_deliveries(alice, endpoint, pending):
    services.endpoint_delete(endpoint_id=endpoint.id, owner_id=alice.id)

    endpoint.refresh_from_db()
    assert endpoint.deleted_at is not None
    assert (endpoint.enabled, endpoint.disabled_reason) == (False, "owner")
    pending.refresh_from_db()
    assert (pending.status, pending.locked_until) == (Status.CANCELLED, None)
    assert pending.finished_at == endpoint.deleted_at
    assert len(audited(Action.WEBHOOK_ENDPOINT_DELETED, endpoint)) == 1
    with pytest.raises(WebhookEndpointNotFound):  # gone for the API, and only once
        services.endpoint_delete(endpoint_id=endpoint.id, owner_id=alice.id)


# --- endpoint_rotate_secret ----------------------------------------------------------------


def test_rotation_keeps_the_old_secret_for_the_grace_period(alice, settings):
    settings.WEBHOOK_SECRET_ROTATION_GRACE_SECONDS = 600
    endpoint, old = services.endpoint_create(owner_id=alice.id, url=PUBLIC, event_types=["*"])
    before = timezone.now()

    rotated, new = services.endpoint_rotate_secret(endpoint_id=endpoint.id, owner_id=alice.id)

    stored = WebhookEndpoint.objects.get(pk=endpoint.pk)
    assert new != old and new.startswith("whsec_")
    assert secret_decrypt(stored.secret_encrypted) == new
    assert secret_decrypt(stored.previous_secret_encrypted) == old
    expires = stored.previous_secret_expires_at
    assert before + timedelta(seconds=600) <= expires <= timezone.now() + timedelta(seconds=600)
    (event,) = audited(Action.WEBHOOK_SECRET_ROTATED, endpoint)
    assert rotated.previous_secret_expires_at == expires
    assert event.details["previous_secret_expires_at"] == expires.isoformat()
    assert old not in str(event.details) and new not in str(event.details)

    _, newest = services.endpoint_rotate_secret(endpoint_id=endpoint.id, owner_id=alice.id)
    stored.refresh_from_db()
    assert secret_decrypt(stored.secret_encrypted) == newest
    assert secret_decrypt(stored.previous_secret_encrypted) == new  # the first one is gone at once


# --- endpoint_disable_failing ------------------------------------------------------------


def test_a_failing_endpoint_is_disabled_once(endpoint):
    since = timezone.now() - timedelta(days=3)
    assert services.endpoint_disable_failing(endpoint_id=endpoint.id, failing_since=since) is True
    assert services.endpoint_disable_failing(endpoint_id=endpoint.id, failing_since=since) is False

    endpoint.refresh_from_db()
    assert (endpoint.enabled, endpoint.disabled_reason) == (False, "failing")
    (event,) = audited(Action.WEBHOOK_ENDPOINT_DISABLED, endpoint)
    assert event.actor_id is None  # the service did it
    assert event.details["failing_since"] == str(since)


# --- delivery_redeliver --------------------------------------------------------------------


def test_redelivery_makes_a_failed_delivery_pending_from_now(pending, make_user):
    WebhookDelivery.objects.filter(pk=pending.pk).update(
        attempts=1,
        status=Status.FAILED,
        finished_at=timezone.now(),
        last_status_code=502,
        last_error="http_error",
    )
    operator = make_user("operator")
    before = timezone.now()

    redelivered = services.delivery_redeliver(delivery_id=pending.id, actor_id=operator.id)

    stored = WebhookDelivery.objects.get(pk=pending.pk)
    assert redelivered.pk == stored.pk
    assert (stored.status, stored.finished_at, stored.first_attempted_at, stored.locked_until) == (
        Status.PENDING, None, None, None,
    )  # fmt: skip
    assert before <= stored.next_attempt_at <= timezone.now()
    assert stored.attempts == 1  # its history stays
    (event,) = audited(Action.WEBHOOK_REDELIVERED, pending.endpoint)
    assert event.actor_id == operator.id
    assert (event.details["delivery_id"], event.details["previous_status"]) == (pending.id, "failed")
