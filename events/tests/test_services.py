"""events.services: rendering as the API renders, building and recording events."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
from django.db import connection, transaction

from events.models import Event
from events.services import event_build, event_record, render, rendered

pytestmark = pytest.mark.django_db

AT = datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)


def test_render_gives_the_bytes_an_api_response_has():
    wallet_id = uuid.UUID("12345678-1234-5678-1234-567812345678")
    body = render({"id": wallet_id, "at": AT, "amount": 2500, "name": "café"})
    # DRF's JSONRenderer: compact, UUIDs as strings, UTC as Z, and UTF-8 as it is.
    assert body == (
        b'{"id":"12345678-1234-5678-1234-567812345678","at":"2026-03-04T05:06:07.890123Z",'
        b'"amount":2500,"name":"caf\xc3\xa9"}'
    )


def test_rendered_bytes_reach_postgresql_as_they_are():
    body = b'{"b": 1, "a": [2, 3]}'
    document = rendered(body)
    assert document.obj is body  # kept, not parsed
    with connection.cursor() as cursor:
        cursor.execute("SELECT %s::jsonb -> 'a' ->> 1, (%s::jsonb)::text", [document, document])
        assert cursor.fetchone() == ("3", '{"a": [2, 3], "b": 1}')


def test_event_build_makes_an_unsaved_event_with_a_fresh_id(make_user):
    owner = make_user()
    wallet_id = uuid.uuid4()
    first, second = (
        event_build(
            type="deposit.created", wallet_id=wallet_id, owner_id=owner.id, created_at=AT, data={"amount": 1}
        )
        for _ in range(2)
    )
    assert first.sequence is None  # no row yet: the caller adds it to its own write
    assert (first.type, first.wallet_id, first.owner_id, first.created_at, first.data) == (
        "deposit.created", wallet_id, owner.id, AT, {"amount": 1},
    )  # fmt: skip
    assert first.uuid != second.uuid
    assert not Event.objects.exists()


def test_event_record_stores_the_data_as_the_api_renders_it(make_user):
    owner = make_user()
    wallet_id = uuid.uuid4()
    event = event_record(
        type=Event.Type.WALLET_STATUS_CHANGED,
        wallet_id=wallet_id,
        owner_id=owner.id,
        created_at=AT,
        data={"wallet_id": wallet_id, "at": AT, "status": "frozen"},
    )
    stored = Event.objects.get(uuid=event.uuid)
    assert stored.sequence == event.sequence is not None
    assert stored.data == {
        "wallet_id": str(wallet_id),
        "at": "2026-03-04T05:06:07.890123Z",
        "status": "frozen",
    }
    assert stored.data == json.loads(render({"wallet_id": wallet_id, "at": AT, "status": "frozen"}))
    assert (stored.type, stored.owner_id, stored.created_at) == ("wallet.status_changed", owner.id, AT)


@pytest.mark.django_db(transaction=True)
def test_event_record_writes_in_the_callers_transaction(make_user):
    owner = make_user()
    with pytest.raises(RuntimeError), transaction.atomic():
        event_record(
            type="wallet.status_changed", wallet_id=uuid.uuid4(), owner_id=owner.id, created_at=AT, data={}
        )
        assert Event.objects.count() == 1
        raise RuntimeError("the change it describes failed")
    assert not Event.objects.exists()  # rolled back with the change
