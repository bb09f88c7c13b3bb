from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from foundation.admin import short_id
from wallets.currencies import format_major
from wallets.models import Wallet
from wallets.selectors import with_ledger_balance
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


@admin.register(Wallet)
class WalletAdmin(admin.ModelAdmin):
    """Operators can find wallets and freeze/close them; balances are never edited here."""

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
        "discrepancies",
        "created_at",
        "updated_at",
    ]
    fields = [*readonly_fields[:4], "name", "status", *readonly_fields[4:]]
    show_full_result_count = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Wallet]:
        # System wallets keep no row balance: show the sum of their entries, in the same query.
        return with_ledger_balance(super().get_queryset(request))

    @admin.display(description="Wallet", ordering="id")
    def wallet(self, wallet: Wallet) -> str:
        return short_id(wallet.id)

    @admin.display(description="Balance", ordering="ledger_balance")
    def shown_balance(self, wallet: Wallet) -> str:
        return format_major(wallet.ledger_balance, wallet.currency)

    @admin.display(description="Ledger OK", boolean=True, ordering="inconsistent_since")
    def ledger_ok(self, wallet: Wallet) -> bool:
        return wallet.inconsistent_since is None

    @admin.display(description="Discrepancies found")
    def discrepancies(self, wallet: Wallet) -> str:
        url = reverse("admin:transfers_discrepancy_changelist")
        return format_html('<a href="{}?q={}">Reconciliation findings for this wallet</a>', url, wallet.id)

    def save_model(self, request, obj: Wallet, form, change: bool) -> None:
        # Never write `balance` from a form: it may have moved since the page loaded.
        wallet_set_status(wallet_id=obj.id, status=obj.status, name=obj.name, actor_id=request.user.id)

    def has_add_permission(self, request) -> bool:  # wallets are opened through the API
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
