from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from foundation.admin import ReadOnlyAdmin, short_id, short_time
from foundation.currencies import format_major
from transfers.models import Discrepancy, Hold, IdempotencyRecord, LedgerEntry, ReconciliationRun, Transfer
from transfers.selectors import with_ledger_balance
from wallets.admin import WalletAdmin
from wallets.models import Wallet


@admin.register(Wallet)
class LedgerWalletAdmin(WalletAdmin):
    """The wallet admin (wallets.admin) with what the ledger knows: a system wallet's balance
    is the sum of its entries (it keeps no row balance), and reconciliation's findings."""

    readonly_fields = [*WalletAdmin.readonly_fields, "discrepancies", "pending_holds"]
    fields = [*WalletAdmin.fields, "discrepancies", "pending_holds"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Wallet]:
        # The sum of a system wallet's entries, in the same query (only system rows compute it).
        return with_ledger_balance(super().get_queryset(request))

    @admin.display(description="Balance", ordering="ledger_balance")
    def shown_balance(self, wallet: Wallet) -> str:
        return format_major(wallet.ledger_balance, wallet.currency)

    @admin.display(description="Discrepancies found")
    def discrepancies(self, wallet: Wallet) -> str:
        url = reverse("admin:transfers_discrepancy_changelist")
        return format_html('<a href="{}?q={}">Reconciliation findings for this wallet</a>', url, wallet.id)

    @admin.display(description="Holds")
    def pending_holds(self, wallet: Wallet) -> str:
        url = reverse("admin:transfers_hold_changelist")
        return format_html(
            '<a href="{}?q={}&amp;status__exact=pending">Pending holds of this wallet</a> (sum: held)',
            url,
            wallet.id,
        )


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
    # Short ids from the foreign-key columns themselves: no join, and the list fits a laptop screen.
    list_display = ["transfer", "kind", "source", "destination", "shown_amount", "reference", "created_at"]
    list_filter = ["kind", "currency", "status"]
    search_fields = ["=id", "=source_wallet__id", "=destination_wallet__id", "=reference"]
    date_hierarchy = "created_at"
    inlines = [LedgerEntryInline]
    show_full_result_count = False
    # Read-only, so Django shows every field; `id` and `created_at` are not editable and
    # would otherwise be left out.
    fields = ["id", "kind", "status", "source_wallet", "destination_wallet", "amount", "currency",
              "shown_amount", "reference", "reference_wallet", "description", "initiated_by",
              "created_at"]  # fmt: skip
    readonly_fields = ["id", "shown_amount", "created_at"]

    @admin.display(description="Transfer", ordering="id")
    def transfer(self, transfer: Transfer) -> str:
        return short_id(transfer.id)

    @admin.display(description="From")
    def source(self, transfer: Transfer) -> str:
        return short_id(transfer.source_wallet_id)

    @admin.display(description="To")
    def destination(self, transfer: Transfer) -> str:
        return short_id(transfer.destination_wallet_id)

    @admin.display(description="Amount", ordering="amount")
    def shown_amount(self, transfer: Transfer) -> str:
        return format_major(transfer.amount, transfer.currency)


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "on_wallet",
        "type",
        "shown_amount",
        "shown_balance_after",
        "of_transfer",
        "created_at",
    ]
    list_filter = ["type"]
    search_fields = ["=wallet__id", "=transfer__id"]
    list_select_related = ["wallet"]  # the currency, to show amounts in major units
    show_full_result_count = False
    fields = ["id", "transfer", "wallet", "type", "amount", "balance_after", "shown_amount", "created_at"]
    readonly_fields = ["id", "shown_amount", "created_at"]

    @admin.display(description="Wallet")
    def on_wallet(self, entry: LedgerEntry) -> str:
        return short_id(entry.wallet_id)

    @admin.display(description="Transfer")
    def of_transfer(self, entry: LedgerEntry) -> str:
        return short_id(entry.transfer_id)

    @admin.display(description="Amount", ordering="amount")
    def shown_amount(self, entry: LedgerEntry) -> str:
        return format_major(entry.amount, entry.wallet.currency)

    @admin.display(description="Balance after")
    def shown_balance_after(self, entry: LedgerEntry) -> str:
        if entry.balance_after is None:  # system wallets keep no running balance
            return "-"
        return format_major(entry.balance_after, entry.wallet.currency)


@admin.register(Hold)
class HoldAdmin(ReadOnlyAdmin):
    """Holds are changed by their owners through the API (capture, void) and by expiry; here
    operators look: a wallet's `held` is the sum of its pending holds."""

    list_display = ["hold", "on_wallet", "status", "shown_amount", "shown_captured", "expires_at",
                    "created_at"]  # fmt: skip
    list_filter = ["status", "currency"]
    search_fields = ["=id", "=wallet__id", "=reference", "=capture_transfer__id"]
    date_hierarchy = "created_at"
    show_full_result_count = False
    fields = ["id", "wallet", "status", "amount", "captured_amount", "currency", "shown_amount",
              "shown_captured", "expires_at", "reference", "description", "created_by",
              "capture_transfer", "created_at", "finished_at"]  # fmt: skip
    readonly_fields = ["id", "shown_amount", "shown_captured", "created_at"]

    @admin.display(description="Hold", ordering="id")
    def hold(self, hold: Hold) -> str:
        return short_id(hold.id)

    @admin.display(description="Wallet")
    def on_wallet(self, hold: Hold) -> str:
        return short_id(hold.wallet_id)

    @admin.display(description="Amount", ordering="amount")
    def shown_amount(self, hold: Hold) -> str:
        return format_major(hold.amount, hold.currency)

    @admin.display(description="Captured", ordering="captured_amount")
    def shown_captured(self, hold: Hold) -> str:
        return format_major(hold.captured_amount, hold.currency)


@admin.register(IdempotencyRecord)
class IdempotencyRecordAdmin(ReadOnlyAdmin):
    list_display = ["id", "user", "key", "method", "path", "status_code", "of_transfer", "created_at"]
    search_fields = ["=key", "user__username"]
    exclude = ["response_body"]
    list_select_related = ["user"]
    show_full_result_count = False

    @admin.display(description="Transfer")
    def of_transfer(self, record: IdempotencyRecord) -> str:
        return short_id(record.transfer_id)


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
    # Short headers for the counts, so the list fits a 1400 px window beside the admin's
    # navigation and filters.
    list_display = ["id", "scope", "status", "started", "finished", "wallets", "transfers", "discrepancies"]
    list_filter = ["status", "scope"]
    date_hierarchy = "started_at"
    inlines = [DiscrepancyInline]

    @admin.display(description="Started", ordering="started_at")
    def started(self, run: ReconciliationRun) -> str:
        return short_time(run.started_at)

    @admin.display(description="Finished", ordering="finished_at")
    def finished(self, run: ReconciliationRun) -> str:
        return short_time(run.finished_at)

    @admin.display(description="Wallets", ordering="wallets_checked")
    def wallets(self, run: ReconciliationRun) -> int:
        return run.wallets_checked

    @admin.display(description="Transfers", ordering="transfers_checked")
    def transfers(self, run: ReconciliationRun) -> int:
        return run.transfers_checked

    @admin.display(description="Discrepancies", ordering="discrepancy_count")
    def discrepancies(self, run: ReconciliationRun) -> int:
        return run.discrepancy_count


@admin.register(Discrepancy)
class DiscrepancyAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "run",
        "kind",
        "on_wallet",
        "of_transfer",
        "shown_expected",
        "shown_actual",
        "created_at",
    ]
    list_filter = ["kind", "currency", ("run", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["=wallet__id", "=transfer_id"]
    list_select_related = ["run"]

    @admin.display(description="Wallet")
    def on_wallet(self, discrepancy: Discrepancy) -> str:
        return short_id(discrepancy.wallet_id)

    @admin.display(description="Transfer")
    def of_transfer(self, discrepancy: Discrepancy) -> str:
        return short_id(discrepancy.transfer_id)

    @admin.display(description="Expected", ordering="expected")
    def shown_expected(self, discrepancy: Discrepancy) -> str:
        return _amount(discrepancy.expected, discrepancy.currency)

    @admin.display(description="Actual", ordering="actual")
    def shown_actual(self, discrepancy: Discrepancy) -> str:
        return _amount(discrepancy.actual, discrepancy.currency)


def _amount(minor: object, currency: str) -> str:
    """Major units with the currency when it is known, else the minor units as stored."""
    return format_major(int(minor), currency) if currency else str(minor)
