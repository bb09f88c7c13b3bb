"""A SQL budget per endpoint, so the work per request cannot grow silently.

Counts are for a warm process (the user, wallet metadata and system-wallet caches are
filled by earlier requests, as in production). The money endpoints' budgets, query by
query, are spelled out in transfers/tests/test_transfer_api.py.
"""

import json

import pytest

from conftest import idem
from users.models import User

pytestmark = pytest.mark.django_db


@pytest.fixture
def warm(make_user, make_wallet, api_client, django_capture_on_commit_callbacks):
    alice, bob = make_user(), make_user()
    with django_capture_on_commit_callbacks(execute=True):
        mine = make_wallet(alice, balance=10_000)
        theirs = make_wallet(bob)
    client = api_client(alice)
    client.get("/api/v1/auth/me")
    client.get(f"/api/v1/wallets/{mine.id}")
    body = {"source_wallet_id": str(mine.id), "destination_wallet_id": str(theirs.id), "amount": 5}
    transfer = client.post("/api/v1/transfers", body, format="json", **idem()).json()
    event = client.get("/api/v1/events?limit=1").json()["results"][0]
    return {"client": client, "wallet": mine, "transfer": transfer, "event": event}


# (method, path template, body, budget, what the queries are)
BUDGETS = [
    ("GET", "/api/v1/auth/me", None, 0, "user from the authentication cache"),
    ("GET", "/api/v1/wallets", None, 1, "one page of wallets"),
    ("GET", "/api/v1/wallets/{wallet}", None, 1, "the caller's wallet, balance included"),
    ("POST", "/api/v1/wallets", {"currency": "EUR"}, 4, "savepoint, insert, audit event, release"),
    ("PATCH", "/api/v1/wallets/{wallet}", {"name": "Rent"}, 5, "savepoint, update, audit, re-read, release"),
    (
        "GET",
        "/api/v1/wallets/{wallet}/transactions",
        None,
        2,
        "ownership; one page of entries with their transfers",
    ),
    (
        "POST",
        "/api/v1/wallets/{wallet}/withdrawals",
        {"amount": 1},
        4,
        "savepoint, lock (resolves the wallet), one write statement with the idempotency record, release",
    ),
    ("GET", "/api/v1/transfers", None, 1, "one page of the caller's transfers"),
    ("GET", "/api/v1/transfers?wallet={wallet}", None, 2, "ownership; one page"),
    ("GET", "/api/v1/transfers/{transfer}", None, 1, "the row, if one of its wallets is the caller's"),
    ("GET", "/api/v1/events", None, 1, "one page of the caller's events (owner, sequence index)"),
    ("GET", "/api/v1/events?after=0&type=deposit.created", None, 1, "one page forward from a sequence"),
    ("GET", "/api/v1/events?wallet={wallet}", None, 2, "ownership; one page (wallet, sequence index)"),
    ("GET", "/api/v1/events/{event}", None, 1, "the event, if it is the caller's"),
]


@pytest.mark.parametrize(("method", "path", "body", "budget", "why"), BUDGETS, ids=[b[1] for b in BUDGETS])
def test_endpoint_stays_within_its_query_budget(
    warm, django_assert_max_num_queries, method, path, body, budget, why
):
    url = path.format(wallet=warm["wallet"].id, transfer=warm["transfer"]["id"], event=warm["event"]["id"])
    data = json.dumps(body) if body is not None else ""
    with django_assert_max_num_queries(budget):
        response = warm["client"].generic(method, url, data=data, content_type="application/json", **idem())
    assert response.status_code < 300, response.content


@pytest.fixture
def redis_round_trips(monkeypatch):
    """Count the commands (a pipeline counts once) sent to Redis by this process."""
    from redis.connection import AbstractConnection

    sent = []
    original = AbstractConnection.send_packed_command

    def counting(self, command, check_health=True):
        sent.append(command)
        return original(self, command, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counting)
    return sent


# Every authenticated endpoint: the cached user row and every quota counter the request
# spends go to Redis in one pipeline (foundation.views).
ONE_ROUND_TRIP = [
    ("GET", "/api/v1/auth/me", None),
    ("GET", "/api/v1/wallets", None),
    ("GET", "/api/v1/wallets/{wallet}", None),
    ("PATCH", "/api/v1/wallets/{wallet}", {"name": "Rent"}),
    ("GET", "/api/v1/wallets/{wallet}/transactions", None),
    ("POST", "/api/v1/wallets/{wallet}/deposits", {"amount": 1}),
    ("POST", "/api/v1/wallets/{wallet}/withdrawals", {"amount": 1}),
    ("POST", "/api/v1/transfers", "transfer"),
    ("GET", "/api/v1/transfers", None),
    ("GET", "/api/v1/transfers/{transfer}", None),
]


@pytest.mark.parametrize(
    ("method", "path", "body"), ONE_ROUND_TRIP, ids=[f"{m} {p}" for m, p, _ in ONE_ROUND_TRIP]
)
def test_an_authenticated_request_costs_one_redis_round_trip(warm, redis_round_trips, method, path, body):
    if body == "transfer":
        body = {
            "source_wallet_id": str(warm["wallet"].id),
            "destination_wallet_id": warm["transfer"]["destination_wallet_id"],
            "amount": 1,
        }
    url = path.format(wallet=warm["wallet"].id, transfer=warm["transfer"]["id"], event=warm["event"]["id"])
    data = json.dumps(body) if body is not None else ""

    response = warm["client"].generic(method, url, data=data, content_type="application/json", **idem())

    assert response.status_code < 300, response.content
    assert len(redis_round_trips) == 1, redis_round_trips


@pytest.fixture
def warm_holds(warm, make_user, api_client):
    """`warm`, plus a pending hold on alice's wallet and bob's client (bob received the transfer)."""
    client, wallet = warm["client"], warm["wallet"]
    hold = client.post(f"/api/v1/wallets/{wallet.id}/holds", {"amount": 50}, format="json", **idem()).json()
    client.get(f"/api/v1/holds/{hold['id']}")
    bob = User.objects.get(wallets__id=warm["transfer"]["destination_wallet_id"])
    bob_client = api_client(bob)
    bob_client.get("/api/v1/auth/me")
    return {**warm, "hold": hold, "bob_client": bob_client}


# (who, method, path template, body, budget, what the queries are)
HOLD_BUDGETS = [
    (
        "alice",
        "POST",
        "/api/v1/wallets/{wallet}/holds",
        {"amount": 5},
        4,
        "savepoint, lock (resolves the wallet), one write (hold, audit, held, idempotency), release",
    ),
    (
        "alice",
        "POST",
        "/api/v1/holds/{hold}/capture",
        {"amount": 5},
        6,
        "the hold's wallet; savepoint, lock the wallet, lock the hold, one write statement, release",
    ),
    (
        "alice",
        "POST",
        "/api/v1/holds/{hold}/void",
        {},
        6,
        "the hold's wallet; savepoint, lock the wallet, lock the hold, one write statement, release",
    ),
    ("alice", "GET", "/api/v1/holds", None, 1, "one page of the caller's holds"),
    ("alice", "GET", "/api/v1/holds/{hold}", None, 1, "the hold, if its wallet is the caller's"),
    (
        "bob",
        "POST",
        "/api/v1/transfers/{transfer}/refunds",
        {"amount": 1},
        7,
        "the original and its refunded sum, its destination's owner; savepoint, lock both wallets, "
        "the refunded sum under the lock, one write statement, release",
    ),
    ("bob", "GET", "/api/v1/transfers/{transfer}/refunds", None, 2, "the original (a party?); the refunds"),
]


@pytest.mark.parametrize(
    ("who", "method", "path", "body", "budget", "why"),
    HOLD_BUDGETS,
    ids=[f"{b[1]} {b[2]}" for b in HOLD_BUDGETS],
)
def test_holds_and_refunds_stay_within_their_query_budget(
    warm_holds, django_assert_max_num_queries, who, method, path, body, budget, why
):
    client = warm_holds["client"] if who == "alice" else warm_holds["bob_client"]
    url = path.format(
        wallet=warm_holds["wallet"].id, transfer=warm_holds["transfer"]["id"], hold=warm_holds["hold"]["id"]
    )
    data = json.dumps(body) if body is not None else ""
    with django_assert_max_num_queries(budget):
        response = client.generic(method, url, data=data, content_type="application/json", **idem())
    assert response.status_code < 300, response.content


@pytest.mark.parametrize(
    ("who", "method", "path", "body"),
    [b[:4] for b in HOLD_BUDGETS],
    ids=[f"{b[1]} {b[2]}" for b in HOLD_BUDGETS],
)
def test_holds_and_refunds_cost_one_redis_round_trip(warm_holds, redis_round_trips, who, method, path, body):
    client = warm_holds["client"] if who == "alice" else warm_holds["bob_client"]
    url = path.format(
        wallet=warm_holds["wallet"].id, transfer=warm_holds["transfer"]["id"], hold=warm_holds["hold"]["id"]
    )
    data = json.dumps(body) if body is not None else ""
    redis_round_trips.clear()

    response = client.generic(method, url, data=data, content_type="application/json", **idem())

    assert response.status_code < 300, response.content
    assert len(redis_round_trips) == 1, redis_round_trips
