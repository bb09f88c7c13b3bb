from django.contrib import admin

from audit.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Browse and filter the audit trail. Nobody can add, change or delete an event."""

    list_display = ["created_at", "action", "outcome", "actor", "actor_label", "target_type", "target_id",
                    "amount", "currency", "client_ip", "request_id"]  # fmt: skip
    list_filter = ["action", "outcome", "currency", "target_type"]
    search_fields = ["=actor__username", "actor_label", "=target_id", "=request_id", "=client_ip"]
    date_hierarchy = "created_at"
    list_select_related = ["actor"]
    show_full_result_count = False

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
