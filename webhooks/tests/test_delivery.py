"""Delivery end to end in this process (the dispatcher and the sender as `manage.py
deliver_webhooks` runs them), to a real HTTP receiver on 127.0.0.1, with real commits.
The same through a real Celery worker: test_worker.py."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import OperationalError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from standardwebhooks import Webhook

from audit.models import AuditEvent
from events.models import Event
from foundation.db import is_cancelled, is_lock_timeout
from transfers import services as ledger
from webhooks import services
from webhooks.delivery import backoff_seconds, lane_send
from webhooks.dispatch import dispatch_pass, fan_out
from webhooks.models import DispatchCursor, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from webhooks.tests.conftest import verify
from webhooks.tests.receiver import Receiver, free_port

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("local_webhooks")]
Status = WebhookDelivery.Status


def pump() -> int:
    """One dispatcher pass and the sends it leases; how many deliveries succeeded."""
    leased, _ = dispatch_pass()
    return sum(lane_send(delivery_id) for delivery_id in leased)


def pump_until(condition, *, passes: int = 200, pause: float = 0.05) -> None:
    for _ in range(passes):
        if condition():
            return
        pump()
        threading.Event().wait(pause)
    assert condition(), "not reached"


@pytest.fixture
def alice_and_bob(make_user, make_wallet):
    alice, bob = make_user("alice"), make_user("bob")
    return alice, bob, make_wallet(alice), make_wallet(bob)


def test_each_event_is_posted_signed_once_with_the_api_rendering(alice_and_bob, receiver, api_client):
    alice, _, a, b = alice_and_bob
    endpoint, secret = services.endpoint_create(owner_id=alice.id, url=receiver.url, event_types=["*"])
    ledger.deposit_create(wallet_id=a.id, owner_id=alice.id, amount=500)
    ledger.transfer_create(
        source_wallet_id=a.id, destination_wallet_id=b.id, initiated_by_id=alice.id, amount=120
    )

    pump_until(lambda: len(receiver.received) == 2)
    pump()

    assert len(receiver.received) == 2  # bob's event is bob's: alice's endpoint never sees it
    first, second = receiver.received
    assert first.path == "/hooks?source=wallet"
    assert [first.json["type"], second.json["type"]] == ["deposit.created", "transfer.created"]
    for item in receiver.received:
        assert item.headers["content-type"] == "application/json"
        assert item.headers["webhook-id"] == item.json["id"]
        assert verify(secret, item.headers, item.body)
        assert Webhook(secret).verify(item.body, item.headers) == item.json  # the reference library agrees
        assert not verify(secret, item.headers, item.body.replace(b"created", b"changed"))  # tampered
        # The body is the event as GET /events/{id} shows it.
        shown = api_client(alice).get(f"/api/v1/events/{item.json['id']}").json()
        assert item.json == shown
    assert WebhookDelivery.objects.filter(endpoint=endpoint, status=Status.SUCCEEDED).count() == 2


def test_types_filter_and_endpoints_of_other_users(alice_and_bob, receiver):
    alice, bob, a, b = alice_and_bob
    services.endpoint_create(owner_id=alice.id, url=receiver.url, event_types=["transfer.created"])
    other = Receiver().start()
    try:
        services.endpoint_create(owner_id=bob.id, url=other.url, event_types=["*"])
        ledger.deposit_create(wallet_id=a.id, owner_id=alice.id, amount=500)
        ledger.transfer_create(
            source_wallet_id=a.id, destination_wallet_id=b.id, initiated_by_id=alice.id, amount=100
        )
        pump_until(lambda: len(receiver.received) == 1 and len(other.received) == 1)
        assert receiver.received[0].json["wallet_id"] == str(a.id)
        assert other.received[0].json["wallet_id"] == str(b.id)
        assert other.received[0].json["data"]["id"] == receiver.received[0].json["data"]["id"]
    finally:
        other.stop()


def test_a_500_is_retried_with_backoff_until_it_succeeds(alice_and_bob, receiver, settings):
    settings.WEBHOOK_RETRY_BASE_SECONDS = 60  # the first wait: 30 to 60 s, surely not over below
    alice, _, a, _ = alice_and_bob
    receiver.answers = [500, 503]
    endpoint, _ = services.endpoint_create(owner_id=alice.id, url=receiver.url, event_types=["*"])
    ledger.deposit_create(wallet_id=a.id, owner_id=alice.id, amount=500)

    pump()
    delivery = WebhookDelivery.objects.get(endpoint=endpoint)
    assert (delivery.status, delivery.attempts, delivery.last_status_code, delivery.last_error) == (
        Status.PENDING,
        1,
        500,
        "http_error",
    )
    assert delivery.next_attempt_at > delivery.last_attempted_at  # backed off, not hammered
    pump()  # not due yet: nothing is sent
    assert receiver.hits == 1

    settings.WEBHOOK_RETRY_BASE_SECONDS = 0.2
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())  # time passes
    pump_until(lambda: len(receiver.received) == 1)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (Status.SUCCEEDED, 3)
    codes = list(
        WebhookAttempt.objects.filter(delivery=delivery)
        .order_by("number")
        .values_list("status_code", flat=True)
    )
    assert codes == [500, 503, 200]
    assert WebhookEndpoint.objects.get(pk=endpoint.pk).failing_since is None


def test_a_closed_port_is_retried_and_a_receiver_back_gets_everything_in_order(alice_and_bob):
    alice, _, a, _ = alice_and_bob
    port = free_port()
    down = Receiver(port=port)
    endpoint, secret = services.endpoint_create(owner_id=alice.id, url=down.url, event_types=["*"])
    for amount in (1, 2, 3, 4, 5):
        ledger.deposit_create(wallet_id=a.id, owner_id=alice.id, amount=amount)

    for _ in range(3):
        pump()
        threading.Event().wait(0.3)
    head = WebhookDelivery.objects.filter(endpoint=endpoint).order_by("event_id").first()
    assert head.last_error == "connection_failed" and head.attempts >= 2
    # The lane waits behind its head: nothing later was tried.
    assert WebhookDelivery.objects.filter(endpoint=endpoint, attempts=0).count() == 4

    up = Receiver(port=port).start()
    try:
        pump_until(lambda: len(up.received) == 5)
        assert [item.json["data"]["transfer"]["amount"] for item in up.received] == [1, 2, 3, 4, 5]
        assert all(verify(secret, item.headers, item.body) for item in up.received)
    finally:
        up.stop()


def test_nothing_is_delivered_for_a_rolled_back_movement(alice_and_bob, receiver):
    alice, _, a, _ = alice_and_bob
    services.endpoint_create(owner_id=alice.id, url=receiver.url, event_types=["*"])
    with pytest.raises(RuntimeError), transaction.atomic():
        ledger.deposit_create(wallet_id=a.id, owner_id=alice.id, amount=700)
        raise RuntimeError("the caller's transaction fails after the movement")
    ledger.deposit_create(wallet_id=a.id, owner_id=alice.id, amount=5)

    pump_until(lambda: len(receiver.received) == 1)
    pump()
    assert [item.json["data"]["transfer"]["amount"] for item in receiver.received] == [5]
    assert WebhookDelivery.objects.count() == 1


def test_the_dispatcher_waits_for_an_open_transaction_and_skips_no_event(alice_and_bob, receiver):
    """An event drawn before a later one commits, but committed after it, is not passed over."""
    alice, bob, a, b = alice_and_bob
    endpoint, _ = services.endpoint_create(owner_id=alice.id, url=receiver.url, event_types=["*"])
    services.endpoint_create(owner_id=bob.id, url=receiver.url, event_types=["*"])
    ledger.deposit_create(wallet_id=b.id, owner_id=bob.id, amount=1)  # the USD system wallet exists now
    pump_until(lambda: len(receiver.received) == 1)
    written, release = threading.Event(), threading.Event()

    def slow_deposit() -> None:
        try:
            with transaction.atomic():
                ledger.deposit_create(wallet_id=a.id, owner_id=alice.id, amount=11)
                written.set()
                release.wait(10)
        finally:
            connection.close()

    thread = threading.Thread(target=slow_deposit)
    thread.start()
    assert written.wait(10)
    ledger.deposit_create(wallet_id=b.id, owner_id=bob.id, amount=22)  # a later sequence, committed first
    slow = Event.objects.filter(wallet_id=b.id, type="deposit.created").latest("sequence").sequence - 1

    result = fan_out()
    assert result.dispatched_up_to < slow  # held below the open transaction's event
    assert result.waiting_at is not None
    release.set()
    thread.join(10)

    pump_until(lambda: len(receiver.received) == 3)
    assert sorted(item.json["data"]["transfer"]["amount"] for item in receiver.received) == [1, 11, 22]
    assert WebhookDelivery.objects.filter(endpoint=endpoint).count() == 1
    cursor = DispatchCursor.objects.get()
    assert cursor.waiting_sequence is None and cursor.sequence >= slow + 1


def test_order_per_wallet_holds_under_concurrent_movements(make_user, make_wallet, receiver):
    users = [make_user(f"u{i}") for i in range(3)]
    wallets = [make_wallet(user, balance=10_000) for user in users]
    for user in users:
        services.endpoint_create(owner_id=user.id, url=receiver.url, event_types=["*"])

    errors: list[str] = []

    def hammer(index: int) -> None:
        try:
            for step in range(8):
                source, destination = wallets[index], wallets[(index + 1) % 3]
                # Each wallet is shared by two movers. On a loaded machine a mover can wait
                # past the lock timeout (or, granted just then, be cancelled); like a client
                # that gets 503 service_busy, it sends the same transfer again.
                for attempt in range(5):
                    try:
                        ledger.transfer_create(
                            source_wallet_id=source.id,
                            destination_wallet_id=destination.id,
                            initiated_by_id=users[index].id,
                            amount=step + 1,
                        )
                        break
                    except OperationalError as exc:
                        if attempt == 4 or not (is_lock_timeout(exc) or is_cancelled(exc)):
                            raise
        except Exception as exc:
            errors.append(f"mover {index}: {exc!r}")
            raise
        finally:
            connection.close()

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    stop = threading.Event()

    def keep_pumping() -> None:
        try:
            while not stop.wait(0.02):  # a pause, so the movers get the interpreter's lock too
                pump()
        finally:
            connection.close()

    pumper = threading.Thread(target=keep_pumping)
    pumper.start()
    for thread in threads:
        thread.join(60)
    expected = Event.objects.filter(wallet_id__in=[w.id for w in wallets], type="transfer.created").count()
    try:
        receiver.wait_for(lambda r: len(r.received) >= expected, timeout=60)
    finally:
        stop.set()
        pumper.join(30)

    assert errors == []
    assert expected == 48
    seen = receiver.events()
    assert len({event["id"] for event in seen}) == expected  # each once here (no failures to retry)
    for wallet in wallets:
        order = [event["sequence"] for event in seen if event["wallet_id"] == str(wallet.id)]
        assert order == sorted(order) and len(order) == 16


def test_a_persistently_failing_endpoint_is_given_up_and_disabled_with_an_audit_row(
    alice_and_bob, receiver, settings
):
    # The window ends after the second attempt at the earliest (a wait is at most 0.5 s),
    # which comes 0.1 s or more after the first: failing for 0.05 s is then certain.
    settings.WEBHOOK_RETRY_WINDOW_SECONDS = 0.6
    settings.WEBHOOK_DISABLE_AFTER_SECONDS = 0.05
    alice, _, a, _ = alice_and_bob
    receiver.answers = [500] * 100
    endpoint, _ = services.endpoint_create(owner_id=alice.id, url=receiver.url, event_types=["*"])
    ledger.deposit_create(wallet_id=a.id, owner_id=alice.id, amount=500)

    pump_until(lambda: WebhookDelivery.objects.filter(status=Status.FAILED).exists())
    endpoint.refresh_from_db()
    assert (endpoint.enabled, endpoint.disabled_reason) == (False, WebhookEndpoint.DisabledReason.FAILING)
    audit = AuditEvent.objects.get(action=AuditEvent.Action.WEBHOOK_ENDPOINT_DISABLED)
    assert audit.target_id == str(endpoint.id)
    # Disabled: new events are not queued for it; enabling it again resumes.
    ledger.deposit_create(wallet_id=a.id, owner_id=alice.id, amount=7)
    pump()
    assert WebhookDelivery.objects.filter(endpoint=endpoint).count() == 1


def test_redelivery_sends_a_failed_delivery_again(alice_and_bob, receiver, settings, make_user):
    settings.WEBHOOK_RETRY_WINDOW_SECONDS = 0.3
    settings.WEBHOOK_DISABLE_AFTER_SECONDS = 3600
    alice, _, a, _ = alice_and_bob
    receiver.answers = [500] * 4
    services.endpoint_create(owner_id=alice.id, url=receiver.url, event_types=["*"])
    ledger.deposit_create(wallet_id=a.id, owner_id=alice.id, amount=500)
    pump_until(lambda: WebhookDelivery.objects.filter(status=Status.FAILED).exists())
    receiver.answers = []
    delivery = WebhookDelivery.objects.get()
    operator = make_user("operator")

    services.delivery_redeliver(delivery_id=delivery.id, actor_id=operator.id)
    pump_until(lambda: len(receiver.received) == 1)

    delivery.refresh_from_db()
    assert delivery.status == Status.SUCCEEDED
    assert AuditEvent.objects.filter(
        action=AuditEvent.Action.WEBHOOK_REDELIVERED, actor_id=operator.id
    ).exists()


def test_the_address_is_checked_again_at_delivery(alice_and_bob, receiver, settings):
    alice, _, a, _ = alice_and_bob
    endpoint, _ = services.endpoint_create(owner_id=alice.id, url=receiver.url, event_types=["*"])
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = False  # as if its name now resolved to a private address
    ledger.deposit_create(wallet_id=a.id, owner_id=alice.id, amount=500)

    pump()
    delivery = WebhookDelivery.objects.get(endpoint=endpoint)
    assert (delivery.last_error, receiver.hits) == ("address_forbidden", 0)


def test_after_a_rotation_both_secrets_sign_until_the_grace_ends(alice_and_bob, receiver):
    alice, _, a, _ = alice_and_bob
    endpoint, old = services.endpoint_create(owner_id=alice.id, url=receiver.url, event_types=["*"])
    endpoint, new = services.endpoint_rotate_secret(endpoint_id=endpoint.id, owner_id=alice.id)
    ledger.deposit_create(wallet_id=a.id, owner_id=alice.id, amount=1)
    pump_until(lambda: len(receiver.received) == 1)
    item = receiver.received[0]
    assert verify(new, item.headers, item.body) and verify(old, item.headers, item.body)
    assert len(item.headers["webhook-signature"].split(" ")) == 2

    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        previous_secret_expires_at=timezone.now() - timedelta(seconds=1)
    )
    ledger.deposit_create(wallet_id=a.id, owner_id=alice.id, amount=2)
    pump_until(lambda: len(receiver.received) == 2)
    item = receiver.received[1]
    assert verify(new, item.headers, item.body) and not verify(old, item.headers, item.body)


def test_backoff_grows_exponentially_with_jitter_and_is_capped(settings):
    settings.WEBHOOK_RETRY_BASE_SECONDS = 10
    settings.WEBHOOK_RETRY_MAX_SECONDS = 3600
    for attempt, full in [(1, 10), (2, 20), (5, 160), (9, 2560), (12, 3600), (60, 3600)]:
        waits = {backoff_seconds(attempt) for _ in range(50)}
        assert all(full / 2 <= wait <= full for wait in waits)
        assert len(waits) > 1  # jittered


def test_a_delivery_costs_a_bounded_number_of_queries(alice_and_bob, receiver):
    alice, _, a, _ = alice_and_bob
    services.endpoint_create(owner_id=alice.id, url=receiver.url, event_types=["*"])
    ledger.deposit_create(wallet_id=a.id, owner_id=alice.id, amount=5)
    leased, _ = dispatch_pass()
    assert len(leased) == 1

    with CaptureQueriesContext(connection) as queries:
        assert lane_send(leased[0]) == 1

    statements = [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].split()[0] not in ("SAVEPOINT", "RELEASE", "BEGIN", "COMMIT")
    ]
    # The head check; the locked read, the attempt, the delivery; the next lease.
    assert len(statements) <= 5, statements


def test_an_endpoint_deleted_during_an_attempt_keeps_its_cancelled_delivery(
    alice_and_bob, receiver, monkeypatch
):
    from webhooks import delivery as sender

    alice, _, a, _ = alice_and_bob
    endpoint, _ = services.endpoint_create(owner_id=alice.id, url=receiver.url, event_types=["*"])
    ledger.deposit_create(wallet_id=a.id, owner_id=alice.id, amount=5)
    leased, _ = dispatch_pass()
    real_attempt = sender._attempt

    def attempt_then_delete(delivery):
        answer = real_attempt(delivery)
        services.endpoint_delete(endpoint_id=endpoint.id, owner_id=alice.id)
        return answer

    monkeypatch.setattr(sender, "_attempt", attempt_then_delete)
    assert lane_send(leased[0]) == 0

    delivery = WebhookDelivery.objects.get(endpoint=endpoint)
    assert (delivery.status, delivery.attempts) == (Status.CANCELLED, 0)
    assert WebhookAttempt.objects.filter(delivery=delivery, status_code=200).count() == 1
