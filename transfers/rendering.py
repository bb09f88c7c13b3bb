"""A transfer and a hold as the API shows them, as plain dicts and as JSON bytes.

The views render their answers with these, and so does the outbox (transfers.events),
whose events carry the same bytes a request would have been answered with. They read
model instances only: this module imports no service, so the money path below it can
use it without importing the API above it.

A ModelSerializer rebuilds its fields for every instance, which cost more than the rest
of a read; the serializers in transfers.serializers describe the same shapes for the
OpenAPI document, and transfers/tests/test_serializers.py holds each dict to its
serializer's output.
"""

from __future__ import annotations

from rest_framework.renderers import JSONRenderer

from transfers.models import Hold, Transfer


def transfer_data(transfer: Transfer) -> dict:
    """A transfer as the API shows it (TransferSerializer). Needs `refunded_amount` on the
    instance: the selectors annotate it, the money path sets it on a new transfer."""
    return {
        "id": transfer.id,
        "kind": transfer.kind,
        "source_wallet_id": transfer.source_wallet_id,
        "destination_wallet_id": transfer.destination_wallet_id,
        "amount": transfer.amount,
        "currency": transfer.currency,
        "status": transfer.status,
        "reference": transfer.reference,
        "description": transfer.description,
        "refund_of": transfer.refund_of_id,
        "refunded_amount": transfer.refunded_amount,
        "created_at": transfer.created_at,
    }


def hold_data(hold: Hold) -> dict:
    """A hold as the API shows it (HoldSerializer)."""
    return {
        "id": hold.id,
        "wallet_id": hold.wallet_id,
        "amount": hold.amount,
        "captured_amount": hold.captured_amount,
        "currency": hold.currency,
        "status": hold.status,
        "expires_at": hold.expires_at,
        "reference": hold.reference,
        "description": hold.description,
        "capture_transfer_id": hold.capture_transfer_id,
        "created_at": hold.created_at,
        "finished_at": hold.finished_at,
    }


_renderer = JSONRenderer()


def render_json(data: object) -> bytes:
    """`data` as the API's JSON renderer writes it (the bytes a response would carry)."""
    return _renderer.render(data)
