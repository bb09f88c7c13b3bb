"""Operators' corrections in the admin: the add form proposes (as the signed-in operator),
and a checker approves or rejects with the buttons on a pending proposal's page or the
list's actions. Everything goes through corrections.services, so the admin keeps the
same rules as `manage.py propose_adjustment` / `approve_adjustment` / `reject_adjustment`:
a refusal is shown as a message and changes nothing. Nothing about a proposal is
edited here, and none is deleted.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from corrections.models import AdjustmentProposal
from corrections.services import (
    APPROVE_PERMISSION,
    PROPOSE_PERMISSION,
    adjustment_approve,
    adjustment_propose,
    adjustment_propose_check,
    adjustment_reject,
)
from foundation.admin import short_id
from foundation.currencies import format_major
from foundation.errors import ServiceError, ValidationFailed
from wallets.models import Wallet


class ProposalForm(forms.ModelForm):
    """What a maker fills in; the service's own checks run on it before anything is saved."""

    class Meta:
        model = AdjustmentProposal
        fields = ["wallet", "amount", "reason"]
        widgets = {"reason": forms.Textarea(attrs={"rows": 3})}

    def __init__(self, *args, operator_id: int | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.operator_id = operator_id
        if "wallet" in self.fields:
            self.fields["wallet"].queryset = Wallet.objects.filter(kind=Wallet.Kind.USER)

    def clean(self) -> dict:
        data = super().clean()
        if self.errors or self.operator_id is None:
            return data
        try:
            adjustment_propose_check(
                wallet_id=data["wallet"].id,
                amount=data["amount"],
                reason=data["reason"],
                operator_id=self.operator_id,
            )
        except ValidationFailed as error:
            for field, problems in error.extra["errors"].items():
                self.add_error(field if field in self.fields else None, problems)
        except ServiceError as error:
            raise forms.ValidationError(f"{error.detail} ({error.code})") from error
        return data


@admin.register(AdjustmentProposal)
class AdjustmentProposalAdmin(admin.ModelAdmin):
    list_display = [
        "proposal",
        "wallet_short",
        "shown_amount",
        "status",
        "proposed_by",
        "decided_by",
        "created_at",
    ]
    list_filter = ["status", "currency"]
    search_fields = ["=id", "=wallet__id", "proposed_by__username", "decided_by__username"]
    list_select_related = ["proposed_by", "decided_by"]
    raw_id_fields = ["wallet"]
    date_hierarchy = "created_at"
    show_full_result_count = False
    form = ProposalForm
    actions = ["approve_selected", "reject_selected"]
    fields = ["id", "wallet", "shown_amount", "amount", "currency", "reason", "status", "proposed_by",
              "created_at", "decided_by", "decided_at", "decision_note", "transfer"]  # fmt: skip
    readonly_fields = ["id", "shown_amount", "currency", "created_at", "decided_at"]

    # --- who may do what -------------------------------------------------------------

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        user = request.user
        return super().has_view_permission(request, obj) or any(
            user.has_perm(p) for p in (PROPOSE_PERMISSION, APPROVE_PERMISSION)
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(PROPOSE_PERMISSION)

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False  # what was proposed never changes; decisions use the buttons

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_approve_permission(self, request: HttpRequest) -> bool:
        """Approving and rejecting (the actions and the buttons)."""
        return request.user.has_perm(APPROVE_PERMISSION)

    # --- the add form: proposing -----------------------------------------------------

    def get_fields(self, request: HttpRequest, obj=None):
        return ["wallet", "amount", "reason"] if obj is None else self.fields

    def get_readonly_fields(self, request: HttpRequest, obj=None):
        return [] if obj is None else self.fields

    def get_form(self, request: HttpRequest, obj=None, change=False, **kwargs):
        form_class = super().get_form(request, obj, change=change, **kwargs)
        operator_id = request.user.pk

        class OperatorProposalForm(form_class):
            def __init__(self, *args, **form_kwargs) -> None:
                super().__init__(*args, operator_id=operator_id, **form_kwargs)

        return OperatorProposalForm

    def save_form(self, request: HttpRequest, form, change: bool) -> AdjustmentProposal:
        # Proposing (adding is the only save here: nothing is changed in the admin). The
        # service writes the proposal and its audit event. The admin goes on with the
        # instance returned here (save_model, its log entry, response_add's redirect and
        # message), so that is the row the service made, not the form's unsaved copy.
        if change:
            raise PermissionDenied
        # Unsaved, with the form's values; it also gives the form the save_m2m() that save_related calls.
        proposed = super().save_form(request, form, change)
        return adjustment_propose(
            wallet_id=proposed.wallet_id,
            amount=proposed.amount,
            reason=proposed.reason,
            operator_id=request.user.pk,
        )

    def save_model(self, request: HttpRequest, obj: AdjustmentProposal, form, change: bool) -> None:
        pass  # already saved by the service in save_form

    # --- deciding ----------------------------------------------------------------------

    @admin.action(description="Approve selected proposals (posts each adjustment)", permissions=["approve"])
    def approve_selected(self, request: HttpRequest, queryset: QuerySet[AdjustmentProposal]) -> None:
        self._decide_each(request, queryset, approve=True)

    @admin.action(description="Reject selected proposals", permissions=["approve"])
    def reject_selected(self, request: HttpRequest, queryset: QuerySet[AdjustmentProposal]) -> None:
        self._decide_each(request, queryset, approve=False)

    def _decide_each(
        self, request: HttpRequest, queryset: QuerySet[AdjustmentProposal], *, approve: bool
    ) -> None:
        for proposal_id in queryset.order_by("pk").values_list("pk", flat=True):
            self._decide(request, proposal_id, approve=approve, note="")

    def _decide(self, request: HttpRequest, proposal_id, *, approve: bool, note: str) -> bool:
        decide = adjustment_approve if approve else adjustment_reject
        try:
            proposal = decide(proposal_id=proposal_id, operator_id=request.user.pk, note=note)
        except ServiceError as error:
            verb = "approved" if approve else "rejected"
            self.message_user(
                request,
                f"Proposal {short_id(proposal_id)} not {verb}: {error.detail} ({error.code})",
                messages.ERROR,
            )
            return False
        if approve:
            amount = format_major(proposal.amount, proposal.currency)
            text = f"Proposal {short_id(proposal.id)} approved: {amount} posted as {proposal.transfer_id}."
        else:
            text = f"Proposal {short_id(proposal.id)} rejected."
        self.message_user(request, text, messages.SUCCESS)
        return True

    def get_urls(self):
        name = f"{self.opts.app_label}_{self.opts.model_name}_decide"
        decide = self.admin_site.admin_view(require_POST(self.decide_view))
        return [path("<uuid:object_id>/decide/", decide, name=name), *super().get_urls()]

    def decide_view(self, request: HttpRequest, object_id) -> HttpResponse:
        """The Approve / Reject buttons of a pending proposal's page (POST, with an optional note)."""
        if not self.has_approve_permission(request):
            raise PermissionDenied
        proposal = get_object_or_404(AdjustmentProposal, pk=object_id)
        decision = request.POST.get("decision")
        if decision not in ("approve", "reject"):
            self.message_user(request, "Choose Approve or Reject.", messages.ERROR)
        else:
            self._decide(
                request, proposal.pk, approve=decision == "approve", note=request.POST.get("note", "")
            )
        return HttpResponseRedirect(
            reverse("admin:corrections_adjustmentproposal_change", args=[proposal.pk])
        )

    def change_view(self, request: HttpRequest, object_id, form_url="", extra_context=None):
        proposal = self.get_object(request, object_id)
        extra_context = {
            **(extra_context or {}),
            "can_decide": (
                proposal is not None
                and proposal.status == AdjustmentProposal.Status.PROPOSED
                and self.has_approve_permission(request)
                and proposal.proposed_by_id != request.user.pk
            ),
            "decide_url": reverse("admin:corrections_adjustmentproposal_decide", args=[object_id])
            if proposal is not None
            else "",
        }
        return super().change_view(request, object_id, form_url, extra_context)

    # --- columns -------------------------------------------------------------------------

    @admin.display(description="Proposal", ordering="id")
    def proposal(self, proposal: AdjustmentProposal) -> str:
        return short_id(proposal.id)

    @admin.display(description="Wallet")
    def wallet_short(self, proposal: AdjustmentProposal) -> str:
        return short_id(proposal.wallet_id)

    @admin.display(description="Adjustment", ordering="amount")
    def shown_amount(self, proposal: AdjustmentProposal) -> str:
        if not proposal.currency:
            return "-"
        sign = "+" if proposal.amount > 0 else ""
        return sign + format_major(proposal.amount, proposal.currency)
