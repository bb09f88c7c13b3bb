"""Webhook endpoints: create, change, delete, rotate the secret; operators' redelivery.

Every change is audited in its transaction. The secret leaves the service twice only:
in the answer that creates it (or rotates it) and in the signatures of deliveries.
"""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import audit_record
from webhooks.errors import WebhookEndpointLimit, WebhookEndpointNotFound
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.network import target_check
from webhooks.secrets import secret_encrypt, secret_generate

Reason = WebhookEndpoint.DisabledReason
Status = WebhookDelivery.Status
# pg_advisory_xact_lock(namespace, owner id): one endpoint creation per owner at a time,
# so the per-user limit holds under concurrent requests.
ENDPOINT_LIMIT_LOCK = 0x57484B31  # "WHK1"


def _audit(action: str, endpoint: WebhookEndpoint, actor_id: int | None, **details: object) -> None:
    audit_record(
        action=action,
        actor_id=actor_id,
        target_type="webhook_endpoint",
        target_id=endpoint.id,
        details={"url": endpoint.url, **details},
    )


def _locked(endpoint_id: UUID, owner_id: int) -> WebhookEndpoint:
    endpoint = (
        WebhookEndpoint.objects.select_for_update()
        .filter(pk=endpoint_id, owner_id=owner_id, deleted_at__isnull=True)
        .first()
    )
    if endpoint is None:
        raise WebhookEndpointNotFound()
    return endpoint


def endpoint_create(
    *, owner_id: int, url: str, event_types: list[str], description: str = "", enabled: bool = True
) -> tuple[WebhookEndpoint, str]:
    """A new endpoint and its signing secret (returned once, stored encrypted)."""
    target_check(url)  # outside the transaction: DNS may take a moment
    secret = secret_generate()
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [ENDPOINT_LIMIT_LOCK, owner_id])
        live = WebhookEndpoint.objects.filter(owner_id=owner_id, deleted_at__isnull=True).count()
        if live >= settings.WEBHOOK_MAX_ENDPOINTS_PER_USER:
            raise WebhookEndpointLimit(
                f"You have {live} webhook endpoints, the most one user may have; delete one first."
            )
        endpoint = WebhookEndpoint.objects.create(
            owner_id=owner_id,
            url=url,
            event_types=event_types,
            description=description,
            enabled=enabled,
            disabled_reason="" if enabled else Reason.OWNER,
            secret_encrypted=secret_encrypt(secret),
        )
        _audit(AuditEvent.Action.WEBHOOK_ENDPOINT_CREATED, endpoint, owner_id, event_types=event_types)
    return endpoint, secret


def endpoint_update(
    *, endpoint_id: UUID, owner_id: int, actor_id: int | None = None, **changes: object
) -> WebhookEndpoint:
    """Change url, event_types, description or enabled. Enabling again (after its owner or
    the service disabled it) resumes the endpoint's pending deliveries at once, each with a
    fresh retry window."""
    if "url" in changes:
        target_check(str(changes["url"]))
    now = timezone.now()
    with transaction.atomic():
        endpoint = _locked(endpoint_id, owner_id)
        values = {}
        for field in ("url", "event_types", "description", "enabled"):
            if field in changes and changes[field] != getattr(endpoint, field):
                values[field] = {"old": getattr(endpoint, field), "new": changes[field]}
                setattr(endpoint, field, changes[field])
        if not values:
            return endpoint
        if "enabled" in values:
            if endpoint.enabled:
                endpoint.disabled_reason = Reason.NONE
                endpoint.failing_since = None
                WebhookDelivery.objects.filter(endpoint=endpoint, status=Status.PENDING).update(
                    next_attempt_at=now, first_attempted_at=None, locked_until=None
                )
            else:
                endpoint.disabled_reason = Reason.OWNER
        endpoint.save()
        _audit(AuditEvent.Action.WEBHOOK_ENDPOINT_UPDATED, endpoint, actor_id or owner_id, changes=values)
    return endpoint


def endpoint_delete(*, endpoint_id: UUID, owner_id: int) -> None:
    """Stop for good: the endpoint disappears from the API and its pending deliveries are
    cancelled. Its deliveries and attempts stay for the operators (admin)."""
    now = timezone.now()
    with transaction.atomic():
        endpoint = _locked(endpoint_id, owner_id)
        endpoint.deleted_at = now
        endpoint.enabled = False
        endpoint.disabled_reason = Reason.OWNER
        endpoint.save()
        WebhookDelivery.objects.filter(endpoint=endpoint, status=Status.PENDING).update(
            status=Status.CANCELLED, finished_at=now, locked_until=None
        )
        _audit(AuditEvent.Action.WEBHOOK_ENDPOINT_DELETED, endpoint, owner_id)


def endpoint_rotate_secret(*, endpoint_id: UUID, owner_id: int) -> tuple[WebhookEndpoint, str]:
    """A new signing secret (returned once). Deliveries carry signatures by both the new and
    the old secret for WEBHOOK_SECRET_ROTATION_GRACE_SECONDS, so a receiver can switch
    without losing one; a second rotation ends the old one's grace at once."""
    secret = secret_generate()
    with transaction.atomic():
        endpoint = _locked(endpoint_id, owner_id)
        endpoint.previous_secret_encrypted = endpoint.secret_encrypted
        endpoint.previous_secret_expires_at = timezone.now() + timedelta(
            seconds=settings.WEBHOOK_SECRET_ROTATION_GRACE_SECONDS
        )
        endpoint.secret_encrypted = secret_encrypt(secret)
        endpoint.save()
        _audit(
            AuditEvent.Action.WEBHOOK_SECRET_ROTATED,
            endpoint,
            owner_id,
            previous_secret_expires_at=endpoint.previous_secret_expires_at.isoformat(),
        )
    return endpoint, secret


def endpoint_disable_failing(*, endpoint_id: UUID, failing_since: object) -> bool:
    """Disable an endpoint whose deliveries keep failing (the sender calls it, in the
    transaction that gives a delivery up). False when it was disabled already."""
    updated = WebhookEndpoint.objects.filter(pk=endpoint_id, enabled=True).update(
        enabled=False, disabled_reason=Reason.FAILING, updated_at=timezone.now()
    )
    if updated:
        endpoint = WebhookEndpoint.objects.get(pk=endpoint_id)
        _audit(
            AuditEvent.Action.WEBHOOK_ENDPOINT_DISABLED,
            endpoint,
            None,
            failing_since=str(failing_since),
            reason="every attempt failed for WEBHOOK_DISABLE_AFTER_SECONDS",
        )
    return bool(updated)


def delivery_redeliver(*, delivery_id: int, actor_id: int | None) -> WebhookDelivery:
    """An operator sends a delivery again (failed, cancelled, or even succeeded: receivers
    deduplicate on the event id): pending from now, with a fresh retry window. It goes out in
    its lane's order: before the wallet's later events that are still pending."""
    now = timezone.now()
    with transaction.atomic():
        delivery = WebhookDelivery.objects.select_for_update().select_related("endpoint").get(pk=delivery_id)
        previous = delivery.status
        delivery.status = Status.PENDING
        delivery.finished_at = None
        delivery.next_attempt_at = now
        delivery.first_attempted_at = None
        delivery.locked_until = None
        delivery.save()
        _audit(
            AuditEvent.Action.WEBHOOK_REDELIVERED,
            delivery.endpoint,
            actor_id,
            delivery_id=delivery.id,
            event_id=delivery.event_id,
            previous_status=previous,
        )
    return delivery
