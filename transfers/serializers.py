from rest_framework import serializers
from rest_framework.renderers import JSONRenderer

from foundation.serializers import (
    AmountField,
    QueryFilterSerializer,
    ReferenceField,
    StrictCharField,
    StrictSerializer,
    StrictUUIDField,
)
from transfers.models import LedgerEntry, Transfer
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

    class Meta:
        model = Transfer
        fields = list(Transfer.PUBLIC_FIELDS)
        read_only_fields = fields


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
    """A transfer as the API shows it (TransferSerializer)."""
    return {name: getattr(transfer, name) for name in Transfer.PUBLIC_FIELDS}


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


def movement_response_body(prepared: PreparedMovement) -> bytes:
    """The 201 body of a money POST, rendered before the write so it is stored with the
    idempotency record (and replayed byte for byte): a transfer for POST transfers,
    `{transfer, wallet}` (the caller's wallet after the movement) for deposits and
    withdrawals."""
    transfer = transfer_data(prepared.transfer)
    if prepared.movement.kind == Transfer.Kind.TRANSFER:
        return render_json(transfer)
    return render_json({"transfer": transfer, "wallet": wallet_data(prepared.own_wallet)})
