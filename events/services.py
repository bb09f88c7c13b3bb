"""Building events: the rows the writers of changes add to their own write.

The money path (transfers.events) adds them to its one statement; the wallets' status
changes insert theirs in the transaction that changes the status (event_record).
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb
from rest_framework.renderers import JSONRenderer

from events.models import Event

_renderer = JSONRenderer()


def render(data: Any) -> bytes:
    """A resource's JSON as the API renders it (DRF's renderer: the same bytes a response has)."""
    return _renderer.render(data)


def rendered(body: bytes) -> Jsonb:
    """An already rendered document for a jsonb column, sent as it is (not parsed and dumped
    again). One instance may serve several events: transfers.statements binds it once."""
    return Jsonb(body, dumps=_as_is)


def _as_is(body: bytes) -> bytes:
    return body


def event_build(
    *, type: str, wallet_id: UUID, owner_id: int, created_at: datetime, data: Jsonb | dict
) -> Event:
    """An unsaved event about `wallet_id`, readable by `owner_id`, at the change's time.
    `data`: rendered() bytes for the money path's statement, a dict for the ORM."""
    return Event(
        uuid=uuid.uuid4(), type=type, created_at=created_at, wallet_id=wallet_id, owner_id=owner_id, data=data
    )


def event_record(*, type: str, wallet_id: UUID, owner_id: int, created_at: datetime, data: Any) -> Event:
    """Insert an event in the caller's transaction (a change outside the money path's
    statement). `data` is rendered as the API renders it first."""
    event = event_build(
        type=type,
        wallet_id=wallet_id,
        owner_id=owner_id,
        created_at=created_at,
        data=json.loads(render(data)),
    )
    event.save(force_insert=True)
    return event
