from django.contrib import admin

from audit.models import AuditEvent
from wallet_project.admin_site import ReadOnlyAdmin


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    """Browse and filter the audit trail. Nobody can add, change or delete an event."""

    list_display = ["created_at", "action", "outcome", "actor", "actor_label", "target_type", "target_id",
                    "amount", "currency", "client_ip", "request_id"]  # fmt: skip
    list_filter = ["action", "outcome", "currency", "target_type"]
    search_fields = ["=actor__username", "actor_label", "=target_id", "=request_id", "=client_ip"]
    date_hierarchy = "created_at"
    list_select_related = ["actor"]
    show_full_result_count = False
