from django.contrib import admin

from transfers.models import Discrepancy, IdempotencyRecord, LedgerEntry, ReconciliationRun, Transfer
from wallet_project.admin_site import ReadOnlyAdmin
from wallets.currencies import format_major


class LedgerEntryInline(admin.TabularInline):
    model = LedgerEntry
    fields = ["id", "wallet", "type", "amount", "balance_after", "created_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Transfer)
class TransferAdmin(ReadOnlyAdmin):
    list_display = ["id", "kind", "source_wallet", "destination_wallet", "amount", "amount_major", "currency",
                    "reference", "created_at"]  # fmt: skip
    list_filter = ["kind", "currency", "status"]
    search_fields = ["=id", "=source_wallet__id", "=destination_wallet__id", "=reference"]
    date_hierarchy = "created_at"
    inlines = [LedgerEntryInline]
    show_full_result_count = False

    @admin.display(description="Amount (major units)")
    def amount_major(self, transfer: Transfer) -> str:
        return format_major(transfer.amount, transfer.currency)


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    list_display = ["id", "wallet", "type", "amount", "balance_after", "transfer", "created_at"]
    list_filter = ["type"]
    search_fields = ["=wallet__id", "=transfer__id"]
    show_full_result_count = False


@admin.register(IdempotencyRecord)
class IdempotencyRecordAdmin(ReadOnlyAdmin):
    list_display = ["id", "user", "key", "method", "path", "status_code", "transfer", "created_at"]
    search_fields = ["=key", "user__username"]
    exclude = ["response_body"]
    show_full_result_count = False


class DiscrepancyInline(admin.TabularInline):
    model = Discrepancy
    fields = ["kind", "wallet", "transfer_id", "entry_id", "currency", "expected", "actual", "detail"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    max_num = 0
    show_change_link = True

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ReconciliationRun)
class ReconciliationRunAdmin(ReadOnlyAdmin):
    list_display = ["id", "scope", "status", "started_at", "finished_at", "wallets_checked",
                    "transfers_checked", "discrepancy_count"]  # fmt: skip
    list_filter = ["status", "scope"]
    date_hierarchy = "started_at"
    inlines = [DiscrepancyInline]


@admin.register(Discrepancy)
class DiscrepancyAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "run",
        "kind",
        "wallet",
        "transfer_id",
        "currency",
        "expected",
        "actual",
        "created_at",
    ]
    list_filter = ["kind", "currency", ("run", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["=wallet__id", "=transfer_id"]
    list_select_related = ["run"]
