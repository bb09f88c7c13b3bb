"""webhooks.selectors: the caller's live endpoints, one of them, and an endpoint's deliveries."""

from __future__ import annotations

import uuid

import pytest
from django.utils import timezone

from transfers import services as ledger
from webhooks import services
from webhooks.dispatch import fan_out_settled
from webhooks.errors import WebhookEndpointNotFound
from webhooks.models import WebhookDelivery
from webhooks.selectors import delivery_list, endpoint_get, endpoint_list

pytestmark = pytest.mark.django_db
PUBLIC = "https://93.184.215.14/hooks"


@pytest.fixture
def endpoints(make_user):
    """alice: a live endpoint, a deleted one; bob: one."""
    alice, bob = make_user("alice"), make_user("bob")
    live, _ = services.endpoint_create(owner_id=alice.id, url=PUBLIC, event_types=["*"])
    gone, _ = services.endpoint_create(owner_id=alice.id, url=PUBLIC, event_types=["*"])
    services.endpoint_delete(endpoint_id=gone.id, owner_id=alice.id)
    bobs, _ = services.endpoint_create(owner_id=bob.id, url=PUBLIC, event_types=["*"])
    return alice, bob, live, gone, bobs


def test_the_list_is_the_callers_live_endpoints(endpoints):
    alice, bob, live, _, bobs = endpoints
    assert list(endpoint_list(owner_id=alice.id)) == [live]
    assert list(endpoint_list(owner_id=bob.id)) == [bobs]


def test_one_endpoint_is_for_its_owner_only_and_not_once_deleted(endpoints):
    alice, bob, live, gone, _ = endpoints
    assert endpoint_get(endpoint_id=live.id, owner_id=alice.id) == live
    for endpoint_id, owner_id in [(live.id, bob.id), (gone.id, alice.id), (uuid.uuid4(), alice.id)]:
        with pytest.raises(WebhookEndpointNotFound):
            endpoint_get(endpoint_id=endpoint_id, owner_id=owner_id)


def test_deliveries_are_the_endpoints_own_and_filter_by_status(endpoints, make_wallet):
    alice, bob, live, _, bobs = endpoints
    wallet, bob_wallet = make_wallet(alice), make_wallet(bob)
    for amount in (10, 20):
        ledger.deposit_create(wallet_id=wallet.id, owner_id=alice.id, amount=amount)
    ledger.deposit_create(wallet_id=bob_wallet.id, owner_id=bob.id, amount=30)
    fan_out_settled()
    first = WebhookDelivery.objects.filter(endpoint=live).order_by("id").first()
    WebhookDelivery.objects.filter(pk=first.pk).update(
        status=WebhookDelivery.Status.CANCELLED, finished_at=timezone.now()
    )

    mine = delivery_list(endpoint_id=live.id, owner_id=alice.id)
    assert sorted(d.event.data["transfer"]["amount"] for d in mine) == [10, 20]  # the event came along
    assert [d.pk for d in delivery_list(endpoint_id=live.id, owner_id=alice.id, status="cancelled")] == [
        first.pk
    ]
    assert delivery_list(endpoint_id=live.id, owner_id=alice.id, status="succeeded").count() == 0
    assert delivery_list(endpoint_id=bobs.id, owner_id=bob.id).count() == 1
    with pytest.raises(WebhookEndpointNotFound):  # someone else's endpoint
        delivery_list(endpoint_id=bobs.id, owner_id=alice.id)
