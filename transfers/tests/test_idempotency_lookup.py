"""GET /idempotency-keys/{key}: what became of the caller's request with this key.

`completed` (its answer is stored), `in_progress` (a request with it has not committed), or
`unknown`. Keys belong to their user: another user's key is `unknown`, with the same
members and the same queries as a key never used.
"""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext

from conftest import assert_problem
from testing.threads import held_in_transaction
from transfers.idempotency import IdempotentRequest, execute_idempotent
from transfers.models import IdempotencyRecord, Transfer
from transfers.services import Movement

URL = "/api/v1/idempotency-keys/"
MEMBERS = {"key", "status", "response_status", "resource", "created_at", "expires_at"}


def lookup(client, key: str):
    return client.get(URL + quote(key, safe=""))


def key_header(key: str) -> dict[str, str]:
    return {"HTTP_IDEMPOTENCY_KEY": key}


@pytest.fixture
def alice(make_user, make_wallet):
    user = make_user()
    return {"user": user, "wallet": make_wallet(user, balance=1000)}


@pytest.mark.django_db
def test_a_completed_transfer_links_to_it(api_client, alice, make_user, make_wallet):
    client = api_client(alice["user"])
    body = {
        "source_wallet_id": str(alice["wallet"].id),
        "destination_wallet_id": str(make_wallet(make_user()).id),
    }
    created = client.post("/api/v1/transfers", body | {"amount": 5}, format="json", **key_header("pay-1"))
    assert created.status_code == 201

    response = lookup(client, "pay-1")

    assert response.status_code == 200
    found = response.json()
    transfer_id = created.json()["id"]
    record = IdempotencyRecord.objects.get(key="pay-1")
    assert found == {
        "key": "pay-1",
        "status": "completed",
        "response_status": 201,
        "resource": {"type": "transfer", "id": transfer_id, "href": f"/api/v1/transfers/{transfer_id}"},
        "created_at": found["created_at"],
        "expires_at": found["expires_at"],
    }
    created_at = record.created_at
    assert found["created_at"] == created_at.isoformat().replace("+00:00", "Z")
    expires = created_at + timedelta(hours=settings.IDEMPOTENCY_KEY_TTL_HOURS)
    assert found["expires_at"] == expires.isoformat().replace("+00:00", "Z")
    assert client.get(found["resource"]["href"]).json()["id"] == transfer_id


@pytest.mark.django_db
def test_a_stored_refusal_is_completed_with_its_status_and_no_resource(api_client, alice):
    client = api_client(alice["user"])
    path = f"/api/v1/wallets/{alice['wallet'].id}/withdrawals"
    refused = client.post(path, {"amount": 10**6}, format="json", **key_header("too-much"))
    assert refused.status_code == 422

    found = lookup(client, "too-much").json()

    assert (found["status"], found["response_status"], found["resource"]) == ("completed", 422, None)


@pytest.mark.django_db
def test_holds_link_to_the_hold(api_client, alice):
    client = api_client(alice["user"])
    hold = client.post(
        f"/api/v1/wallets/{alice['wallet'].id}/holds", {"amount": 100}, format="json", **key_header("hold-1")
    ).json()
    client.post(
        f"/api/v1/holds/{hold['id']}/capture", {"amount": 60}, format="json", **key_header("capture-1")
    )

    for key in ("hold-1", "capture-1"):
        found = lookup(client, key).json()
        assert found["resource"] == {
            "type": "hold",
            "id": hold["id"],
            "href": f"/api/v1/holds/{hold['id']}",
        }, key


@pytest.mark.django_db
def test_a_key_with_slashes_spaces_and_question_marks_is_looked_up_whole(api_client, alice):
    client = api_client(alice["user"])
    key = "order 42/retry?#1%"
    client.post(
        f"/api/v1/wallets/{alice['wallet'].id}/deposits", {"amount": 7}, format="json", **key_header(key)
    )

    found = lookup(client, key).json()

    assert (found["key"], found["status"], found["resource"]["type"]) == (key, "completed", "transfer")
    assert lookup(client, "order 42/retry").json()["status"] == "unknown"


@pytest.mark.django_db
def test_another_users_key_is_unknown_exactly_like_a_key_never_used(api_client, alice, make_user):
    owner = api_client(alice["user"])
    owner.post(
        f"/api/v1/wallets/{alice['wallet'].id}/deposits", {"amount": 7}, format="json", **key_header("mine")
    )
    stranger = api_client(make_user())
    lookup(stranger, "warm-up")

    with CaptureQueriesContext(connection) as theirs:
        someone_elses = lookup(stranger, "mine")
    with CaptureQueriesContext(connection) as never:
        never_used = lookup(stranger, "never-used")

    assert someone_elses.status_code == never_used.status_code == 200
    expected = {
        "status": "unknown",
        "response_status": None,
        "resource": None,
        "created_at": None,
        "expires_at": None,
    }
    assert someone_elses.json() == expected | {"key": "mine"}
    assert never_used.json() == expected | {"key": "never-used"}
    assert set(someone_elses.json()) == MEMBERS
    assert _statements(theirs, key="mine") == _statements(never, key="never-used")
    written = IdempotencyRecord.objects.filter(key__in=["mine", "never-used", "warm-up"]).count()
    assert written == 1  # the owner's; the lookups wrote nothing


def _statements(queries: CaptureQueriesContext, key: str = "") -> list[str]:
    """The SQL run, with the key and savepoint names (each is new) left out."""
    return [
        re.sub(r'"s\d+_x\d+"', "SP", q["sql"]).replace(f"'{key}'", "KEY") for q in queries.captured_queries
    ]


@pytest.mark.django_db
def test_lookups_cost_one_query_when_completed(api_client, alice, django_assert_num_queries):
    client = api_client(alice["user"])
    client.post(
        f"/api/v1/wallets/{alice['wallet'].id}/deposits", {"amount": 7}, format="json", **key_header("k")
    )

    with django_assert_num_queries(1):
        assert lookup(client, "k").json()["status"] == "completed"
    with CaptureQueriesContext(connection) as unknown:
        assert lookup(client, "nope").json()["status"] == "unknown"

    # The read, then the probe's transaction (a savepoint here, inside the test's own): its
    # wait limit and its INSERT, rolled back.
    assert [q.split()[0] for q in _statements(unknown)] == [
        "SELECT", "SAVEPOINT", "SELECT", "INSERT", "ROLLBACK", "RELEASE"
    ]  # fmt: skip


@pytest.mark.django_db
@pytest.mark.parametrize("key", ["caf\u00e9", "tab\there", "x" * 256])
def test_a_key_the_header_would_refuse_is_a_400(api_client, alice, key):
    response = lookup(api_client(alice["user"]), key)

    assert_problem(response, 400, "idempotency_key_invalid")


@pytest.mark.django_db
def test_without_a_token_it_is_a_401(api_client):
    assert_problem(lookup(api_client(None), "k"), 401, "not_authenticated")


@pytest.mark.django_db(transaction=True)
def test_a_request_that_has_not_committed_is_in_progress_then_completed(api_client, make_user, make_wallet):
    user = make_user()
    wallet = make_wallet(user)
    key = str(uuid.uuid4())
    request = IdempotentRequest(
        user_id=user.id,
        key=key,
        method="POST",
        path=f"/api/v1/wallets/{wallet.id}/deposits",
        request_hash="h",
    )
    deposit = Movement(
        kind=Transfer.Kind.DEPOSIT,
        own_wallet_id=wallet.id,
        other_wallet_id=None,
        amount=25,
        initiated_by_id=user.id,
    )
    client = api_client(user)

    with held_in_transaction(lambda: execute_idempotent(request, deposit)):
        during = lookup(client, key).json()

    after = lookup(client, key).json()
    assert (during["status"], during["response_status"], during["resource"]) == ("in_progress", None, None)
    assert set(during) == MEMBERS
    assert (after["status"], after["response_status"]) == ("completed", 201)
    assert after["resource"]["id"] == str(Transfer.objects.get(destination_wallet_id=wallet.id).id)
    assert IdempotencyRecord.objects.filter(key=key).count() == 1
