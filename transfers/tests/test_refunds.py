"""Refunds through the HTTP API and the services: full, partial, several, refused, listed."""

from __future__ import annotations

import uuid
from types import SimpleNamespace

import pytest
from django.db import IntegrityError, connection, transaction
from prometheus_client import REGISTRY

from audit.models import AuditEvent
from conftest import assert_problem
from transfers import holds as hold_services
from transfers import services as ledger
from transfers.errors import RefundExceedsTransfer, TransferNotFound, TransferNotRefundable
from transfers.models import LedgerEntry, Transfer
from transfers.tests.movements import refused
from wallets.models import Wallet

pytestmark = pytest.mark.django_db


def key(value: str | None = None) -> dict[str, str]:
    return {"HTTP_IDEMPOTENCY_KEY": value or str(uuid.uuid4())}


def refund(client, transfer_id, idempotency_key: str | None = None, **body):
    return client.post(
        f"/api/v1/transfers/{transfer_id}/refunds", body, format="json", **key(idempotency_key)
    )


def balance(wallet: Wallet) -> int:
    wallet.refresh_from_db()
    return wallet.balance


@pytest.fixture
def world(make_user, make_wallet, api_client):
    """alice paid bob 400 (a: 1000 -> 600, b: 0 -> 400); carol is nobody in it."""
    alice, bob, carol = make_user("alice"), make_user("bob"), make_user("carol")
    a = make_wallet(alice, "USD", balance=1000)
    b = make_wallet(bob, "USD")
    paid = ledger.transfer_create(
        source_wallet_id=a.id, destination_wallet_id=b.id, initiated_by_id=alice.id, amount=400
    )
    a.refresh_from_db()
    b.refresh_from_db()
    return SimpleNamespace(
        alice=alice,
        bob=bob,
        carol=carol,
        a=a,
        b=b,
        paid=paid,
        alice_api=api_client(alice),
        bob_api=api_client(bob),
        carol_api=api_client(carol),
    )


def test_a_full_refund_returns_everything_to_the_sender(world):
    response = refund(world.bob_api, world.paid.id, reason="order cancelled", reference="rf-1")

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["kind"], body["amount"], body["currency"], body["status"]) == (
        "refund",
        400,
        "USD",
        "completed",
    )
    assert body["source_wallet_id"] == str(world.b.id)
    assert body["destination_wallet_id"] == str(world.a.id)
    assert (body["refund_of"], body["description"], body["reference"]) == (
        str(world.paid.id),
        "order cancelled",
        "rf-1",
    )
    assert body["refunded_amount"] == 0
    assert (balance(world.a), balance(world.b)) == (1000, 0)
    legs = sorted(LedgerEntry.objects.filter(transfer_id=body["id"]).values_list("type", "amount"))
    assert legs == [("refund_in", 400), ("refund_out", -400)]

    original = world.alice_api.get(f"/api/v1/transfers/{world.paid.id}").json()
    assert original["refunded_amount"] == 400
    assert original["refund_of"] is None


def test_partial_refunds_add_up_to_the_transfer_and_no_further(world):
    assert refund(world.bob_api, world.paid.id, amount=150).status_code == 201
    assert refund(world.bob_api, world.paid.id, amount=200).status_code == 201

    too_much = assert_problem(refund(world.bob_api, world.paid.id, amount=51), 422, "refund_exceeds_transfer")
    assert too_much["refundable"] == 50

    rest = refund(world.bob_api, world.paid.id)  # no amount: all that is left
    assert rest.status_code == 201
    assert rest.json()["amount"] == 50

    nothing_left = assert_problem(refund(world.bob_api, world.paid.id), 422, "refund_exceeds_transfer")
    assert nothing_left["refundable"] == 0
    assert (balance(world.a), balance(world.b)) == (1000, 0)
    assert world.bob_api.get(f"/api/v1/transfers/{world.paid.id}").json()["refunded_amount"] == 400


def test_the_refunds_of_a_transfer_are_listed_for_both_parties(world):
    first = refund(world.bob_api, world.paid.id, amount=100).json()
    second = refund(world.bob_api, world.paid.id, amount=30).json()

    for client in (world.alice_api, world.bob_api):
        response = client.get(f"/api/v1/transfers/{world.paid.id}/refunds")
        assert response.status_code == 200
        assert [r["id"] for r in response.json()] == [second["id"], first["id"]]
        assert {r["refund_of"] for r in response.json()} == {str(world.paid.id)}
    assert_problem(world.carol_api.get(f"/api/v1/transfers/{world.paid.id}/refunds"), 404, "not_found")
    # A refund is listed among the transfers too, with its kind.
    kinds = {t["id"]: t["kind"] for t in world.alice_api.get("/api/v1/transfers").json()["results"]}
    assert kinds[first["id"]] == "refund"


def test_a_recipient_who_spent_the_money_cannot_refund_it(world, make_user, make_wallet):
    elsewhere = make_wallet(make_user(), "USD")
    ledger.transfer_create(
        source_wallet_id=world.b.id,
        destination_wallet_id=elsewhere.id,
        initiated_by_id=world.bob.id,
        amount=350,
    )

    body = assert_problem(refund(world.bob_api, world.paid.id, amount=51), 422, "insufficient_funds")

    assert body["available"] == 50
    assert refund(world.bob_api, world.paid.id, amount=50).status_code == 201
    assert (balance(world.a), balance(world.b)) == (650, 0)


def test_held_money_cannot_pay_a_refund(world):
    hold_services.hold_create(wallet_id=world.b.id, owner_id=world.bob.id, amount=300)

    assert_problem(refund(world.bob_api, world.paid.id, amount=101), 422, "insufficient_funds")
    assert refund(world.bob_api, world.paid.id, amount=100).status_code == 201


def test_only_the_recipient_refunds(world):
    # The sender sees the transfer but did not receive it; a stranger does not see it at all.
    assert_problem(refund(world.alice_api, world.paid.id, amount=10), 404, "not_found")
    assert_problem(refund(world.carol_api, world.paid.id, amount=10), 404, "not_found")
    assert_problem(refund(world.bob_api, uuid.uuid4(), amount=10), 404, "not_found")
    assert (balance(world.a), balance(world.b)) == (600, 400)
    assert not Transfer.objects.filter(kind="refund").exists()


def test_deposits_withdrawals_and_refunds_are_not_refundable(world):
    deposit = ledger.deposit_create(wallet_id=world.b.id, owner_id=world.bob.id, amount=10)
    withdrawal = ledger.withdrawal_create(wallet_id=world.b.id, owner_id=world.bob.id, amount=10)
    first = refund(world.bob_api, world.paid.id, amount=100).json()

    assert_problem(refund(world.bob_api, deposit.id, amount=1), 422, "transfer_not_refundable")
    # A withdrawal's destination is the system wallet: nobody's, so not found for bob.
    assert_problem(refund(world.bob_api, withdrawal.id, amount=1), 404, "not_found")
    # The refund reached alice: she cannot refund the refund.
    assert_problem(refund(world.alice_api, first["id"], amount=1), 422, "transfer_not_refundable")
    assert (balance(world.a), balance(world.b)) == (700, 300)


def test_a_refund_to_a_frozen_sender_is_refused(world):
    Wallet.objects.filter(pk=world.a.pk).update(status="frozen")
    assert_problem(refund(world.bob_api, world.paid.id, amount=10), 409, "wallet_not_active")


def test_a_refunded_capture_goes_back_to_the_holds_wallet(world):
    hold = hold_services.hold_create(wallet_id=world.a.id, owner_id=world.alice.id, amount=300)
    captured = hold_services.hold_capture(
        hold_id=hold.id, owner_id=world.alice.id, amount=200, destination_wallet_id=world.b.id
    )

    response = refund(world.bob_api, captured.capture_transfer_id, amount=150)

    assert response.status_code == 201, response.content
    assert (balance(world.a), balance(world.b)) == (550, 450)


def test_the_same_key_replays_the_refund(world):
    first = refund(world.bob_api, world.paid.id, "rf-key", amount=100)
    again = refund(world.bob_api, world.paid.id, "rf-key", amount=100)
    other = refund(world.bob_api, world.paid.id, "rf-key", amount=101)

    assert (first.status_code, again.status_code) == (201, 201)
    assert again["Idempotent-Replayed"] == "true"
    assert again.content == first.content
    assert_problem(other, 422, "idempotency_key_reused")
    assert Transfer.objects.filter(kind="refund").count() == 1
    assert balance(world.a) == 700


def test_a_refund_reference_is_unique_on_the_refunders_wallet(world):
    first = refund(world.bob_api, world.paid.id, amount=10, reference="rf-9").json()
    body = assert_problem(
        refund(world.bob_api, world.paid.id, amount=10, reference="rf-9"), 409, "duplicate_reference"
    )
    assert body["original_transfer_id"] == first["id"]


def test_refunds_are_audited_and_counted(world):
    labels = {"kind": "refund", "currency": "USD", "outcome": "completed"}
    before = REGISTRY.get_sample_value("wallet_money_movements_total", labels) or 0.0
    with_callbacks = refund(world.bob_api, world.paid.id, amount=25).json()

    event = AuditEvent.objects.get(action="money.refund", target_id=with_callbacks["id"])
    assert (event.actor_id, event.amount, event.currency) == (world.bob.id, 25, "USD")
    assert event.details["refund_of"] == str(world.paid.id)
    assert_problem(refund(world.bob_api, world.paid.id, amount=1000), 422, "refund_exceeds_transfer")
    failed = AuditEvent.objects.get(action="money.failed", outcome="refund_exceeds_transfer")
    assert failed.details["refund_of"] == str(world.paid.id)
    # Completed movements are counted on commit: this test's transaction never commits.
    assert (REGISTRY.get_sample_value("wallet_money_movements_total", labels) or 0.0) == before


def test_refunds_do_not_count_against_the_refunders_limits(world):
    Wallet.objects.filter(pk=world.b.pk).update(max_outgoing_amount=10, max_outgoing_per_day=10)

    assert refund(world.bob_api, world.paid.id, amount=300).status_code == 201

    world.b.refresh_from_db()
    assert world.b.outgoing_today == 0


# --- services ------------------------------------------------------------------------------


def test_refund_create_service(world):
    full = ledger.refund_create(transfer_id=world.paid.id, owner_id=world.bob.id, amount=100, reason="r")
    assert (full.kind, full.refund_of_id, full.amount) == ("refund", world.paid.id, 100)
    rest = ledger.refund_create(transfer_id=str(world.paid.id), owner_id=world.bob.id)
    assert rest.amount == 300

    with refused(RefundExceedsTransfer):
        ledger.refund_create(transfer_id=world.paid.id, owner_id=world.bob.id, amount=1)
    with refused(TransferNotFound):
        ledger.refund_create(transfer_id=world.paid.id, owner_id=world.alice.id, amount=1)
    with refused(TransferNotRefundable):
        ledger.refund_create(transfer_id=full.id, owner_id=world.alice.id, amount=1)


# --- PostgreSQL enforces the refunds' rules --------------------------------------------------


def raw_refund(original: Transfer, amount: int, *, backwards: bool = True) -> None:
    """A refund written by hand (two legs and both balances), bypassing the service."""
    source, destination = (
        (original.destination_wallet_id, original.source_wallet_id)
        if backwards
        else (original.source_wallet_id, original.destination_wallet_id)
    )
    refund_id = uuid.uuid4()
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO transfers_transfer (id, kind, source_wallet_id, destination_wallet_id, amount,"
            " currency, status, reference, reference_wallet_id, description, initiated_by_id, refund_of_id,"
            " created_at)"
            " VALUES (%s, 'refund', %s, %s, %s, 'USD', 'completed', NULL, %s, '', NULL, %s, now())",
            [refund_id, source, destination, amount, source, original.id],
        )
        for wallet_id, leg_type, leg in ((source, "refund_out", -amount), (destination, "refund_in", amount)):
            cursor.execute(
                "UPDATE wallets_wallet SET balance = balance + %s WHERE id = %s RETURNING balance",
                [leg, wallet_id],
            )
            (after,) = cursor.fetchone()
            cursor.execute(
                "INSERT INTO transfers_ledgerentry (transfer_id, wallet_id, type, amount, balance_after,"
                " created_at) VALUES (%s, %s, %s, %s, %s, now())",
                [refund_id, wallet_id, leg_type, leg, after],
            )


@pytest.mark.django_db(transaction=True)
def test_postgresql_refuses_refunds_beyond_the_transfer(world):
    ledger.refund_create(transfer_id=world.paid.id, owner_id=world.bob.id, amount=300)
    ledger.deposit_create(wallet_id=world.b.id, owner_id=world.bob.id, amount=1000)
    with transaction.atomic():  # positive control: the rest is accepted...
        raw_refund(world.paid, 50)
    with pytest.raises(IntegrityError, match="add up to 450, more than its 400"), transaction.atomic():
        raw_refund(world.paid, 100)  # ...more is not
    assert (balance(world.a), balance(world.b)) == (950, 1050)


@pytest.mark.django_db(transaction=True)
def test_postgresql_refuses_a_refund_that_does_not_go_back(world):
    ledger.deposit_create(wallet_id=world.b.id, owner_id=world.bob.id, amount=0 + 1)
    with pytest.raises(IntegrityError, match="does not return transfer"), transaction.atomic():
        raw_refund(world.paid, 10, backwards=False)
    assert (balance(world.a), balance(world.b)) == (600, 401)


def test_refunds_show_in_both_wallets_histories_and_in_the_transfer_list(world):
    made = refund(world.bob_api, world.paid.id, amount=120).json()

    bob_history = world.bob_api.get(f"/api/v1/wallets/{world.b.id}/transactions?type=refund_out").json()
    assert [(e["transfer_id"], e["amount"], e["balance_after"]) for e in bob_history["results"]] == [
        (made["id"], -120, 280)
    ]
    alice_history = world.alice_api.get(f"/api/v1/wallets/{world.a.id}/transactions?type=refund_in").json()
    assert [(e["transfer_id"], e["amount"], e["balance_after"]) for e in alice_history["results"]] == [
        (made["id"], 120, 720)
    ]
    listed = world.alice_api.get(f"/api/v1/transfers?wallet={world.a.id}").json()["results"]
    by_id = {t["id"]: t for t in listed}
    assert by_id[str(world.paid.id)]["refunded_amount"] == 120
    assert (by_id[made["id"]]["kind"], by_id[made["id"]]["refund_of"]) == ("refund", str(world.paid.id))
