"""Operators: deliveries and attempts read-only in the admin, redelivery by permission,
the secret key rotation command, and the delivery metrics."""

from __future__ import annotations

import time
from io import StringIO

import pytest
from cryptography.fernet import Fernet
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.utils import timezone
from prometheus_client import REGISTRY

from audit.models import AuditEvent
from conftest import admin_page
from transfers import services as ledger
from webhooks import services
from webhooks.delivery import lane_send
from webhooks.dispatch import dispatch_pass, fan_out_settled
from webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from webhooks.secrets import secret_decrypt

pytestmark = pytest.mark.django_db
PUBLIC = "https://93.184.215.14/hooks"


@pytest.fixture
def delivery(make_user, make_wallet) -> WebhookDelivery:
    alice = make_user("alice")
    endpoint, _ = services.endpoint_create(owner_id=alice.id, url=PUBLIC, event_types=["*"])
    make_wallet(alice, balance=250)
    fan_out_settled()
    found = WebhookDelivery.objects.get(endpoint=endpoint)
    WebhookAttempt.objects.create(
        delivery=found,
        number=1,
        started_at=timezone.now(),
        duration_ms=12,
        status_code=502,
        error="http_error",
    )
    WebhookDelivery.objects.filter(pk=found.pk).update(
        attempts=1, status="failed", finished_at=timezone.now(), last_status_code=502, last_error="http_error"
    )
    return found


def test_deliveries_and_their_attempts_are_read_only(admin_client, delivery):
    html = admin_page(admin_client, "/admin/webhooks/webhookdelivery/")
    assert "deposit.created" in html and '<td class="field-endpoint_host">93.184.215.14</td>' in html
    page = admin_page(admin_client, f"/admin/webhooks/webhookdelivery/{delivery.pk}/change/")
    assert PUBLIC in page  # the whole URL on the delivery's own page
    assert '<td class="field-last_result">502 http_error</td>' in html
    assert "502" in page and "http_error" in page  # the attempt, inline
    assert 'name="_save"' not in page
    assert "/admin/webhooks/webhookdelivery/add/" not in html
    endpoint_page = admin_page(
        admin_client, f"/admin/webhooks/webhookendpoint/{delivery.endpoint_id}/change/"
    )
    assert "whsec_" not in endpoint_page and "secret_encrypted" not in endpoint_page


def test_a_superuser_redelivers_from_the_list(admin_client, delivery):
    response = admin_client.post(
        "/admin/webhooks/webhookdelivery/",
        {"action": "redeliver_selected", "_selected_action": [delivery.pk]},
    )
    assert response.status_code == 302
    delivery.refresh_from_db()
    assert (delivery.status, delivery.finished_at, delivery.attempts) == ("pending", None, 1)
    assert AuditEvent.objects.filter(action=AuditEvent.Action.WEBHOOK_REDELIVERED).count() == 1


def test_staff_without_the_permission_cannot_redeliver(client, make_user, delivery):
    staff = make_user("viewer")
    staff.is_staff = True
    staff.save()
    staff.user_permissions.add(Permission.objects.get(codename="view_webhookdelivery"))
    client.force_login(staff)

    html = admin_page(client, "/admin/webhooks/webhookdelivery/")
    assert "redeliver_selected" not in html
    client.post(
        "/admin/webhooks/webhookdelivery/",
        {"action": "redeliver_selected", "_selected_action": [delivery.pk]},
    )
    delivery.refresh_from_db()
    assert delivery.status == "failed"

    staff.user_permissions.add(Permission.objects.get(codename="redeliver_webhookdelivery"))
    staff = type(staff).objects.get(pk=staff.pk)  # permissions are cached per instance
    client.force_login(staff)
    assert "redeliver_selected" in admin_page(client, "/admin/webhooks/webhookdelivery/")


def test_a_finished_delivery_changes_only_by_redelivery_in_the_database(delivery):
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError), transaction.atomic():
        WebhookDelivery.objects.filter(pk=delivery.pk).update(last_error="rewritten")
    with pytest.raises(IntegrityError), transaction.atomic():
        WebhookDelivery.objects.filter(pk=delivery.pk).update(attempts=0)
    with pytest.raises(Exception, match=r"append-only|not allowed|refuse"), transaction.atomic():
        WebhookAttempt.objects.filter(delivery=delivery).delete()


def test_reencryption_moves_every_secret_to_the_new_key(settings, make_user):
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.WEBHOOK_SECRET_KEYS = [old_key]
    endpoint, secret = services.endpoint_create(owner_id=make_user().id, url=PUBLIC, event_types=["*"])
    settings.WEBHOOK_SECRET_KEYS = [new_key, old_key]

    call_command("webhook_secrets_reencrypt", stdout=StringIO())

    settings.WEBHOOK_SECRET_KEYS = [new_key]
    assert secret_decrypt(WebhookEndpoint.objects.get(pk=endpoint.pk).secret_encrypted) == secret


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.mark.django_db(transaction=True)
def test_attempts_failures_and_lag_are_measured_by_endpoint(make_user, make_wallet, local_webhooks, receiver):
    alice = make_user("alice")
    wallet = make_wallet(alice)
    endpoint, _ = services.endpoint_create(owner_id=alice.id, url=receiver.url, event_types=["*"])
    label = str(endpoint.id)
    receiver.answers = [500]
    ledger.deposit_create(wallet_id=wallet.id, owner_id=alice.id, amount=3)

    for _ in range(100):
        leased, _ = dispatch_pass()
        for delivery_id in leased:
            lane_send(delivery_id)
        if receiver.received:
            break
        time.sleep(0.1)

    assert _sample("wallet_webhook_delivery_attempts_total", endpoint=label, outcome="http_error") == 1
    assert _sample("wallet_webhook_delivery_attempts_total", endpoint=label, outcome="succeeded") == 1
    assert _sample("wallet_webhook_delivery_lag_seconds_count", endpoint=label) == 1
    dispatch_pass()  # the backlog is measured by each pass
    assert _sample("wallet_webhook_pending_deliveries") == 0
    assert _sample("wallet_webhook_dispatched_sequence") > 0
