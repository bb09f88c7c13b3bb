from rest_framework import serializers

from wallet_project.api import StrictCharField, StrictSerializer
from wallets.currencies import supported_currencies
from wallets.models import Wallet


class WalletCreateSerializer(StrictSerializer):
    currency = StrictCharField(help_text="ISO 4217 code, e.g. USD.")
    name = StrictCharField(required=False, allow_blank=True, max_length=100, default="")

    def validate_currency(self, value: str) -> str:
        if value not in supported_currencies():
            raise serializers.ValidationError(
                f"Unsupported currency. Supported: {', '.join(supported_currencies())}."
            )
        return value


class WalletUpdateSerializer(StrictSerializer):
    name = StrictCharField(allow_blank=True, max_length=100)


class WalletSerializer(serializers.ModelSerializer):
    balance = serializers.IntegerField(help_text="Minor units (e.g. cents).")

    class Meta:
        model = Wallet
        fields = ["id", "currency", "balance", "status", "name", "created_at", "updated_at"]
        read_only_fields = fields


def wallet_data(wallet: Wallet) -> dict:
    """The wallet's public representation (cheaper than a serializer on the hot path)."""
    return {
        "id": wallet.id,
        "currency": wallet.currency,
        "balance": wallet.balance,
        "status": wallet.status,
        "name": wallet.name,
        "created_at": wallet.created_at,
        "updated_at": wallet.updated_at,
    }
