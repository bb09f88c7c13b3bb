"""Tracing: W3C trace context in, spans for HTTP, SQL, Redis and money movements, and a
task that continues the trace of the request that enqueued it in a real worker process.

Spans of this process go to an in-memory exporter (no collector). The worker is another
process, so it runs with OTEL_TRACES_EXPORTER=console and its stdout (one JSON span per
line) is read back; its stderr carries its JSON log lines. Redis and PostgreSQL are part
of the test environment: when either is unreachable these tests fail, they do not skip.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from celery.result import AsyncResult
from django.core.cache import cache
from django.db import connections
from django.http import HttpRequest, JsonResponse
from django.test import Client
from django.urls import path
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from conftest import assert_problem, idem
from foundation.logging import JSON_FIELDS, ContextFilter, JsonLineFormatter
from foundation.tracing import command_span, configure_tracing, install_in_memory_exporter, movement_span
from transfers.errors import InsufficientFunds
from transfers.tasks import reconcile_ledger
from users.models import User
from wallet_project.celery import app as celery_app
from wallet_project.tests.celery_worker import celery_worker as start_worker
from wallet_project.tests.celery_worker import tail

BASE_DIR = Path(__file__).resolve().parents[2]
READY_TIMEOUT = 30  # seconds for the worker to answer a ping
RESULT_TIMEOUT = 30  # seconds for the task's result
OUTPUT_TIMEOUT = 10  # seconds for the worker's span and log line to reach its output
STOP_TIMEOUT = 15

TASK_RUN_SPAN = f"run/{reconcile_ledger.name}"
TASK_PUBLISH_SPAN = f"apply_async/{reconcile_ledger.name}"
MONEY_ATTRIBUTES = (
    "wallet.source_id",
    "wallet.destination_id",
    "money.amount",
    "money.currency",
    "money.outcome",
    "http.status_code",
)


# --- A test-only view that enqueues a task, mounted with pytest.mark.urls(__name__) ---
def enqueue_reconciliation(request: HttpRequest) -> JsonResponse:
    result = reconcile_ledger.apply_async(kwargs={"incremental": False}, queue=request.GET["queue"])
    return JsonResponse({"task_id": result.id})


urlpatterns = [path("enqueue-reconciliation", enqueue_reconciliation)]


# --- Fixtures -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def exporter(django_db_blocker) -> Iterator[InMemorySpanExporter]:
    configure_tracing()
    # psycopg is traced from its next connect on; drop connections opened before that.
    with django_db_blocker.unblock():
        connections.close_all()
    memory = install_in_memory_exporter()
    yield memory
    memory.shutdown()


class Spans:
    """The spans this process finished since the test began (or since `clear()`)."""

    def __init__(self, exporter: InMemorySpanExporter) -> None:
        self.exporter = exporter

    def __call__(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def clear(self) -> None:
        self.exporter.clear()


@pytest.fixture
def spans(exporter: InMemorySpanExporter) -> Iterator[Spans]:
    exporter.clear()
    yield Spans(exporter)
    exporter.clear()


class JsonLines(logging.Handler):
    """Formats records as the production JSON log lines, with the request/trace context filter."""

    def __init__(self) -> None:
        super().__init__()
        self.addFilter(ContextFilter())
        self.setFormatter(
            JsonLineFormatter(JSON_FIELDS, rename_fields={"levelname": "level", "name": "logger"})
        )
        self.lines: list[dict] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@pytest.fixture
def access_log() -> Iterator[list[dict]]:
    handler = JsonLines()
    access = logging.getLogger("wallet.access")
    access.addHandler(handler)
    yield handler.lines
    access.removeHandler(handler)


def new_traceparent() -> tuple[str, str, str]:
    trace_id, parent_id = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    return f"00-{trace_id}-{parent_id}-01", trace_id, parent_id


def hex_trace_id(span: ReadableSpan) -> str:
    return trace.format_trace_id(span.context.trace_id)


def server_span(finished: list[ReadableSpan]) -> ReadableSpan:
    servers = [s for s in finished if s.kind is SpanKind.SERVER]
    assert len(servers) == 1, [s.name for s in finished]
    return servers[0]


def descends_from(span: ReadableSpan, ancestor: ReadableSpan, finished: list[ReadableSpan]) -> bool:
    by_id = {s.context.span_id: s for s in finished}
    parent = span.parent
    while parent is not None:
        if parent.span_id == ancestor.context.span_id:
            return True
        above = by_id.get(parent.span_id)
        parent = above.parent if above is not None else None
    return False


# --- HTTP, SQL and Redis spans ----------------------------------------------------------
@pytest.mark.django_db
def test_traceparent_continues_the_callers_trace_and_logs_carry_both_ids(
    spans, access_log, make_user, api_client
):
    traceparent, trace_id, parent_id = new_traceparent()
    request_id = f"req-{uuid.uuid4().hex[:12]}"

    response = api_client(make_user()).get(
        "/api/v1/wallets", HTTP_TRACEPARENT=traceparent, HTTP_X_REQUEST_ID=request_id
    )

    assert response.status_code == 200, response.content
    assert response["X-Request-ID"] == request_id
    server = server_span(spans())
    assert hex_trace_id(server) == trace_id
    assert server.parent is not None and server.parent.is_remote
    assert trace.format_span_id(server.parent.span_id) == parent_id
    assert server.attributes["wallet.request_id"] == request_id
    [line] = [line for line in access_log if line["event"].startswith("GET /api/v1/wallets")]
    assert (line["request_id"], line["trace_id"]) == (request_id, trace_id)
    assert line["span_id"] == trace.format_span_id(server.context.span_id)


@pytest.mark.django_db
def test_a_request_without_traceparent_starts_a_new_trace(spans, access_log, make_user, api_client):
    response = api_client(make_user()).get("/api/v1/wallets")

    server = server_span(spans())
    assert server.parent is None
    assert response["X-Request-ID"]
    [line] = [line for line in access_log if line["event"].startswith("GET /api/v1/wallets")]
    assert (line["request_id"], line["trace_id"]) == (response["X-Request-ID"], hex_trace_id(server))


@pytest.mark.django_db
def test_sql_and_redis_spans_are_children_of_the_request(spans, make_user, make_wallet, api_client):
    owner = make_user()
    make_wallet(owner, "USD")
    traceparent, trace_id, _ = new_traceparent()
    spans.clear()

    response = api_client(owner).get("/api/v1/wallets", HTTP_TRACEPARENT=traceparent)

    assert response.status_code == 200, response.content
    finished = spans()
    server = server_span(finished)
    sql = [s for s in finished if s.attributes.get("db.system") == "postgresql"]
    cache = [s for s in finished if s.attributes.get("db.system") == "redis"]
    assert sql, [s.name for s in finished]
    assert cache, [s.name for s in finished]
    for span in sql + cache:
        assert hex_trace_id(span) == trace_id
        assert span.kind is SpanKind.CLIENT
        assert descends_from(span, server, finished), span.name
    assert any("wallets_wallet" in s.attributes.get("db.statement", "") for s in sql)
    # Statements are recorded with placeholders, never with their parameters.
    assert not any(str(owner.id) in s.attributes.get("db.statement", "") for s in sql)


@pytest.mark.django_db
def test_health_probes_are_not_traced(spans, client: Client):
    assert client.get("/readyz").status_code == 200

    # Neither the request nor the SQL and Redis calls the probe makes.
    assert spans() == []


@pytest.mark.parametrize(
    ("path", "target"),
    [
        pytest.param("/api/v1/wallets/%F0%9F%98%84/", "/api/v1/wallets/%F0%9F%98%84/", id="emoji"),
        pytest.param("/api/v1/transfers/%E2%82%AC", "/api/v1/transfers/%E2%82%AC", id="euro-sign"),
        pytest.param("/api/v1/wallets/%C4%80/transactions", "/api/v1/wallets/%C4%80/transactions", id="C4"),
        # An encoded "?" before such a character: Django's decoded path has a literal "?",
        # so no URL pattern on it could tell such a path apart.
        pytest.param(
            "/api/v1/transfers/a%3Fb%E7%BA%9E/", "/api/v1/transfers/a%3Fb%E7%BA%9E/", id="after-a-?"
        ),
    ],
)
@pytest.mark.django_db
def test_a_path_beyond_latin_1_is_a_traced_404_not_a_crash_of_the_instrumentation(
    spans, client: Client, path, target
):
    response = client.get(path)

    assert_problem(response, 404, "not_found")
    # The span names the URL as it came in (OpenTelemetry re-encodes the WSGI PATH_INFO).
    [server] = [span for span in spans() if span.kind == SpanKind.SERVER]
    assert server.attributes["http.url"] == f"http://testserver{target}"


@pytest.mark.django_db
def test_client_calls_are_recorded_only_inside_a_unit_of_work(spans):
    cache.get("tracing-probe")
    User.objects.count()
    assert spans() == []

    with trace.get_tracer(__name__).start_as_current_span("unit of work") as parent:
        cache.get("tracing-probe")
        User.objects.count()

    children = [s for s in spans() if s.parent is not None]
    assert {s.attributes["db.system"] for s in children} == {"redis", "postgresql"}
    assert {s.parent.span_id for s in children} == {parent.get_span_context().span_id}


@pytest.mark.django_db
def test_management_commands_get_a_span_but_servers_and_shells_do_not(spans):
    with command_span(["manage.py", "reconcile", "--full"]):
        User.objects.count()
    with command_span(["manage.py", "runserver"]):
        User.objects.count()

    finished = spans()
    [command] = [s for s in finished if s.parent is None]
    assert (command.name, command.attributes["wallet.command"]) == (
        "manage.py reconcile",
        "reconcile",
    )
    [sql] = [s for s in finished if s.parent is not None]
    assert sql.parent.span_id == command.context.span_id


# --- Money movement spans -------------------------------------------------------------
def test_movement_span_records_the_movement_and_its_outcome(spans):
    source, destination = uuid.uuid4(), uuid.uuid4()

    with movement_span(
        kind="transfer",
        source_wallet_id=source,
        destination_wallet_id=destination,
        amount=1250,
        currency="EUR",
    ) as movement:
        assert trace.get_current_span().get_span_context().is_valid
        movement.set_outcome("completed", 201)

    [span] = spans()
    assert span.name == "money.transfer"
    assert dict(span.attributes) == {
        "wallet.source_id": str(source),
        "wallet.destination_id": str(destination),
        "money.amount": 1250,
        "money.currency": "EUR",
        "money.outcome": "completed",
        "http.status_code": 201,
    }
    assert span.status.status_code is StatusCode.UNSET


def test_movement_span_without_a_source_leaves_the_attribute_out(spans):
    wallet = uuid.uuid4()

    with movement_span(
        kind="deposit", source_wallet_id=None, destination_wallet_id=wallet, amount=5, currency=None
    ) as movement:
        movement.set_outcome("replayed", 201)

    [span] = spans()
    assert span.name == "money.deposit"
    assert "wallet.source_id" not in span.attributes
    assert "money.currency" not in span.attributes
    assert (span.attributes["wallet.destination_id"], span.attributes["money.outcome"]) == (
        str(wallet),
        "replayed",
    )


def test_movement_span_records_an_escaping_error(spans):
    with (
        pytest.raises(InsufficientFunds),
        movement_span(
            kind="withdrawal",
            source_wallet_id=uuid.uuid4(),
            destination_wallet_id=None,
            amount=10**12,
            currency="USD",
        ),
    ):
        raise InsufficientFunds("not enough")

    [span] = spans()
    assert span.name == "money.withdrawal"
    assert span.status.status_code is StatusCode.ERROR
    assert [event.name for event in span.events] == ["exception"]
    assert span.events[0].attributes["exception.type"].endswith("InsufficientFunds")
    assert (span.attributes["money.outcome"], span.attributes["http.status_code"]) == (
        "insufficient_funds",
        422,
    )


@pytest.mark.parametrize(
    ("kind", "amount", "error"),
    [("payment", 1, ValueError), ("deposit", 1.5, TypeError), ("deposit", True, TypeError)],
)
def test_movement_span_refuses_unknown_kinds_and_non_integer_amounts(spans, kind, amount, error):
    with (
        pytest.raises(error),
        movement_span(
            kind=kind, source_wallet_id=None, destination_wallet_id=None, amount=amount, currency="USD"
        ),
    ):
        pass  # pragma: no cover - never entered

    assert spans() == []


@pytest.mark.django_db
def test_a_transfer_request_has_a_money_transfer_span(spans, make_user, make_wallet, api_client):
    alice, bob = make_user(), make_user()
    source = make_wallet(alice, "USD", balance=1_000)
    destination = make_wallet(bob, "USD")
    traceparent, trace_id, _ = new_traceparent()

    response = api_client(alice).post(
        "/api/v1/transfers",
        {"source_wallet_id": str(source.id), "destination_wallet_id": str(destination.id), "amount": 400},
        format="json",
        HTTP_TRACEPARENT=traceparent,
        **idem(),
    )

    assert response.status_code == 201, response.content
    finished = spans()
    [money] = [s for s in finished if s.name == "money.transfer"]
    assert hex_trace_id(money) == trace_id
    assert descends_from(money, server_span(finished), finished)
    assert {key: money.attributes.get(key) for key in MONEY_ATTRIBUTES} == {
        "wallet.source_id": str(source.id),
        "wallet.destination_id": str(destination.id),
        "money.amount": 400,
        "money.currency": "USD",
        "money.outcome": "completed",
        "http.status_code": 201,
    }


# --- A task continues its request's trace in a real worker --------------------------------
def json_lines(path: Path) -> list[dict]:
    parsed = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                parsed.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line still being written
    return parsed


def wait_for(found: Callable[[], list[dict]], what: str, *outputs: Path) -> list[dict]:
    deadline = time.monotonic() + OUTPUT_TIMEOUT
    while time.monotonic() < deadline:
        if result := found():
            return result
        time.sleep(0.1)
    pytest.fail(f"no {what} within {OUTPUT_TIMEOUT}s:\n" + "\n---\n".join(tail(p) for p in outputs))


class Worker:
    """The traced worker's outputs: spans (stdout, JSON lines) and its log (stderr)."""

    def __init__(self, queue: str, spans: Path, log: Path) -> None:
        self.queue, self.spans, self.log = queue, spans, log


@pytest.fixture(scope="module")
def traced_worker(django_db_setup, tmp_path_factory) -> Iterator[Worker]:
    """A solo-pool worker on this run's own queue, printing its spans as JSON lines."""
    env = {key: "" for key in os.environ if key.startswith("OTEL_")}  # none of the caller's settings
    env.update(
        LOG_FORMAT="json",
        OTEL_TRACES_EXPORTER="console",
        OTEL_SERVICE_NAME="wallet-worker-test",
        OTEL_BSP_SCHEDULE_DELAY="100",  # milliseconds; spans reach stdout promptly
    )
    with start_worker(tag="trace", output=tmp_path_factory.mktemp("traced-worker"), env=env) as running:
        yield Worker(running.queue, running.stdout, running.stderr)


@pytest.mark.urls(__name__)
@pytest.mark.django_db(transaction=True)
def test_a_task_enqueued_by_a_request_continues_its_trace_in_the_worker(spans, traced_worker):
    traceparent, trace_id, _ = new_traceparent()
    request_id = f"req-{uuid.uuid4().hex[:12]}"

    response = Client().get(
        f"/enqueue-reconciliation?queue={traced_worker.queue}",
        HTTP_TRACEPARENT=traceparent,
        HTTP_X_REQUEST_ID=request_id,
    )
    assert response.status_code == 200, response.content
    assert response["X-Request-ID"] == request_id
    task_id = response.json()["task_id"]
    result = AsyncResult(task_id, app=celery_app)
    assert result.get(timeout=RESULT_TIMEOUT)["status"] == "clean"
    result.forget()

    # This process: the request's span and, under it, the publish that carried the context.
    finished = spans()
    [publish] = [s for s in finished if s.name == TASK_PUBLISH_SPAN]
    assert hex_trace_id(publish) == trace_id
    assert descends_from(publish, server_span(finished), finished)

    # The worker: its run span is the publish span's child, in the caller's trace.
    def run_spans() -> list[dict]:
        return [
            s
            for s in json_lines(traced_worker.spans)
            if s.get("name") == TASK_RUN_SPAN and s["attributes"].get("messaging.message.id") == task_id
        ]

    [run] = wait_for(run_spans, f"{TASK_RUN_SPAN} span", traced_worker.spans, traced_worker.log)
    assert run["context"]["trace_id"] == f"0x{trace_id}"
    assert run["parent_id"] == f"0x{trace.format_span_id(publish.context.span_id)}"
    assert run["kind"] == "SpanKind.CONSUMER"
    assert run["resource"]["attributes"]["service.name"] == "wallet-worker-test"

    # ... and its SQL ran inside that trace too.
    def sql_spans() -> list[dict]:
        return [
            s
            for s in json_lines(traced_worker.spans)
            if s["attributes"].get("db.system") == "postgresql"
            and s["context"]["trace_id"] == f"0x{trace_id}"
        ]

    assert wait_for(sql_spans, "worker SQL span in the trace", traced_worker.spans)

    # The worker's log line for the task carries the request's id and trace id.
    def task_log_lines() -> list[dict]:
        return [
            line
            for line in json_lines(traced_worker.log)
            if line.get("logger") == "celery.app.trace" and task_id in line.get("event", "")
        ]

    [line] = wait_for(task_log_lines, "log line for the task", traced_worker.log)
    assert "succeeded" in line["event"]
    assert (line["request_id"], line["trace_id"]) == (request_id, trace_id)

    # The broker polling around the task did not become traces of their own.
    assert [s["name"] for s in json_lines(traced_worker.spans) if s.get("parent_id") is None] == []


@pytest.mark.django_db(transaction=True)
def test_a_task_enqueued_outside_a_request_has_no_request_id(spans, traced_worker):
    with trace.get_tracer(__name__).start_as_current_span("scheduler") as parent:
        result = reconcile_ledger.apply_async(kwargs={"incremental": True}, queue=traced_worker.queue)
    trace_id = trace.format_trace_id(parent.get_span_context().trace_id)
    assert result.get(timeout=RESULT_TIMEOUT)["status"] == "clean"
    result.forget()

    def task_log_lines() -> list[dict]:
        return [
            line
            for line in json_lines(traced_worker.log)
            if line.get("logger") == "celery.app.trace" and result.id in line.get("event", "")
        ]

    [line] = wait_for(task_log_lines, "log line for the task", traced_worker.log)
    assert line["trace_id"] == trace_id
    # The id of the previous task's request does not leak into this one.
    assert "request_id" not in line
