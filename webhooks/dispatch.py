"""The dispatcher: from the outbox to deliveries, and from deliveries to senders.

One pass (Celery beat, every WEBHOOK_DISPATCH_INTERVAL_SECONDS; or `manage.py
deliver_webhooks`):

1. **Fan-out.** The events after the cursor become one delivery per matching endpoint of
   their owner (one INSERT ... SELECT; a unique key makes it safe to repeat).
2. **Lanes.** Each endpoint's deliveries of one wallet form a lane that goes out in event
   order. Every lane whose oldest pending delivery is due and not held gets a lease and is
   handed to a sender (a Celery task, or this process).

**Why the cursor never skips an event.** Sequence numbers are drawn before commit, so the
outbox can show event 12 while 11 is still in an open transaction (or was rolled back and
will never appear). The fan-out takes only the gap-free run of sequences after the cursor.
At a gap, it notes the transactions that were in progress in the snapshot that saw it
(pg_current_snapshot) and the highest sequence seen; once all of those have ended, every
sequence up to that one is final, committed or never to be, and the cursor moves past the
gap. This relies on what every writer of events does: it has written (a row lock, an
update) before it draws an event's sequence, so its transaction has an id by then and is in
the snapshot's list. A rolled-back movement therefore leaves no delivery, and nothing
committed is ever passed over.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction

from foundation.metrics.registry import record_webhook_backlog
from webhooks.models import DispatchCursor

logger = logging.getLogger(__name__)

WINDOW_SQL = """
SELECT
    ARRAY(SELECT sequence FROM events_event WHERE sequence > %(after)s ORDER BY sequence LIMIT %(limit)s),
    ARRAY(
        SELECT x::text::bigint FROM pg_snapshot_xip(pg_current_snapshot()) AS x
        WHERE x IS DISTINCT FROM pg_current_xact_id_if_assigned()
    ),
    coalesce(
        (SELECT bool_and(pg_visible_in_snapshot(x::text::xid8, pg_current_snapshot()))
         FROM unnest(%(waiting)s::bigint[]) AS x),
        true
    )
"""

FAN_OUT_SQL = """
INSERT INTO webhooks_delivery
    (endpoint_id, event_id, wallet_id, status, attempts, created_at, next_attempt_at, last_error)
SELECT ep.id, e.sequence, e.wallet_id, 'pending', 0, now(), now(), ''
FROM events_event e
JOIN webhooks_endpoint ep
  ON ep.owner_id = e.owner_id
 AND ep.deleted_at IS NULL
 AND ep.enabled
 AND ep.created_at <= e.created_at
 AND (e.type = ANY(ep.event_types) OR '*' = ANY(ep.event_types))
WHERE e.sequence > %(after)s AND e.sequence <= %(upto)s
ON CONFLICT (endpoint_id, event_id) DO NOTHING
"""

# Lane heads that are due and not held: lease them (locked_until) and hand them out. The
# UPDATE re-reads each head under its row lock, so two passes never lease one twice.
LEASE_SQL = """
WITH heads AS (
    SELECT DISTINCT ON (d.endpoint_id, d.wallet_id) d.id, d.next_attempt_at, d.locked_until, d.endpoint_id
    FROM webhooks_delivery d
    WHERE d.status = 'pending'
    ORDER BY d.endpoint_id, d.wallet_id, d.event_id
)
UPDATE webhooks_delivery d
SET locked_until = now() + %(lease)s * interval '1 second'
FROM heads h
JOIN webhooks_endpoint ep ON ep.id = h.endpoint_id AND ep.enabled AND ep.deleted_at IS NULL
WHERE d.id = h.id
  AND d.status = 'pending'
  AND d.next_attempt_at <= now()
  AND (d.locked_until IS NULL OR d.locked_until < now())
RETURNING d.id
"""

BACKLOG_SQL = """
SELECT count(*), coalesce(extract(epoch FROM now() - min(e.created_at)), 0)
FROM webhooks_delivery d JOIN events_event e ON e.sequence = d.event_id
WHERE d.status = 'pending'
"""


@dataclass(frozen=True)
class Pass:
    deliveries_created: int
    dispatched_up_to: int
    waiting_at: int | None  # the sequence a gap holds the cursor below, if any


def lease_seconds() -> float:
    """How long a sender may hold a lane before another may take it: one attempt's worst
    case plus the time a task may wait in the queue (a sender that dies lets go by itself)."""
    return settings.WEBHOOK_CONNECT_TIMEOUT_SECONDS + settings.WEBHOOK_TIMEOUT_SECONDS + 60.0


def fan_out(*, batch: int | None = None) -> Pass:
    """Turn the next events of the outbox into deliveries (see the module's docstring)."""
    batch = batch or settings.WEBHOOK_DISPATCH_BATCH_SIZE
    with transaction.atomic():
        cursor = DispatchCursor.objects.select_for_update(skip_locked=True).filter(pk=1).first()
        if cursor is None and not DispatchCursor.objects.filter(pk=1).exists():
            _cursor_restore()
            cursor = DispatchCursor.objects.select_for_update(skip_locked=True).filter(pk=1).first()
        if cursor is None:  # another pass holds it
            return Pass(0, -1, None)
        with connection.cursor() as db:
            db.execute(WINDOW_SQL, {"after": cursor.sequence, "limit": batch, "waiting": cursor.waiting_xids})
            sequences, in_progress, waited_out = db.fetchone()
        after = upto = cursor.sequence
        if cursor.waiting_sequence is not None and waited_out:
            upto = max(upto, cursor.waiting_sequence)
            cursor.waiting_sequence, cursor.waiting_xids = None, []
        for sequence in sequences:
            if sequence <= upto:
                continue
            if sequence != upto + 1:
                break
            upto = sequence
        if cursor.waiting_sequence is not None and cursor.waiting_sequence <= upto:
            cursor.waiting_sequence, cursor.waiting_xids = None, []  # passed without a gap
        if sequences and sequences[-1] > upto and not in_progress:
            # No other transaction was open: every gap below what this snapshot saw is final.
            upto, cursor.waiting_sequence, cursor.waiting_xids = sequences[-1], None, []
        elif cursor.waiting_sequence is None and sequences and sequences[-1] > upto:
            cursor.waiting_sequence, cursor.waiting_xids = sequences[-1], list(in_progress)
        created = 0
        if upto > after:
            with connection.cursor() as db:
                db.execute(FAN_OUT_SQL, {"after": after, "upto": upto})
                created = db.rowcount
            cursor.sequence = upto
        cursor.save()
        return Pass(created, cursor.sequence, cursor.waiting_sequence)


def fan_out_settled(*, timeout: float = 10.0) -> Pass:
    """Fan out until the cursor has passed every event visible now (for commands and tests:
    a gap waits for the transactions open when it was seen, anywhere on the cluster)."""
    with connection.cursor() as db:
        db.execute("SELECT coalesce(max(sequence), 0) FROM events_event")
        (target,) = db.fetchone()
    deadline = time.monotonic() + timeout
    while True:
        result = fan_out()
        if result.dispatched_up_to >= target or time.monotonic() > deadline:
            return result
        time.sleep(0.02)


def _cursor_restore() -> None:
    """The cursor row is made by migration 0002; should it be gone (a flushed database),
    start again before the oldest event, so nothing still in the outbox is skipped."""
    with connection.cursor() as db:
        db.execute(
            "INSERT INTO webhooks_dispatch_cursor (id, sequence, waiting_xids, updated_at) "
            "SELECT 1, coalesce(min(sequence) - 1, 0), '{}', now() FROM events_event "
            "ON CONFLICT (id) DO NOTHING"
        )


def lanes_lease() -> list[int]:
    """Lease every due lane head; the ids of the deliveries to send now."""
    with connection.cursor() as db:
        db.execute(LEASE_SQL, {"lease": lease_seconds()})
        return [row[0] for row in db.fetchall()]


def backlog_measure(dispatched_up_to: int) -> None:
    with connection.cursor() as db:
        db.execute(BACKLOG_SQL)
        pending, oldest = db.fetchone()
    record_webhook_backlog(
        pending=pending, oldest_age_seconds=float(oldest), dispatched_sequence=dispatched_up_to
    )


def dispatch_pass(*, max_seconds: float = 5.0) -> tuple[list[int], Pass]:
    """Fan out until caught up (or for `max_seconds`), then lease the due lanes: the ids of
    the deliveries to send now, and where the cursor is."""
    deadline = time.monotonic() + max_seconds
    result = fan_out()
    while result.dispatched_up_to >= 0 and time.monotonic() < deadline:
        again = fan_out()
        if again.dispatched_up_to <= result.dispatched_up_to:
            break
        result = again
    leased = lanes_lease()
    if result.dispatched_up_to >= 0:
        backlog_measure(result.dispatched_up_to)
    return leased, result
