from __future__ import annotations

from uuid import UUID

from django.db.models import QuerySet

from webhooks.errors import WebhookEndpointNotFound
from webhooks.models import WebhookEndpoint


def endpoint_list(*, owner_id: int) -> QuerySet[WebhookEndpoint]:
    return WebhookEndpoint.objects.filter(owner_id=owner_id, deleted_at__isnull=True)


def endpoint_get(*, endpoint_id: UUID, owner_id: int) -> WebhookEndpoint:
    endpoint = endpoint_list(owner_id=owner_id).filter(pk=endpoint_id).first()
    if endpoint is None:
        raise WebhookEndpointNotFound()
    return endpoint
