"""Rate limits and quotas: per user, per money-moving user, per source wallet, per client IP.

Budgets are lowered per test with override_settings(RATE_LIMITS=...). Periods are a
day so that a burst never straddles the end of a counting window (django-ratelimit
counts in fixed windows).
"""

from __future__ import annotations

import uuid

import pytest
from django.core.cache import caches
from django.test import override_settings
from rest_framework.test import APIClient

from transfers.models import IdempotencyRecord, Transfer
from users.models import User
from wallets.models import Wallet

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"
DAY = 24 * 3600
HUGE = "100000/m"


def budgets(**rates: str) -> override_settings:
    """RATE_LIMITS with the given scopes lowered and every other one out of the way."""
    return override_settings(
        RATE_LIMITS={"user": HUGE, "money": HUGE, "wallet_outgoing": HUGE, "anon": HUGE, **rates}
    )


def key(value: str | None = None) -> dict[str, str]:
    return {"HTTP_IDEMPOTENCY_KEY": value or str(uuid.uuid4())}


def assert_rate_limited(response) -> None:
    assert response.status_code == 429, response.content
    assert response["Content-Type"] == PROBLEM
    body = response.json()
    assert (body["code"], body["status"]) == ("rate_limited", 429)
    retry_after = response["Retry-After"]
    assert retry_after.isdigit(), retry_after
    assert 1 <= int(retry_after) <= DAY


def deposit(client: APIClient, wallet: Wallet, amount: int = 10, **headers: str):
    return client.post(f"/api/v1/wallets/{wallet.id}/deposits", {"amount": amount}, format="json", **headers)


def withdraw(client: APIClient, wallet_id: str, amount: int = 10):
    return client.post(f"/api/v1/wallets/{wallet_id}/withdrawals", {"amount": amount}, format="json", **key())


def send(client: APIClient, source_id: str, destination: Wallet, amount: int = 10):
    body = {"source_wallet_id": source_id, "destination_wallet_id": str(destination.id), "amount": amount}
    return client.post("/api/v1/transfers", body, format="json", **key())


def balance(wallet: Wallet) -> int:
    wallet.refresh_from_db()
    return wallet.balance


# --- per user -------------------------------------------------------------------------------


@budgets(money="3/d")
def test_money_burst_over_budget_gets_429_and_another_user_is_unaffected(api_client, make_user, make_wallet):
    alice, bob = make_user(), make_user()
    a_wallet, b_wallet = make_wallet(alice), make_wallet(bob)
    alice_client = api_client(alice)

    accepted = [deposit(alice_client, a_wallet, **key()).status_code for _ in range(3)]
    refused = deposit(alice_client, a_wallet, **key())

    assert accepted == [201, 201, 201]
    assert_rate_limited(refused)
    assert balance(a_wallet) == 30  # the refused deposit moved nothing
    assert Transfer.objects.filter(destination_wallet=a_wallet).count() == 3
    # Reads are not money movement.
    assert alice_client.get(f"/api/v1/wallets/{a_wallet.id}").status_code == 200
    assert deposit(api_client(bob), b_wallet, **key()).status_code == 201
    assert balance(b_wallet) == 10


@budgets(money="1/d")
def test_refused_request_is_not_recorded_and_can_be_retried_with_its_key(api_client, make_user, make_wallet):
    owner = make_user()
    wallet = make_wallet(owner)
    client = api_client(owner)
    assert deposit(client, wallet, **key()).status_code == 201

    refused = deposit(client, wallet, amount=7, **key("retry-me"))

    assert_rate_limited(refused)
    assert not IdempotencyRecord.objects.filter(key="retry-me").exists()
    caches["ratelimit"].delete_pattern("*")  # the next window (this process's counters only)
    retried = deposit(client, wallet, amount=7, **key("retry-me"))
    assert retried.status_code == 201, retried.content
    assert "Idempotent-Replayed" not in retried
    assert balance(wallet) == 17


@budgets(user="3/d")
def test_user_budget_covers_the_whole_api(api_client, make_user, make_wallet):
    alice, bob = make_user(), make_user()
    wallet = make_wallet(alice)
    alice_client = api_client(alice)

    accepted = [
        alice_client.get("/api/v1/wallets").status_code,
        alice_client.get(f"/api/v1/wallets/{wallet.id}").status_code,
        alice_client.get(f"/api/v1/wallets/{wallet.id}/transactions").status_code,
    ]

    assert accepted == [200, 200, 200]
    assert_rate_limited(alice_client.get("/api/v1/wallets"))
    assert_rate_limited(api_client(alice).get("/api/v1/auth/me"))  # another token, the same user
    assert_rate_limited(deposit(alice_client, wallet, **key()))
    assert balance(wallet) == 0
    assert api_client(bob).get("/api/v1/wallets").status_code == 200


# --- per wallet -------------------------------------------------------------------------------


@budgets(wallet_outgoing="3/d")
def test_wallet_outgoing_budget_is_shared_by_all_the_owners_clients(api_client, make_user, make_wallet):
    alice, bob = make_user(), make_user()
    hot = make_wallet(alice, balance=1_000)
    other = make_wallet(alice, balance=1_000)
    bobs = make_wallet(bob, balance=1_000)
    phone, laptop = api_client(alice), api_client(alice)
    assert phone._credentials != laptop._credentials  # two tokens, one user

    accepted = [
        send(phone, str(hot.id), bobs).status_code,
        withdraw(laptop, str(hot.id)).status_code,
        send(laptop, str(hot.id).upper(), bobs).status_code,
    ]

    assert accepted == [201, 201, 201]
    assert_rate_limited(send(phone, str(hot.id), bobs))
    assert_rate_limited(withdraw(laptop, str(hot.id)))
    assert_rate_limited(withdraw(phone, str(hot.id).upper()))
    assert balance(hot) == 970
    assert Transfer.objects.filter(source_wallet=hot).count() == 3
    # The budget is the wallet's: the owner's other wallet still sends...
    assert send(phone, str(other.id), bobs).status_code == 201
    assert withdraw(laptop, str(other.id)).status_code == 201
    # ...and money can still come in to the hot one.
    assert deposit(phone, hot, **key()).status_code == 201
    assert send(api_client(bob), str(bobs.id), hot).status_code == 201
    assert (balance(hot), balance(other), balance(bobs)) == (990, 980, 1_020)


@budgets(wallet_outgoing="3/d")
def test_wallet_outgoing_budget_does_not_depend_on_how_the_id_is_spelled(api_client, make_user, make_wallet):
    alice, bob = make_user(), make_user()
    hot = make_wallet(alice, balance=1_000)
    bobs = make_wallet(bob)
    client = api_client(alice)
    for _ in range(3):
        assert send(client, str(hot.id), bobs).status_code == 201

    # The same wallet, in other spellings the API accepts as its id.
    spellings = [hot.id.hex, f"{{{hot.id}}}", hot.id.urn]
    responses = [send(client, spelling, bobs) for spelling in spellings]

    assert [r.status_code for r in responses] == [429, 429, 429], dict(zip(spellings, responses, strict=True))
    for response in responses:
        assert_rate_limited(response)
    assert balance(hot) == 970


# --- per client IP ------------------------------------------------------------------------------


@budgets(anon="3/d")
def test_register_and_token_are_limited_per_client_ip(make_user):
    make_user("known", password="S3cure-pass-123")
    here = APIClient(REMOTE_ADDR="203.0.113.7")
    elsewhere = APIClient(REMOTE_ADDR="198.51.100.20")

    def register(client: APIClient, username: str):
        body = {"username": username, "email": f"{username}@example.com", "password": "S3cure-pass-123"}
        return client.post("/api/v1/auth/register", body, format="json")

    def token(client: APIClient, **extra: str):
        body = {"username": "known", "password": "S3cure-pass-123"}
        return client.post("/api/v1/auth/token", body, format="json", **extra)

    accepted = [register(here, "first").status_code, register(here, "second").status_code]
    accepted.append(token(here).status_code)

    assert accepted == [201, 201, 200]
    assert_rate_limited(register(here, "third"))
    assert_rate_limited(token(here))
    # Without a trusted proxy, X-Forwarded-For is the client's word and changes nothing.
    assert_rate_limited(token(here, HTTP_X_FORWARDED_FOR="192.0.2.99"))
    assert not User.objects.filter(username="third").exists()
    assert register(elsewhere, "third").status_code == 201
    assert token(elsewhere).status_code == 200
