from django.contrib import admin

from events.models import Event
from foundation.admin import ReadOnlyAdmin, short_id


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    """Browse the outbox. Nobody can add, change or delete an event (PostgreSQL refuses it too)."""

    list_display = ["sequence", "created_at", "type", "wallet", "owner_id", "uuid"]
    list_filter = ["type"]
    search_fields = ["=uuid", "=wallet_id", "=owner__username"]
    date_hierarchy = "created_at"
    show_full_result_count = False
    # Named, since the id and the sequence are no form fields (not editable).
    fields = readonly_fields = ["sequence", "uuid", "type", "created_at", "wallet_id", "owner_id", "data"]

    @admin.display(description="Wallet", ordering="wallet_id")
    def wallet(self, event: Event) -> str:
        return short_id(event.wallet_id)
