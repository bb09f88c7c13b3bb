import uuid
from datetime import date

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone


class Wallet(models.Model):
    """A balance in one currency.

    `balance` (minor units) is a cache of the wallet's ledger entries, kept in step
    under a row lock by transfers.services and proved by reconciliation.

    System wallets (one per currency, no owner) stand for the outside world:
    deposits come from them and withdrawals go to them. Adjustment wallets (one per
    currency, no owner) are the other side of operators' corrections. Both kinds may go
    negative and are never row-locked or updated on the money path, so they cannot
    serialize movements; their balance is the sum of their entries (see selectors).

    `held` is the sum of the wallet's pending holds (transfers.Hold; PostgreSQL checks
    it at commit); `balance - held` is what it can spend. The limits bound outgoing
    money (transfers, withdrawals, captures): one movement, and each UTC day, whose
    running total is `outgoing_today` (for the day `outgoing_day`), kept under the row lock.
    """

    class Kind(models.TextChoices):
        USER = "user", "User"
        SYSTEM = "system", "System"
        ADJUSTMENT = "adjustment", "Adjustment"

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        FROZEN = "frozen", "Frozen"
        CLOSED = "closed", "Closed"
        # Found inconsistent with its ledger by reconciliation; an operator releases it.
        UNDER_REVIEW = "under_review", "Under review"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="wallets",
    )
    kind = models.CharField(max_length=12, choices=Kind.choices, default=Kind.USER)
    currency = models.CharField(max_length=3)
    name = models.CharField(max_length=100, blank=True, default="")
    balance = models.BigIntegerField(default=0)
    held = models.BigIntegerField(default=0, db_default=0, editable=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    # Operators' limits on outgoing money (minor units; empty: none).
    max_outgoing_amount = models.BigIntegerField(
        null=True, blank=True, help_text="Largest single outgoing movement."
    )
    max_outgoing_per_day = models.BigIntegerField(
        null=True, blank=True, help_text="Largest total of outgoing movements in one UTC day."
    )
    outgoing_day = models.DateField(null=True, blank=True, editable=False)
    outgoing_today = models.BigIntegerField(default=0, db_default=0, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now)
    # Set by reconciliation when it finds the wallet's balance or entries disagreeing with
    # its ledger (the first time it found so), cleared by the first run that finds it
    # consistent again. Operators filter on it in the admin (docs/operations.md).
    inconsistent_since = models.DateTimeField(null=True, blank=True, editable=False)
    # The head of the wallet's hash chain (transfers.ledger_chain, docs/ledger.md): the
    # entry_hash of its latest entry (NULL: none yet) and how many entries the chain holds.
    # Kept under the row lock with the balance. NULL entry_count: a wallet from before the
    # chain, not linked yet (`manage.py ledger_chain_backfill`). User wallets only.
    head_hash = models.BinaryField(null=True, blank=True, editable=False)
    entry_count = models.BigIntegerField(null=True, blank=True, default=0, editable=False)

    class Meta:
        db_table = "wallets_wallet"
        indexes = [models.Index(fields=["owner", "-created_at"], name="wallet_owner_created_idx")]
        constraints = [
            # A user wallet never goes below zero. A system wallet keeps no row
            # balance (it would be a hot row): its balance is the sum of its entries.
            # A user wallet's held money is part of its balance, never more.
            models.CheckConstraint(
                condition=(Q(kind="user") & Q(balance__gte=0) & Q(held__gte=0) & Q(held__lte=F("balance")))
                | (Q(kind__in=["system", "adjustment"]) & Q(balance=0) & Q(held=0)),
                name="wallet_balance_held_valid",
            ),
            models.CheckConstraint(
                condition=(Q(kind="user") & Q(owner__isnull=False))
                | (Q(kind__in=["system", "adjustment"]) & Q(owner__isnull=True)),
                name="wallet_owner_matches_kind_v2",
            ),
            models.CheckConstraint(
                condition=(Q(max_outgoing_amount__isnull=True) | Q(max_outgoing_amount__gt=0))
                & (Q(max_outgoing_per_day__isnull=True) | Q(max_outgoing_per_day__gt=0))
                & Q(outgoing_today__gte=0),
                name="wallet_limits_valid",
            ),
            models.CheckConstraint(
                condition=Q(currency__regex=r"^[A-Z]{3}$"), name="wallet_currency_iso_format"
            ),
            models.CheckConstraint(
                condition=Q(status__in=["active", "frozen", "closed", "under_review"]),
                name="wallet_status_valid_v2",
            ),
            models.UniqueConstraint(
                fields=["currency"], condition=Q(kind="system"), name="wallet_one_system_per_currency"
            ),
            models.UniqueConstraint(
                fields=["currency"], condition=Q(kind="adjustment"), name="wallet_one_adjustment_per_currency"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.currency} wallet {self.id}"

    @property
    def is_system(self) -> bool:
        """A wallet of the service's own (system or adjustment): no row balance, never locked."""
        return self.kind != self.Kind.USER

    @property
    def available(self) -> int:
        """What the wallet can spend: its balance less its pending holds."""
        return self.balance - self.held

    def outgoing_on(self, day: date) -> int:
        """What left the wallet on `day` (a UTC date) so far, as far as the limits count."""
        return self.outgoing_today if self.outgoing_day == day else 0

    def remaining_on(self, day: date) -> int | None:
        """What may still leave the wallet on `day` under its daily limit (None: no limit)."""
        if self.max_outgoing_per_day is None:
            return None
        return max(self.max_outgoing_per_day - self.outgoing_on(day), 0)
