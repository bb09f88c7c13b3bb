from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.validators import RegexValidator
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from events.models import Event
from foundation.serializers import QueryFilterSerializer, StrictCharField, StrictChoiceField, StrictSerializer
from webhooks.models import ALL_EVENTS, WebhookDelivery, WebhookEndpoint

EVENT_TYPE_CHOICES = [(ALL_EVENTS, "Every event type, also those added later"), *Event.Type.choices]


class StrictBooleanField(serializers.BooleanField):
    """JSON true or false only (DRF would also take "yes", 1, "on")."""

    def to_internal_value(self, data: Any) -> bool:
        if type(data) is not bool:
            self.fail("invalid", input=data)
        return data


EVENT_TYPE_ITEMS = {"type": "string", "enum": [choice for choice, _ in EVENT_TYPE_CHOICES]}


@extend_schema_field({"type": "array", "items": EVENT_TYPE_ITEMS})
class EventTypesShownField(serializers.ListField):
    child = serializers.CharField()


@extend_schema_field(
    {
        "type": "array",
        "items": EVENT_TYPE_ITEMS,
        "minItems": 1,
        "maxItems": len(EVENT_TYPE_CHOICES),
        "uniqueItems": True,
        "description": 'The event types to send (see GET /events), each once, or "*" for all of them.',
    }
)
class EventTypesField(serializers.ListField):
    child = StrictChoiceField(choices=EVENT_TYPE_CHOICES)

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("min_length", 1)
        kwargs.setdefault("max_length", len(EVENT_TYPE_CHOICES))
        kwargs.setdefault("help_text", 'The event types to send (see GET /events), or ["*"] for all of them.')
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> list[str]:
        types = super().to_internal_value(data)
        if len(set(types)) != len(types):
            raise serializers.ValidationError("List each event type once.")
        return [ALL_EVENTS] if ALL_EVENTS in types else types


# An absolute URL without credentials, fragment, spaces or control characters; the scheme
# per WEBHOOK_REQUIRE_HTTPS. What the shape cannot say (the port's range, where the host
# resolves) is answered 422 by webhooks.network. \Z, not $ (see foundation.serializers).
URL_SHAPE = r"^{schemes}://[^\x00-\x20\x7f#@/?]+(?:[/?][^\x00-\x20\x7f#]*)?\Z"


def url_validator() -> RegexValidator:
    schemes = "https" if settings.WEBHOOK_REQUIRE_HTTPS else "https?"
    return RegexValidator(
        URL_SHAPE.format(schemes=schemes),
        f"Give an absolute {schemes.rstrip('?')} URL without credentials, fragment or spaces.",
    )


class UrlField(StrictCharField):
    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", 2048)
        kwargs.setdefault("trim_whitespace", False)
        kwargs.setdefault(
            "help_text",
            "Where to POST events: https, on a host that resolves to public addresses only "
            "(checked now and before every delivery: else 422 `webhook_url_forbidden`).",
        )
        super().__init__(**kwargs)
        self.validators.append(url_validator())


class WebhookEndpointCreateSerializer(StrictSerializer):
    url = UrlField()
    event_types = EventTypesField()
    description = StrictCharField(required=False, allow_blank=True, max_length=200, default="")
    enabled = StrictBooleanField(required=False, default=True)


class WebhookEndpointUpdateSerializer(StrictSerializer):
    url = UrlField(required=False)
    event_types = EventTypesField(required=False)
    description = StrictCharField(required=False, allow_blank=True, max_length=200)
    enabled = StrictBooleanField(
        required=False, help_text="false stops deliveries; true resumes them, pending ones at once."
    )


class WebhookEndpointSerializer(serializers.Serializer):
    """A webhook endpoint of yours. Its signing secret is only in the answers that create
    or rotate it."""

    id = serializers.UUIDField()
    url = serializers.CharField()
    description = serializers.CharField()
    event_types = EventTypesShownField()
    enabled = serializers.BooleanField()
    disabled_reason = serializers.ChoiceField(
        choices=WebhookEndpoint.DisabledReason.choices,
        help_text='"" while enabled; owner (you disabled it), failing (the service did, after its '
        "deliveries failed for a day), operator.",
    )
    previous_secret_expires_at = serializers.DateTimeField(
        allow_null=True,
        help_text="After a rotation: until when deliveries are also signed with the old secret.",
    )
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class WebhookEndpointWithSecretSerializer(WebhookEndpointSerializer):
    secret = serializers.CharField(
        help_text="The signing secret (whsec_...): shown only now. Keep it; verify every delivery with it."
    )


def endpoint_data(endpoint: WebhookEndpoint, secret: str | None = None) -> dict[str, Any]:
    data = {
        "id": endpoint.id,
        "url": endpoint.url,
        "description": endpoint.description,
        "event_types": list(endpoint.event_types),
        "enabled": endpoint.enabled,
        "disabled_reason": endpoint.disabled_reason,
        "previous_secret_expires_at": endpoint.previous_secret_expires_at,
        "created_at": endpoint.created_at,
        "updated_at": endpoint.updated_at,
    }
    if secret is not None:
        data["secret"] = secret
    return data


class DeliveryFilterSerializer(QueryFilterSerializer):
    status = serializers.ChoiceField(choices=WebhookDelivery.Status.choices, required=False)


class WebhookDeliverySerializer(serializers.Serializer):
    """One event's delivery to your endpoint: where it stands and how its last attempt went."""

    id = serializers.IntegerField()
    event_id = serializers.UUIDField(help_text="The event's id: the webhook-id header of its POSTs.")
    event_type = serializers.CharField()
    event_sequence = serializers.IntegerField()
    wallet_id = serializers.UUIDField()
    status = serializers.ChoiceField(
        choices=WebhookDelivery.Status.choices,
        help_text="pending (being sent or retried), succeeded, failed (given up after a day), "
        "cancelled (the endpoint was deleted).",
    )
    attempts = serializers.IntegerField()
    next_attempt_at = serializers.DateTimeField(
        allow_null=True, help_text="While pending: not before then. Null once finished."
    )
    last_attempted_at = serializers.DateTimeField(allow_null=True)
    last_status_code = serializers.IntegerField(
        allow_null=True, help_text="Your endpoint's last answer, if any."
    )
    last_error = serializers.CharField(
        help_text='"" after a 2xx; else http_error, timeout, connection_failed, tls_error, '
        "address_forbidden, unresolvable or url_invalid."
    )
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)


def delivery_data(delivery: WebhookDelivery) -> dict[str, Any]:
    pending = delivery.status == WebhookDelivery.Status.PENDING
    return {
        "id": delivery.id,
        "event_id": delivery.event.uuid,
        "event_type": delivery.event.type,
        "event_sequence": delivery.event_id,
        "wallet_id": delivery.wallet_id,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "next_attempt_at": delivery.next_attempt_at if pending else None,
        "last_attempted_at": delivery.last_attempted_at,
        "last_status_code": delivery.last_status_code,
        "last_error": delivery.last_error,
        "created_at": delivery.created_at,
        "finished_at": delivery.finished_at,
    }
