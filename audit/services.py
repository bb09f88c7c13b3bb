"""Writing the audit trail. Call inside the transaction of the action being recorded."""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

from audit.models import AuditEvent
from foundation import context

logger = logging.getLogger(__name__)


def _ip(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


def audit_event(
    *,
    action: str,
    actor_id: int | None = None,
    actor_label: str = "",
    target_type: str = "",
    target_id: object = "",
    amount: int | None = None,
    currency: str = "",
    outcome: str = "ok",
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """An unsaved event. Client IP, user agent, request id and (by default) the actor
    come from the request context set by RequestContextMiddleware."""
    ctx = context.current()
    return AuditEvent(
        action=action,
        actor_id=actor_id if actor_id is not None else ctx.user_id,
        actor_label=actor_label[:150],
        target_type=target_type,
        target_id=str(target_id)[:64],
        amount=amount,
        currency=currency,
        outcome=outcome[:64],
        client_ip=_ip(ctx.client_ip),
        user_agent=(ctx.user_agent or "")[:512],
        request_id=ctx.request_id or "",
        details=details or {},
    )


def audit_record(**fields: Any) -> AuditEvent:
    """Append one event (see audit_event for the fields); call inside the action's transaction."""
    event = audit_event(**fields)
    event.save(force_insert=True)
    return event
