"""Rate-limit refusals, recorded durably: the first one of each client's window in the audit trail.

Before this, a 429 left a trace only in the Prometheus counter (a process's memory, or the
multiprocess directory, gone with a restart), so the dashboard had nothing to count. One
audit row per refused request would turn a flood of cheap refusals (one Redis round trip
each) into a flood of database writes, the very load the quotas keep away; one row for the
first refusal of each (quota, client, window) costs at most one insert per client and
window, whatever the client sends. The row says who (the counter's key, the request's IP
and user) and which quota; how many requests were refused in all stays in the metric
`wallet_rate_limit_rejections_total`.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from django.db import DatabaseError, transaction
from django.dispatch import receiver

from audit.models import AuditEvent
from audit.services import audit_record
from foundation.ratelimits import rate_limit_refused

logger = logging.getLogger(__name__)


@receiver(rate_limit_refused, dispatch_uid="dashboard_rate_limit_refused")
def record_rate_limit_refusal(
    sender: Any, *, scope: str, key: str, limit: int, window_end: int, **kwargs: Any
) -> None:
    try:
        with transaction.atomic():
            audit_record(
                action=AuditEvent.Action.RATE_LIMITED,
                target_type="quota",
                target_id=scope,
                outcome=scope,
                details={
                    "key": key,
                    "limit": limit,
                    "window_end": datetime.fromtimestamp(window_end, UTC).isoformat(),
                },
            )
    except DatabaseError:
        # The refusal stands without its record (the metric still counts it).
        logger.warning("could not record a rate-limit refusal of %s", scope, exc_info=True)
