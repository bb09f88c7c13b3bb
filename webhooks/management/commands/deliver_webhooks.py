"""`manage.py deliver_webhooks`: the dispatcher and the senders in this process, no Celery.

For `make run`, for an operator draining a backlog by hand, and for a deployment without
workers. `--once` runs a single pass and sends what is due; without it the command repeats
every WEBHOOK_DISPATCH_INTERVAL_SECONDS until stopped.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.core.management.base import BaseCommand

from webhooks.delivery import lane_send
from webhooks.dispatch import dispatch_pass


class Command(BaseCommand):
    help = "Turn new events into webhook deliveries and send the due ones, in this process."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--once", action="store_true", help="One pass, then exit.")

    def handle(self, *args, once: bool = False, **options) -> None:
        try:
            while True:
                leased, result = dispatch_pass()
                sent = sum(lane_send(delivery_id) for delivery_id in leased)
                if once or options["verbosity"] > 1:
                    self.stdout.write(
                        f"dispatched up to event {result.dispatched_up_to} "
                        f"({result.deliveries_created} new deliveries); {sent} delivered"
                    )
                if once:
                    return
                time.sleep(settings.WEBHOOK_DISPATCH_INTERVAL_SECONDS)
        except KeyboardInterrupt:
            return
