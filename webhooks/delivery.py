"""The sender: POST a lane's deliveries, in order, and record every attempt.

A lane is an endpoint's deliveries of one wallet. The dispatcher leases a lane's oldest
pending delivery and hands it here; after a success the sender leases and sends the
lane's next one (catching up fast after an outage), for up to WEBHOOK_LANE_BUDGET_SECONDS.
After a failure it schedules the next attempt (exponential backoff with jitter) and lets
the lane go: the lane waits, so a wallet's events never overtake one another.

Retries are scheduled in the database (next_attempt_at), not as Celery countdowns: a day
of backoff held in a Redis broker's unacknowledged-message store outlives visibility
timeouts and worker restarts badly, while a row is visible to operators (admin) and
survives anything the database survives. Delivery is at least once: a sender that dies
after the receiver answered but before the attempt is recorded sends it again once the
lease ends, so receivers deduplicate on `webhook-id` (the event's id).
"""

from __future__ import annotations

import logging
import secrets as random_source
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone
from standardwebhooks import Webhook

from events.serializers import event_data
from events.services import render
from foundation.metrics.registry import record_webhook_attempt, record_webhook_failure
from webhooks.dispatch import lease_seconds
from webhooks.errors import WebhookUrlForbidden, WebhookUrlInvalid, WebhookUrlUnresolvable
from webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from webhooks.network import Answer, post, target_check
from webhooks.secrets import secret_decrypt
from webhooks.services import endpoint_disable_failing

logger = logging.getLogger(__name__)
Status = WebhookDelivery.Status


def backoff_seconds(attempt: int) -> float:
    """The wait after failed attempt number `attempt` (1, 2, ...): base * 2^(attempt-1),
    capped, with "equal jitter" (half fixed, half random) so receivers coming back are not
    hit by every sender at the same instant."""
    delay = min(
        settings.WEBHOOK_RETRY_MAX_SECONDS, settings.WEBHOOK_RETRY_BASE_SECONDS * 2 ** min(attempt - 1, 30)
    )
    return delay / 2 + delay / 2 * random_source.randbelow(10_001) / 10_000


def signature_headers(
    *, message_id: str, body: bytes, signing_secrets: list[str], at: datetime
) -> dict[str, str]:
    """Standard Webhooks headers: webhook-id, webhook-timestamp and webhook-signature, a
    space-separated list of `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, one per secret."""
    text = body.decode()
    signatures = [Webhook(secret).sign(message_id, at, text) for secret in signing_secrets]
    return {
        "Content-Type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": " ".join(signatures),
    }


def _signing_secrets(endpoint: WebhookEndpoint, now: datetime) -> list[str]:
    found = [secret_decrypt(endpoint.secret_encrypted)]
    if endpoint.previous_secret_encrypted and endpoint.previous_secret_expires_at > now:
        found.append(secret_decrypt(endpoint.previous_secret_encrypted))
    return found


def _attempt(delivery: WebhookDelivery) -> Answer:
    endpoint, event = delivery.endpoint, delivery.event
    body = render(event_data(event))
    now = timezone.now()
    headers = signature_headers(
        message_id=str(event.uuid), body=body, signing_secrets=_signing_secrets(endpoint, now), at=now
    )
    try:
        target = target_check(endpoint.url)  # again, at every delivery: DNS may have changed
    except WebhookUrlForbidden:
        return Answer(status=None, error="address_forbidden", excerpt="")
    except WebhookUrlUnresolvable:
        return Answer(status=None, error="unresolvable", excerpt="")
    except WebhookUrlInvalid:
        return Answer(status=None, error="url_invalid", excerpt="")
    return post(target, body, headers)


def _record(delivery_id: int, started: datetime, seconds: float, answer: Answer) -> WebhookDelivery:
    """Store the attempt and what follows from it, in one transaction."""
    now = timezone.now()
    with transaction.atomic():
        delivery = (
            WebhookDelivery.objects.select_for_update()
            .select_related("endpoint", "event")
            .get(pk=delivery_id)
        )
        number = delivery.attempts + 1
        WebhookAttempt.objects.create(
            delivery=delivery,
            number=number,
            started_at=started,
            duration_ms=max(0, round(seconds * 1000)),
            status_code=answer.status,
            error=answer.error,
            response_excerpt=answer.excerpt[:512],
        )
        if delivery.status != Status.PENDING:
            # Cancelled (its endpoint deleted) while this attempt was in flight: the attempt
            # is on record, the delivery stays as it was ended.
            return delivery
        delivery.attempts = number
        delivery.first_attempted_at = delivery.first_attempted_at or started
        delivery.last_attempted_at = started
        delivery.last_status_code = answer.status
        delivery.last_error = answer.error
        delivery.locked_until = None
        endpoint = delivery.endpoint
        if not answer.error:
            delivery.status = Status.SUCCEEDED
            delivery.finished_at = now
            if endpoint.failing_since is not None:
                WebhookEndpoint.objects.filter(pk=endpoint.pk).update(failing_since=None)
        else:
            if endpoint.failing_since is None:
                WebhookEndpoint.objects.filter(pk=endpoint.pk, failing_since__isnull=True).update(
                    failing_since=started
                )
                endpoint.failing_since = started
            wait = timedelta(seconds=backoff_seconds(number))
            window = timedelta(seconds=settings.WEBHOOK_RETRY_WINDOW_SECONDS)
            if now + wait - delivery.first_attempted_at > window:
                delivery.status = Status.FAILED
                delivery.finished_at = now
                if now - endpoint.failing_since >= timedelta(seconds=settings.WEBHOOK_DISABLE_AFTER_SECONDS):
                    endpoint_disable_failing(endpoint_id=endpoint.pk, failing_since=endpoint.failing_since)
            else:
                delivery.next_attempt_at = now + wait
        delivery.save()
    lag = (now - delivery.event.created_at).total_seconds()
    record_webhook_attempt(endpoint=str(delivery.endpoint_id), error=answer.error, lag_seconds=lag)
    if delivery.status == Status.FAILED:
        record_webhook_failure(endpoint=str(delivery.endpoint_id))
        logger.warning(
            "webhook delivery given up",
            extra={"delivery_id": delivery.id, "endpoint_id": str(delivery.endpoint_id), "attempts": number},
        )
    return delivery


def _sendable(delivery_id: int) -> WebhookDelivery | None:
    """The delivery, if it is still the pending head of its lane on an enabled endpoint
    (one query); otherwise its lease is let go and None."""
    earlier = WebhookDelivery.objects.filter(
        endpoint_id=OuterRef("endpoint_id"),
        wallet_id=OuterRef("wallet_id"),
        status=Status.PENDING,
        event_id__lt=OuterRef("event_id"),
    )
    delivery = (
        WebhookDelivery.objects.select_related("endpoint", "event")
        .annotate(behind=Exists(earlier))
        .filter(pk=delivery_id)
        .first()
    )
    if delivery is None or delivery.status != Status.PENDING:
        return None
    endpoint = delivery.endpoint
    if delivery.behind or not endpoint.enabled or endpoint.deleted_at is not None:
        WebhookDelivery.objects.filter(pk=delivery_id).update(locked_until=None)
        return None
    return delivery


LEASE_NEXT_SQL = """
UPDATE webhooks_delivery SET locked_until = now() + %(lease)s * interval '1 second'
WHERE id = (
    SELECT id FROM webhooks_delivery
    WHERE endpoint_id = %(endpoint)s AND wallet_id = %(wallet)s AND status = 'pending'
    ORDER BY event_id LIMIT 1
)
  AND status = 'pending'
  AND next_attempt_at <= now()
  AND (locked_until IS NULL OR locked_until < now())
RETURNING id
"""


def _lease_next(delivery: WebhookDelivery) -> int | None:
    """Lease the lane's next pending delivery if it is due and free (one statement)."""
    with connection.cursor() as db:
        db.execute(
            LEASE_NEXT_SQL,
            {"lease": lease_seconds(), "endpoint": delivery.endpoint_id, "wallet": delivery.wallet_id},
        )
        row = db.fetchone()
    return row[0] if row else None


def lane_send(delivery_id: int, *, budget_seconds: float | None = None) -> int:
    """Send a leased delivery and, while they succeed, the lane's next ones. Returns how
    many deliveries succeeded."""
    budget = settings.WEBHOOK_LANE_BUDGET_SECONDS if budget_seconds is None else budget_seconds
    deadline = time.monotonic() + budget
    succeeded = 0
    current: int | None = delivery_id
    while current is not None:
        delivery = _sendable(current)
        if delivery is None:
            break
        started, clock = timezone.now(), time.monotonic()
        answer = _attempt(delivery)
        delivery = _record(delivery.id, started, time.monotonic() - clock, answer)
        if delivery.status != Status.SUCCEEDED:
            break
        succeeded += 1
        if time.monotonic() >= deadline:
            break
        current = _lease_next(delivery)
    return succeeded
