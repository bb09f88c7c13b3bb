"""The outbox events of the money path: what each write adds to its one statement.

A movement writes one event per user wallet it changes, owned by that wallet's owner (a
transfer between two users tells each about their own wallet); a capture adds
`hold.captured` on the hold's wallet; a hold's creation, void or expiry writes one event.
Each event's `data` is the resource as the API renders it, by type:

- `transfer.created`, `refund.created`: the transfer;
- `deposit.created`, `withdrawal.created`, `adjustment.posted`: `{transfer, wallet}`, the
  wallet the event is about after the movement (what POST .../deposits answers);
- `hold.*`: the hold.

Where the change answers a request, the executor has rendered its answer already
(transfers.idempotency); an event of the same shape carries those bytes, not a second
rendering. Only what no request answered (the other shapes, commands, the expiry task)
is rendered here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from psycopg.types.json import Jsonb

from events.models import Event
from events.services import event_build, rendered
from transfers.models import Transfer
from wallets.serializers import wallet_data

if TYPE_CHECKING:
    from transfers.holds import PreparedHoldChange
    from transfers.services import PreparedMovement

Kind = Transfer.Kind
MOVEMENT_TYPES = {
    Kind.DEPOSIT: Event.Type.DEPOSIT_CREATED,
    Kind.WITHDRAWAL: Event.Type.WITHDRAWAL_CREATED,
    Kind.TRANSFER: Event.Type.TRANSFER_CREATED,
    Kind.REFUND: Event.Type.REFUND_CREATED,
    Kind.ADJUSTMENT: Event.Type.ADJUSTMENT_POSTED,
}
# Kinds whose event data is the transfer alone (the others: {transfer, wallet}).
_TRANSFER_ONLY = frozenset({Kind.TRANSFER, Kind.REFUND})
HOLD_TYPES = {
    "created": Event.Type.HOLD_CREATED,
    "captured": Event.Type.HOLD_CAPTURED,
    "voided": Event.Type.HOLD_VOIDED,
    "expired": Event.Type.HOLD_EXPIRED,
}


def movement_events(prepared: PreparedMovement, body: bytes | None = None) -> list[Event]:
    """The events of a movement; `body` is the answer the executor rendered for it (the
    hold for a capture, else the transfer or `{transfer, wallet}` of the caller's wallet)."""
    # transfers.serializers imports the money path (the prepared types), so it is imported
    # here, when the first event is built, not when this module is.
    from transfers.serializers import hold_data, render_json, transfer_data

    transfer, created_at = prepared.transfer, prepared.created_at
    kind = transfer.kind
    captured = prepared.hold is not None
    events = []
    if captured:
        hold_body = body if body is not None else render_json(hold_data(prepared.hold))
        events.append(
            event_build(
                type=Event.Type.HOLD_CAPTURED,
                wallet_id=prepared.hold.wallet_id,
                owner_id=prepared.own_wallet.owner_id,
                created_at=created_at,
                data=rendered(hold_body),
            )
        )
        body = None  # the answer is the hold: the movement's events render their own
    shared: Jsonb | None = None
    for wallet in prepared.changed_wallets:
        if kind in _TRANSFER_ONLY:
            if shared is None:
                shared = rendered(body if body is not None else render_json(transfer_data(transfer)))
            data = shared
        elif body is not None and wallet.id == prepared.movement.own_wallet_id:
            data = rendered(body)
        else:
            data = rendered(render_json({"transfer": transfer_data(transfer), "wallet": wallet_data(wallet)}))
        events.append(
            event_build(
                type=MOVEMENT_TYPES[kind],
                wallet_id=wallet.id,
                owner_id=wallet.owner_id,
                created_at=created_at,
                data=data,
            )
        )
    return events


def hold_events(prepared: PreparedHoldChange, body: bytes | None = None) -> list[Event]:
    """The event of a hold created, voided or expired; `body`: the hold as the executor rendered it."""
    from transfers.serializers import hold_data, render_json

    data = body if body is not None else render_json(hold_data(prepared.hold))
    return [
        event_build(
            type=HOLD_TYPES[prepared.action],
            wallet_id=prepared.wallet.id,
            owner_id=prepared.wallet.owner_id,
            created_at=prepared.created_at,
            data=rendered(data),
        )
    ]
