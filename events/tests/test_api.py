"""GET /api/v1/events and /api/v1/events/{id}: the caller's events only, paginated by
sequence, newest first or forward from `after`."""

from __future__ import annotations

import uuid

import pytest

from conftest import assert_problem, idem
from events.models import Event
from transfers import services

pytestmark = pytest.mark.django_db

EVENTS = "/api/v1/events"


@pytest.fixture
def story(make_user, make_wallet):
    """alice's wallet a (funded: a deposit), bob's b (funded), then a -> b and a withdrawal."""
    alice, bob = make_user("alice"), make_user("bob")
    a, b = make_wallet(alice, balance=1_000), make_wallet(bob, balance=100)
    services.transfer_create(
        source_wallet_id=a.id, destination_wallet_id=b.id, initiated_by_id=alice.id, amount=30
    )
    services.withdrawal_create(wallet_id=a.id, owner_id=alice.id, amount=5)
    return alice, bob, a, b


def sequences(response) -> list[int]:
    return [event["sequence"] for event in response.json()["results"]]


def test_the_list_is_the_callers_events_newest_first(story, api_client):
    alice, bob, a, b = story
    response = api_client(alice).get(EVENTS)

    assert response.status_code == 200
    body = response.json()
    assert [e["type"] for e in body["results"]] == [
        "withdrawal.created",
        "transfer.created",
        "deposit.created",
    ]
    assert {e["wallet_id"] for e in body["results"]} == {str(a.id)}
    assert sequences(response) == sorted(sequences(response), reverse=True)
    first = body["results"][0]
    event = Event.objects.get(uuid=first["id"])
    assert set(first) == {"id", "sequence", "type", "created_at", "wallet_id", "data"}
    assert (first["sequence"], first["data"]) == (event.sequence, event.data)

    bobs = api_client(bob).get(EVENTS).json()["results"]
    assert [(e["type"], e["wallet_id"]) for e in bobs] == [
        ("transfer.created", str(b.id)),
        ("deposit.created", str(b.id)),
    ]
    assert bobs[0]["data"] == body["results"][1]["data"]  # both parties see the same transfer


def test_after_reads_forward_oldest_first_across_pages(story, api_client):
    alice, *_ = story
    client = api_client(alice)
    everything = sorted(sequences(client.get(EVENTS)))
    page = client.get(EVENTS, {"after": everything[0], "limit": 1})

    assert sequences(page) == [everything[1]]
    following = client.get(page.json()["next"])
    assert sequences(following) == [everything[2]]
    assert client.get(EVENTS, {"after": everything[-1]}).json()["results"] == []


def test_filters_by_type_and_wallet(story, api_client, make_wallet):
    alice, _bob, a, _b = story
    other = make_wallet(alice, currency="EUR", balance=7)
    client = api_client(alice)

    assert [e["type"] for e in client.get(EVENTS, {"type": "transfer.created"}).json()["results"]] == [
        "transfer.created"
    ]
    only_other = client.get(EVENTS, {"wallet": str(other.id)}).json()["results"]
    assert [(e["type"], e["wallet_id"]) for e in only_other] == [("deposit.created", str(other.id))]
    assert len(client.get(EVENTS, {"wallet": str(a.id)}).json()["results"]) == 3


@pytest.mark.parametrize("whose", ["bob's", "nobody's"])
def test_a_wallet_filter_naming_a_wallet_not_yours_is_not_found(story, api_client, whose):
    alice, _bob, _a, b = story
    wallet = b.id if whose == "bob's" else uuid.uuid4()
    assert_problem(api_client(alice).get(EVENTS, {"wallet": str(wallet)}), 404, "not_found")


@pytest.mark.parametrize(
    "query",
    [
        {"type": "money.deposit"},
        {"after": "-1"},
        {"after": "1.0"},
        {"after": "\u0661"},  # an Arabic-Indic one
        {"after": ""},
        {"wallet": "x"},
    ],
)
def test_bad_filters_are_validation_errors(story, api_client, query):
    alice, *_ = story
    assert_problem(api_client(alice).get(EVENTS, query), 400, "validation_error")


def test_one_event_by_id_is_for_its_owner_only(story, api_client):
    alice, bob, _a, _b = story
    event = Event.objects.filter(owner_id=alice.id).order_by("-sequence").first()

    response = api_client(alice).get(f"{EVENTS}/{event.uuid}")
    assert response.status_code == 200
    assert response.json()["id"] == str(event.uuid)
    assert_problem(api_client(bob).get(f"{EVENTS}/{event.uuid}"), 404, "not_found")
    assert_problem(api_client(alice).get(f"{EVENTS}/{uuid.uuid4()}"), 404, "not_found")
    assert api_client(None).get(f"{EVENTS}/{event.uuid}").status_code == 401


def test_the_list_is_one_range_scan_of_the_owners_index(story, django_assert_num_queries, api_client):
    alice, *_ = story
    client = api_client(alice)
    client.get("/api/v1/auth/me")  # warm the user cache
    with django_assert_num_queries(1) as queries:
        client.get(EVENTS, {"type": "deposit.created"})
    sql = queries.captured_queries[0]["sql"]
    assert '"events_event"."owner_id" = ' in sql and 'ORDER BY "events_event"."sequence" DESC' in sql


def test_the_api_event_is_what_the_money_post_answered(story, api_client):
    alice, _bob, a, _b = story
    client = api_client(alice)
    posted = client.post(f"/api/v1/wallets/{a.id}/deposits", {"amount": 9}, format="json", **idem())
    [latest] = client.get(EVENTS, {"limit": 1}).json()["results"]
    assert latest["type"] == "deposit.created"
    assert latest["data"] == posted.json()


def test_event_data_is_what_the_documented_serializer_renders(story):
    from events.serializers import EventSerializer, event_data
    from events.services import render

    for event in Event.objects.all():
        assert render(event_data(event)) == render(EventSerializer(event).data)
