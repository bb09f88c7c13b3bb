"""Reading the caller's events: each read is one range scan of an index on (owner or
wallet, sequence)."""

from __future__ import annotations

from uuid import UUID

from django.db.models import QuerySet

from events.errors import EventNotFound
from events.models import Event


def event_list(
    *, user_id: int, wallet_id: UUID | None = None, type: str | None = None, after: int | None = None
) -> QuerySet[Event]:
    """The caller's events, optionally about one wallet, of one type, or past a sequence.
    Unordered: the pagination orders by sequence. Whether `wallet_id` is the caller's is
    the caller's check (events.api)."""
    events = Event.objects.filter(owner_id=user_id)
    if wallet_id is not None:
        events = events.filter(wallet_id=wallet_id)
    if type is not None:
        events = events.filter(type=type)
    if after is not None:
        events = events.filter(sequence__gt=after)
    return events


def event_get(*, event_id: UUID, user_id: int) -> Event:
    """One of the caller's events by its id; EventNotFound for anyone else's."""
    event = Event.objects.filter(uuid=event_id, owner_id=user_id).first()
    if event is None:
        raise EventNotFound("No event with this id is yours.")
    return event
