from django.contrib import admin

from audit.models import AuditEvent
from foundation.admin import ReadOnlyAdmin, short_id
from foundation.currencies import ISO_4217_EXPONENTS, format_major


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    """Browse and filter the audit trail. Nobody can add, change or delete an event."""

    # Seven columns that fit a laptop screen; the event's page has every field.
    list_display = ["created_at", "action", "outcome", "who", "target", "shown_amount", "client_ip"]
    list_filter = ["action", "outcome", "currency", "target_type"]
    search_fields = ["=actor__username", "actor_label", "=target_id", "=request_id", "=client_ip"]
    date_hierarchy = "created_at"
    list_select_related = ["actor"]
    show_full_result_count = False

    @admin.display(description="Who", ordering="actor")
    def who(self, event: AuditEvent) -> str:
        if event.actor_id is not None:
            return str(event.actor) if event.actor else f"user #{event.actor_id}"
        return event.actor_label or "-"

    @admin.display(description="Target", ordering="target_id")
    def target(self, event: AuditEvent) -> str:
        if not event.target_id:
            return event.target_type or "-"
        return f"{event.target_type} {short_id(event.target_id)}".strip()

    @admin.display(description="Amount", ordering="amount")
    def shown_amount(self, event: AuditEvent) -> str:
        if event.amount is None:
            return "-"
        if event.currency in ISO_4217_EXPONENTS:
            return format_major(event.amount, event.currency)
        return str(event.amount)
