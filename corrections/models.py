"""Operators' corrections of a wallet's balance, under the four-eyes rule (maker-checker).

One operator proposes a credit or debit with a reason; another approves it (the
adjustment is posted then, in the same transaction) or rejects it. PostgreSQL holds
the rules as well as corrections.services: the CHECK constraints below, and a trigger
(migration 0002) that refuses any change to a decided proposal and any change of what
was proposed.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone


class AdjustmentProposal(models.Model):
    class Status(models.TextChoices):
        PROPOSED = "proposed", "Proposed"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    wallet = models.ForeignKey("wallets.Wallet", on_delete=models.PROTECT, related_name="+")
    # Minor units, signed: > 0 credits the wallet, < 0 debits it.
    amount = models.BigIntegerField(help_text="Minor units: positive credits the wallet, negative debits it.")
    currency = models.CharField(max_length=3, editable=False)
    # Becomes the adjustment transfer's description (Transfer.description's length).
    reason = models.CharField(max_length=255)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PROPOSED)
    proposed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_note = models.CharField(max_length=255, blank=True, default="")
    # The adjustment an approval posted.
    transfer = models.OneToOneField(
        "transfers.Transfer", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        db_table = "corrections_adjustmentproposal"
        # Proposing and approving are the operators' two roles; nobody edits or deletes a
        # proposal (a decision is final; a mistaken proposal is rejected).
        default_permissions = ("view",)
        permissions = [
            ("propose_adjustment", "Can propose a balance adjustment"),
            ("approve_adjustment", "Can approve or reject a balance adjustment"),
        ]
        indexes = [
            models.Index(fields=["status", "-created_at"], name="proposal_status_idx"),
            models.Index(fields=["wallet", "-created_at"], name="proposal_wallet_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=~Q(amount=0), name="proposal_amount_nonzero"),
            models.CheckConstraint(condition=Q(reason__regex=r"\S"), name="proposal_reason_nonblank"),
            models.CheckConstraint(
                condition=Q(decided_by__isnull=True) | ~Q(decided_by=F("proposed_by")),
                name="proposal_four_eyes",
            ),
            models.CheckConstraint(
                condition=Q(status="approved", transfer__isnull=False)
                | (~Q(status="approved") & Q(transfer__isnull=True)),
                name="proposal_approved_has_transfer",
            ),
            models.CheckConstraint(
                condition=Q(status="proposed", decided_by__isnull=True, decided_at__isnull=True)
                | (
                    Q(status__in=["approved", "rejected"])
                    & Q(decided_by__isnull=False, decided_at__isnull=False)
                ),
                name="proposal_decided_fields",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.amount:+d} {self.currency} on {self.wallet_id} ({self.status})"
