"""Every movement and state change writes its events, in its own write, with the resource
as the API renders it."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from psycopg.types.json import Jsonb

from conftest import idem
from events.models import Event
from transfers import holds, services
from transfers.models import Hold
from wallets.models import Wallet
from wallets.services import wallet_release, wallet_set_status, wallets_mark_reconciled

pytestmark = pytest.mark.django_db

T = Event.Type


@pytest.fixture
def people(make_user, make_wallet):
    alice, bob = make_user("alice"), make_user("bob")
    return alice, bob, make_wallet(alice, balance=1_000), make_wallet(bob, balance=500)


def events_after(sequence: int) -> list[Event]:
    return list(Event.objects.filter(sequence__gt=sequence).order_by("sequence"))


def last_sequence() -> int:
    return Event.objects.order_by("-sequence").values_list("sequence", flat=True).first() or 0


def test_a_transfer_tells_each_party_about_their_own_wallet_with_the_answer_the_request_got(
    people, api_client
):
    alice, bob, a, b = people
    before = last_sequence()
    response = api_client(alice).post(
        "/api/v1/transfers",
        {"source_wallet_id": str(a.id), "destination_wallet_id": str(b.id), "amount": 250},
        format="json",
        **idem(),
    )
    assert response.status_code == 201

    events = events_after(before)
    assert [(e.type, e.wallet_id, e.owner_id) for e in events] == [
        (T.TRANSFER_CREATED, a.id, alice.id),  # the source's first, as its leg
        (T.TRANSFER_CREATED, b.id, bob.id),
    ]
    for event in events:
        assert event.data == json.loads(response.content)
        assert event.created_at.isoformat().replace("+00:00", "Z") == response.json()["created_at"]
    assert len({e.uuid for e in events}) == 2


def test_a_deposit_event_carries_the_deposit_answer_byte_for_byte_in_meaning(people, api_client):
    alice, _, a, _ = people
    before = last_sequence()
    response = api_client(alice).post(
        f"/api/v1/wallets/{a.id}/deposits", {"amount": 70}, format="json", **idem()
    )
    assert response.status_code == 201

    [event] = events_after(before)
    assert (event.type, event.wallet_id, event.owner_id) == (T.DEPOSIT_CREATED, a.id, alice.id)
    assert event.data == response.json()
    assert event.data["wallet"]["balance"] == 1_070


def test_the_event_is_written_by_the_movements_one_statement(people):
    alice, _bob, a, b = people
    before = last_sequence()
    with CaptureQueriesContext(connection) as queries:
        services.transfer_create(
            source_wallet_id=a.id, destination_wallet_id=b.id, initiated_by_id=alice.id, amount=5
        )
    writes = [q["sql"] for q in queries if "INSERT INTO" in q["sql"]]
    assert len(writes) == 1
    assert "INSERT INTO events_event" in writes[0] and "INSERT INTO transfers_transfer" in writes[0]
    assert len(events_after(before)) == 2


@pytest.mark.parametrize(
    ("make", "kind", "data_keys"),
    [
        ("withdrawal", T.WITHDRAWAL_CREATED, {"transfer", "wallet"}),
        ("adjustment", T.ADJUSTMENT_POSTED, {"transfer", "wallet"}),
        ("refund", T.REFUND_CREATED, None),
    ],
)
def test_each_kind_of_movement_has_its_event(people, make, kind, data_keys):
    alice, bob, a, b = people
    if make == "withdrawal":
        transfer = services.withdrawal_create(wallet_id=a.id, owner_id=alice.id, amount=10)
        wallets = {a.id: alice.id}
    elif make == "adjustment":
        transfer = services.adjustment_post(wallet_id=a.id, amount=-10, operator_id=bob.id, reason="fix")
        wallets = {a.id: alice.id}
    else:
        original = services.transfer_create(
            source_wallet_id=a.id, destination_wallet_id=b.id, initiated_by_id=alice.id, amount=40
        )
        before = last_sequence()
        transfer = services.refund_create(transfer_id=original.id, owner_id=bob.id, amount=15)
        wallets = {a.id: alice.id, b.id: bob.id}
    events = [e for e in Event.objects.filter(type=kind).order_by("sequence")][-len(wallets) :]
    if make == "refund":
        assert [e.sequence for e in events] == [e.sequence for e in events_after(before)]
    assert {e.wallet_id: e.owner_id for e in events} == wallets
    for event in events:
        if data_keys is None:
            assert event.data["id"] == str(transfer.id) and event.data["kind"] == "refund"
        else:
            assert set(event.data) == data_keys
            assert event.data["transfer"]["id"] == str(transfer.id)
            assert event.data["wallet"]["id"] == str(event.wallet_id)
            assert event.data["wallet"]["balance"] == Wallet.objects.get(pk=event.wallet_id).balance


def test_holds_created_captured_voided_and_expired_have_their_events(people, api_client):
    alice, bob, a, b = people
    client = api_client(alice)
    before = last_sequence()
    created = client.post(f"/api/v1/wallets/{a.id}/holds", {"amount": 100}, format="json", **idem())
    captured = client.post(
        f"/api/v1/holds/{created.json()['id']}/capture",
        {"amount": 60, "destination_wallet_id": str(b.id)},
        format="json",
        **idem(),
    )
    voided_hold = holds.hold_create(wallet_id=a.id, owner_id=alice.id, amount=10)
    voided = client.post(f"/api/v1/holds/{voided_hold.id}/void", {}, format="json", **idem())
    expiring = holds.hold_create(
        wallet_id=a.id, owner_id=alice.id, amount=5, expires_at=timezone.now() + timedelta(seconds=60)
    )
    assert holds.holds_expire(now=timezone.now() + timedelta(seconds=61)) == 1

    events = events_after(before)
    assert [(e.type, e.wallet_id) for e in events] == [
        (T.HOLD_CREATED, a.id),
        (T.HOLD_CAPTURED, a.id),
        (T.TRANSFER_CREATED, a.id),
        (T.TRANSFER_CREATED, b.id),
        (T.HOLD_CREATED, a.id),
        (T.HOLD_VOIDED, a.id),
        (T.HOLD_CREATED, a.id),
        (T.HOLD_EXPIRED, a.id),
    ]
    assert events[0].data == created.json()
    assert events[1].data == captured.json()
    assert events[1].data["status"] == Hold.Status.CAPTURED
    transfer_id = captured.json()["capture_transfer_id"]
    assert events[2].data["id"] == events[3].data["id"] == transfer_id
    assert events[3].owner_id == bob.id
    assert events[5].data == voided.json()
    assert (events[7].data["id"], events[7].data["status"]) == (str(expiring.id), Hold.Status.EXPIRED)


def test_wallet_status_changes_have_their_events(people, make_user):
    alice, _, a, _ = people
    operator = make_user("operator")
    before = last_sequence()
    wallet_set_status(wallet_id=a.id, status=Wallet.Status.FROZEN, actor_id=operator.id)
    wallet_set_status(wallet_id=a.id, status=Wallet.Status.ACTIVE, actor_id=operator.id)
    wallet_set_status(wallet_id=a.id, name="renamed only", actor_id=operator.id)  # no status change
    wallets_mark_reconciled(checked=[a.id], inconsistent=[a.id], found_at=timezone.now())
    wallets_mark_reconciled(checked=[a.id], inconsistent=[], found_at=timezone.now())
    wallet_release(wallet_id=a.id, actor_id=operator.id)
    wallet_set_status(wallet_id=a.id, status=Wallet.Status.CLOSED, actor_id=operator.id)

    events = events_after(before)
    assert {(e.type, e.wallet_id, e.owner_id) for e in events} == {(T.WALLET_STATUS_CHANGED, a.id, alice.id)}
    assert [e.data["status"] for e in events] == ["frozen", "active", "under_review", "active", "closed"]
    assert events[-1].data["id"] == str(a.id)


def test_a_transfers_statement_with_its_events_stays_within_psycopgs_cached_parameters(
    people, api_client, monkeypatch
):
    from transfers import statements

    alice, _bob, a, b = people
    seen = []
    original = statements.statement

    def spy(*args, **kwargs):
        text, params = original(*args, **kwargs)
        seen.append((text, params))
        return text, params

    monkeypatch.setattr(statements, "statement", spy)
    body = {"source_wallet_id": str(a.id), "destination_wallet_id": str(b.id), "amount": 5}
    response = api_client(alice).post("/api/v1/transfers", body, format="json", **idem())
    assert response.status_code == 201

    [(text, params)] = seen
    assert text.count("INSERT INTO events_event") == 1  # both events: one INSERT of two rows
    documents = [v for v in params.values() if isinstance(v, Jsonb) and v.obj == response.content]
    assert len(documents) == 1  # the answer's bytes, bound once for both parties' events
    # psycopg caches the conversion of a statement's text up to 50 parameters (and 4 KiB).
    assert len(params) <= 50 and len(text) <= 4096, (len(params), len(text))


def test_a_captures_and_a_refunds_statements_stay_within_psycopgs_cached_parameters(
    people, api_client, monkeypatch
):
    """A capture writes the most rows of any movement (the transfer, its legs, the hold's
    end, two audit rows, three events, the idempotency record): equal strings of one
    column (the audit rows' action and currency, the events' type) share a parameter,
    which keeps it, and a refund, under psycopg's 50."""
    from transfers import statements

    alice, bob, a, b = people
    hold = api_client(alice).post(f"/api/v1/wallets/{a.id}/holds", {"amount": 50}, format="json", **idem())
    assert hold.status_code == 201, hold.content
    seen = []
    original = statements.statement

    def spy(*args, **kwargs):
        text, params = original(*args, **kwargs)
        seen.append((text, params))
        return text, params

    monkeypatch.setattr(statements, "statement", spy)
    capture = api_client(alice).post(
        f"/api/v1/holds/{hold.json()['id']}/capture",
        {"amount": 30, "destination_wallet_id": str(b.id)},
        format="json",
        **idem(),
    )
    assert capture.status_code == 200, capture.content
    refund = api_client(bob).post(
        f"/api/v1/transfers/{capture.json()['capture_transfer_id']}/refunds",
        {"amount": 10},
        format="json",
        **idem(),
    )
    assert refund.status_code == 201, refund.content

    assert len(seen) == 2
    for text, params in seen:
        assert len(params) <= 50 and len(text) <= 4096, (len(params), len(text))
