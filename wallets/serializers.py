from typing import Any

from rest_framework import serializers

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


class WalletSerializer(serializers.ModelSerializer):
    balance = serializers.IntegerField(help_text="Minor units (e.g. cents).")

    class Meta:
        model = Wallet
        fields = ["id", "currency", "balance", "status", "name", "created_at", "updated_at"]
        read_only_fields = fields


def wallet_data(wallet: Wallet) -> dict:
    """A wallet as the API shows it (WalletSerializer describes it for the OpenAPI document;
    a ModelSerializer rebuilds its fields for every instance, which cost more than the read)."""
    return {
        "id": wallet.id,
        "currency": wallet.currency,
        "balance": wallet.balance,
        "status": wallet.status,
        "name": wallet.name,
        "created_at": wallet.created_at,
        "updated_at": wallet.updated_at,
    }
