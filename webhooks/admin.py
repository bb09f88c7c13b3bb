"""Operators' view of webhooks: endpoints, deliveries and every attempt, read-only, and
redelivery (an action that needs the webhooks.redeliver_webhookdelivery permission)."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from foundation.admin import ReadOnlyAdmin, short_id, short_time
from webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from webhooks.services import delivery_redeliver

REDELIVER_PERMISSION = "webhooks.redeliver_webhookdelivery"
URL_SHOWN = 40  # characters of an endpoint's URL in the list


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(ReadOnlyAdmin):
    # Enabled, disabled (and why) and deleted in one column, so the list fits a 1400 px window
    # beside the admin's navigation and filters.
    list_display = ["shown_url", "owner", "state", "failing_since", "created_at"]
    list_filter = ["enabled", "disabled_reason"]
    search_fields = ["=id", "url", "=owner__username"]
    list_select_related = ["owner"]
    show_full_result_count = False
    # Never the secrets, not even encrypted.
    fields = readonly_fields = [
        "id", "owner", "url", "description", "event_types", "enabled", "disabled_reason",
        "failing_since", "previous_secret_expires_at", "created_at", "updated_at", "deleted_at",
    ]  # fmt: skip

    @admin.display(description="URL", ordering="url")
    def shown_url(self, endpoint: WebhookEndpoint) -> str:
        # A URL does not wrap: a long one is cut here and shown whole on the endpoint's page.
        return endpoint.url if len(endpoint.url) <= URL_SHOWN else f"{endpoint.url[: URL_SHOWN - 1]}…"

    @admin.display(description="State", ordering="enabled")
    def state(self, endpoint: WebhookEndpoint) -> str:
        if endpoint.deleted_at is not None:
            return "deleted"
        if endpoint.enabled:
            return "enabled"
        return endpoint.get_disabled_reason_display()  # "Disabled by its owner", ...


class AttemptInline(admin.TabularInline):
    model = WebhookAttempt
    extra = 0
    can_delete = False
    ordering = ["number"]
    fields = readonly_fields = [
        "number",
        "started_at",
        "duration_ms",
        "status_code",
        "error",
        "response_excerpt",
    ]

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    # The endpoint's host, the last status and error in one column, and a next-attempt time
    # that may wrap: the list fits a 1400 px window beside the admin's navigation and filters.
    list_display = [
        "id",
        "event_type",
        "status",
        "attempts",
        "endpoint_host",
        "wallet",
        "next_attempt",
        "last_result",
    ]
    list_filter = ["status", "last_error"]
    search_fields = ["=id", "=endpoint__id", "=wallet_id", "=event__uuid"]
    list_select_related = ["endpoint", "event"]
    show_full_result_count = False
    date_hierarchy = "created_at"
    inlines = [AttemptInline]
    actions = ["redeliver_selected"]
    fields = readonly_fields = [
        "id", "endpoint", "event", "wallet_id", "status", "attempts", "created_at", "next_attempt_at",
        "locked_until", "first_attempted_at", "last_attempted_at", "finished_at", "last_status_code",
        "last_error",
    ]  # fmt: skip

    @admin.display(description="Event", ordering="event")
    def event_type(self, delivery: WebhookDelivery) -> str:
        return f"{delivery.event.type} #{delivery.event_id}"

    @admin.display(description="Endpoint")
    def endpoint_host(self, delivery: WebhookDelivery) -> str:
        return urlsplit(delivery.endpoint.url).netloc  # the whole URL is on the delivery's page

    @admin.display(description="Next attempt", ordering="next_attempt_at")
    def next_attempt(self, delivery: WebhookDelivery) -> str:
        return short_time(delivery.next_attempt_at, seconds=False)

    @admin.display(description="Last result", ordering="last_status_code")
    def last_result(self, delivery: WebhookDelivery) -> str:
        parts = [str(delivery.last_status_code or ""), delivery.last_error]
        return " ".join(part for part in parts if part) or "-"

    @admin.display(description="Wallet", ordering="wallet_id")
    def wallet(self, delivery: WebhookDelivery) -> str:
        return short_id(delivery.wallet_id)

    def has_redeliver_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(REDELIVER_PERMISSION)

    @admin.action(description="Redeliver selected deliveries", permissions=["redeliver"])
    def redeliver_selected(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        ids = list(queryset.order_by("pk").values_list("pk", flat=True))
        for delivery_id in ids:
            delivery_redeliver(delivery_id=delivery_id, actor_id=request.user.pk)
        self.message_user(
            request,
            f"{len(ids)} deliveries will be sent again shortly (in their lanes' order).",
            messages.SUCCESS,
        )
