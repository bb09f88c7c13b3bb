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

The writes that call these (transfers.services, transfers.holds) pass them their rows,
not their prepared objects: this module sits below them and imports neither.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from psycopg.types.json import Jsonb

from events.models import Event
from events.services import event_build, rendered
from transfers.models import Hold, Transfer
from transfers.rendering import hold_data, render_json, transfer_data
from wallets.models import Wallet
from wallets.serializers import wallet_data

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


def movement_events(
    *,
    transfer: Transfer,
    changed_wallets: Sequence[Wallet],
    own_wallet: Wallet,
    hold: Hold | None = None,
    body: bytes | None = None,
) -> list[Event]:
    """The events of a movement (transfers.services.PreparedMovement): `changed_wallets`,
    the user wallets it changes after it, `own_wallet` the caller's among them, `hold` a
    capture's hold; `body` is the answer the executor rendered for it (the hold for a
    capture, else the transfer or `{transfer, wallet}` of the caller's wallet)."""
    created_at, kind = transfer.created_at, transfer.kind
    events = []
    if hold is not None:
        hold_body = body if body is not None else render_json(hold_data(hold))
        events.append(
            event_build(
                type=Event.Type.HOLD_CAPTURED,
                wallet_id=hold.wallet_id,
                owner_id=own_wallet.owner_id,
                created_at=created_at,
                data=rendered(hold_body),
            )
        )
        body = None  # the answer is the hold: the movement's events render their own
    shared: Jsonb | None = None
    for wallet in changed_wallets:
        if kind in _TRANSFER_ONLY:
            if shared is None:
                shared = rendered(body if body is not None else render_json(transfer_data(transfer)))
            data = shared
        elif body is not None and wallet.id == own_wallet.id:
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


def hold_events(
    *, action: str, hold: Hold, wallet: Wallet, created_at: datetime, body: bytes | None = None
) -> list[Event]:
    """The event of a hold created, voided or expired (`action`; transfers.holds.PreparedHoldChange)
    on `wallet`; `body`: the hold as the executor rendered it."""
    data = body if body is not None else render_json(hold_data(hold))
    return [
        event_build(
            type=HOLD_TYPES[action],
            wallet_id=wallet.id,
            owner_id=wallet.owner_id,
            created_at=created_at,
            data=rendered(data),
        )
    ]
