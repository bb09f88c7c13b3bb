"""Operators browse the outbox read-only."""

from __future__ import annotations

import pytest

from conftest import admin_columns, admin_page
from events.models import Event
from transfers import services

pytestmark = pytest.mark.django_db


def test_the_event_list_and_page_are_read_only(admin_client, make_user, make_wallet):
    alice, bob = make_user("alice"), make_user("bob")
    a, b = make_wallet(alice, balance=100), make_wallet(bob)
    services.transfer_create(
        source_wallet_id=a.id, destination_wallet_id=b.id, initiated_by_id=alice.id, amount=5
    )
    event = Event.objects.filter(type=Event.Type.TRANSFER_CREATED, owner_id=bob.id).get()

    html = admin_page(admin_client, "/admin/events/event/")
    assert admin_columns(html) == 6
    assert "transfer.created" in html and str(b.id)[:8] in html
    assert "/admin/events/event/add/" not in html
    page = admin_page(admin_client, f"/admin/events/event/{event.sequence}/change/")
    assert str(event.uuid) in page
    assert 'name="_save"' not in page
    assert (
        admin_client.post(f"/admin/events/event/{event.sequence}/delete/", {"post": "yes"}).status_code == 403
    )
    assert Event.objects.filter(pk=event.pk).exists()
