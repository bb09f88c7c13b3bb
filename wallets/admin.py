from __future__ import annotations

from uuid import UUID

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from foundation.admin import short_id
from foundation.clock import utc_today
from foundation.currencies import format_major
from wallets.errors import WalletError
from wallets.models import Wallet
from wallets.services import LIMIT_FIELDS, wallet_release, wallet_set_limits, wallet_set_status


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


class WalletAdminForm(forms.ModelForm):
    """Limits are positive amounts in minor units, or empty for none (PostgreSQL checks the same)."""

    max_outgoing_amount = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=2**63 - 1,
        help_text="Largest single outgoing movement, in minor units (cents). Empty: no limit.",
    )
    max_outgoing_per_day = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=2**63 - 1,
        help_text="Largest total leaving the wallet in one UTC day, in minor units. Empty: no limit.",
    )

    class Meta:
        model = Wallet
        fields = ["name", "status", *LIMIT_FIELDS]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        status = self.fields.get("status")
        if status is not None:
            # Reconciliation puts a wallet under review; only a release takes it out.
            status.choices = [c for c in status.choices if c[0] != Wallet.Status.UNDER_REVIEW]


class WalletAdmin(admin.ModelAdmin):
    """Operators find wallets, freeze or close them, set their limits and release them from
    review; balances are never edited here. Every change goes through wallets.services,
    which locks the row and audits the old and new values.

    Registered by transfers.admin, which adds what only the ledger knows: a system
    wallet's balance (the sum of its entries) and the reconciliation findings.
    """

    form = WalletAdminForm
    list_display = ["wallet", "owner", "kind", "shown_balance", "status", "ledger_ok", "created_at"]
    list_filter = [LedgerFilter, "kind", "currency", "status"]
    search_fields = ["=id", "owner__username", "owner__email", "=currency"]
    list_select_related = ["owner"]
    # No bulk actions: their checkbox column would widen the list; a release is one
    # wallet at a time, from its page, after looking at it.
    actions = None
    readonly_fields = [
        "id",
        "owner",
        "kind",
        "currency",
        "shown_balance",
        "shown_held",
        "shown_available",
        "shown_outgoing_today",
        "shown_remaining_today",
        "inconsistent_since",
        "created_at",
        "updated_at",
    ]
    fields = [
        *readonly_fields[:4],
        "name",
        "status",
        *readonly_fields[4:7],
        *LIMIT_FIELDS,
        *readonly_fields[7:],
    ]
    show_full_result_count = False

    @admin.display(description="Wallet", ordering="id")
    def wallet(self, wallet: Wallet) -> str:
        return short_id(wallet.id)

    @admin.display(description="Balance", ordering="balance")
    def shown_balance(self, wallet: Wallet) -> str:
        return format_major(wallet.balance, wallet.currency)

    @admin.display(description="Held (pending holds)")
    def shown_held(self, wallet: Wallet) -> str:
        return format_major(wallet.held, wallet.currency)

    @admin.display(description="Available (balance less held)")
    def shown_available(self, wallet: Wallet) -> str:
        if wallet.is_system:
            return "-"
        return format_major(wallet.available, wallet.currency)

    @admin.display(description="Outgoing today (UTC)")
    def shown_outgoing_today(self, wallet: Wallet) -> str:
        return format_major(wallet.outgoing_on(utc_today()), wallet.currency)

    @admin.display(description="Remaining today under the daily limit")
    def shown_remaining_today(self, wallet: Wallet) -> str:
        remaining = wallet.remaining_on(utc_today())
        return "no daily limit" if remaining is None else format_major(remaining, wallet.currency)

    @admin.display(description="Ledger OK", boolean=True, ordering="inconsistent_since")
    def ledger_ok(self, wallet: Wallet) -> bool:
        return wallet.inconsistent_since is None

    def get_readonly_fields(self, request: HttpRequest, obj: Wallet | None = None) -> list[str]:
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None and obj.status == Wallet.Status.UNDER_REVIEW:
            fields.append("status")  # released with the button, once consistent
        if obj is not None and obj.is_system:
            fields.extend(LIMIT_FIELDS)  # nothing leaves a system wallet under a limit
        return fields

    def save_model(self, request: HttpRequest, obj: Wallet, form: forms.ModelForm, change: bool) -> None:
        # Only what the operator changed, through the services (they lock the row and audit
        # old and new values). Never `balance` from a form: it may have moved since the page loaded.
        changed = set(form.changed_data)
        if changed & {"status", "name"}:
            wallet_set_status(
                wallet_id=obj.id,
                status=obj.status if "status" in changed else None,
                name=obj.name if "name" in changed else None,
                actor_id=request.user.id,
            )
        if changed & set(LIMIT_FIELDS):
            wallet_set_limits(
                wallet_id=obj.id,
                max_outgoing_amount=obj.max_outgoing_amount,
                max_outgoing_per_day=obj.max_outgoing_per_day,
                actor_id=request.user.id,
            )

    def has_add_permission(self, request) -> bool:  # wallets are opened through the API
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    # --- release from review -------------------------------------------------------------

    def get_urls(self):
        release = path(
            "<path:object_id>/release/",
            self.admin_site.admin_view(self.release_view),
            name=f"{self.opts.app_label}_{self.opts.model_name}_release",
        )
        return [release, *super().get_urls()]

    def release_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """GET: what releasing means for this wallet. POST: release it (wallet_release)."""
        wallet = self._wallet_or_404(request, object_id)
        if not self.has_change_permission(request, wallet):
            raise PermissionDenied
        change_url = reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_change", args=[wallet.pk])
        if request.method == "POST":
            self._release(request, wallet)
            return HttpResponseRedirect(change_url)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Release the wallet from review",
            "wallet": wallet,
            "change_url": change_url,
            "findings_url": f"{reverse('admin:index')}transfers/discrepancy/?q={wallet.pk}",
            "under_review": wallet.status == Wallet.Status.UNDER_REVIEW,
            "consistent": wallet.inconsistent_since is None,
        }
        return TemplateResponse(request, "admin/wallets/wallet/release_confirmation.html", context)

    def _release(self, request: HttpRequest, wallet: Wallet) -> None:
        try:
            released = wallet_release(wallet_id=wallet.pk, actor_id=request.user.id)
        except WalletError as error:
            self.message_user(request, f"{short_id(wallet.pk)}: not released. {error.detail}", messages.ERROR)
            return
        self.log_change(request, released, f"Released from review (status {released.status}).")
        self.message_user(
            request, f"{short_id(wallet.pk)}: released from review, now {released.status}.", messages.SUCCESS
        )

    def _wallet_or_404(self, request: HttpRequest, object_id: str) -> Wallet:
        try:
            wallet_id = UUID(object_id)
        except ValueError:
            raise Http404("No such wallet.") from None
        wallet = self.get_queryset(request).filter(pk=wallet_id).first()
        if wallet is None:
            raise Http404("No such wallet.")
        return wallet
