"""events.selectors: the caller's events, filtered, and one event by id."""

from __future__ import annotations

import uuid

import pytest

from events.errors import EventNotFound
from events.models import Event
from events.selectors import event_get, event_list
from transfers import services as ledger

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_owners(make_user, make_wallet):
    """alice: two wallets, a deposit on each and a transfer to bob; bob: one wallet."""
    alice, bob = make_user("alice"), make_user("bob")
    usd, eur, bob_usd = make_wallet(alice), make_wallet(alice, currency="EUR"), make_wallet(bob)
    ledger.deposit_create(wallet_id=usd.id, owner_id=alice.id, amount=500)
    ledger.deposit_create(wallet_id=eur.id, owner_id=alice.id, amount=700)
    ledger.transfer_create(
        source_wallet_id=usd.id, destination_wallet_id=bob_usd.id, initiated_by_id=alice.id, amount=120
    )
    return alice, bob, usd, eur, bob_usd


def types(events) -> list[tuple[str, object]]:
    return [(event.type, event.wallet_id) for event in events.order_by("sequence")]


def test_the_list_is_only_the_callers_events(two_owners):
    alice, bob, usd, eur, bob_usd = two_owners
    assert types(event_list(user_id=alice.id)) == [
        ("deposit.created", usd.id),
        ("deposit.created", eur.id),
        ("transfer.created", usd.id),
    ]
    # The transfer tells bob about his own wallet, not alice's.
    assert types(event_list(user_id=bob.id)) == [("transfer.created", bob_usd.id)]


def test_the_list_filters_by_wallet_type_and_sequence(two_owners):
    alice, _, usd, eur, _ = two_owners
    assert types(event_list(user_id=alice.id, wallet_id=eur.id)) == [("deposit.created", eur.id)]
    assert types(event_list(user_id=alice.id, type="transfer.created")) == [("transfer.created", usd.id)]
    assert types(event_list(user_id=alice.id, wallet_id=usd.id, type="deposit.created")) == [
        ("deposit.created", usd.id)
    ]
    first = event_list(user_id=alice.id).order_by("sequence").first()
    assert types(event_list(user_id=alice.id, after=first.sequence)) == [
        ("deposit.created", eur.id),
        ("transfer.created", usd.id),
    ]
    last = Event.objects.order_by("sequence").last()
    assert not event_list(user_id=alice.id, after=last.sequence).exists()


def test_a_wallet_filter_does_not_widen_the_list_to_another_owners_wallet(two_owners):
    alice, _, _, _, bob_usd = two_owners
    # Whether the wallet is the caller's is the API's check; the selector still shows only theirs.
    assert not event_list(user_id=alice.id, wallet_id=bob_usd.id).exists()


def test_one_event_is_for_its_owner_only(two_owners):
    alice, bob, _, _, _ = two_owners
    mine = event_list(user_id=bob.id).get()
    assert event_get(event_id=mine.uuid, user_id=bob.id) == mine
    with pytest.raises(EventNotFound):
        event_get(event_id=mine.uuid, user_id=alice.id)
    with pytest.raises(EventNotFound):
        event_get(event_id=uuid.uuid4(), user_id=bob.id)
