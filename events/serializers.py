from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from events.models import Event
from foundation.serializers import QueryFilterSerializer, StrictUUIDField

# What `data` is, by `type`: the resources the money and wallet endpoints answer with. Named
# by their schema components, which the apps above this one define.
DATA_SCHEMA = {
    "anyOf": [
        {"$ref": "#/components/schemas/Transfer"},
        {"$ref": "#/components/schemas/MovementResult"},
        {"$ref": "#/components/schemas/Hold"},
        {"$ref": "#/components/schemas/Wallet"},
    ],
    "description": (
        "The resource as the API renders it: the transfer (`transfer.created`, `refund.created`); "
        "`{transfer, wallet}`, the wallet after the movement (`deposit.created`, `withdrawal.created`, "
        "`adjustment.posted`); the hold (`hold.*`); the wallet (`wallet.status_changed`)."
    ),
}


@extend_schema_field(DATA_SCHEMA)
class EventDataField(serializers.JSONField):
    pass


class EventSerializer(serializers.ModelSerializer):
    """Something that happened to one of your wallets (event_data() renders it)."""

    id = serializers.UUIDField(source="uuid", help_text="Stable: deduplicate on it.")
    sequence = serializers.IntegerField(
        help_text="Orders events; a wallet's events are in its ledger's order. Use it as `after`."
    )
    wallet_id = serializers.UUIDField(help_text="The wallet of yours the event is about.")
    data = EventDataField()

    class Meta:
        model = Event
        fields = ["id", "sequence", "type", "created_at", "wallet_id", "data"]
        read_only_fields = fields


class SequenceField(serializers.IntegerField):
    """A sequence in a query string: ASCII digits only (int() would take signs, spaces,
    underscores and other scripts' digits, which no JSON Schema integer has)."""

    def to_internal_value(self, data: Any) -> int:
        if not (isinstance(data, str) and data.isascii() and data.isdigit()):
            self.fail("invalid")
        return super().to_internal_value(data)


class EventFilterSerializer(QueryFilterSerializer):
    wallet = StrictUUIDField(required=False, help_text="Only events about this wallet of yours.")
    type = serializers.ChoiceField(choices=Event.Type.choices, required=False)
    after = SequenceField(
        required=False,
        min_value=0,
        max_value=2**63 - 1,
        help_text=(
            "Read forward: events with a larger `sequence`, oldest first (catching up). "
            "Without it, newest first."
        ),
    )


def event_data(event: Event) -> dict:
    """An event as the API shows it (EventSerializer)."""
    return {
        "id": event.uuid,
        "sequence": event.sequence,
        "type": event.type,
        "created_at": event.created_at,
        "wallet_id": event.wallet_id,
        "data": event.data,
    }
