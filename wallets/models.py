import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class Wallet(models.Model):
    """A balance in one currency.

    `balance` (minor units) is a cache of the wallet's ledger entries, kept in step
    under a row lock by transfers.services and proved by reconciliation.

    System wallets (one per currency, no owner) stand for the outside world:
    deposits come from them and withdrawals go to them. They may go negative and
    are never row-locked or updated on the money path, so they cannot serialize
    deposits; their balance is the sum of their entries (see selectors).
    """

    class Kind(models.TextChoices):
        USER = "user", "User"
        SYSTEM = "system", "System"

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        FROZEN = "frozen", "Frozen"
        CLOSED = "closed", "Closed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="wallets",
    )
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.USER)
    currency = models.CharField(max_length=3)
    name = models.CharField(max_length=100, blank=True, default="")
    balance = models.BigIntegerField(default=0)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now)
    # Set by reconciliation when it finds the wallet's balance or entries disagreeing with
    # its ledger (the first time it found so), cleared by the first run that finds it
    # consistent again. Operators filter on it in the admin (docs/operations.md).
    inconsistent_since = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        db_table = "wallets_wallet"
        indexes = [models.Index(fields=["owner", "-created_at"], name="wallet_owner_created_idx")]
        constraints = [
            # A user wallet never goes below zero. A system wallet keeps no row
            # balance (it would be a hot row): its balance is the sum of its entries.
            models.CheckConstraint(
                condition=(Q(kind="user") & Q(balance__gte=0)) | (Q(kind="system") & Q(balance=0)),
                name="wallet_balance_valid",
            ),
            models.CheckConstraint(
                condition=(Q(kind="user") & Q(owner__isnull=False))
                | (Q(kind="system") & Q(owner__isnull=True)),
                name="wallet_owner_matches_kind",
            ),
            models.CheckConstraint(
                condition=Q(currency__regex=r"^[A-Z]{3}$"), name="wallet_currency_iso_format"
            ),
            models.CheckConstraint(
                condition=Q(status__in=["active", "frozen", "closed"]), name="wallet_status_valid"
            ),
            models.UniqueConstraint(
                fields=["currency"], condition=Q(kind="system"), name="wallet_one_system_per_currency"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.currency} wallet {self.id}"

    @property
    def is_system(self) -> bool:
        return self.kind == self.Kind.SYSTEM
