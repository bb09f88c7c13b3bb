from django.contrib import admin
from django.db.models import QuerySet

from foundation.admin import short_id
from foundation.currencies import format_major
from wallets.models import Wallet
from wallets.services import wallet_set_status


class LedgerFilter(admin.SimpleListFilter):
    """Wallets reconciliation found inconsistent with their ledger (docs/operations.md)."""

    title = "ledger"
    parameter_name = "ledger"

    def lookups(self, request, model_admin):
        return [("inconsistent", "Inconsistent (found by reconciliation)"), ("consistent", "Consistent")]

    def queryset(self, request, queryset: QuerySet[Wallet]) -> QuerySet[Wallet]:
        if self.value() == "inconsistent":
            return queryset.filter(inconsistent_since__isnull=False)
        if self.value() == "consistent":
            return queryset.filter(inconsistent_since__isnull=True)
        return queryset


class WalletAdmin(admin.ModelAdmin):
    """Operators can find wallets and freeze/close them; balances are never edited here.

    Registered by transfers.admin, which adds what only the ledger knows: a system
    wallet's balance (the sum of its entries) and the reconciliation findings.
    """

    list_display = ["wallet", "owner", "kind", "shown_balance", "status", "ledger_ok", "created_at"]
    list_filter = [LedgerFilter, "kind", "currency", "status"]
    search_fields = ["=id", "owner__username", "owner__email", "=currency"]
    list_select_related = ["owner"]
    readonly_fields = [
        "id",
        "owner",
        "kind",
        "currency",
        "shown_balance",
        "inconsistent_since",
        "created_at",
        "updated_at",
    ]
    fields = [*readonly_fields[:4], "name", "status", *readonly_fields[4:]]
    show_full_result_count = False

    @admin.display(description="Wallet", ordering="id")
    def wallet(self, wallet: Wallet) -> str:
        return short_id(wallet.id)

    @admin.display(description="Balance", ordering="balance")
    def shown_balance(self, wallet: Wallet) -> str:
        return format_major(wallet.balance, wallet.currency)

    @admin.display(description="Ledger OK", boolean=True, ordering="inconsistent_since")
    def ledger_ok(self, wallet: Wallet) -> bool:
        return wallet.inconsistent_since is None

    def save_model(self, request, obj: Wallet, form, change: bool) -> None:
        # Never write `balance` from a form: it may have moved since the page loaded.
        wallet_set_status(wallet_id=obj.id, status=obj.status, name=obj.name, actor_id=request.user.id)

    def has_add_permission(self, request) -> bool:  # wallets are opened through the API
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
