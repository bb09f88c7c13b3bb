"""OpenTelemetry tracing: one tracer provider per process, configured from the standard OTEL_* variables.

`configure_tracing()` runs once per process before any request, task or command
does work: in wsgi.py (before the WSGI handler loads its middleware), in
manage.py, and in Celery workers and beat (wallet_project/celery.py). It
instruments Django (an incoming W3C `traceparent` continues the caller's trace),
psycopg (Django's PostgreSQL connections), Redis (cache, rate-limit counters,
broker) and Celery (the task's context travels in its message headers, so a task
continues the trace of the request that enqueued it).

Exporter, from the environment:
- OTEL_TRACES_EXPORTER=otlp, or OTEL_EXPORTER_OTLP_ENDPOINT / _TRACES_ENDPOINT set:
  OTLP over HTTP (protobuf); the exporter reads the other OTEL_EXPORTER_OTLP_* itself.
- OTEL_TRACES_EXPORTER=console: one JSON object per span per line on stdout.
- otherwise (or OTEL_TRACES_EXPORTER=none, the production default): no exporter, and
  then no spans either: the SDK and the instrumentation stay off, since every span would
  be made only to be dropped (they cost about a quarter of a transfer's CPU). What the
  spans were good for without an exporter is kept the cheap way: a caller's
  `traceparent` trace id goes into the request's log lines (foundation.context) and on
  into the headers of the tasks it enqueues (wallet_project/celery.py).
- OTEL_SDK_DISABLED=true: nothing is set up at all, not even that.
OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER and OTEL_BSP_* work
as the OpenTelemetry specification says, with one addition: a client call (SQL,
Redis) made outside any request, task or command span is not recorded, so a
worker's broker polling or a readiness probe's queries do not each become a trace.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, OTELResourceDetector, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import SpanKind

logger = logging.getLogger(__name__)

# The tracer for the service's own spans. Safe to take before configure_tracing():
# the API hands out a proxy that follows the provider once one is set.
tracer = trace.get_tracer("wallet")

MOVEMENT_KINDS = frozenset({"deposit", "withdrawal", "transfer", "refund", "adjustment", "hold", "hold_void"})
# Probes and scrapes every few seconds would drown the real traces. Regexes searched
# in the full URL; OTEL_PYTHON_DJANGO_EXCLUDED_URLS replaces this list when set.
DEFAULT_EXCLUDED_URLS = r"/healthz/?$,/readyz/?$,/metrics/?$"
# Management commands that serve or wait for a person: one span around them would
# hold a whole session's statements in one trace.
UNTRACED_COMMANDS = frozenset({"runserver", "testserver", "shell", "dbshell", "help"})

_lock = threading.Lock()
_configured = False
_recording = False


def recording() -> bool:
    """True once this process records spans (an SDK tracer provider with an exporter)."""
    return _recording


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _exporter_names() -> list[str]:
    raw = os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if raw:
        return [name.strip() for name in raw.split(",") if name.strip() and name.strip() != "none"]
    # The specification's default is "otlp"; here an endpoint has to be configured
    # first, so a laptop or a test run never tries to reach a collector.
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        return ["otlp"]
    return []


def _exporter(name: str) -> SpanExporter | None:
    if name == "otlp":
        protocol = os.environ.get(
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "")
        )
        if protocol and not protocol.startswith("http/"):
            logger.warning("OTLP protocol %r is not installed; exporting over http/protobuf", protocol)
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    if name == "console":
        # The real stdout, not Celery's redirect of it into the logger, and one line
        # per span, so the output stays machine-readable.
        return ConsoleSpanExporter(
            out=sys.__stdout__ or sys.stdout,
            formatter=lambda span: span.to_json(indent=None) + os.linesep,
        )
    logger.warning("unknown OTEL_TRACES_EXPORTER %r ignored (use otlp, console or none)", name)
    return None


def _resource(service_name: str) -> Resource:
    # OTEL_SERVICE_NAME (or service.name in OTEL_RESOURCE_ATTRIBUTES) beats the argument.
    from_env = OTELResourceDetector().detect().attributes
    return Resource.create({} if from_env.get(SERVICE_NAME) else {SERVICE_NAME: service_name})


class NoOrphanClientSpans(Sampler):
    """Drops CLIENT spans that would start a trace; defers everything else to `delegate`."""

    def __init__(self, delegate: Sampler) -> None:
        self.delegate = delegate

    def should_sample(
        self,
        parent_context: Any,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Any = None,
        links: Any = None,
        trace_state: Any = None,
    ) -> SamplingResult:
        parent = trace.get_current_span(parent_context).get_span_context()
        if kind is SpanKind.CLIENT and not parent.is_valid:
            return SamplingResult(Decision.DROP)
        return self.delegate.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return f"NoOrphanClientSpans{{{self.delegate.get_description()}}}"


def _record_request_id(span: trace.Span, request: Any, response: Any) -> None:
    # Runs after every middleware, so RequestContextMiddleware has set the id by now.
    request_id = getattr(request, "request_id", None)
    if request_id and span.is_recording():
        span.set_attribute("wallet.request_id", request_id)


def _instrument_django() -> None:
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured
    from opentelemetry.instrumentation.django import DjangoInstrumentor

    try:
        # Load the settings module ourselves: on a settings error the instrumentor
        # would fall back to settings.configure() and hide it behind empty settings.
        settings.MIDDLEWARE  # noqa: B018
    except (ImproperlyConfigured, ImportError) as exc:
        logger.warning("Django settings not loadable (%s); HTTP requests are not traced", exc)
        return
    configured = os.environ.get("OTEL_PYTHON_DJANGO_EXCLUDED_URLS") or os.environ.get(
        "OTEL_PYTHON_EXCLUDED_URLS"
    )
    excluded = configured or DEFAULT_EXCLUDED_URLS
    # Puts its middleware first in settings.MIDDLEWARE, so it must run before the
    # WSGI handler (or a test client) loads the middleware chain.
    DjangoInstrumentor().instrument(excluded_urls=excluded, response_hook=_record_request_id)
    # Except the response contract: it goes back in front, so what the tracing middleware
    # refuses itself (a bad Host header) still answers problem+json with a request id.
    contract = "foundation.middleware.ResponseContractMiddleware"
    middleware = list(settings.MIDDLEWARE)
    if contract in middleware:
        middleware.remove(contract)
        settings.MIDDLEWARE = [contract, *middleware]


def _instrument() -> None:
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    _instrument_django()
    # Wraps psycopg.connect, which Django's backend calls for every new connection
    # (keeping Django's own cursor class as the base), so only connections opened
    # from now on are traced. Statements are recorded with placeholders, never
    # parameters; no SQL comments are added.
    PsycopgInstrumentor().instrument(enable_commenter=False)
    RedisInstrumentor().instrument()
    # Publishing injects traceparent into the task's headers; the worker extracts it.
    CeleryInstrumentor().instrument()


def configure_tracing(service_name: str = "wallet", *, record: bool | None = None) -> None:
    """Set the global tracer provider and instrument the libraries; later calls do nothing.

    `record`: None (the default) records spans only if an exporter is configured (see
    the module docstring); True sets up the SDK and the instrumentation even without one,
    for processes that attach their own span processors (the test suite).
    """
    global _configured, _recording
    with _lock:
        if _configured:
            return
        _configured = True
        if _env_true("OTEL_SDK_DISABLED"):
            return
        if isinstance(trace.get_tracer_provider(), TracerProvider):
            # Someone (e.g. the opentelemetry-instrument launcher) configured it already.
            logger.info("tracer provider already set; leaving its exporters alone")
        else:
            exporters = [e for e in map(_exporter, _exporter_names()) if e is not None]
            if not exporters and not record:
                return  # nothing would leave the process: no spans (module docstring)
            provider = TracerProvider(resource=_resource(service_name))
            # The provider read OTEL_TRACES_SAMPLER; no tracer has been taken from it yet.
            provider.sampler = NoOrphanClientSpans(provider.sampler)
            for exporter in exporters:
                provider.add_span_processor(BatchSpanProcessor(exporter))
            trace.set_tracer_provider(provider)
        _recording = True
        _instrument()


@contextmanager
def command_span(argv: Sequence[str]) -> Iterator[None]:
    """A `manage.py <command>` span around a management command (servers and shells excepted)."""
    command = argv[1] if len(argv) > 1 else "help"
    if command.startswith("-") or command in UNTRACED_COMMANDS:
        yield
        return
    with tracer.start_as_current_span(f"manage.py {command}", attributes={"wallet.command": command}):
        yield


class MovementSpan:
    """What `movement_span` yields: lets the caller record how the movement ended."""

    def __init__(self, span: trace.Span) -> None:
        self.span = span
        self.outcome: str | None = None

    def set_outcome(self, outcome: str, status_code: int) -> None:
        self.outcome = outcome
        self.span.set_attribute("money.outcome", outcome)
        self.span.set_attribute("http.status_code", status_code)


@contextmanager
def movement_span(
    *,
    kind: str,
    source_wallet_id: object | None,
    destination_wallet_id: object | None,
    amount: int | None,
    currency: str | None = None,
) -> Iterator[MovementSpan]:
    """A `money.<kind>` span around one money request: a deposit, withdrawal, transfer or
    refund, a hold's creation (`hold`) or void (`hold_void`); a capture is the transfer or
    withdrawal it makes.

    Attributes: wallet.source_id, wallet.destination_id, money.amount (minor units; not
    for a void),
    money.currency (when known here; otherwise the ledger adds it once it has read the
    wallets, transfers.services), and money.outcome / http.status_code from `set_outcome`. An
    exception escaping the block is recorded and sets the span's status to ERROR;
    a domain error (ServiceError) that escapes before an outcome was set also sets
    the outcome to its code.
    """
    if kind not in MOVEMENT_KINDS:
        raise ValueError(f"unknown money movement kind {kind!r}")
    if amount is not None and (isinstance(amount, bool) or not isinstance(amount, int)):
        raise TypeError("amount must be an int in minor units")
    attributes: dict[str, str | int] = {} if amount is None else {"money.amount": amount}
    if source_wallet_id is not None:
        attributes["wallet.source_id"] = str(source_wallet_id)
    if destination_wallet_id is not None:
        attributes["wallet.destination_id"] = str(destination_wallet_id)
    if currency:
        attributes["money.currency"] = currency
    with tracer.start_as_current_span(f"money.{kind}", attributes=attributes) as span:
        movement = MovementSpan(span)
        try:
            yield movement
        except Exception as exc:
            from foundation.errors import ServiceError

            if isinstance(exc, ServiceError) and movement.outcome is None:
                movement.set_outcome(exc.code, exc.status)
            raise  # start_as_current_span records it and sets the status to ERROR


def install_in_memory_exporter() -> InMemorySpanExporter:
    """For tests: also send every finished span to a new in-memory exporter.

    Call configure_tracing() first. Span processors cannot be removed from a
    provider, so call `shutdown()` on the exporter when done: it then stops keeping
    spans and costs nothing more.
    """
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        raise RuntimeError("no SDK tracer provider: call configure_tracing() (and unset OTEL_SDK_DISABLED)")
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter
