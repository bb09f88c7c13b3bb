from __future__ import annotations

from uuid import UUID

from django.db.models import QuerySet

from webhooks.errors import WebhookEndpointNotFound
from webhooks.models import WebhookDelivery, WebhookEndpoint


def endpoint_list(*, owner_id: int) -> QuerySet[WebhookEndpoint]:
    return WebhookEndpoint.objects.filter(owner_id=owner_id, deleted_at__isnull=True)


def endpoint_get(*, endpoint_id: UUID, owner_id: int) -> WebhookEndpoint:
    endpoint = endpoint_list(owner_id=owner_id).filter(pk=endpoint_id).first()
    if endpoint is None:
        raise WebhookEndpointNotFound()
    return endpoint


def delivery_list(
    *, endpoint_id: UUID, owner_id: int, status: str | None = None
) -> QuerySet[WebhookDelivery]:
    """An endpoint of the caller's deliveries (404 for anyone else's endpoint), newest first
    by the pagination: reads webhook_delivery_endpoint_idx (endpoint, id DESC)."""
    endpoint_get(endpoint_id=endpoint_id, owner_id=owner_id)
    deliveries = WebhookDelivery.objects.filter(endpoint_id=endpoint_id).select_related("event")
    if status:
        deliveries = deliveries.filter(status=status)
    return deliveries
