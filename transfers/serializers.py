from rest_framework import serializers

from foundation.serializers import (
    AmountField,
    QueryFilterSerializer,
    ReferenceField,
    StrictCharField,
    StrictSerializer,
    StrictUUIDField,
)
from transfers.models import LedgerEntry, Transfer
from wallets.serializers import WalletSerializer


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


def transfer_data(transfer: Transfer) -> dict:
    """The transfer's public representation (cheaper than a serializer on the hot path)."""
    return {name: getattr(transfer, name) for name in Transfer.PUBLIC_FIELDS}
