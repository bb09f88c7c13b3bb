from django.contrib import admin

from wallets.currencies import format_major
from wallets.models import Wallet
from wallets.selectors import system_wallet_balance
from wallets.services import wallet_set_status


@admin.register(Wallet)
class WalletAdmin(admin.ModelAdmin):
    """Operators can find wallets and freeze/close them; balances are never edited here."""

    list_display = ["id", "owner", "kind", "currency", "balance", "balance_major", "status", "created_at"]
    list_filter = ["kind", "currency", "status"]
    search_fields = ["=id", "owner__username", "owner__email", "=currency"]
    list_select_related = ["owner"]
    readonly_fields = [
        "id",
        "owner",
        "kind",
        "currency",
        "balance",
        "balance_major",
        "ledger_balance",
        "created_at",
        "updated_at",
    ]
    fields = [*readonly_fields[:4], "name", "status", *readonly_fields[4:]]
    show_full_result_count = False

    @admin.display(description="Balance (major units)")
    def balance_major(self, wallet: Wallet) -> str:
        return format_major(wallet.balance, wallet.currency)

    @admin.display(description="System balance (sum of entries)")
    def ledger_balance(self, wallet: Wallet) -> str:
        if not wallet.is_system:
            return "-"
        return format_major(system_wallet_balance(wallet_id=wallet.id), wallet.currency)

    def save_model(self, request, obj: Wallet, form, change: bool) -> None:
        # Never write `balance` from a form: it may have moved since the page loaded.
        wallet_set_status(wallet_id=obj.id, status=obj.status, name=obj.name)

    def has_add_permission(self, request) -> bool:  # wallets are opened through the API
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
