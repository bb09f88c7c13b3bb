"""Webhook delivery through the real Redis broker and a real Celery worker process: the
dispatcher task and the lane tasks it sends run in the worker (this test stands in for
beat, sending dispatch_webhooks every 0.2 s), posting to a real receiver on 127.0.0.1."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from standardwebhooks import Webhook

from transfers import services as ledger
from wallet_project.tests.celery_worker import celery_worker as start_worker
from webhooks import services
from webhooks.models import WebhookAttempt, WebhookDelivery
from webhooks.tasks import dispatch_webhooks
from webhooks.tests.receiver import Receiver, free_port

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("local_webhooks")]

WORKER_ENV = {
    "WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true",
    "WEBHOOK_REQUIRE_HTTPS": "false",
    "WEBHOOK_RETRY_BASE_SECONDS": "0.3",
    "WEBHOOK_RETRY_MAX_SECONDS": "1.0",
    "WEBHOOK_CONNECT_TIMEOUT_SECONDS": "1.0",
    "WEBHOOK_TIMEOUT_SECONDS": "2.0",
    "WEBHOOK_QUEUE": "{queue}",
}


@pytest.fixture(scope="module")
def worker_queue(django_db_setup, tmp_path_factory) -> Iterator[str]:
    with start_worker(tag="webhooks", output=tmp_path_factory.mktemp("celery"), env=WORKER_ENV) as worker:
        yield worker.queue


class Beat:
    """Sends a dispatcher pass to the worker's queue every 0.2 s, as beat would."""

    def __init__(self, queue: str) -> None:
        self.queue, self.stop = queue, threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stop.wait(0.2):
            dispatch_webhooks.apply_async(queue=self.queue, expires=5)

    def __enter__(self) -> Beat:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(5)


def amounts(receiver: Receiver) -> list[int]:
    return [event["data"]["transfer"]["amount"] for event in receiver.events()]


def test_the_worker_delivers_signed_events_in_order_and_retries_a_500(worker_queue, make_user, make_wallet):
    receiver = Receiver(answers=[500]).start()
    try:
        alice = make_user("alice")
        wallet = make_wallet(alice)
        endpoint, secret = services.endpoint_create(owner_id=alice.id, url=receiver.url, event_types=["*"])
        for amount in (10, 20, 30):
            ledger.deposit_create(wallet_id=wallet.id, owner_id=alice.id, amount=amount)

        with Beat(worker_queue):
            receiver.wait_for(lambda r: len(r.received) == 3, timeout=60)

        assert amounts(receiver) == [10, 20, 30]
        for item in receiver.received:
            assert Webhook(secret).verify(item.body, item.headers)["id"] == item.headers["webhook-id"]
        first = WebhookDelivery.objects.filter(endpoint=endpoint).order_by("event_id").first()
        assert list(WebhookAttempt.objects.filter(delivery=first).values_list("status_code", flat=True)) == [
            500,
            200,
        ]
    finally:
        receiver.stop()


def test_a_receiver_down_for_a_while_gets_everything_afterwards(worker_queue, make_user, make_wallet):
    port = free_port()
    alice = make_user("alice")
    wallets = [make_wallet(alice), make_wallet(alice)]
    endpoint, _ = services.endpoint_create(
        owner_id=alice.id, url=Receiver(port=port).url, event_types=["deposit.created"]
    )
    with Beat(worker_queue):
        for amount in range(1, 7):
            ledger.deposit_create(wallet_id=wallets[amount % 2].id, owner_id=alice.id, amount=amount)
        # Down: the closed port refuses every attempt, and the attempts are recorded.
        for _ in range(100):
            if (
                WebhookAttempt.objects.filter(delivery__endpoint=endpoint, error="connection_failed").count()
                >= 4
            ):
                break
            threading.Event().wait(0.1)
        assert (
            WebhookAttempt.objects.filter(delivery__endpoint=endpoint, error="connection_failed").count() >= 4
        )

        receiver = Receiver(port=port).start()  # back up, on the same address
        try:
            receiver.wait_for(lambda r: len(r.received) >= 6, timeout=60)
        finally:
            receiver.stop()

    events = receiver.events()
    assert sorted(amounts(receiver)) == [1, 2, 3, 4, 5, 6]
    for wallet in wallets:
        mine = [e["sequence"] for e in events if e["wallet_id"] == str(wallet.id)]
        assert mine == sorted(mine) and len(mine) == 3
    assert not WebhookDelivery.objects.filter(endpoint=endpoint).exclude(status="succeeded").exists()
