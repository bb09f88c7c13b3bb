"""Celery tasks of webhook delivery: thin, safe to repeat, each a service that also runs
without Celery (`manage.py deliver_webhooks`)."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from webhooks.delivery import lane_send
from webhooks.dispatch import dispatch_pass


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def dispatch_webhooks() -> int:
    """One dispatcher pass (beat, every WEBHOOK_DISPATCH_INTERVAL_SECONDS): new events to
    deliveries, then one send_webhook_lane task per due lane. Passes never overlap (the
    cursor row is locked; a second pass skips it), and a lane is leased before its task is
    sent, so a repeated pass sends nothing twice."""
    leased, _ = dispatch_pass()
    for delivery_id in leased:
        send_webhook_lane.apply_async(args=[delivery_id], queue=settings.WEBHOOK_QUEUE)
    return len(leased)


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def send_webhook_lane(delivery_id: int) -> int:
    """POST a leased delivery and the lane's next ones while they succeed. A redelivered
    task finds the delivery done (nothing sent) or pending again (sent again: receivers
    deduplicate on the event id)."""
    return lane_send(delivery_id)
