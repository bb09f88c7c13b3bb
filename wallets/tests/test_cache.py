"""Cached reads are never stale, never hold money, never widen access, and Redis may go away.

Transactional tests: cache invalidation runs on commit (foundation.cache), so the
change has to really commit, as it does in production.
"""

from __future__ import annotations

import uuid

import pytest
from django.conf import settings
from django.core.cache import caches
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from transfers import services as ledger
from transfers.models import IdempotencyRecord, Transfer
from wallets.models import Wallet
from wallets.services import wallet_set_status

pytestmark = pytest.mark.django_db(transaction=True)

PROBLEM = "application/problem+json"
UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"


def redis_down(**extra) -> override_settings:
    """Both the cache and the rate-limit store point at a port nobody listens on."""
    caches_ = {alias: {**config, "LOCATION": UNREACHABLE_REDIS} for alias, config in settings.CACHES.items()}
    for config in caches_.values():
        assert config["OPTIONS"]["IGNORE_EXCEPTIONS"] is True  # the same options as production
    return override_settings(CACHES=caches_, **extra)


def key() -> dict[str, str]:
    return {"HTTP_IDEMPOTENCY_KEY": str(uuid.uuid4())}


def wallet_url(wallet: Wallet, suffix: str = "") -> str:
    return f"/api/v1/wallets/{wallet.id}{suffix}"


def balance(wallet: Wallet) -> int:
    wallet.refresh_from_db()
    return wallet.balance


# --- never stale: wallet reads come from the database, not from a cache ---------------


def test_a_change_is_visible_at_once_even_when_made_behind_the_services_back(
    api_client, make_user, make_wallet
):
    owner = make_user()
    wallet = make_wallet(owner, name="Old")
    client = api_client(owner)
    assert client.get(wallet_url(wallet)).json()["name"] == "Old"

    Wallet.objects.filter(pk=wallet.pk).update(name="Behind the service's back")
    assert client.get(wallet_url(wallet)).json()["name"] == "Behind the service's back"

    renamed = client.patch(wallet_url(wallet), {"name": "New"}, format="json")

    assert renamed.status_code == 200, renamed.content
    assert renamed.json()["name"] == "New"
    assert client.get(wallet_url(wallet)).json()["name"] == "New"
    assert [w["name"] for w in client.get("/api/v1/wallets").json()["results"]] == ["New"]


def test_freeze_is_visible_at_once(api_client, make_user, make_wallet):
    owner = make_user()
    wallet = make_wallet(owner, balance=500)
    client = api_client(owner)
    assert client.get(wallet_url(wallet)).json()["status"] == "active"

    wallet_set_status(wallet_id=wallet.id, status=Wallet.Status.FROZEN, actor_id=None)

    assert client.get(wallet_url(wallet)).json()["status"] == "frozen"
    refused = client.post(wallet_url(wallet, "/withdrawals"), {"amount": 100}, format="json", **key())
    assert refused.status_code == 409
    assert refused.json()["code"] == "wallet_not_active"

    wallet_set_status(wallet_id=wallet.id, status=Wallet.Status.ACTIVE, name="Thawed", actor_id=None)

    body = client.get(wallet_url(wallet)).json()
    assert (body["status"], body["name"], body["balance"]) == ("active", "Thawed", 500)


def test_a_history_page_is_an_ownership_check_and_the_page(api_client, make_user, make_wallet):
    owner = make_user()
    wallet = make_wallet(owner, balance=100)
    client = api_client(owner)
    url = wallet_url(wallet, "/transactions")
    assert client.get(url).status_code == 200  # the user's row is in the authentication cache now

    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200

    assert len(queries) == 2
    assert "FROM wallets_wallet" in queries.captured_queries[0]["sql"]  # a primary-key look-up
    assert "transfers_ledgerentry" in queries.captured_queries[1]["sql"]


def test_a_transfer_is_only_visible_to_its_parties(api_client, make_user, make_wallet):
    alice, bob, mallory = make_user(), make_user(), make_user()
    source = make_wallet(alice, balance=1_000)
    destination = make_wallet(bob)
    make_wallet(mallory, balance=1_000)  # a stranger with wallets of her own
    transfer = ledger.transfer_create(
        source_wallet_id=source.id, destination_wallet_id=destination.id, initiated_by_id=alice.id, amount=300
    )
    url = f"/api/v1/transfers/{transfer.id}"
    assert api_client(alice).get(url).status_code == 200

    stranger = api_client(mallory).get(url)

    assert stranger.status_code == 404
    assert stranger["Content-Type"] == PROBLEM
    assert stranger.json()["code"] == "not_found"
    assert str(source.id) not in stranger.content.decode()
    seen_by_bob = api_client(bob).get(url)
    assert seen_by_bob.status_code == 200
    assert (seen_by_bob.json()["id"], seen_by_bob.json()["amount"]) == (str(transfer.id), 300)


def test_balance_is_always_fresh(api_client, make_user, make_wallet):
    owner = make_user()
    wallet = make_wallet(owner)
    client = api_client(owner)
    assert client.get(wallet_url(wallet)).json()["balance"] == 0

    deposited = client.post(wallet_url(wallet, "/deposits"), {"amount": 250}, format="json", **key())
    assert deposited.status_code == 201, deposited.content
    assert client.get(wallet_url(wallet)).json()["balance"] == 250

    ledger.withdrawal_create(wallet_id=wallet.id, owner_id=owner.id, amount=50)  # no API

    assert client.get(wallet_url(wallet)).json()["balance"] == 200
    history = client.get(wallet_url(wallet, "/transactions")).json()["results"]
    assert [(e["type"], e["balance_after"]) for e in history] == [("withdrawal", 200), ("deposit", 250)]


# --- Redis down -----------------------------------------------------------------------------


@pytest.fixture
def funded(make_user, make_wallet):
    """alice (2 USD wallets) has sent bob money; metadata and the transfer were cached while Redis was up."""
    alice, bob = make_user(), make_user()
    a1 = make_wallet(alice, balance=1_000, name="main")
    a2 = make_wallet(alice, balance=1_000, name="spare")
    b1 = make_wallet(bob)
    transfer = ledger.transfer_create(
        source_wallet_id=a1.id, destination_wallet_id=b1.id, initiated_by_id=alice.id, amount=100
    )
    return {"alice": alice, "a1": a1, "a2": a2, "b1": b1, "transfer": transfer}


def test_read_api_keeps_working_with_redis_down(api_client, funded):
    client = api_client(funded["alice"])
    a1 = funded["a1"]

    with redis_down():
        caches["default"].set("probe", 1)
        assert caches["default"].get("probe") is None  # really unreachable, and no error

        detail = client.get(wallet_url(a1))
        listing = client.get("/api/v1/wallets")
        history = client.get(wallet_url(a1, "/transactions"))
        transfer = client.get(f"/api/v1/transfers/{funded['transfer'].id}")
        renamed = client.patch(wallet_url(a1), {"name": "renamed while Redis was down"}, format="json")
        after_rename = client.get(wallet_url(a1))

    for response in (detail, listing, history, transfer, renamed, after_rename):
        assert response.status_code == 200, response.content
    assert (detail.json()["balance"], detail.json()["name"]) == (900, "main")
    assert sorted(w["name"] for w in listing.json()["results"]) == ["main", "spare"]
    assert [e["amount"] for e in history.json()["results"]] == [-100, 1_000]
    assert transfer.json()["amount"] == 100
    assert after_rename.json()["name"] == "renamed while Redis was down"


def test_money_posts_fail_closed_with_redis_down(api_client, funded):
    client = api_client(funded["alice"])
    a1, a2 = funded["a1"], funded["a2"]
    transfers_before = Transfer.objects.count()

    with redis_down():
        responses = [
            client.post(wallet_url(a1, "/deposits"), {"amount": 5}, format="json", **key()),
            client.post(wallet_url(a1, "/withdrawals"), {"amount": 5}, format="json", **key()),
            client.post(
                "/api/v1/transfers",
                {"source_wallet_id": str(a1.id), "destination_wallet_id": str(a2.id), "amount": 5},
                format="json",
                **key(),
            ),
        ]

    for response in responses:
        assert response.status_code == 503, response.content
        assert response["Content-Type"] == PROBLEM
        assert response.json()["code"] == "rate_limit_unavailable"
        assert int(response["Retry-After"]) >= 1
    assert (balance(a1), balance(a2)) == (900, 1_000)
    assert Transfer.objects.count() == transfers_before
    assert not IdempotencyRecord.objects.exists()


def test_money_posts_fail_open_when_configured(api_client, funded):
    client = api_client(funded["alice"])
    a1, a2 = funded["a1"], funded["a2"]

    with redis_down(RATE_LIMIT_FAIL_OPEN_MONEY=True):
        responses = [
            client.post(wallet_url(a1, "/deposits"), {"amount": 50}, format="json", **key()),
            client.post(wallet_url(a1, "/withdrawals"), {"amount": 20}, format="json", **key()),
            client.post(
                "/api/v1/transfers",
                {"source_wallet_id": str(a1.id), "destination_wallet_id": str(a2.id), "amount": 30},
                format="json",
                **key(),
            ),
        ]

    assert [r.status_code for r in responses] == [201, 201, 201], [r.content for r in responses]
    assert (balance(a1), balance(a2)) == (900, 1_030)


def test_reads_fail_closed_when_configured(api_client, funded):
    client = api_client(funded["alice"])

    with redis_down(RATE_LIMIT_FAIL_OPEN_READS=False):
        response = client.get(wallet_url(funded["a1"]))

    assert response.status_code == 503
    assert response.json()["code"] == "rate_limit_unavailable"
