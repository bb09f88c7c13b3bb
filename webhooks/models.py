"""Webhook endpoints (where a user wants their events posted) and the deliveries of events
to them, with every attempt.

A delivery is one event for one endpoint. The dispatcher (webhooks.dispatch) creates them
from the outbox (events.Event); the sender (webhooks.delivery) posts them, one wallet's in
sequence order per endpoint (a "lane": endpoint and wallet), and records each attempt.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q

from events.models import Event

ALL_EVENTS = "*"


class WebhookEndpoint(models.Model):
    class DisabledReason(models.TextChoices):
        NONE = "", "Enabled"
        OWNER = "owner", "Disabled by its owner"
        FAILING = "failing", "Disabled: failing persistently"
        OPERATOR = "operator", "Disabled by an operator"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    url = models.CharField(max_length=2048)
    description = models.CharField(max_length=200, blank=True, default="")
    # Event types to send, or ["*"] for every type (also the types added later).
    event_types = ArrayField(models.CharField(max_length=32), size=len(Event.Type) + 1)
    enabled = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=16, choices=DisabledReason.choices, blank=True, default="")
    # The signing secret ("whsec_..."), encrypted (webhooks.secrets); after a rotation the
    # previous one also signs until previous_secret_expires_at.
    secret_encrypted = models.TextField()
    previous_secret_encrypted = models.TextField(blank=True, default="")
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    # Since when attempts have failed with no success in between (null: healthy).
    failing_since = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "webhooks_endpoint"
        indexes = [
            # The dispatcher's fan-out: an event's owner's live endpoints.
            models.Index(
                fields=["owner"],
                name="webhook_endpoint_live_idx",
                condition=Q(deleted_at__isnull=True),
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(url__startswith="https://") | Q(url__startswith="http://"),
                name="webhook_endpoint_url_http",
            ),
            models.CheckConstraint(
                condition=Q(enabled=True, disabled_reason="") | Q(enabled=False) & ~Q(disabled_reason=""),
                name="webhook_endpoint_disabled_has_reason",
            ),
            models.CheckConstraint(
                condition=~Q(("secret_encrypted", "")),
                name="webhook_endpoint_has_secret",
            ),
            models.CheckConstraint(
                condition=Q(("previous_secret_encrypted", ""), previous_secret_expires_at__isnull=True)
                | ~Q(("previous_secret_encrypted", "")) & Q(previous_secret_expires_at__isnull=False),
                name="webhook_endpoint_previous_secret_expires",
            ),
        ]

    def __str__(self) -> str:
        return self.url


class WebhookDelivery(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed (given up)"
        CANCELLED = "cancelled", "Cancelled (endpoint deleted)"

    id = models.BigAutoField(primary_key=True)
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.PROTECT, related_name="deliveries")
    event = models.ForeignKey(Event, on_delete=models.PROTECT, related_name="+", db_index=False)
    # The lane: an endpoint's deliveries of one wallet go out in event order.
    wallet_id = models.UUIDField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField()
    next_attempt_at = models.DateTimeField()
    # A sender holds the lane until then (a lease: a worker that dies lets go by itself).
    locked_until = models.DateTimeField(null=True, blank=True)
    first_attempted_at = models.DateTimeField(null=True, blank=True)
    last_attempted_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        db_table = "webhooks_delivery"
        verbose_name_plural = "webhook deliveries"
        permissions = [("redeliver_webhookdelivery", "Can redeliver webhook deliveries")]
        indexes = [
            # Lane heads: the oldest pending delivery of each endpoint and wallet.
            models.Index(
                fields=["endpoint", "wallet_id", "event"],
                name="webhook_delivery_lane_idx",
                condition=Q(status="pending"),
            ),
            models.Index(fields=["endpoint", "-id"], name="webhook_delivery_endpoint_idx"),
            models.Index(fields=["event"], name="webhook_delivery_event_idx"),
            models.Index(fields=["status", "-finished_at"], name="webhook_delivery_finished_idx"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["endpoint", "event"], name="webhook_delivery_once_per_endpoint"),
            models.CheckConstraint(
                condition=Q(status="pending", finished_at__isnull=True)
                | ~Q(status="pending") & Q(finished_at__isnull=False),
                name="webhook_delivery_finished_when_not_pending",
            ),
            models.CheckConstraint(
                condition=~Q(status="succeeded") | Q(attempts__gte=1),
                name="webhook_delivery_succeeded_after_an_attempt",
            ),
        ]

    def __str__(self) -> str:
        return f"delivery #{self.id} of event #{self.event_id} ({self.status})"


class WebhookAttempt(models.Model):
    """One POST of a delivery: when, how long, what came back (or what went wrong)."""

    id = models.BigAutoField(primary_key=True)
    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.PROTECT, related_name="attempt_set")
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    # "" on a 2xx; else a stable code: http_error, timeout, connection_failed, tls_error,
    # address_forbidden, unresolvable, endpoint_disabled.
    error = models.CharField(max_length=64, blank=True, default="")
    response_excerpt = models.CharField(max_length=512, blank=True, default="")

    class Meta:
        db_table = "webhooks_attempt"
        constraints = [
            models.UniqueConstraint(fields=["delivery", "number"], name="webhook_attempt_number_once"),
        ]

    def __str__(self) -> str:
        return f"attempt {self.number} of delivery #{self.delivery_id}"


class DispatchCursor(models.Model):
    """The dispatcher's place in the outbox: every event up to `sequence` has its deliveries.

    One row. While a later event is visible but an earlier sequence is not (a transaction
    that drew it has not committed yet, or rolled back), the dispatcher waits for the
    transactions that were in progress (`waiting_xids`, from the snapshot that saw the gap)
    to end, then takes everything up to `waiting_sequence`: webhooks.dispatch.
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    sequence = models.BigIntegerField(default=0)
    waiting_xids = ArrayField(models.BigIntegerField(), default=list, blank=True)
    waiting_sequence = models.BigIntegerField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "webhooks_dispatch_cursor"
        constraints = [models.CheckConstraint(condition=Q(id=1), name="webhook_dispatch_cursor_one_row")]

    def __str__(self) -> str:
        return f"dispatched up to event #{self.sequence}"
