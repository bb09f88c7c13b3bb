from django.conf import settings
from rest_framework import serializers
from rest_framework.renderers import JSONRenderer

from foundation.serializers import (
    AmountField,
    QueryFilterSerializer,
    ReferenceField,
    StrictCharField,
    StrictDateTimeField,
    StrictIntegerField,
    StrictSerializer,
    StrictUUIDField,
)
from transfers.holds import PreparedHoldChange
from transfers.models import Hold, LedgerEntry, Transfer
from transfers.services import PreparedMovement
from wallets.serializers import WalletSerializer, wallet_data


class MovementSerializer(StrictSerializer):
    amount = AmountField(help_text="Minor units (e.g. cents); 1 to 10^15.")
    reference = ReferenceField()
    description = StrictCharField(required=False, allow_blank=True, max_length=255, default="")


class TransferCreateSerializer(MovementSerializer):
    source_wallet_id = StrictUUIDField()
    destination_wallet_id = StrictUUIDField()


class TransferSerializer(serializers.ModelSerializer):
    source_wallet_id = serializers.UUIDField()
    destination_wallet_id = serializers.UUIDField()
    refund_of = serializers.UUIDField(
        source="refund_of_id", allow_null=True, help_text="A refund's original transfer; null otherwise."
    )
    refunded_amount = serializers.IntegerField(
        help_text="What the transfer's refunds add up to (minor units)."
    )

    class Meta:
        model = Transfer
        fields = [
            "id",
            "kind",
            "source_wallet_id",
            "destination_wallet_id",
            "amount",
            "currency",
            "status",
            "reference",
            "description",
            "refund_of",
            "refunded_amount",
            "created_at",
        ]
        read_only_fields = fields


class RefundCreateSerializer(StrictSerializer):
    amount = AmountField(required=False, help_text="Minor units; default: all that is left to refund.")
    reason = StrictCharField(required=False, allow_blank=True, max_length=255, default="")
    reference = ReferenceField()


class HoldCreateSerializer(StrictSerializer):
    amount = AmountField(help_text="Minor units to reserve; 1 to 10^15.")
    expires_at = StrictDateTimeField(
        required=False,
        help_text="When the hold lapses (ISO 8601 with offset); default: HOLD_DEFAULT_SECONDS.",
    )
    expires_in_seconds = StrictIntegerField(
        required=False,
        min_value=1,
        max_value=settings.HOLD_MAX_SECONDS,
        help_text="Or: lapse this many seconds from now.",
    )
    reference = ReferenceField(
        help_text="Your own reference, unique forever within the wallet's holds (1-128 printable characters)."
    )
    description = StrictCharField(required=False, allow_blank=True, max_length=255, default="")


class HoldCaptureSerializer(StrictSerializer):
    amount = AmountField(
        required=False, help_text="Minor units to capture, at most the held amount; default: all."
    )
    destination_wallet_id = StrictUUIDField(
        required=False,
        help_text="A wallet to pay (a transfer); without it the money leaves the service (a withdrawal).",
    )
    description = StrictCharField(required=False, allow_blank=True, max_length=255)


class HoldVoidSerializer(StrictSerializer):
    """An empty object (or no body): a void takes no options."""


class HoldSerializer(serializers.ModelSerializer):
    wallet_id = serializers.UUIDField()
    capture_transfer_id = serializers.UUIDField(
        allow_null=True, help_text="The transfer or withdrawal a capture made."
    )

    class Meta:
        model = Hold
        fields = [
            "id",
            "wallet_id",
            "amount",
            "captured_amount",
            "currency",
            "status",
            "expires_at",
            "reference",
            "description",
            "capture_transfer_id",
            "created_at",
            "finished_at",
        ]
        read_only_fields = fields


class HoldFilterSerializer(QueryFilterSerializer):
    wallet = StrictUUIDField(required=False)
    status = serializers.ChoiceField(choices=Hold.Status.choices, required=False)


class MovementResultSerializer(serializers.Serializer):
    transfer = TransferSerializer()
    wallet = WalletSerializer()


class LedgerEntrySerializer(serializers.ModelSerializer):
    transfer_id = serializers.UUIDField()
    reference = serializers.CharField(source="transfer.reference", allow_null=True)
    description = serializers.CharField(source="transfer.description")

    class Meta:
        model = LedgerEntry
        fields = [
            "id",
            "type",
            "amount",
            "balance_after",
            "transfer_id",
            "reference",
            "description",
            "created_at",
        ]
        read_only_fields = fields


class HistoryFilterSerializer(QueryFilterSerializer):
    type = serializers.ChoiceField(choices=LedgerEntry.Type.choices, required=False)
    created_after = serializers.DateTimeField(required=False)
    created_before = serializers.DateTimeField(required=False)


class TransferFilterSerializer(QueryFilterSerializer):
    wallet = StrictUUIDField(required=False)


# The API renders its answers from these plain dicts: a ModelSerializer rebuilds its fields
# for every instance, which cost more than the rest of a read. The serializers above
# describe the same shapes for the OpenAPI document; tests/test_serializers.py holds
# each dict to its serializer's output.


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


def entry_data(entry: LedgerEntry) -> dict:
    """A history entry as the API shows it (LedgerEntrySerializer)."""
    return {
        "id": entry.id,
        "type": entry.type,
        "amount": entry.amount,
        "balance_after": entry.balance_after,
        "transfer_id": entry.transfer_id,
        "reference": entry.transfer.reference,
        "description": entry.transfer.description,
        "created_at": entry.created_at,
    }


_renderer = JSONRenderer()


def render_json(data: object) -> bytes:
    return _renderer.render(data)


def response_body(prepared: PreparedMovement | PreparedHoldChange) -> bytes:
    """The success body of a money POST, rendered before the write so it is stored with
    the idempotency record (and replayed byte for byte): the hold, for a hold's creation,
    capture or void; the transfer, for a transfer or refund; `{transfer, wallet}` (the
    caller's wallet after the movement) for deposits and withdrawals."""
    if isinstance(prepared, PreparedHoldChange):
        return render_json(hold_data(prepared.hold))
    if prepared.hold is not None:
        return render_json(hold_data(prepared.hold))
    transfer = transfer_data(prepared.transfer)
    if prepared.movement.kind in (Transfer.Kind.TRANSFER, Transfer.Kind.REFUND):
        return render_json(transfer)
    return render_json({"transfer": transfer, "wallet": wallet_data(prepared.own_wallet)})
