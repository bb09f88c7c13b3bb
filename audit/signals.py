"""Every Django admin change becomes an AuditEvent, in the admin's own transaction."""

from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.db.models.signals import post_save
from django.dispatch import receiver

from audit.models import AuditEvent
from audit.services import audit_record

_ACTIONS = {
    ADDITION: AuditEvent.Action.ADMIN_ADD,
    CHANGE: AuditEvent.Action.ADMIN_CHANGE,
    DELETION: AuditEvent.Action.ADMIN_DELETE,
}


def record_log_entry(entry: LogEntry) -> None:
    audit_record(
        action=_ACTIONS.get(entry.action_flag, AuditEvent.Action.ADMIN_CHANGE),
        actor_id=entry.user_id,
        target_type=entry.content_type.model if entry.content_type_id else "",
        target_id=entry.object_id or "",
        details={"object": entry.object_repr, "change": entry.get_change_message()},
    )


@receiver(post_save, sender=LogEntry, dispatch_uid="audit_admin_log_entry")
def _on_log_entry(sender, instance: LogEntry, created: bool, **kwargs) -> None:
    if created:
        record_log_entry(instance)
