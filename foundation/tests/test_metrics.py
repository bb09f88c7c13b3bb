"""Prometheus metrics: who may scrape, that the numbers move, the Celery queue collector,
and several processes sharing one multiprocess directory.

Metrics are process-global, so every assertion is on a difference between two scrapes.
Tests without a `django_db` mark prove that scraping never touches the database
(pytest-django refuses database access there). The last section drives the real API and
the real `/metrics` route, so it needs the endpoint wired into urls, MIDDLEWARE and the
money paths.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
import redis
from django.conf import settings
from django.http import HttpResponse
from django.test import RequestFactory, override_settings
from django.urls import resolve
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from foundation.metrics import celery_queue
from foundation.metrics import middleware as metrics_middleware
from foundation.metrics import registry as metrics
from foundation.metrics import view as metrics_view_module
from wallet_project.celery import app as celery_app

BASE_DIR = Path(__file__).resolve().parents[2]
PROBLEM = "application/problem+json"
TOKEN = "scrape-token-for-tests"
LOCAL = "127.0.0.1/32,::1/128"
# Nothing listens on port 1: connections are refused at once.
DEAD_REDIS = "redis://127.0.0.1:1/0"

Samples = dict[tuple[str, frozenset], float]


def parse(text: bytes | str) -> Samples:
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """A sample's value; 0 when the series does not exist (yet)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def names(samples: Samples) -> set[str]:
    return {name for name, _ in samples}


def call_view(method: str = "get", **meta: str) -> HttpResponse:
    return metrics_view_module.metrics_view(getattr(RequestFactory(), method)("/metrics", **meta))


def scrape(**meta: str) -> Samples:
    """Scrape through the view as an allowed local scraper."""
    with override_settings(METRICS_TOKEN="", METRICS_ALLOWED_NETWORKS=LOCAL):
        response = call_view(REMOTE_ADDR="127.0.0.1", **meta)
    assert response.status_code == 200, response.content
    return parse(response.content)


def collect_queues() -> Samples:
    registry = CollectorRegistry()
    registry.register(celery_queue.CeleryQueueCollector())
    return parse(generate_latest(registry))


def assert_forbidden(response: HttpResponse) -> None:
    assert response.status_code == 403, response.content
    assert response["Content-Type"] == PROBLEM
    body = json.loads(response.content)
    assert (body["code"], body["status"]) == ("permission_denied", 403)
    assert b"wallet_" not in response.content


# --- Who may scrape -------------------------------------------------------------------


@override_settings(METRICS_TOKEN=TOKEN, METRICS_ALLOWED_NETWORKS="")
@pytest.mark.parametrize(
    "authorization",
    ["", f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", "Bearer ", f"Basic {TOKEN}", TOKEN],
    ids=["missing", "longer", "shorter", "empty", "wrong-scheme", "no-scheme"],
)
def test_a_token_is_required_when_one_is_set(authorization):
    meta = {"HTTP_AUTHORIZATION": authorization} if authorization else {}
    assert_forbidden(call_view(REMOTE_ADDR="203.0.113.7", **meta))


@override_settings(METRICS_TOKEN=TOKEN, METRICS_ALLOWED_NETWORKS="")
@pytest.mark.parametrize("scheme", ["Bearer", "bearer"])
def test_the_right_token_is_accepted_from_anywhere_when_no_network_is_set(scheme):
    response = call_view(REMOTE_ADDR="203.0.113.7", HTTP_AUTHORIZATION=f"{scheme} {TOKEN}")

    assert response.status_code == 200, response.content
    assert response["Content-Type"] == CONTENT_TYPE_LATEST
    assert response["Cache-Control"] == "no-store"
    assert "wallet_money_movements" in {f.name for f in text_string_to_metric_families(response.text)}


@override_settings(METRICS_TOKEN="")
@pytest.mark.parametrize("address", ["203.0.113.7", "10.0.0.8", "::2", "not-an-ip", ""])
def test_the_default_networks_refuse_every_non_local_address(address):
    assert_forbidden(call_view(REMOTE_ADDR=address))


@override_settings(METRICS_TOKEN="")
@pytest.mark.parametrize("address", ["127.0.0.1", "::1", "::ffff:127.0.0.1"])
def test_the_default_networks_accept_loopback(address):
    assert call_view(REMOTE_ADDR=address).status_code == 200


@override_settings(METRICS_TOKEN="", METRICS_ALLOWED_NETWORKS=" 10.0.0.0/8 , fd00::/8 ")
def test_configured_networks_replace_the_default():
    assert call_view(REMOTE_ADDR="10.20.30.40").status_code == 200
    assert call_view(REMOTE_ADDR="fd00::1234").status_code == 200
    assert_forbidden(call_view(REMOTE_ADDR="127.0.0.1"))
    assert_forbidden(call_view(REMOTE_ADDR="11.0.0.1"))


@override_settings(METRICS_TOKEN="", METRICS_ALLOWED_NETWORKS=LOCAL)
@pytest.mark.parametrize(
    "header",
    [
        {"HTTP_X_FORWARDED_FOR": "203.0.113.7"},
        {"HTTP_X_FORWARDED_FOR": "127.0.0.1, 203.0.113.7"},
        {"HTTP_X_REAL_IP": "203.0.113.7"},
        {"HTTP_FORWARDED": 'for="[2001:db8::1]";proto=https'},
        {"HTTP_FORWARDED": "for=203.0.113.7"},
    ],
    ids=["xff", "xff-chain", "x-real-ip", "forwarded-v6", "forwarded-v4"],
)
def test_a_public_client_behind_a_local_proxy_is_refused(header):
    # The proxy connects from 127.0.0.1; the client it forwards for is public.
    assert_forbidden(call_view(REMOTE_ADDR="127.0.0.1", **header))


@override_settings(METRICS_TOKEN=TOKEN, METRICS_ALLOWED_NETWORKS=LOCAL)
def test_token_and_networks_must_both_pass_when_both_are_set():
    assert_forbidden(call_view(REMOTE_ADDR="203.0.113.7", HTTP_AUTHORIZATION=f"Bearer {TOKEN}"))
    assert_forbidden(call_view(REMOTE_ADDR="127.0.0.1"))
    assert call_view(REMOTE_ADDR="127.0.0.1", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200


@override_settings(METRICS_TOKEN="", METRICS_ALLOWED_NETWORKS="")
def test_with_neither_token_nor_networks_nobody_may_scrape():
    assert_forbidden(call_view(REMOTE_ADDR="127.0.0.1"))


@override_settings(METRICS_TOKEN="", METRICS_ALLOWED_NETWORKS="not-a-network,127.0.0.1/32")
def test_a_malformed_network_is_ignored_not_fatal():
    assert call_view(REMOTE_ADDR="127.0.0.1").status_code == 200
    assert_forbidden(call_view(REMOTE_ADDR="203.0.113.7"))


def test_settings_absent_fall_back_to_local_only():
    with override_settings():
        for name in ("METRICS_TOKEN", "METRICS_ALLOWED_NETWORKS"):
            if hasattr(settings, name):
                delattr(settings, name)
        assert call_view(REMOTE_ADDR="127.0.0.1").status_code == 200
        assert_forbidden(call_view(REMOTE_ADDR="203.0.113.7"))


@override_settings(METRICS_TOKEN="", METRICS_ALLOWED_NETWORKS=LOCAL)
def test_only_get_and_head_are_served():
    response = call_view("post", REMOTE_ADDR="127.0.0.1")
    assert response.status_code == 405
    assert response["Content-Type"] == PROBLEM
    assert response["Allow"] == "GET, HEAD"
    assert call_view("head", REMOTE_ADDR="127.0.0.1").status_code == 200


# --- The numbers move -----------------------------------------------------------------


def test_a_completed_movement_counts_once_and_adds_its_amount():
    before = scrape()
    metrics.record_movement(kind="transfer", currency="KWD", outcome="completed", amount=12_345)
    metrics.record_movement(kind="deposit", currency="KWD", outcome="completed", amount=10**15)
    after = scrape()

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("wallet_money_movements_total", kind="transfer", currency="KWD", outcome="completed") == 1
    assert delta("wallet_money_moved_minor_units_total", kind="transfer", currency="KWD") == 12_345
    assert delta("wallet_money_movements_total", kind="deposit", currency="KWD", outcome="completed") == 1
    assert delta("wallet_money_moved_minor_units_total", kind="deposit", currency="KWD") == 10**15


def test_a_failed_movement_counts_its_error_code_and_moves_no_money():
    before = scrape()
    metrics.record_movement(kind="withdrawal", currency="JPY", outcome="insufficient_funds", amount=500)
    after = scrape()

    key = {"kind": "withdrawal", "currency": "JPY"}
    assert value(after, "wallet_money_movements_total", **key, outcome="insufficient_funds") == (
        value(before, "wallet_money_movements_total", **key, outcome="insufficient_funds") + 1
    )
    assert value(after, "wallet_money_moved_minor_units_total", **key) == value(
        before, "wallet_money_moved_minor_units_total", **key
    )


@pytest.mark.parametrize("amount", [1.5, "100", -1, True])
def test_a_bad_amount_is_logged_not_raised(amount, caplog):
    before = scrape()
    metrics.record_movement(kind="transfer", currency="GBP", outcome="completed", amount=amount)
    after = scrape()

    key = {"kind": "transfer", "currency": "GBP"}
    assert value(after, "wallet_money_moved_minor_units_total", **key) == value(
        before, "wallet_money_moved_minor_units_total", **key
    )
    assert "record_movement failed" in caplog.text


def test_idempotency_outcomes_are_counted_and_start_at_zero():
    before = scrape()
    for outcome in metrics.IDEMPOTENCY_OUTCOMES:
        assert ("wallet_idempotency_events_total", frozenset({("outcome", outcome)})) in before
    metrics.record_idempotency("replayed")
    metrics.record_idempotency("replayed")
    metrics.record_idempotency("reused")
    metrics.record_idempotency("in_use")
    after = scrape()

    for outcome, times in (("replayed", 2), ("reused", 1), ("in_use", 1)):
        name = "wallet_idempotency_events_total"
        assert value(after, name, outcome=outcome) - value(before, name, outcome=outcome) == times


def test_rate_limit_rejections_are_counted_by_scope_and_reason():
    before = scrape()
    for scope in metrics.RATE_LIMIT_SCOPES:
        metrics.record_rate_limited(scope)
    metrics.record_rate_limited("money", reason="unavailable")
    after = scrape()

    name = "wallet_rate_limit_rejections_total"
    for scope in metrics.RATE_LIMIT_SCOPES:
        assert (
            value(after, name, scope=scope, reason="limited")
            - value(before, name, scope=scope, reason="limited")
            == 1
        )
    assert (
        value(after, name, scope="money", reason="unavailable")
        - value(before, name, scope="money", reason="unavailable")
        == 1
    )
    assert value(after, name, scope="user", reason="unavailable") == value(
        before, name, scope="user", reason="unavailable"
    )


def test_lock_waits_land_in_the_right_buckets():
    before = scrape()
    metrics.observe_lock_wait(0.2)
    metrics.observe_lock_wait(0.003)
    after = scrape()

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("wallet_row_lock_wait_seconds_count") == 2
    assert delta("wallet_row_lock_wait_seconds_sum") == pytest.approx(0.203)
    assert delta("wallet_row_lock_wait_seconds_bucket", le="0.001") == 0
    assert delta("wallet_row_lock_wait_seconds_bucket", le="0.005") == 1
    assert delta("wallet_row_lock_wait_seconds_bucket", le="0.1") == 1
    assert delta("wallet_row_lock_wait_seconds_bucket", le="0.25") == 2


def test_reconciliation_keeps_the_last_completed_run_per_scope():
    clean_at = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    found_at = datetime(2030, 1, 2, 4, 0, 0, tzinfo=UTC)
    failed_at = datetime(2030, 1, 2, 5, 0, 0, tzinfo=UTC)
    before = scrape()

    metrics.record_reconciliation(status="clean", finished_at=clean_at, discrepancies=0, scope="since")
    metrics.record_reconciliation(status="discrepancies", finished_at=found_at, discrepancies=3, scope="full")
    metrics.record_reconciliation(status="failed", finished_at=failed_at, discrepancies=1, scope="full")
    after = scrape()

    assert (
        value(after, "wallet_reconciliation_last_run_timestamp_seconds", scope="since")
        == clean_at.timestamp()
    )
    assert value(after, "wallet_reconciliation_discrepancies", scope="since") == 0
    # The failed run is counted but does not hide what the last complete full run found.
    assert (
        value(after, "wallet_reconciliation_last_run_timestamp_seconds", scope="full") == found_at.timestamp()
    )
    assert value(after, "wallet_reconciliation_discrepancies", scope="full") == 3
    runs = "wallet_reconciliation_runs_total"
    for scope, status in (("since", "clean"), ("full", "discrepancies"), ("full", "failed")):
        assert (
            value(after, runs, scope=scope, status=status) - value(before, runs, scope=scope, status=status)
            == 1
        )


def test_requests_are_counted_by_route_and_odd_methods_are_folded():
    before = scrape()
    metrics.observe_request(route="transfer-list", method="post", status=201, seconds=0.03)
    metrics.observe_request(route="transfer-list", method="BREW", status=405, seconds=0.001)
    after = scrape()

    name = "wallet_http_requests_total"
    created = {"route": "transfer-list", "method": "POST", "status": "201"}
    assert value(after, name, **created) - value(before, name, **created) == 1
    odd = {"route": "transfer-list", "method": "other", "status": "405"}
    assert value(after, name, **odd) - value(before, name, **odd) == 1
    hist = "wallet_http_request_duration_seconds_bucket"
    assert value(after, hist, **created, le="0.05") - value(before, hist, **created, le="0.05") == 1
    assert value(after, hist, **created, le="0.025") == value(before, hist, **created, le="0.025")


def test_the_middleware_labels_by_url_pattern_never_by_raw_path(client):
    wallet_id = str(uuid.uuid4())
    middleware = "foundation.metrics.middleware.MetricsMiddleware"
    others = [m for m in settings.MIDDLEWARE if m != middleware]
    with override_settings(MIDDLEWARE=[middleware, *others]):
        before = scrape()
        assert client.get("/healthz").status_code == 200
        assert client.get(f"/no-such-page/{wallet_id}").status_code == 404
        after = scrape()

    name = "wallet_http_requests_total"
    ok = {"route": "healthz", "method": "GET", "status": "200"}
    assert value(after, name, **ok) - value(before, name, **ok) == 1
    missing = {"route": "unmatched", "method": "GET", "status": "404"}
    assert value(after, name, **missing) - value(before, name, **missing) == 1
    assert not any(wallet_id in label for _, labels in after for _, label in labels)


def test_the_middleware_counts_an_escaping_exception_as_500():
    def broken(request):
        raise RuntimeError("boom")

    request = RequestFactory().get("/api/v1/wallets/x")
    request.resolver_match = resolve("/healthz")
    before = scrape()
    with pytest.raises(RuntimeError):
        metrics_middleware.MetricsMiddleware(broken)(request)
    after = scrape()

    labels = {"route": "healthz", "method": "GET", "status": "500"}
    name = "wallet_http_requests_total"
    assert value(after, name, **labels) - value(before, name, **labels) == 1


# --- Celery queue length ----------------------------------------------------------------


@pytest.fixture
def throwaway_queue() -> str:
    """A queue name no worker consumes, on the test broker; every key it made is removed."""
    name = f"metrics-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    yield name
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    keys = [name, *(f"{name}\x06\x16{step}" for step in (3, 6, 9)), f"_kombu.binding.{name}"]
    client.delete(*keys)
    client.close()


def test_the_queue_collector_reports_the_redis_list_length(throwaway_queue):
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    client.lpush(throwaway_queue, *[f'{{"fake": {n}}}' for n in range(7)])
    client.close()

    with override_settings(CELERY_TASK_DEFAULT_QUEUE=throwaway_queue):
        samples = collect_queues()
        served = scrape()

    assert value(samples, "wallet_celery_queue_up") == 1
    assert value(samples, "wallet_celery_queue_length", queue=throwaway_queue) == 7
    assert value(served, "wallet_celery_queue_length", queue=throwaway_queue) == 7


def test_the_queue_collector_counts_what_celery_itself_enqueued(throwaway_queue):
    # Celery's own publishing decides the key layout: plain messages go to a list named
    # after the queue, prioritised ones to `<queue>\x06\x16<step>`. kombu's size must agree.
    for priority in (None, None, 9, 5):
        celery_app.send_task("metrics.never.runs", queue=throwaway_queue, priority=priority)
    with celery_app.connection_for_write() as conn:
        kombu_size = conn.default_channel.queue_declare(throwaway_queue, passive=True).message_count
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    plain = client.llen(throwaway_queue)
    client.close()

    with override_settings(CELERY_TASK_DEFAULT_QUEUE=throwaway_queue):
        samples = collect_queues()

    assert plain == 2  # the other two sit in priority lists
    assert kombu_size == 4
    assert value(samples, "wallet_celery_queue_length", queue=throwaway_queue) == 4


def test_configured_task_queues_are_reported_too(throwaway_queue):
    from kombu import Queue

    other = f"{throwaway_queue}-other"
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    client.lpush(other, "a", "b")
    try:
        with override_settings(
            CELERY_TASK_DEFAULT_QUEUE=throwaway_queue,
            CELERY_TASK_QUEUES=[Queue(other), Queue(throwaway_queue)],
        ):
            samples = collect_queues()
    finally:
        client.delete(other)
        client.close()

    assert value(samples, "wallet_celery_queue_length", queue=other) == 2
    assert ("wallet_celery_queue_length", frozenset({("queue", throwaway_queue)})) in samples


@pytest.mark.parametrize("broker", [DEAD_REDIS, "redis://10.255.255.1:6379/0"], ids=["refused", "unroutable"])
def test_the_scrape_survives_an_unreachable_broker(broker, caplog):
    with override_settings(CELERY_BROKER_URL=broker, REDIS_TIMEOUT=0.2):
        started = time.monotonic()
        samples = scrape()
        elapsed = time.monotonic() - started

    assert elapsed < 2
    assert value(samples, "wallet_celery_queue_up") == 0
    assert "wallet_celery_queue_length" not in names(samples)
    assert "wallet_idempotency_events_total" in names(samples)  # the rest of the scrape is intact
    # Said once (foundation.store_health), not once per scrape, and counted.
    assert "Redis unreachable (broker queue_length" in caplog.text
    labels = {"store": "broker", "operation": "queue_length"}
    failed = REGISTRY.get_sample_value("wallet_redis_errors_total", labels)
    with override_settings(CELERY_BROKER_URL=broker, REDIS_TIMEOUT=0.2):
        assert value(scrape(), "wallet_celery_queue_up") == 0
    assert caplog.text.count("Redis unreachable") == 1
    assert REGISTRY.get_sample_value("wallet_redis_errors_total", labels) == failed + 1


def test_a_broker_that_is_not_redis_reports_nothing():
    with override_settings(CELERY_BROKER_URL="memory://"):
        samples = collect_queues()
    assert samples == {}


# --- Several processes --------------------------------------------------------------------

WRITER = textwrap.dedent(
    """
    import os, sys
    from datetime import UTC, datetime
    from foundation.metrics import registry as metrics
    from foundation.metrics import view as metrics_view_module

    n = int(sys.argv[1])
    assert metrics.MULTIPROC_DIR, "PROMETHEUS_MULTIPROC_DIR was not seen"
    metrics.record_movement(kind="transfer", currency="USD", outcome="completed", amount=n)
    metrics.record_idempotency("replayed")
    metrics.observe_lock_wait(0.01)
    metrics.record_reconciliation(
        status="discrepancies",
        finished_at=datetime.fromtimestamp(1_900_000_000 + n, UTC),
        discrepancies=n,
        scope="full",
    )
    print(os.getpid())
    """
)

SCRAPER = textwrap.dedent(
    """
    import sys
    import django
    django.setup()
    from django.test import RequestFactory, override_settings
    from foundation.metrics import registry as metrics
    from foundation.metrics import view as metrics_view_module

    with override_settings(METRICS_TOKEN="", METRICS_ALLOWED_NETWORKS="127.0.0.1/32"):
        response = metrics_view_module.metrics_view(RequestFactory().get("/metrics", REMOTE_ADDR="127.0.0.1"))
    assert response.status_code == 200, response.content
    sys.stdout.write(response.content.decode())
    """
)


def run_python(code: str, *args: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_multiprocess_mode_aggregates_every_process(tmp_path):
    env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom"),
        "DJANGO_SETTINGS_MODULE": "wallet_project.settings.test",
    }
    # Two workers, one after the other so "most recent" has a defined answer.
    first = run_python(WRITER, "3", env=env).strip()
    second = run_python(WRITER, "4", env=env).strip()
    assert first != second
    kinds = ("counter", "histogram", "gauge_max", "gauge_mostrecent")
    assert sorted(p.name for p in (tmp_path / "prom").iterdir()) == sorted(
        f"{kind}_{pid}.db" for kind in kinds for pid in (first, second)
    )

    samples = parse(run_python(SCRAPER, env=env))

    movement = {"kind": "transfer", "currency": "USD"}
    assert value(samples, "wallet_money_movements_total", **movement, outcome="completed") == 2
    assert value(samples, "wallet_money_moved_minor_units_total", **movement) == 7
    assert value(samples, "wallet_idempotency_events_total", outcome="replayed") == 2
    assert value(samples, "wallet_row_lock_wait_seconds_count") == 2
    assert value(samples, "wallet_reconciliation_runs_total", scope="full", status="discrepancies") == 2
    assert value(samples, "wallet_reconciliation_last_run_timestamp_seconds", scope="full") == 1_900_000_004
    assert value(samples, "wallet_reconciliation_discrepancies", scope="full") == 4
    # The scrape-time collector is served in multiprocess mode too.
    assert value(samples, "wallet_celery_queue_up") == 1


def test_child_exit_forgets_a_dead_workers_live_gauges(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    for name in (
        "gauge_liveall_4242.db",
        "gauge_livesum_4242.db",
        "counter_4242.db",
        "gauge_liveall_4343.db",
    ):
        (tmp_path / name).write_bytes(b"")

    metrics_view_module.child_exit(SimpleNamespace(), SimpleNamespace(pid=4242))

    assert sorted(p.name for p in tmp_path.iterdir()) == ["counter_4242.db", "gauge_liveall_4343.db"]


def test_child_exit_does_nothing_without_multiprocess_mode(monkeypatch):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    metrics_view_module.child_exit(SimpleNamespace(), SimpleNamespace(pid=4242))  # must not raise


# --- Through the real API and /metrics route (needs the lead's wiring) ---------------------


def http_scrape(client) -> Samples:
    with override_settings(METRICS_TOKEN=TOKEN, METRICS_ALLOWED_NETWORKS=LOCAL):
        refused = client.get("/metrics")
        response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert_forbidden(refused)
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == CONTENT_TYPE_LATEST
    return parse(response.content)


@pytest.fixture
def pair(make_user, make_wallet):
    alice, bob = make_user(), make_user()
    return alice, make_wallet(alice, "USD", balance=1_000), make_wallet(bob, "USD")


def post_transfer(api_client, user, source, destination, amount: int, key: str | None = None):
    return api_client(user).post(
        "/api/v1/transfers",
        {"source_wallet_id": str(source.id), "destination_wallet_id": str(destination.id), "amount": amount},
        format="json",
        HTTP_IDEMPOTENCY_KEY=key or str(uuid.uuid4()),
    )


@pytest.mark.django_db
def test_the_metrics_route_serves_and_guards(client):
    assert resolve("/metrics").func is metrics_view_module.metrics_view
    samples = http_scrape(client)
    assert "wallet_idempotency_events_total" in names(samples)


@pytest.mark.django_db
def test_a_transfer_through_the_api_moves_the_counters(
    client, api_client, pair, django_capture_on_commit_callbacks
):
    alice, source, destination = pair
    completed = {"kind": "transfer", "currency": "USD", "outcome": "completed"}
    before = http_scrape(client)

    with django_capture_on_commit_callbacks(execute=True):
        response = post_transfer(api_client, alice, source, destination, 250)
    assert response.status_code == 201, response.content
    after = http_scrape(client)

    assert (
        value(after, "wallet_money_movements_total", **completed)
        - value(before, "wallet_money_movements_total", **completed)
        == 1
    )
    moved = {"kind": "transfer", "currency": "USD"}
    assert (
        value(after, "wallet_money_moved_minor_units_total", **moved)
        - value(before, "wallet_money_moved_minor_units_total", **moved)
        == 250
    )


@pytest.mark.django_db
def test_a_refused_transfer_counts_its_error_code_and_no_amount(
    client, api_client, pair, django_capture_on_commit_callbacks
):
    alice, source, destination = pair
    refused = {"kind": "transfer", "currency": "USD", "outcome": "insufficient_funds"}
    moved = {"kind": "transfer", "currency": "USD"}
    before = http_scrape(client)

    with django_capture_on_commit_callbacks(execute=True):
        response = post_transfer(api_client, alice, source, destination, 1_000_000)
    assert response.status_code == 422, response.content
    after = http_scrape(client)

    assert (
        value(after, "wallet_money_movements_total", **refused)
        - value(before, "wallet_money_movements_total", **refused)
        == 1
    )
    assert value(after, "wallet_money_moved_minor_units_total", **moved) == value(
        before, "wallet_money_moved_minor_units_total", **moved
    )


@pytest.mark.django_db
def test_a_replayed_transfer_counts_as_a_replay_not_a_movement(
    client, api_client, pair, django_capture_on_commit_callbacks
):
    alice, source, destination = pair
    key = str(uuid.uuid4())
    completed = {"kind": "transfer", "currency": "USD", "outcome": "completed"}
    with django_capture_on_commit_callbacks(execute=True):
        assert post_transfer(api_client, alice, source, destination, 10, key).status_code == 201
    before = http_scrape(client)

    with django_capture_on_commit_callbacks(execute=True):
        replay = post_transfer(api_client, alice, source, destination, 10, key)
    assert replay["Idempotent-Replayed"] == "true"
    after = http_scrape(client)

    name = "wallet_idempotency_events_total"
    assert value(after, name, outcome="replayed") - value(before, name, outcome="replayed") == 1
    assert value(after, "wallet_money_movements_total", **completed) == value(
        before, "wallet_money_movements_total", **completed
    )


@pytest.mark.django_db
def test_api_requests_are_timed_by_the_installed_middleware(client):
    assert "foundation.metrics.middleware.MetricsMiddleware" in settings.MIDDLEWARE
    labels = {"route": "healthz", "method": "GET", "status": "200"}
    before = http_scrape(client)
    assert client.get("/healthz").status_code == 200
    after = http_scrape(client)

    name = "wallet_http_requests_total"
    assert value(after, name, **labels) - value(before, name, **labels) == 1
