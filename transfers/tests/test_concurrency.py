"""Money endpoints under real concurrency.

Every request runs in its own thread with its own PostgreSQL connection, through
the whole HTTP stack (JWT auth, idempotency, service, problem+json), and the
threads are released together by a barrier. `transaction=True` makes every
request really commit, so the deferred ledger triggers of transfers.0003 fire.
The assertions are on the final state of the database, never on timings.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import pytest
from django.db import connection
from django.db.models import Sum
from rest_framework.test import APIClient

from conftest import client_for
from testing.threads import Threads, held_in_transaction, lock_waiters, run_concurrently, wait_until
from transfers.models import IdempotencyRecord, LedgerEntry, Transfer
from users.models import User
from wallets.models import Wallet
from wallets.services import system_wallet_id

pytestmark = pytest.mark.django_db(transaction=True)

AMOUNT = 100
TRANSFERS = "/api/v1/transfers"


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    replayed: str | None

    @property
    def data(self) -> dict[str, Any]:
        return json.loads(self.body)


def client_of(user: User) -> APIClient:
    """An APIClient with a real JWT for `user`, to be used by one thread."""
    client = client_for(user)
    # got_request_exception is a process-wide signal: every in-flight test client hears
    # any thread's 500 and would re-raise it as its own. Each client returns its own
    # response instead, and Threads collects the real tracebacks.
    client.raise_request_exception = False
    return client


def post(client: APIClient, path: str, body: dict[str, Any], key: str | None = None) -> Reply:
    response = client.post(path, body, format="json", HTTP_IDEMPOTENCY_KEY=key or str(uuid.uuid4()))
    return Reply(response.status_code, response.content, response.headers.get("Idempotent-Replayed"))


@contextmanager
def row_locked(wallet_id: uuid.UUID) -> Iterator[None]:
    """Another transaction holds the wallet's row in the lock mode the services take."""
    with held_in_transaction(lambda: Wallet.objects.select_for_update(no_key=True).get(pk=wallet_id)):
        yield


def statuses(replies: list[Reply]) -> Counter[int]:
    return Counter(reply.status for reply in replies)


def codes(replies: list[Reply]) -> Counter[str]:
    return Counter(reply.data["code"] for reply in replies if reply.status >= 400)


def balance(wallet: Wallet) -> int:
    wallet.refresh_from_db()
    return wallet.balance


def assert_ledger_reconciles() -> None:
    """The whole ledger (this test's database) proves every stored balance."""
    for transfer in Transfer.objects.prefetch_related("entries"):
        legs = sorted((str(e.wallet_id), e.amount) for e in transfer.entries.all())
        source_leg = (str(transfer.source_wallet_id), -transfer.amount)
        destination_leg = (str(transfer.destination_wallet_id), transfer.amount)
        assert legs == sorted([source_leg, destination_leg]), f"transfer {transfer.id} has legs {legs}"

    for wallet in Wallet.objects.all():
        entries = LedgerEntry.objects.filter(wallet=wallet).order_by("id")
        if wallet.is_system:
            assert wallet.balance == 0
            assert not entries.filter(balance_after__isnull=False).exists()
            continue
        running = 0
        for entry in entries:
            running += entry.amount
            assert entry.balance_after == running, f"entry {entry.id} breaks the chain of wallet {wallet.id}"
        assert wallet.balance == running, f"wallet {wallet.id}: stored {wallet.balance}, ledger {running}"

    per_currency = {
        row["wallet__currency"]: row["total"]
        for row in LedgerEntry.objects.values("wallet__currency").annotate(total=Sum("amount"))
    }
    assert per_currency == dict.fromkeys(per_currency, 0)


def transfer_body(source: Wallet, destination: Wallet, amount: int, **extra: Any) -> dict[str, Any]:
    return {
        "source_wallet_id": str(source.id),
        "destination_wallet_id": str(destination.id),
        "amount": amount,
        **extra,
    }


def test_concurrent_withdrawals_never_overdraw(make_user, make_wallet):
    owner = make_user()
    wallet = make_wallet(owner, balance=10 * AMOUNT)
    path = f"/api/v1/wallets/{wallet.id}/withdrawals"
    jobs = [partial(post, client_of(owner), path, {"amount": AMOUNT}) for _ in range(50)]

    replies = run_concurrently(jobs)

    assert statuses(replies) == {201: 10, 422: 40}
    assert codes(replies) == {"insufficient_funds": 40}
    # Each success saw the balance its predecessor left: the row lock serialized them.
    assert sorted(r.data["wallet"]["balance"] for r in replies if r.status == 201) == [
        AMOUNT * i for i in range(10)
    ]
    assert balance(wallet) == 0
    assert Transfer.objects.filter(kind=Transfer.Kind.WITHDRAWAL, source_wallet=wallet).count() == 10
    assert_ledger_reconciles()


def test_concurrent_transfers_never_overdraw(make_user, make_wallet):
    alice, bob = make_user(), make_user()
    source = make_wallet(alice, balance=10 * AMOUNT)
    destination = make_wallet(bob, balance=7)
    body = transfer_body(source, destination, AMOUNT)
    jobs = [partial(post, client_of(alice), TRANSFERS, body) for _ in range(50)]

    replies = run_concurrently(jobs)

    assert statuses(replies) == {201: 10, 422: 40}
    assert codes(replies) == {"insufficient_funds": 40}
    assert (balance(source), balance(destination)) == (0, 10 * AMOUNT + 7)
    assert Transfer.objects.filter(kind=Transfer.Kind.TRANSFER).count() == 10
    assert_ledger_reconciles()


def test_opposite_transfers_between_two_wallets_do_not_deadlock(make_user, make_wallet):
    alice, bob = make_user(), make_user()
    a, b = make_wallet(alice, balance=1000), make_wallet(bob, balance=1000)
    threads_per_direction, transfers_per_thread = 20, 3

    def sender(client: APIClient, body: dict[str, Any]) -> list[Reply]:
        return [post(client, TRANSFERS, body) for _ in range(transfers_per_thread)]

    jobs = []
    for _ in range(threads_per_direction):
        jobs.append(partial(sender, client_of(alice), transfer_body(a, b, 13)))
        jobs.append(partial(sender, client_of(bob), transfer_body(b, a, 7)))

    replies = [reply for thread_replies in run_concurrently(jobs) for reply in thread_replies]

    n = threads_per_direction * transfers_per_thread
    assert statuses(replies) == {201: 2 * n}, codes(replies)
    assert (balance(a), balance(b)) == (1000 - 13 * n + 7 * n, 1000 + 13 * n - 7 * n)
    assert Transfer.objects.filter(kind=Transfer.Kind.TRANSFER).count() == 2 * n
    assert_ledger_reconciles()


def assert_one_execution(replies: list[Reply], key: str) -> dict[str, Any]:
    """Every reply is the one original 201, a byte-identical replay of it, or 409 in-use."""
    assert set(statuses(replies)) <= {201, 409}, statuses(replies)
    assert set(codes(replies)) <= {"idempotency_key_in_use"}
    created = [r for r in replies if r.status == 201]
    originals = [r for r in created if r.replayed is None]
    assert len(originals) == 1, [r.replayed for r in created]
    original = originals[0]
    for replay in created:
        if replay is not original:
            assert replay.replayed == "true"
            assert replay.body == original.body
    record = IdempotencyRecord.objects.get(key=key)
    assert bytes(record.response_body) == original.body
    return original.data


def test_one_idempotency_key_moves_money_once_for_concurrent_transfers(make_user, make_wallet):
    alice, bob = make_user(), make_user()
    source, destination = make_wallet(alice, balance=10 * AMOUNT), make_wallet(bob)
    key = str(uuid.uuid4())
    body = transfer_body(source, destination, AMOUNT)
    jobs = [partial(post, client_of(alice), TRANSFERS, body, key) for _ in range(20)]

    replies = run_concurrently(jobs)

    original = assert_one_execution(replies, key)
    transfer = Transfer.objects.get(kind=Transfer.Kind.TRANSFER)
    assert original["id"] == str(transfer.id)
    assert IdempotencyRecord.objects.get(key=key).transfer_id == transfer.id
    assert (balance(source), balance(destination)) == (9 * AMOUNT, AMOUNT)
    assert_ledger_reconciles()


def test_one_idempotency_key_moves_money_once_for_concurrent_deposits(make_user, make_wallet):
    owner = make_user()
    wallet = make_wallet(owner, balance=5)
    key = str(uuid.uuid4())
    path = f"/api/v1/wallets/{wallet.id}/deposits"
    jobs = [partial(post, client_of(owner), path, {"amount": 250}, key) for _ in range(20)]

    replies = run_concurrently(jobs)

    original = assert_one_execution(replies, key)
    transfer = Transfer.objects.get(kind=Transfer.Kind.DEPOSIT, amount=250)
    assert original["transfer"]["id"] == str(transfer.id)
    assert original["wallet"]["balance"] == 255
    assert IdempotencyRecord.objects.get(key=key).transfer_id == transfer.id
    assert Transfer.objects.filter(kind=Transfer.Kind.DEPOSIT).count() == 2  # the fixture's and this one
    assert balance(wallet) == 255
    assert_ledger_reconciles()


def deposit_with_lock_timeout(client: APIClient, wallet: Wallet, amount: int) -> Reply:
    # Session setting on this thread's connection: a request that waits on a row lock
    # for 5 s fails (503 service_busy) instead of hanging the test.
    with connection.cursor() as cursor:
        cursor.execute("SET lock_timeout = '5s'")
    return post(client, f"/api/v1/wallets/{wallet.id}/deposits", {"amount": amount})


def test_deposits_into_many_wallets_never_wait_on_the_system_wallet(make_user, make_wallet):
    wallets = [make_wallet(make_user()) for _ in range(10)]
    system_id = system_wallet_id(currency="USD")

    # Another transaction holds the system wallet's row in the lock mode the services take
    # on user wallets for the whole run. A deposit that locked or updated that row would
    # wait on it and come back 503 (lock timeout); deposits that leave it alone succeed.
    amounts = [10 + i for i in range(30)]
    jobs = [
        partial(deposit_with_lock_timeout, client_of(wallets[i % 10].owner), wallets[i % 10], amount)
        for i, amount in enumerate(amounts)
    ]
    with row_locked(system_id):
        replies = run_concurrently(jobs)

    assert statuses(replies) == {201: 30}, codes(replies)
    for index, wallet in enumerate(wallets):
        assert balance(wallet) == sum(amounts[index::10])
    system_total = LedgerEntry.objects.filter(wallet_id=system_id).aggregate(total=Sum("amount"))["total"]
    assert system_total == -sum(amounts)
    assert Wallet.objects.get(pk=system_id).balance == 0
    assert_ledger_reconciles()


def test_deposits_racing_the_first_one_in_a_new_currency_all_succeed(make_user, make_wallet):
    first, *others = [make_wallet(make_user(), currency="EUR") for _ in range(6)]
    assert not Wallet.objects.filter(kind=Wallet.Kind.SYSTEM, currency="EUR").exists()

    def deposit(wallet: Wallet) -> Callable[[], Reply]:
        return partial(post, client_of(wallet.owner), f"/api/v1/wallets/{wallet.id}/deposits", {"amount": 40})

    # Pin the first deposit after it has made the currency's system wallet and before it
    # commits: another transaction holds its wallet's row lock. Deposits into other EUR
    # wallets then race it; they are let go once each has finished or is waiting too.
    with row_locked(first.id):
        pinned = Threads([deposit(first)]).start()
        wait_until(lambda: lock_waiters() >= 1, "the first deposit waits for its wallet")
        racing = Threads([deposit(wallet) for wallet in others]).start()
        wait_until(
            lambda: racing.finished + lock_waiters() - 1 >= len(others),
            "every racing deposit has finished or waits",
        )
    replies = pinned.join() + racing.join()

    assert statuses(replies) == {201: 6}, codes(replies)
    assert Wallet.objects.filter(kind=Wallet.Kind.SYSTEM, currency="EUR").count() == 1
    assert [balance(wallet) for wallet in (first, *others)] == [40] * 6
    assert_ledger_reconciles()


def test_a_rolled_back_first_movement_in_a_new_currency_does_not_break_later_deposits(make_user, make_wallet):
    # The system wallet id is cached process-wide and shared by every request thread.
    # A first movement that creates the system wallet and then rolls back (here: a
    # withdrawal from an empty wallet) must not leave the other threads a wallet that
    # never existed.
    first = make_wallet(make_user(), currency="GBP")
    refused = post(client_of(first.owner), f"/api/v1/wallets/{first.id}/withdrawals", {"amount": 1})
    assert (refused.status, refused.data["code"]) == (422, "insufficient_funds")

    wallets = [make_wallet(make_user(), currency="GBP") for _ in range(5)]
    jobs = [
        partial(post, client_of(wallet.owner), f"/api/v1/wallets/{wallet.id}/deposits", {"amount": 30})
        for wallet in wallets
    ]
    replies = run_concurrently(jobs)

    assert statuses(replies) == {201: 5}, codes(replies)
    assert [balance(wallet) for wallet in wallets] == [30] * 5
    assert_ledger_reconciles()


@pytest.mark.parametrize("kind", ["deposit", "withdrawal", "transfer"])
def test_one_reference_succeeds_once_across_different_keys(kind, make_user, make_wallet):
    owner, other = make_user(), make_user()
    wallet = make_wallet(owner, balance=10 * AMOUNT)
    destination = make_wallet(other)
    reference = "INV-2024-0042"
    if kind == "transfer":
        path, body = TRANSFERS, transfer_body(wallet, destination, AMOUNT, reference=reference)
    else:
        path, body = f"/api/v1/wallets/{wallet.id}/{kind}s", {"amount": AMOUNT, "reference": reference}
    jobs = [partial(post, client_of(owner), path, body) for _ in range(20)]

    replies = run_concurrently(jobs)

    assert statuses(replies) == {201: 1, 409: 19}, codes(replies)
    assert codes(replies) == {"duplicate_reference": 19}
    transfer = Transfer.objects.get(reference=reference)
    assert transfer.kind == kind
    assert {r.data["original_transfer_id"] for r in replies if r.status == 409} == {str(transfer.id)}
    expected = {"deposit": 11 * AMOUNT, "withdrawal": 9 * AMOUNT, "transfer": 9 * AMOUNT}[kind]
    assert balance(wallet) == expected
    assert balance(destination) == (AMOUNT if kind == "transfer" else 0)
    assert_ledger_reconciles()
