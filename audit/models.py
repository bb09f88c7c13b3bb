from django.conf import settings
from django.db import models
from django.utils import timezone


class AuditEvent(models.Model):
    """Who did what to which object, from where, and when. Append-only.

    Written in the same transaction as the action it records (a rolled-back
    action leaves no event; a committed one always has its event). PostgreSQL
    rejects UPDATE and DELETE on this table (migration 0002).
    """

    class Action(models.TextChoices):
        WALLET_CREATED = "wallet.created", "Wallet created"
        WALLET_UPDATED = "wallet.updated", "Wallet updated"
        DEPOSIT = "money.deposit", "Deposit"
        WITHDRAWAL = "money.withdrawal", "Withdrawal"
        TRANSFER = "money.transfer", "Transfer"
        REFUND = "money.refund", "Refund"
        ADJUSTMENT = "money.adjustment", "Adjustment"
        HOLD_CREATED = "money.hold_created", "Hold created"
        HOLD_CAPTURED = "money.hold_captured", "Hold captured"
        HOLD_VOIDED = "money.hold_voided", "Hold voided"
        HOLD_EXPIRED = "money.hold_expired", "Hold expired"
        MONEY_FAILED = "money.failed", "Money movement refused"
        # The first request a quota refused in its window, per client (foundation.ratelimits).
        RATE_LIMITED = "ratelimit.rejected", "Rate limit: first refusal in a window"
        ADJUSTMENT_PROPOSED = "correction.proposed", "Adjustment proposed"
        ADJUSTMENT_APPROVED = "correction.approved", "Adjustment approved"
        ADJUSTMENT_REJECTED = "correction.rejected", "Adjustment rejected"
        WALLET_UNDER_REVIEW = "wallet.under_review", "Wallet put under review"
        WALLET_RELEASED = "wallet.released", "Wallet released from review"
        LOGIN_SUCCEEDED = "auth.login_succeeded", "Login succeeded"
        LOGIN_FAILED = "auth.login_failed", "Login failed"
        LOGOUT = "auth.logout", "Logout"
        TOKEN_REFRESHED = "auth.token_refreshed", "Token refreshed"
        REFRESH_REUSED = "auth.refresh_reused", "Refresh token reused"
        USER_REGISTERED = "auth.registered", "User registered"
        ADMIN_ADD = "admin.add", "Admin: added"
        ADMIN_CHANGE = "admin.change", "Admin: changed"
        ADMIN_DELETE = "admin.delete", "Admin: deleted"
        WEBHOOK_ENDPOINT_CREATED = "webhook.endpoint_created", "Webhook endpoint created"
        WEBHOOK_ENDPOINT_UPDATED = "webhook.endpoint_updated", "Webhook endpoint updated"
        WEBHOOK_ENDPOINT_DELETED = "webhook.endpoint_deleted", "Webhook endpoint deleted"
        WEBHOOK_SECRET_ROTATED = "webhook.secret_rotated", "Webhook secret rotated"
        WEBHOOK_ENDPOINT_DISABLED = "webhook.endpoint_disabled", "Webhook endpoint disabled (failing)"
        WEBHOOK_REDELIVERED = "webhook.redelivered", "Webhook delivery redelivered"

    id = models.BigAutoField(primary_key=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    # No database constraint: the trail must outlive the accounts it mentions (an
    # append-only row can never be updated to drop a deleted user's id).
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    # What the actor called themselves when there is no account to point at (a failed login).
    actor_label = models.CharField(max_length=150, blank=True, default="")
    action = models.CharField(max_length=32, choices=Action.choices)
    target_type = models.CharField(max_length=64, blank=True, default="")
    target_id = models.CharField(max_length=64, blank=True, default="")
    amount = models.BigIntegerField(null=True, blank=True)
    currency = models.CharField(max_length=3, blank=True, default="")
    outcome = models.CharField(max_length=64, default="ok")
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True, default="")
    request_id = models.CharField(max_length=128, blank=True, default="")
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        db_table = "audit_auditevent"
        indexes = [
            models.Index(fields=["actor", "-created_at"], name="audit_actor_idx"),
            models.Index(fields=["target_type", "target_id"], name="audit_target_idx"),
            models.Index(fields=["action", "-created_at"], name="audit_action_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.action} by {self.actor_id or self.actor_label or 'anonymous'} at {self.created_at}"
