"""Operators' limits on a wallet's outgoing money: one movement and one UTC day.

Transfers, withdrawals and captures count; deposits, refunds and adjustments do not. The
day is moved with `clock` (the money path's clock: transfers.services and
transfers.holds read `timezone.now()` through their module attribute).
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.utils import timezone

from conftest import assert_problem
from foundation.clock import utc_today
from transfers import holds as hold_services
from transfers import services as ledger
from transfers.errors import LimitExceeded
from transfers.tests.movements import refused
from wallets.models import Wallet

pytestmark = pytest.mark.django_db


class Clock:
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


def key() -> dict[str, str]:
    return {"HTTP_IDEMPOTENCY_KEY": str(uuid.uuid4())}


def limit(wallet: Wallet, *, per_movement: int | None = None, per_day: int | None = None) -> None:
    """What an operator sets in the admin."""
    Wallet.objects.filter(pk=wallet.pk).update(max_outgoing_amount=per_movement, max_outgoing_per_day=per_day)


@pytest.fixture
def world(make_user, make_wallet, api_client):
    alice, bob = make_user("alice"), make_user("bob")
    a = make_wallet(alice, "USD", balance=10_000)
    b = make_wallet(bob, "USD", balance=1_000)
    return SimpleNamespace(
        alice=alice, bob=bob, a=a, b=b, alice_api=api_client(alice), bob_api=api_client(bob)
    )


def send(world, amount: int):
    return world.alice_api.post(
        "/api/v1/transfers",
        {"source_wallet_id": str(world.a.id), "destination_wallet_id": str(world.b.id), "amount": amount},
        format="json",
        **key(),
    )


def withdraw(world, amount: int):
    return world.alice_api.post(
        f"/api/v1/wallets/{world.a.id}/withdrawals", {"amount": amount}, format="json", **key()
    )


def hold(world, amount: int):
    return world.alice_api.post(
        f"/api/v1/wallets/{world.a.id}/holds", {"amount": amount}, format="json", **key()
    )


def capture(world, hold_id, **body):
    return world.alice_api.post(f"/api/v1/holds/{hold_id}/capture", body, format="json", **key())


def limits_shown(world) -> dict:
    return world.alice_api.get(f"/api/v1/wallets/{world.a.id}").json()["limits"]


def test_a_wallet_without_limits_shows_none(world):
    assert limits_shown(world) == {
        "max_outgoing_amount": None,
        "max_outgoing_per_day": None,
        "outgoing_today": 0,
        "remaining_today": None,
    }
    assert send(world, 9_000).status_code == 201


@pytest.mark.parametrize("move", [send, withdraw, hold], ids=["transfer", "withdrawal", "hold"])
def test_the_per_movement_limit_refuses_a_larger_movement(world, move):
    limit(world.a, per_movement=500)

    body = assert_problem(move(world, 501), 422, "limit_exceeded")

    assert (body["limit"], body["max"], body["remaining"]) == ("per_movement", 500, 500)
    assert move(world, 500).status_code == 201
    world.a.refresh_from_db()
    assert world.a.available == 9_500


def test_the_daily_limit_counts_transfers_withdrawals_and_captures(world):
    limit(world.a, per_day=1_000)
    assert send(world, 300).status_code == 201
    assert withdraw(world, 200).status_code == 201
    held = hold(world, 400).json()
    # A hold is checked against the limits but not counted until it is captured.
    assert limits_shown(world) == {
        "max_outgoing_amount": None,
        "max_outgoing_per_day": 1_000,
        "outgoing_today": 500,
        "remaining_today": 500,
    }
    assert capture(world, held["id"], amount=350).status_code == 200
    assert limits_shown(world)["outgoing_today"] == 850

    body = assert_problem(send(world, 151), 422, "limit_exceeded")
    assert (body["limit"], body["max"], body["remaining"]) == ("per_day", 1_000, 150)
    assert_problem(withdraw(world, 151), 422, "limit_exceeded")
    assert send(world, 150).status_code == 201
    assert limits_shown(world)["remaining_today"] == 0
    assert_problem(withdraw(world, 1), 422, "limit_exceeded")
    world.a.refresh_from_db()
    assert (world.a.balance, world.a.outgoing_today, world.a.outgoing_day) == (9_000, 1_000, utc_today())


def test_a_hold_must_fit_what_is_left_of_the_day(world):
    limit(world.a, per_day=1_000)
    send(world, 800)

    body = assert_problem(hold(world, 201), 422, "limit_exceeded")

    assert (body["limit"], body["remaining"]) == ("per_day", 200)
    assert hold(world, 200).status_code == 201


def test_a_capture_is_refused_once_the_day_is_spent(world):
    limit(world.a, per_day=1_000)
    held = hold(world, 600).json()
    send(world, 500)

    body = assert_problem(capture(world, held["id"]), 422, "limit_exceeded")

    assert body["remaining"] == 500
    assert capture(world, held["id"], amount=500).status_code == 200


def test_the_per_movement_limit_says_when_nothing_is_left_today(world):
    # Both limits: the day is spent, so even a movement within the single-movement
    # maximum may not leave. `remaining` is what may leave in one movement now: 0.
    limit(world.a, per_movement=500, per_day=600)
    assert send(world, 500).status_code == 201
    assert send(world, 100).status_code == 201

    body = assert_problem(send(world, 501), 422, "limit_exceeded")

    assert (body["limit"], body["max"], body["remaining"]) == ("per_movement", 500, 0)
    body = assert_problem(send(world, 50), 422, "limit_exceeded")
    assert (body["limit"], body["remaining"]) == ("per_day", 0)


def test_the_per_movement_remaining_is_what_is_left_today_when_that_is_less(world):
    limit(world.a, per_movement=500, per_day=700)
    send(world, 400)

    body = assert_problem(send(world, 501), 422, "limit_exceeded")

    assert (body["limit"], body["max"], body["remaining"]) == ("per_movement", 500, 300)


def test_deposits_refunds_and_adjustments_do_not_count(world, make_user):
    limit(world.a, per_movement=100, per_day=100)
    paid = ledger.transfer_create(
        source_wallet_id=world.b.id,
        destination_wallet_id=world.a.id,
        initiated_by_id=world.bob.id,
        amount=500,
    )

    deposit = world.alice_api.post(
        f"/api/v1/wallets/{world.a.id}/deposits", {"amount": 5_000}, format="json", **key()
    )
    assert deposit.status_code == 201
    refund = world.alice_api.post(
        f"/api/v1/transfers/{paid.id}/refunds", {"amount": 400}, format="json", **key()
    )
    assert refund.status_code == 201, refund.content
    operator = make_user("operator")
    ledger.adjustment_post(wallet_id=world.a.id, amount=-300, operator_id=operator.id, reason="correction")

    world.a.refresh_from_db()
    assert world.a.outgoing_today == 0
    assert limits_shown(world)["remaining_today"] == 100


def test_the_daily_total_starts_again_on_the_next_utc_day(world, clock):
    limit(world.a, per_day=1_000)
    assert send(world, 1_000).status_code == 201
    assert_problem(send(world, 1), 422, "limit_exceeded")
    spent_on = Wallet.objects.get(pk=world.a.pk).outgoing_day

    clock.shift(days=1)

    assert send(world, 700).status_code == 201
    world.a.refresh_from_db()
    assert (world.a.outgoing_day, world.a.outgoing_today) == (spent_on + timedelta(days=1), 700)
    assert_problem(send(world, 301), 422, "limit_exceeded")


def test_get_wallet_shows_yesterdays_total_as_nothing(world):
    limit(world.a, per_movement=800, per_day=1_000)
    send(world, 600)
    assert limits_shown(world) == {
        "max_outgoing_amount": 800,
        "max_outgoing_per_day": 1_000,
        "outgoing_today": 600,
        "remaining_today": 400,
    }

    Wallet.objects.filter(pk=world.a.pk).update(outgoing_day=utc_today() - timedelta(days=1))

    assert limits_shown(world)["outgoing_today"] == 0
    assert limits_shown(world)["remaining_today"] == 1_000
    assert send(world, 800).status_code == 201
    assert limits_shown(world)["outgoing_today"] == 800


def test_limits_in_the_services(world):
    limit(world.a, per_movement=100)
    with refused(LimitExceeded):
        ledger.withdrawal_create(wallet_id=world.a.id, owner_id=world.alice.id, amount=101)
    with refused(LimitExceeded):
        hold_services.hold_create(wallet_id=world.a.id, owner_id=world.alice.id, amount=101)
    ledger.withdrawal_create(wallet_id=world.a.id, owner_id=world.alice.id, amount=100)


def test_a_capture_is_held_to_a_per_movement_limit_set_after_the_hold(world):
    held = hold(world, 600).json()
    limit(world.a, per_movement=400)

    body = assert_problem(capture(world, held["id"]), 422, "limit_exceeded")

    assert (body["limit"], body["max"], body["remaining"]) == ("per_movement", 400, 400)
    assert capture(world, held["id"], amount=400).status_code == 200
    world.a.refresh_from_db()
    assert (world.a.balance, world.a.held) == (9_600, 0)
