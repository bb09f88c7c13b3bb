"""Every Django admin change becomes an AuditEvent, in the admin's own transaction."""

import json
from typing import Any

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


def _changed_values(entry: LogEntry) -> dict[str, Any]:
    """The old and new value of each changed field, as the admin site records them
    (foundation.admin.ChangeValuesMixin); {} for a plain message."""
    try:
        parts = json.loads(entry.change_message or "[]")
    except ValueError:
        return {}
    values: dict[str, Any] = {}
    for part in parts if isinstance(parts, list) else []:
        changed = part.get("changed") if isinstance(part, dict) else None
        if isinstance(changed, dict) and isinstance(changed.get("values"), dict):
            values.update(changed["values"])
    return values


def record_log_entry(entry: LogEntry) -> None:
    details: dict[str, Any] = {"object": entry.object_repr, "change": entry.get_change_message()}
    values = _changed_values(entry)
    if values:
        details["changes"] = values
    audit_record(
        action=_ACTIONS.get(entry.action_flag, AuditEvent.Action.ADMIN_CHANGE),
        actor_id=entry.user_id,
        target_type=entry.content_type.model if entry.content_type_id else "",
        target_id=entry.object_id or "",
        details=details,
    )


@receiver(post_save, sender=LogEntry, dispatch_uid="audit_admin_log_entry")
def _on_log_entry(sender, instance: LogEntry, created: bool, **kwargs) -> None:
    if created:
        record_log_entry(instance)
