"""Holds through the HTTP API and the services: create, capture, void, expire, list, read.

Time is moved with `clock` (the money path's clock only: transfers.holds and
transfers.services read `timezone.now()` through their module attribute), so a hold
lapses without waiting and without touching its row behind the triggers' back.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from io import StringIO
from types import SimpleNamespace

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import IntegrityError, connection, transaction
from django.test import override_settings
from django.utils import timezone
from prometheus_client import REGISTRY

from audit.models import AuditEvent
from conftest import assert_problem
from transfers import holds as hold_services
from transfers import services as ledger
from transfers.errors import HoldNotPending, InsufficientFunds
from transfers.models import Hold, IdempotencyRecord, LedgerEntry, Transfer
from transfers.tests.movements import refused
from wallets.models import Wallet
from wallets.services import system_wallet_id

pytestmark = pytest.mark.django_db

HOLD_FIELDS = {
    "id",
    "wallet_id",
    "amount",
    "captured_amount",
    "currency",
    "status",
    "expires_at",
    "reference",
    "description",
    "capture_transfer_id",
    "created_at",
    "finished_at",
}


# --- helpers -----------------------------------------------------------------------------


class Clock:
    """The money path's clock (transfers.holds, transfers.services), moved by `shift()`."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.offset = timedelta(0)
        shim = SimpleNamespace(now=lambda: timezone.now() + self.offset)
        monkeypatch.setattr("transfers.holds.timezone", shim)
        monkeypatch.setattr("transfers.services.timezone", shim)

    def shift(self, **delta: float) -> None:
        self.offset += timedelta(**delta)


@pytest.fixture
def clock(monkeypatch) -> Clock:
    return Clock(monkeypatch)


def key(value: str | None = None) -> dict[str, str]:
    return {"HTTP_IDEMPOTENCY_KEY": value or str(uuid.uuid4())}


def create_hold(client, wallet: Wallet, amount: int, idempotency_key: str | None = None, **extra):
    return client.post(
        f"/api/v1/wallets/{wallet.id}/holds",
        {"amount": amount, **extra},
        format="json",
        **key(idempotency_key),
    )


def capture(client, hold_id, idempotency_key: str | None = None, **body):
    return client.post(f"/api/v1/holds/{hold_id}/capture", body, format="json", **key(idempotency_key))


def void(client, hold_id, idempotency_key: str | None = None):
    return client.post(f"/api/v1/holds/{hold_id}/void", {}, format="json", **key(idempotency_key))


def state(wallet: Wallet) -> tuple[int, int]:
    """(balance, held) as stored."""
    wallet.refresh_from_db()
    return wallet.balance, wallet.held


def pending_sum(wallet: Wallet) -> int:
    return sum(Hold.objects.filter(wallet=wallet, status="pending").values_list("amount", flat=True))


def hold_events(action: str, outcome: str = "completed", currency: str = "USD") -> float:
    labels = {"action": action, "currency": currency, "outcome": outcome}
    return REGISTRY.get_sample_value("wallet_hold_events_total", labels) or 0.0


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@pytest.fixture
def world(make_user, make_wallet, api_client):
    alice, bob = make_user("alice"), make_user("bob")
    return SimpleNamespace(
        alice=alice,
        bob=bob,
        a=make_wallet(alice, "USD", balance=1000),
        a2=make_wallet(alice, "USD"),
        a_eur=make_wallet(alice, "EUR", balance=100),
        b=make_wallet(bob, "USD", balance=500),
        alice_api=api_client(alice),
        bob_api=api_client(bob),
    )


# --- create ------------------------------------------------------------------------------


def test_a_new_hold_is_pending_and_leaves_available(world):
    before = timezone.now()
    response = create_hold(
        world.alice_api, world.a, 600, expires_in_seconds=3600, reference="order-1", description="tv"
    )
    after = timezone.now()

    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == HOLD_FIELDS
    assert body["wallet_id"] == str(world.a.id)
    assert (body["amount"], body["captured_amount"], body["currency"], body["status"]) == (
        600,
        0,
        "USD",
        "pending",
    )
    assert (body["reference"], body["description"]) == ("order-1", "tv")
    assert (body["capture_transfer_id"], body["finished_at"]) == (None, None)
    hour = timedelta(seconds=3600)
    assert before + hour <= parse(body["expires_at"]) <= after + hour
    assert before <= parse(body["created_at"]) <= after
    assert state(world.a) == (1000, 600)
    # Nothing moved: no transfer, no ledger entry.
    assert not Transfer.objects.filter(source_wallet=world.a).exists()

    wallet = world.alice_api.get(f"/api/v1/wallets/{world.a.id}").json()
    assert (wallet["balance"], wallet["held"], wallet["available"]) == (1000, 600, 400)


def test_a_hold_lasts_hold_default_seconds_unless_told(world):
    with override_settings(HOLD_DEFAULT_SECONDS=120):
        before = timezone.now()
        body = create_hold(world.alice_api, world.a, 10).json()
        after = timezone.now()
    expires_at = parse(body["expires_at"])
    assert before + timedelta(seconds=120) <= expires_at <= after + timedelta(seconds=120)


def test_expires_at_is_taken_as_given(world):
    when = (timezone.now() + timedelta(days=2)).replace(microsecond=0)
    body = create_hold(world.alice_api, world.a, 10, expires_at=when.isoformat()).json()
    assert parse(body["expires_at"]) == when


@pytest.mark.parametrize(
    "lifetime",
    [
        {"expires_in_seconds": 3600, "expires_at": "2099-01-01T00:00:00Z"},  # both
        {"expires_at": "2020-01-01T00:00:00Z"},  # past
        {"expires_in_seconds": 0},
        {"expires_in_seconds": -5},
    ],
    ids=["both", "past", "zero-seconds", "negative-seconds"],
)
def test_a_bad_lifetime_is_a_validation_error_and_reserves_nothing(world, lifetime):
    response = create_hold(world.alice_api, world.a, 10, **lifetime)

    assert_problem(response, 400, "validation_error")
    assert state(world.a) == (1000, 0)
    assert not Hold.objects.exists()


def test_a_hold_may_not_outlast_hold_max_seconds(world):
    with override_settings(HOLD_MAX_SECONDS=3600):
        too_late = (timezone.now() + timedelta(seconds=3700)).isoformat()
        assert_problem(
            create_hold(world.alice_api, world.a, 10, expires_at=too_late), 400, "validation_error"
        )
        fine = (timezone.now() + timedelta(seconds=3500)).isoformat()
        assert create_hold(world.alice_api, world.a, 10, expires_at=fine).status_code == 201
    # expires_in_seconds carries the default maximum in its schema (30 days).
    too_long = create_hold(world.alice_api, world.a, 10, expires_in_seconds=30 * 24 * 3600 + 1)
    assert_problem(too_long, 400, "validation_error")
    assert Hold.objects.count() == 1


def test_expires_at_without_an_offset_is_refused(world):
    response = create_hold(world.alice_api, world.a, 10, expires_at="2099-01-01T00:00:00")
    assert_problem(response, 400, "validation_error")


def test_a_hold_beyond_available_is_insufficient_funds(world):
    assert create_hold(world.alice_api, world.a, 700).status_code == 201

    body = assert_problem(create_hold(world.alice_api, world.a, 301), 422, "insufficient_funds")

    assert body["available"] == 300
    assert create_hold(world.alice_api, world.a, 300).status_code == 201
    assert state(world.a) == (1000, 1000)


def test_held_money_cannot_be_withdrawn_or_sent(world):
    create_hold(world.alice_api, world.a, 800)

    withdrawal = world.alice_api.post(
        f"/api/v1/wallets/{world.a.id}/withdrawals", {"amount": 201}, format="json", **key()
    )
    assert assert_problem(withdrawal, 422, "insufficient_funds")["available"] == 200
    transfer = world.alice_api.post(
        "/api/v1/transfers",
        {"source_wallet_id": str(world.a.id), "destination_wallet_id": str(world.b.id), "amount": 201},
        format="json",
        **key(),
    )
    assert_problem(transfer, 422, "insufficient_funds")
    assert state(world.a) == (1000, 800)

    ok = world.alice_api.post(
        f"/api/v1/wallets/{world.a.id}/withdrawals", {"amount": 200}, format="json", **key()
    )
    assert ok.status_code == 201, ok.content
    assert (ok.json()["wallet"]["balance"], ok.json()["wallet"]["available"]) == (800, 0)
    assert state(world.a) == (800, 800)


def test_deposits_still_reach_a_wallet_whose_money_is_held(world):
    create_hold(world.alice_api, world.a, 1000)
    response = world.alice_api.post(
        f"/api/v1/wallets/{world.a.id}/deposits", {"amount": 5}, format="json", **key()
    )
    assert response.status_code == 201
    assert response.json()["wallet"]["available"] == 5


def test_a_hold_on_another_users_wallet_is_404(world):
    response = create_hold(world.bob_api, world.a, 10)
    assert_problem(response, 404, "not_found")
    assert state(world.a) == (1000, 0)


@pytest.mark.parametrize("status", ["frozen", "closed"])
def test_a_hold_on_an_inactive_wallet_is_refused(world, status):
    Wallet.objects.filter(pk=world.a.pk).update(status=status)
    assert_problem(create_hold(world.alice_api, world.a, 10), 409, "wallet_not_active")
    assert not Hold.objects.exists()


def test_a_hold_needs_an_idempotency_key_and_a_positive_amount(world):
    response = world.alice_api.post(f"/api/v1/wallets/{world.a.id}/holds", {"amount": 5}, format="json")
    assert_problem(response, 400, "idempotency_key_required")
    assert_problem(create_hold(world.alice_api, world.a, 0), 400, "validation_error")
    assert not Hold.objects.exists()


# --- idempotency and references ----------------------------------------------------------


def test_the_same_key_replays_the_hold(world):
    first = create_hold(world.alice_api, world.a, 250, idempotency_key="hold-1", reference="r-1")
    again = create_hold(world.alice_api, world.a, 250, idempotency_key="hold-1", reference="r-1")

    assert (first.status_code, again.status_code) == (201, 201)
    assert again["Idempotent-Replayed"] == "true"
    assert again.content == first.content
    assert Hold.objects.count() == 1
    assert state(world.a) == (1000, 250)


def test_the_same_key_with_another_body_is_refused(world):
    create_hold(world.alice_api, world.a, 250, idempotency_key="hold-1")
    response = create_hold(world.alice_api, world.a, 251, idempotency_key="hold-1")

    assert_problem(response, 422, "idempotency_key_reused")
    assert Hold.objects.count() == 1
    assert state(world.a) == (1000, 250)


def test_a_refused_hold_is_stored_under_its_key(world):
    first = create_hold(world.alice_api, world.a, 5000, idempotency_key="big")
    assert_problem(first, 422, "insufficient_funds")
    world.alice_api.post(f"/api/v1/wallets/{world.a.id}/deposits", {"amount": 5000}, format="json", **key())

    again = create_hold(world.alice_api, world.a, 5000, idempotency_key="big")

    assert again.status_code == 422
    assert again["Idempotent-Replayed"] == "true"
    assert not Hold.objects.exists()


def test_a_hold_reference_is_unique_per_wallet(world):
    first = create_hold(world.alice_api, world.a, 10, reference="order-7").json()

    body = assert_problem(
        create_hold(world.alice_api, world.a, 20, reference="order-7"), 409, "duplicate_reference"
    )

    assert body["original_hold_id"] == first["id"]
    # The same reference on another wallet, and a transfer reference on this one, are fine.
    world.alice_api.post(f"/api/v1/wallets/{world.a2.id}/deposits", {"amount": 5}, format="json", **key())
    assert create_hold(world.alice_api, world.a2, 1, reference="order-7").status_code == 201
    deposit = world.alice_api.post(
        f"/api/v1/wallets/{world.a.id}/deposits",
        {"amount": 1, "reference": "order-7"},
        format="json",
        **key(),
    )
    assert deposit.status_code == 201
    assert state(world.a) == (1001, 10)


def test_a_hold_reference_is_still_taken_after_the_hold_ended(world):
    first = create_hold(world.alice_api, world.a, 10, reference="order-8").json()
    void(world.alice_api, first["id"])
    assert_problem(create_hold(world.alice_api, world.a, 10, reference="order-8"), 409, "duplicate_reference")


# --- capture -----------------------------------------------------------------------------


def test_capture_all_to_a_wallet_is_a_transfer(world):
    hold = create_hold(world.alice_api, world.a, 600).json()

    response = capture(world.alice_api, hold["id"], destination_wallet_id=str(world.b.id))

    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == HOLD_FIELDS
    assert (body["status"], body["amount"], body["captured_amount"]) == ("captured", 600, 600)
    assert body["finished_at"] is not None
    transfer = Transfer.objects.get(pk=body["capture_transfer_id"])
    assert (transfer.kind, transfer.source_wallet_id, transfer.destination_wallet_id, transfer.amount) == (
        "transfer",
        world.a.id,
        world.b.id,
        600,
    )
    assert sorted(transfer.entries.values_list("type", "amount")) == [
        ("transfer_in", 600),
        ("transfer_out", -600),
    ]
    assert state(world.a) == (400, 0)
    assert state(world.b) == (1100, 0)


def test_a_partial_capture_releases_the_rest(world):
    hold = create_hold(world.alice_api, world.a, 600).json()
    create_hold(world.alice_api, world.a, 100)  # another hold stays

    body = capture(world.alice_api, hold["id"], amount=400, destination_wallet_id=str(world.b.id)).json()

    assert (body["status"], body["captured_amount"]) == ("captured", 400)
    assert state(world.a) == (600, 100)
    assert state(world.b) == (900, 0)
    wallet = world.alice_api.get(f"/api/v1/wallets/{world.a.id}").json()
    assert (wallet["balance"], wallet["held"], wallet["available"]) == (600, 100, 500)


def test_capture_without_a_destination_is_a_withdrawal(world):
    hold = create_hold(world.alice_api, world.a, 300, description="shipping").json()

    body = capture(world.alice_api, hold["id"], amount=120).json()

    transfer = Transfer.objects.get(pk=body["capture_transfer_id"])
    assert (transfer.kind, transfer.amount, transfer.destination_wallet_id) == (
        "withdrawal",
        120,
        system_wallet_id(currency="USD"),
    )
    assert transfer.description == "shipping"  # the hold's, unless the capture gives one
    assert state(world.a) == (880, 0)


def test_a_capture_may_use_the_whole_balance(world):
    hold = create_hold(world.alice_api, world.a, 1000).json()
    assert capture(world.alice_api, hold["id"]).status_code == 200
    assert state(world.a) == (0, 0)


def test_a_capture_beyond_the_hold_is_refused(world):
    hold = create_hold(world.alice_api, world.a, 300).json()

    body = assert_problem(capture(world.alice_api, hold["id"], amount=301), 422, "capture_exceeds_hold")

    assert body["hold_amount"] == 300
    assert Hold.objects.get(pk=hold["id"]).status == "pending"
    assert state(world.a) == (1000, 300)


def test_a_hold_is_captured_once(world):
    hold = create_hold(world.alice_api, world.a, 300).json()
    assert capture(world.alice_api, hold["id"], amount=100).status_code == 200

    second = assert_problem(capture(world.alice_api, hold["id"], amount=100), 409, "hold_not_pending")
    assert second["hold_status"] == "captured"
    assert_problem(void(world.alice_api, hold["id"]), 409, "hold_not_pending")
    assert state(world.a) == (900, 0)
    assert Transfer.objects.filter(kind="withdrawal", source_wallet=world.a).count() == 1


def test_the_same_capture_key_replays_and_moves_money_once(world):
    hold = create_hold(world.alice_api, world.a, 300).json()
    first = capture(world.alice_api, hold["id"], "cap-1", amount=50, destination_wallet_id=str(world.b.id))
    again = capture(world.alice_api, hold["id"], "cap-1", amount=50, destination_wallet_id=str(world.b.id))

    assert (first.status_code, again.status_code) == (200, 200)
    assert again["Idempotent-Replayed"] == "true"
    assert again.content == first.content
    assert state(world.b) == (550, 0)
    record = IdempotencyRecord.objects.get(key="cap-1")
    assert str(record.transfer_id) == first.json()["capture_transfer_id"]


def test_a_capture_to_another_currency_or_a_missing_wallet_is_refused(world):
    hold = create_hold(world.alice_api, world.a, 300).json()

    assert_problem(
        capture(world.alice_api, hold["id"], destination_wallet_id=str(world.a_eur.id)),
        422,
        "currency_mismatch",
    )
    assert_problem(
        capture(world.alice_api, hold["id"], destination_wallet_id=str(uuid.uuid4())), 404, "not_found"
    )
    assert_problem(
        capture(world.alice_api, hold["id"], destination_wallet_id=str(world.a.id)), 422, "same_wallet"
    )
    assert Hold.objects.get(pk=hold["id"]).status == "pending"
    assert state(world.a) == (1000, 300)


def test_a_capture_from_a_frozen_wallet_is_refused_but_its_hold_can_be_voided(world):
    hold = create_hold(world.alice_api, world.a, 300).json()
    Wallet.objects.filter(pk=world.a.pk).update(status="frozen")

    assert_problem(capture(world.alice_api, hold["id"]), 409, "wallet_not_active")
    assert void(world.alice_api, hold["id"]).status_code == 200
    assert state(world.a) == (1000, 0)


def test_another_users_hold_cannot_be_read_captured_or_voided(world):
    hold = create_hold(world.alice_api, world.a, 300).json()

    assert_problem(world.bob_api.get(f"/api/v1/holds/{hold['id']}"), 404, "not_found")
    assert_problem(
        capture(world.bob_api, hold["id"], destination_wallet_id=str(world.b.id)), 404, "not_found"
    )
    assert_problem(void(world.bob_api, hold["id"]), 404, "not_found")
    assert_problem(capture(world.alice_api, uuid.uuid4()), 404, "not_found")
    assert Hold.objects.get(pk=hold["id"]).status == "pending"
    assert state(world.b) == (500, 0)


# --- void --------------------------------------------------------------------------------


def test_void_releases_the_hold(world):
    hold = create_hold(world.alice_api, world.a, 300).json()

    response = void(world.alice_api, hold["id"])

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["status"], body["captured_amount"], body["capture_transfer_id"]) == ("voided", 0, None)
    assert body["finished_at"] is not None
    assert state(world.a) == (1000, 0)
    assert not Transfer.objects.filter(source_wallet=world.a).exists()
    again = assert_problem(void(world.alice_api, hold["id"]), 409, "hold_not_pending")
    assert again["hold_status"] == "voided"
    assert_problem(capture(world.alice_api, hold["id"]), 409, "hold_not_pending")


def test_void_takes_no_options(world):
    hold = create_hold(world.alice_api, world.a, 300).json()
    response = world.alice_api.post(f"/api/v1/holds/{hold['id']}/void", {"amount": 1}, format="json", **key())
    assert_problem(response, 400, "validation_error")
    assert Hold.objects.get(pk=hold["id"]).status == "pending"


# --- expiry ------------------------------------------------------------------------------


def test_a_lapsed_hold_cannot_be_captured(world, clock):
    hold = create_hold(world.alice_api, world.a, 300, expires_in_seconds=60).json()
    clock.shift(seconds=61)

    body = assert_problem(capture(world.alice_api, hold["id"]), 409, "hold_not_pending")

    assert body["hold_status"] == "expired"
    # Until the expiry task runs, it is still pending and still held.
    assert Hold.objects.get(pk=hold["id"]).status == "pending"
    assert state(world.a) == (1000, 300)


def test_a_lapsed_hold_can_still_be_voided(world, clock):
    hold = create_hold(world.alice_api, world.a, 300, expires_in_seconds=60).json()
    clock.shift(seconds=61)

    response = void(world.alice_api, hold["id"])

    assert response.status_code == 200, response.content
    assert response.json()["status"] == "voided"
    assert state(world.a) == (1000, 0)
    assert hold_services.holds_expire() == 0


def test_expire_holds_command_releases_only_lapsed_holds(world, clock):
    short = create_hold(world.alice_api, world.a, 300, expires_in_seconds=60).json()
    long = create_hold(world.alice_api, world.a, 200, expires_in_seconds=3600).json()
    other = create_hold(world.bob_api, world.b, 50, expires_in_seconds=60).json()
    captured = create_hold(world.alice_api, world.a, 100, expires_in_seconds=60).json()
    capture(world.alice_api, captured["id"])
    clock.shift(seconds=61)

    out = StringIO()
    call_command("expire_holds", "--batch-size", "1", stdout=out)

    assert "Expired 2 holds." in out.getvalue()
    statuses = dict(Hold.objects.values_list("id", "status"))
    assert statuses[uuid.UUID(short["id"])] == "expired"
    assert statuses[uuid.UUID(other["id"])] == "expired"
    assert statuses[uuid.UUID(long["id"])] == "pending"
    assert statuses[uuid.UUID(captured["id"])] == "captured"
    assert state(world.a) == (900, 200)
    assert state(world.b) == (500, 0)
    assert Hold.objects.get(pk=short["id"]).finished_at is not None
    # The expiry is audited with no user as the actor and counted.
    event = AuditEvent.objects.get(action="money.hold_expired", target_id=short["id"])
    assert (event.actor_id, event.actor_label, event.amount, event.currency) == (
        None,
        "hold expiry",
        300,
        "USD",
    )
    # Running it again changes nothing.
    out = StringIO()
    call_command("expire_holds", stdout=out)
    assert "Expired 0 holds." in out.getvalue()
    # An expired hold answers 409 with its final status.
    expired = assert_problem(void(world.alice_api, short["id"]), 409, "hold_not_pending")
    assert expired["hold_status"] == "expired"


def test_expire_holds_command_refuses_a_bad_batch_size():
    with pytest.raises(CommandError, match="batch-size"):
        call_command("expire_holds", "--batch-size", "0")


def test_holds_expire_takes_the_moment_to_expire_at(world):
    hold = hold_services.hold_create(wallet_id=world.a.id, owner_id=world.alice.id, amount=70)

    assert hold_services.holds_expire(now=hold.expires_at - timedelta(seconds=1)) == 0
    assert hold_services.holds_expire(now=hold.expires_at) == 1

    hold.refresh_from_db()
    assert hold.status == "expired"
    assert state(world.a) == (1000, 0)


# --- services ----------------------------------------------------------------------------


def test_services_create_capture_and_void(world):
    first = hold_services.hold_create(
        wallet_id=world.a.id, owner_id=world.alice.id, amount=300, reference="s-1"
    )
    second = hold_services.hold_create(wallet_id=world.a.id, owner_id=world.alice.id, amount=200)
    assert state(world.a) == (1000, 500)

    captured = hold_services.hold_capture(
        hold_id=first.id, owner_id=world.alice.id, amount=250, destination_wallet_id=world.b.id
    )
    voided = hold_services.hold_void(hold_id=second.id, owner_id=world.alice.id)

    assert (captured.status, captured.captured_amount) == ("captured", 250)
    assert voided.status == "voided"
    assert state(world.a) == (750, 0)
    assert state(world.b) == (750, 0)
    with refused(HoldNotPending):
        hold_services.hold_void(hold_id=first.id, owner_id=world.alice.id)
    with refused(InsufficientFunds):
        hold_services.hold_create(wallet_id=world.a.id, owner_id=world.alice.id, amount=751)


def test_a_service_hold_expires_by_default_after_hold_default_seconds(world):
    before = timezone.now()
    with override_settings(HOLD_DEFAULT_SECONDS=90):
        hold = hold_services.hold_create(wallet_id=world.a.id, owner_id=world.alice.id, amount=1)
    assert before + timedelta(seconds=90) <= hold.expires_at <= hold.created_at + timedelta(seconds=90)


# --- list and read -----------------------------------------------------------------------


def test_get_a_hold(world):
    hold = create_hold(world.alice_api, world.a, 300, reference="x").json()

    response = world.alice_api.get(f"/api/v1/holds/{hold['id']}")

    assert response.status_code == 200
    assert response.json() == hold


def test_list_holds_filters_by_wallet_and_status_and_pages_by_cursor(world):
    ids = {}
    for index in range(5):
        ids[index] = create_hold(world.alice_api, world.a, 10 + index).json()["id"]
    on_a2 = None
    world.alice_api.post(f"/api/v1/wallets/{world.a2.id}/deposits", {"amount": 50}, format="json", **key())
    on_a2 = create_hold(world.alice_api, world.a2, 5).json()["id"]
    create_hold(world.bob_api, world.b, 7)  # bob's: never listed for alice
    void(world.alice_api, ids[0])
    capture(world.alice_api, ids[1])

    everything = world.alice_api.get("/api/v1/holds").json()
    assert {h["id"] for h in everything["results"]} == {*ids.values(), on_a2}

    pending = world.alice_api.get(f"/api/v1/holds?wallet={world.a.id}&status=pending").json()
    assert [h["id"] for h in pending["results"]] == [ids[4], ids[3], ids[2]]  # newest first
    voided = world.alice_api.get("/api/v1/holds?status=voided").json()
    assert [h["id"] for h in voided["results"]] == [ids[0]]
    captured = world.alice_api.get("/api/v1/holds?status=captured").json()
    assert [h["id"] for h in captured["results"]] == [ids[1]]

    seen, url = [], f"/api/v1/holds?wallet={world.a.id}&limit=2"
    while url:
        page = world.alice_api.get(url).json()
        assert len(page["results"]) <= 2
        seen += [h["id"] for h in page["results"]]
        url = page["next"]
    assert seen == [ids[i] for i in (4, 3, 2, 1, 0)]


def test_list_holds_of_another_users_wallet_is_404_and_a_bad_status_is_400(world):
    assert_problem(world.alice_api.get(f"/api/v1/holds?wallet={world.b.id}"), 404, "not_found")
    assert_problem(world.alice_api.get("/api/v1/holds?status=lost"), 400, "validation_error")


# --- audit and metrics -------------------------------------------------------------------


def test_hold_changes_are_audited_in_their_transaction(world):
    hold = create_hold(world.alice_api, world.a, 300, reference="aud").json()
    captured = capture(world.alice_api, hold["id"], amount=200, destination_wallet_id=str(world.b.id)).json()
    other = create_hold(world.alice_api, world.a, 100).json()
    void(world.alice_api, other["id"])
    assert_problem(create_hold(world.alice_api, world.a, 10_000), 422, "insufficient_funds")

    created = AuditEvent.objects.get(action="money.hold_created", target_id=hold["id"])
    assert (created.actor_id, created.amount, created.currency, created.target_type) == (
        world.alice.id,
        300,
        "USD",
        "hold",
    )
    assert created.details["reference"] == "aud"
    assert "expires_at" in created.details
    capture_event = AuditEvent.objects.get(action="money.hold_captured", target_id=hold["id"])
    assert capture_event.amount == 200
    assert capture_event.details == {
        "transfer_id": captured["capture_transfer_id"],
        "held": "300",
        "released": "100",
    }
    transfer_event = AuditEvent.objects.get(
        action="money.transfer", target_id=captured["capture_transfer_id"]
    )
    assert transfer_event.details["hold_id"] == hold["id"]
    assert AuditEvent.objects.filter(action="money.hold_voided", target_id=other["id"]).count() == 1
    refused = AuditEvent.objects.get(action="money.failed", outcome="insufficient_funds")
    assert refused.details["kind"] == "hold"


@pytest.mark.django_db(transaction=True)
def test_hold_metrics_count_each_change_and_refusal(make_user, make_wallet, api_client, clock):
    alice = make_user()
    wallet = make_wallet(alice, "USD", balance=1000)
    client = api_client(alice)
    before = {
        (action, outcome): hold_events(action, outcome)
        for action, outcome in [
            ("created", "completed"),
            ("captured", "completed"),
            ("voided", "completed"),
            ("expired", "completed"),
            ("created", "insufficient_funds"),
            ("captured", "hold_not_pending"),
        ]
    }

    first = create_hold(client, wallet, 100).json()
    second = create_hold(client, wallet, 100).json()
    third = create_hold(client, wallet, 100, expires_in_seconds=60).json()
    create_hold(client, wallet, 10_000)
    capture(client, first["id"])
    void(client, second["id"])
    capture(client, second["id"])
    clock.shift(seconds=61)
    assert hold_services.holds_expire() == 1

    after = {labels: hold_events(*labels) for labels in before}
    assert {labels: after[labels] - before[labels] for labels in before} == {
        ("created", "completed"): 3,
        ("captured", "completed"): 1,
        ("voided", "completed"): 1,
        ("expired", "completed"): 1,
        ("created", "insufficient_funds"): 1,
        ("captured", "hold_not_pending"): 1,
    }
    assert Hold.objects.get(pk=third["id"]).status == "expired"


# --- the ledger stays whole ----------------------------------------------------------------


def test_after_every_kind_of_end_held_is_the_sum_of_pending_holds(world, clock):
    client = world.alice_api
    holds = [create_hold(client, world.a, 100, expires_in_seconds=60 + i * 1000).json() for i in range(4)]
    capture(client, holds[0]["id"], amount=30)
    void(client, holds[1]["id"])
    clock.shift(seconds=61)
    hold_services.holds_expire()

    wallet = Wallet.objects.get(pk=world.a.pk)
    assert wallet.held == pending_sum(world.a) == 200
    assert wallet.balance == 970
    entries = list(
        LedgerEntry.objects.filter(wallet=world.a).order_by("id").values_list("balance_after", flat=True)
    )
    assert entries[-1] == 970


def test_utc_expiry_is_rendered_with_an_offset(world):
    body = create_hold(world.alice_api, world.a, 1, expires_at="2099-01-01T00:00:00+02:00")
    # Past HOLD_MAX_SECONDS: refused; a near one round-trips as the same instant.
    assert body.status_code == 400
    when = datetime.now(UTC) + timedelta(hours=5)
    body = create_hold(world.alice_api, world.a, 1, expires_at=when.isoformat()).json()
    assert parse(body["expires_at"]) == when


# --- PostgreSQL enforces the holds' rules (raw SQL, real commits) --------------------------


def sql(statement: str, params: list | tuple = ()) -> list[tuple] | None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchall() if cursor.description else None


def holds_snapshot() -> tuple:
    return (
        list(Wallet.objects.order_by("id").values_list("id", "balance", "held")),
        list(Hold.objects.order_by("id").values_list("id", "status", "amount", "captured_amount")),
        Transfer.objects.count(),
    )


@contextmanager
def rejected(match: str) -> Iterator[None]:
    """The block's raw writes, committed as one transaction, are refused for `match`; nothing changes."""
    before = holds_snapshot()
    with pytest.raises(IntegrityError, match=match), transaction.atomic():
        yield
    assert holds_snapshot() == before


@pytest.fixture
def held_wallet(make_user, make_wallet):
    """A USD wallet with balance 1000 and one pending hold of 300 (made by the service)."""
    owner = make_user()
    wallet = make_wallet(owner, "USD", balance=1000)
    hold = hold_services.hold_create(wallet_id=wallet.id, owner_id=owner.id, amount=300)
    return SimpleNamespace(owner=owner, wallet=wallet, hold=hold)


def insert_pending_hold(wallet: Wallet, amount: int) -> uuid.UUID:
    hold_id = uuid.uuid4()
    sql(
        "INSERT INTO transfers_hold (id, wallet_id, amount, captured_amount, currency, status, expires_at,"
        " reference, description, created_by_id, capture_transfer_id, created_at, finished_at)"
        " VALUES (%s, %s, %s, 0, 'USD', 'pending', now() + interval '1 hour', NULL, '', %s, NULL, now(),"
        " NULL)",
        [hold_id, wallet.id, amount, wallet.owner_id],
    )
    return hold_id


@pytest.mark.django_db(transaction=True)
def test_a_raw_hold_that_updates_held_commits(held_wallet):
    # Positive control for the raw writes below: a well-formed pending hold is accepted.
    with transaction.atomic():
        insert_pending_hold(held_wallet.wallet, 100)
        sql("UPDATE wallets_wallet SET held = held + 100 WHERE id = %s", [held_wallet.wallet.id])
    assert state(held_wallet.wallet) == (1000, 400)
    assert pending_sum(held_wallet.wallet) == 400


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE wallets_wallet SET held = -1 WHERE id = %s",
        "UPDATE wallets_wallet SET held = balance + 1 WHERE id = %s",
    ],
    ids=["negative", "above-balance"],
)
def test_held_stays_between_zero_and_the_balance(held_wallet, statement):
    with rejected("wallet_balance_held_valid"):
        sql(statement, [held_wallet.wallet.id])


@pytest.mark.django_db(transaction=True)
def test_the_balance_cannot_drop_below_held(held_wallet):
    # available >= 0: a withdrawal written by hand that spends held money is refused.
    with rejected("wallet_balance_held_valid"):
        sql("UPDATE wallets_wallet SET balance = 299 WHERE id = %s", [held_wallet.wallet.id])


@pytest.mark.django_db(transaction=True)
def test_held_must_be_the_sum_of_pending_holds(held_wallet):
    with rejected("holds 301 but its pending holds add up to 300"):
        sql("UPDATE wallets_wallet SET held = 301 WHERE id = %s", [held_wallet.wallet.id])
    with rejected("holds 300 but its pending holds add up to 400"):
        insert_pending_hold(held_wallet.wallet, 100)
    with rejected("holds 300 but its pending holds add up to 0"):
        sql(
            "UPDATE transfers_hold SET status = 'voided', finished_at = now() WHERE id = %s",
            [held_wallet.hold.id],
        )


@pytest.mark.django_db(transaction=True)
def test_a_capture_cannot_record_more_than_the_hold(held_wallet):
    transfer = hold_services.hold_capture(
        hold_id=held_wallet.hold.id, owner_id=held_wallet.owner.id, amount=100
    )
    second = hold_services.hold_create(
        wallet_id=held_wallet.wallet.id, owner_id=held_wallet.owner.id, amount=50
    )
    assert transfer.capture_transfer_id is not None

    with rejected("hold_status_fields_valid"):
        sql(
            "UPDATE transfers_hold SET status = 'captured', captured_amount = 51, capture_transfer_id = %s,"
            " finished_at = now() WHERE id = %s",
            [uuid.uuid4(), second.id],
        )


@pytest.mark.django_db(transaction=True)
def test_a_captured_hold_must_match_its_transfer(held_wallet):
    # The hold says it captured 300 through a deposit into another wallet: refused at commit.
    deposit = ledger.deposit_create(wallet_id=held_wallet.wallet.id, owner_id=held_wallet.owner.id, amount=5)
    with rejected("does not move that out of its wallet"):
        sql(
            "UPDATE transfers_hold SET status = 'captured', captured_amount = 300, capture_transfer_id = %s,"
            " finished_at = now() WHERE id = %s",
            [deposit.id, held_wallet.hold.id],
        )
        sql("UPDATE wallets_wallet SET held = 0 WHERE id = %s", [held_wallet.wallet.id])


@pytest.mark.django_db(transaction=True)
def test_a_hold_changes_once_and_only_in_what_its_end_records(held_wallet):
    with rejected("only its status and what capturing it records may change"):
        sql("UPDATE transfers_hold SET amount = 1 WHERE id = %s", [held_wallet.hold.id])
        sql("UPDATE wallets_wallet SET held = 1 WHERE id = %s", [held_wallet.wallet.id])
    with rejected("holds are never deleted"):
        sql("DELETE FROM transfers_hold WHERE id = %s", [held_wallet.hold.id])

    hold_services.hold_void(hold_id=held_wallet.hold.id, owner_id=held_wallet.owner.id)
    with rejected("it changes no more"):
        sql("UPDATE transfers_hold SET status = 'expired' WHERE id = %s", [held_wallet.hold.id])
    with rejected("it changes no more"):
        sql(
            "UPDATE transfers_hold SET status = 'pending', finished_at = NULL WHERE id = %s",
            [held_wallet.hold.id],
        )


@pytest.mark.django_db(transaction=True)
def test_a_hold_must_be_on_a_user_wallet_of_its_currency(held_wallet, make_wallet):
    eur = make_wallet(held_wallet.owner, "EUR", balance=500)
    with rejected("must be on a user wallet of its currency"):
        insert_pending_hold(eur, 100)  # a USD hold on a EUR wallet
        sql("UPDATE wallets_wallet SET held = 100 WHERE id = %s", [eur.id])


def test_a_wallet_under_review_cannot_capture_or_hold_but_can_void(world):
    hold = create_hold(world.alice_api, world.a, 300).json()
    Wallet.objects.filter(pk=world.a.pk).update(status="under_review")

    assert_problem(capture(world.alice_api, hold["id"]), 409, "wallet_under_review")
    assert_problem(create_hold(world.alice_api, world.a, 10), 409, "wallet_under_review")
    assert void(world.alice_api, hold["id"]).status_code == 200
    assert state(world.a) == (1000, 0)


def test_a_capture_to_a_frozen_wallet_is_refused(world):
    hold = create_hold(world.alice_api, world.a, 300).json()
    Wallet.objects.filter(pk=world.b.pk).update(status="frozen")

    body = assert_problem(
        capture(world.alice_api, hold["id"], destination_wallet_id=str(world.b.id)), 409, "wallet_not_active"
    )

    assert body["wallet_id"] == str(world.b.id)
    assert Hold.objects.get(pk=hold["id"]).status == "pending"


def test_the_same_void_key_replays_the_void(world):
    hold = create_hold(world.alice_api, world.a, 300).json()

    first = void(world.alice_api, hold["id"], "void-1")
    again = void(world.alice_api, hold["id"], "void-1")
    elsewhere = void(world.alice_api, create_hold(world.alice_api, world.a, 5).json()["id"], "void-1")

    assert (first.status_code, again.status_code) == (200, 200)
    assert again["Idempotent-Replayed"] == "true"
    assert again.content == first.content
    assert_problem(elsewhere, 422, "idempotency_key_reused")  # the same key for another hold's void
    assert AuditEvent.objects.filter(action="money.hold_voided").count() == 1
    assert state(world.a) == (1000, 5)
