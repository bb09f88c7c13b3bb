"""Holds, refunds and limits under real concurrency.

Every request runs in its own thread with its own PostgreSQL connection, through the
whole HTTP stack, released together by a barrier (testing.threads); `transaction=True`
makes each one really commit, so the deferred triggers of transfers.0003 and 0007 fire.
The assertions are on the final state of the database, never on timings.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from datetime import timedelta
from functools import partial
from typing import Any

import pytest
from django.db.models import Sum
from rest_framework.test import APIClient

from conftest import client_for
from testing.threads import held_in_transaction, run_concurrently
from transfers import holds as hold_services
from transfers import services as ledger
from transfers.models import Hold, LedgerEntry, Transfer
from users.models import User
from wallets.models import Wallet

pytestmark = pytest.mark.django_db(transaction=True)


def client_of(user: User) -> APIClient:
    client = client_for(user)
    client.raise_request_exception = False  # Threads collects a server error's traceback instead
    return client


def post(client: APIClient, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    response = client.post(path, body, format="json", HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()))
    return response.status_code, json.loads(response.content)


def outcomes(replies: list[tuple[int, dict[str, Any]]]) -> Counter:
    return Counter(status if status < 400 else body["code"] for status, body in replies)


def assert_wallets_whole() -> None:
    """Every user wallet's balance is its ledger's and its `held` its pending holds' sum."""
    for wallet in Wallet.objects.filter(kind="user"):
        entries = LedgerEntry.objects.filter(wallet=wallet).aggregate(total=Sum("amount"))["total"] or 0
        pending = (
            Hold.objects.filter(wallet=wallet, status="pending").aggregate(total=Sum("amount"))["total"] or 0
        )
        assert (wallet.balance, wallet.held) == (entries, pending), wallet.id
        assert 0 <= wallet.held <= wallet.balance


def test_capture_void_and_expiry_of_one_hold_exactly_one_wins(make_user, make_wallet):
    alice, bob = make_user(), make_user()
    wallet, payee = make_wallet(alice, balance=10_000), make_wallet(bob)
    winners: Counter = Counter()
    rounds = 8

    for _ in range(rounds):
        hold = hold_services.hold_create(wallet_id=wallet.id, owner_id=alice.id, amount=300)
        # The expiry task runs as if the hold had lapsed, while for the capture and the void
        # it has not: all three may win, and exactly one must.
        lapsed = hold.expires_at + timedelta(seconds=1)
        capture_reply, void_reply, expired = run_concurrently(
            [
                partial(
                    post,
                    client_of(alice),
                    f"/api/v1/holds/{hold.id}/capture",
                    {"amount": 200, "destination_wallet_id": str(payee.id)},
                ),
                partial(post, client_of(alice), f"/api/v1/holds/{hold.id}/void", {}),
                partial(hold_services.holds_expire, now=lapsed),
            ]
        )

        hold.refresh_from_db()
        won = {
            "captured": capture_reply[0] == 200,
            "voided": void_reply[0] == 200,
            "expired": expired == 1,
        }
        assert sum(won.values()) == 1, (capture_reply, void_reply, expired)
        assert won[hold.status], (hold.status, won)
        winners[hold.status] += 1
        # The losers were told the hold's final status.
        for status, body in (capture_reply, void_reply):
            if status != 200:
                assert (status, body["code"], body["hold_status"]) == (409, "hold_not_pending", hold.status)
        assert expired in (0, 1)

    captured = winners["captured"]
    wallet.refresh_from_db()
    payee.refresh_from_db()
    assert (wallet.balance, wallet.held) == (10_000 - 200 * captured, 0)
    assert payee.balance == 200 * captured
    assert Transfer.objects.filter(source_wallet=wallet, kind="transfer").count() == captured
    assert Hold.objects.filter(status="pending").count() == 0
    assert sum(winners.values()) == rounds
    assert_wallets_whole()


def test_captures_and_voids_of_one_hold_exactly_one_wins(make_user, make_wallet):
    # Without the expiry task (which needs no HTTP round and tends to come first), the
    # requests race on equal terms: several captures and voids of each hold.
    alice, bob = make_user(), make_user()
    wallet, payee = make_wallet(alice, balance=10_000), make_wallet(bob)
    captured = 0
    for _ in range(6):
        hold = hold_services.hold_create(wallet_id=wallet.id, owner_id=alice.id, amount=300)
        capture_path, void_path = f"/api/v1/holds/{hold.id}/capture", f"/api/v1/holds/{hold.id}/void"
        body = {"destination_wallet_id": str(payee.id)}
        jobs = [partial(post, client_of(alice), capture_path, body) for _ in range(3)]
        jobs += [partial(post, client_of(alice), void_path, {}) for _ in range(3)]

        replies = run_concurrently(jobs)

        hold.refresh_from_db()
        assert outcomes(replies) == {200: 1, "hold_not_pending": 5}
        assert {body["hold_status"] for status, body in replies if status != 200} == {hold.status}
        captured += hold.status == "captured"
    wallet.refresh_from_db()
    payee.refresh_from_db()
    assert (wallet.balance, wallet.held, payee.balance) == (10_000 - 300 * captured, 0, 300 * captured)
    assert_wallets_whole()


def test_concurrent_holds_never_exceed_available(make_user, make_wallet):
    owner = make_user()
    wallet = make_wallet(owner, balance=1_000)
    path = f"/api/v1/wallets/{wallet.id}/holds"

    replies = run_concurrently([partial(post, client_of(owner), path, {"amount": 100}) for _ in range(25)])

    assert outcomes(replies) == {201: 10, "insufficient_funds": 15}
    wallet.refresh_from_db()
    assert (wallet.balance, wallet.held) == (1_000, 1_000)
    assert_wallets_whole()


def test_concurrent_holds_withdrawals_and_captures_never_spend_held_money(make_user, make_wallet):
    owner = make_user()
    wallet = make_wallet(owner, balance=1_000)
    held = [hold_services.hold_create(wallet_id=wallet.id, owner_id=owner.id, amount=100) for _ in range(4)]
    jobs = [partial(post, client_of(owner), f"/api/v1/holds/{h.id}/capture", {"amount": 60}) for h in held]
    jobs += [
        partial(post, client_of(owner), f"/api/v1/wallets/{wallet.id}/withdrawals", {"amount": 100})
        for _ in range(8)
    ]
    jobs += [
        partial(post, client_of(owner), f"/api/v1/wallets/{wallet.id}/holds", {"amount": 100})
        for _ in range(8)
    ]

    replies = run_concurrently(jobs)

    # 600 was free; the captures free 160 more (each takes 60 of its 100), so six or seven
    # of the 16 withdrawals and new holds fit, depending on how many ran after captures.
    assert all(status == 200 for status, _ in replies[:4])
    spent = sum(100 for status, _ in replies[4:] if status == 201)
    assert spent in (600, 700)
    assert set(outcomes(replies[4:])) <= {201, "insufficient_funds"}
    wallet.refresh_from_db()
    assert wallet.balance - wallet.held == 1_000 - 240 - spent >= 0
    assert_wallets_whole()


def test_concurrent_partial_refunds_never_exceed_the_transfer(make_user, make_wallet):
    alice, bob = make_user(), make_user()
    a, b = make_wallet(alice, balance=1_000), make_wallet(bob, balance=5_000)
    paid = ledger.transfer_create(
        source_wallet_id=a.id, destination_wallet_id=b.id, initiated_by_id=alice.id, amount=1_000
    )
    path = f"/api/v1/transfers/{paid.id}/refunds"

    replies = run_concurrently([partial(post, client_of(bob), path, {"amount": 70}) for _ in range(20)])

    assert outcomes(replies) == {201: 14, "refund_exceeds_transfer": 6}
    refunded = Transfer.objects.filter(refund_of=paid).aggregate(total=Sum("amount"))["total"]
    assert refunded == 980
    assert {body["refundable"] for status, body in replies if status != 201} == {20}
    a.refresh_from_db()
    b.refresh_from_db()
    assert (a.balance, b.balance) == (980, 6_000 - 980)
    assert_wallets_whole()


def test_concurrent_full_refunds_refund_once(make_user, make_wallet):
    alice, bob = make_user(), make_user()
    a, b = make_wallet(alice, balance=500), make_wallet(bob, balance=5_000)
    paid = ledger.transfer_create(
        source_wallet_id=a.id, destination_wallet_id=b.id, initiated_by_id=alice.id, amount=500
    )
    path = f"/api/v1/transfers/{paid.id}/refunds"

    replies = run_concurrently([partial(post, client_of(bob), path, {}) for _ in range(10)])

    assert outcomes(replies) == {201: 1, "refund_exceeds_transfer": 9}
    a.refresh_from_db()
    assert a.balance == 500
    assert_wallets_whole()


def test_concurrent_transfers_never_exceed_the_daily_limit(make_user, make_wallet):
    alice, bob = make_user(), make_user()
    a, b = make_wallet(alice, balance=10_000), make_wallet(bob)
    Wallet.objects.filter(pk=a.pk).update(max_outgoing_per_day=1_000)
    body = {"source_wallet_id": str(a.id), "destination_wallet_id": str(b.id), "amount": 100}
    jobs = [partial(post, client_of(alice), "/api/v1/transfers", body) for _ in range(20)]
    jobs += [
        partial(post, client_of(alice), f"/api/v1/wallets/{a.id}/withdrawals", {"amount": 100})
        for _ in range(10)
    ]

    replies = run_concurrently(jobs)

    assert outcomes(replies) == {201: 10, "limit_exceeded": 20}
    a.refresh_from_db()
    assert (a.balance, a.outgoing_today) == (9_000, 1_000)
    assert_wallets_whole()


def test_one_hold_reference_succeeds_once_across_different_keys(make_user, make_wallet):
    owner = make_user()
    wallet = make_wallet(owner, balance=1_000)
    path = f"/api/v1/wallets/{wallet.id}/holds"
    body = {"amount": 10, "reference": "order-42"}

    replies = run_concurrently([partial(post, client_of(owner), path, body) for _ in range(12)])

    assert outcomes(replies) == {201: 1, "duplicate_reference": 11}
    hold = Hold.objects.get(wallet=wallet)
    assert {body["original_hold_id"] for status, body in replies if status != 201} == {str(hold.id)}
    wallet.refresh_from_db()
    assert wallet.held == 10
    assert_wallets_whole()


def test_one_capture_key_captures_once(make_user, make_wallet):
    owner = make_user()
    wallet = make_wallet(owner, balance=1_000)
    hold = hold_services.hold_create(wallet_id=wallet.id, owner_id=owner.id, amount=400)
    key = str(uuid.uuid4())

    def capture() -> tuple[int, bytes, str | None]:
        response = client_of(owner).post(
            f"/api/v1/holds/{hold.id}/capture", {"amount": 100}, format="json", HTTP_IDEMPOTENCY_KEY=key
        )
        return response.status_code, response.content, response.headers.get("Idempotent-Replayed")

    replies = run_concurrently([capture for _ in range(10)])

    assert {status for status, _, _ in replies} <= {200, 409}
    originals = [r for r in replies if r[0] == 200 and r[2] is None]
    assert len(originals) == 1
    assert {r[1] for r in replies if r[0] == 200} == {originals[0][1]}
    wallet.refresh_from_db()
    assert (wallet.balance, wallet.held) == (900, 0)
    assert Transfer.objects.filter(kind="withdrawal", source_wallet=wallet).count() == 1
    assert_wallets_whole()


def test_expiry_skips_a_wallet_that_stays_locked_and_takes_it_next_time(make_user, make_wallet, settings):
    owner, other = make_user(), make_user()
    stuck, free = make_wallet(owner, balance=1_000), make_wallet(other, balance=1_000)
    on_stuck = hold_services.hold_create(wallet_id=stuck.id, owner_id=owner.id, amount=100)
    on_free = hold_services.hold_create(wallet_id=free.id, owner_id=other.id, amount=100)
    lapsed = max(on_stuck.expires_at, on_free.expires_at) + timedelta(seconds=1)
    settings.DB_LOCK_TIMEOUT_MS = 200

    with held_in_transaction(lambda: Wallet.objects.select_for_update(no_key=True).get(pk=stuck.pk)):
        assert hold_services.holds_expire(now=lapsed, batch_size=1) == 1

    on_stuck.refresh_from_db()
    on_free.refresh_from_db()
    assert (on_stuck.status, on_free.status) == ("pending", "expired")
    assert hold_services.holds_expire(now=lapsed) == 1
    on_stuck.refresh_from_db()
    assert on_stuck.status == "expired"
    assert_wallets_whole()
