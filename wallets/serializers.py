from datetime import date
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from foundation.clock import utc_today
from foundation.currencies import supported_currencies
from foundation.serializers import StrictCharField, StrictChoiceField, StrictSerializer
from wallets.models import Wallet


class WalletCreateSerializer(StrictSerializer):
    currency = StrictChoiceField(choices=[], help_text="ISO 4217 code of a supported currency.")
    name = StrictCharField(required=False, allow_blank=True, max_length=100, default="")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Read per instance, so the choices (and the schema's enum) follow WALLET_CURRENCIES.
        currencies = supported_currencies()
        field = self.fields["currency"]
        field.choices = currencies
        field.error_messages["invalid_choice"] = f"Unsupported currency. Supported: {', '.join(currencies)}."


class WalletUpdateSerializer(StrictSerializer):
    name = StrictCharField(allow_blank=True, max_length=100)


class WalletLimitsSerializer(serializers.Serializer):
    max_outgoing_amount = serializers.IntegerField(
        allow_null=True, help_text="Largest single outgoing movement (minor units); null: no limit."
    )
    max_outgoing_per_day = serializers.IntegerField(
        allow_null=True, help_text="Largest total leaving the wallet in one UTC day; null: no limit."
    )
    outgoing_today = serializers.SerializerMethodField(help_text="What left the wallet so far today (UTC).")
    remaining_today = serializers.SerializerMethodField(
        help_text="What may still leave it today; null: no daily limit."
    )

    @extend_schema_field(OpenApiTypes.INT)
    def get_outgoing_today(self, wallet: Wallet) -> int:
        return wallet.outgoing_on(utc_today())

    @extend_schema_field({"type": "integer", "nullable": True})
    def get_remaining_today(self, wallet: Wallet) -> int | None:
        return wallet.remaining_on(utc_today())


class WalletSerializer(serializers.ModelSerializer):
    balance = serializers.IntegerField(help_text="Minor units (e.g. cents).")
    held = serializers.IntegerField(help_text="Reserved by pending holds (minor units).")
    available = serializers.IntegerField(help_text="balance - held: what the wallet can spend.")
    limits = WalletLimitsSerializer(source="*", help_text="Operators' limits on outgoing money.")

    class Meta:
        model = Wallet
        fields = [
            "id",
            "currency",
            "balance",
            "held",
            "available",
            "status",
            "name",
            "limits",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


def wallet_data(wallet: Wallet, today: date | None = None) -> dict:
    """A wallet as the API shows it (WalletSerializer describes it for the OpenAPI document;
    a ModelSerializer rebuilds its fields for every instance, which cost more than the read).
    `today` is the UTC date the limits are counted for (default: now)."""
    day = today or utc_today()
    return {
        "id": wallet.id,
        "currency": wallet.currency,
        "balance": wallet.balance,
        "held": wallet.held,
        "available": wallet.balance - wallet.held,
        "status": wallet.status,
        "name": wallet.name,
        "limits": {
            "max_outgoing_amount": wallet.max_outgoing_amount,
            "max_outgoing_per_day": wallet.max_outgoing_per_day,
            "outgoing_today": wallet.outgoing_on(day),
            "remaining_today": wallet.remaining_on(day),
        },
        "created_at": wallet.created_at,
        "updated_at": wallet.updated_at,
    }
