"""The Celery app. Configured from Django settings under the CELERY_ namespace.

Also: tracing for workers and beat, and the request id carried from the request
that enqueued a task to the worker that runs it (so both sides' log lines share it).
"""

import os
import secrets
from contextvars import Token

from celery import Celery
from celery.signals import (
    beat_init,
    before_task_publish,
    celeryd_init,
    task_postrun,
    task_prerun,
    worker_process_init,
)

from foundation import context
from foundation.tracing import configure_tracing
from foundation.tracing import recording as tracing_recording

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "wallet_project.settings.local")

app = Celery("wallet_project")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

WORKER_SERVICE_NAME = "wallet-worker"
REQUEST_ID_HEADER = "wallet_request_id"


# --- Tracing ------------------------------------------------------------------
# Prefork children set tracing up after the fork (worker_process_init), so exporter
# threads and HTTP connections are their own; the parent runs no tasks and stays
# untraced. Every other pool (solo, threads, gevent) runs tasks in this process,
# which is set up here before the consumer starts.
@celeryd_init.connect
def _trace_worker(conf, options: dict, **kwargs: object) -> None:
    from celery.concurrency import get_implementation
    from celery.concurrency.prefork import TaskPool as PreforkPool

    pool = get_implementation(options.get("pool_cls") or conf.worker_pool)
    if not (isinstance(pool, type) and issubclass(pool, PreforkPool)):
        configure_tracing(service_name=WORKER_SERVICE_NAME)


@worker_process_init.connect
def _trace_worker_process(**kwargs: object) -> None:
    configure_tracing(service_name=WORKER_SERVICE_NAME)


@beat_init.connect
def _trace_beat(**kwargs: object) -> None:
    configure_tracing(service_name="wallet-beat")


# --- Request id and, without recorded spans, the caller's trace id ---------------
# A task's log lines carry the request id (and the trace id) of the request that
# enqueued it. When spans are recorded, OpenTelemetry's Celery instrumentation carries
# the whole trace context instead, and the span's own ids win in the logs.
_context_tokens: dict[str, list[tuple[object, Token]]] = {}


@before_task_publish.connect
def _send_request_context(headers: dict | None = None, **kwargs: object) -> None:
    if headers is None:
        return
    request_id = context.request_id_var.get()
    if request_id:
        headers.setdefault(REQUEST_ID_HEADER, request_id)
    trace_id = context.trace_id_var.get()
    if trace_id and not tracing_recording():
        headers.setdefault("traceparent", f"00-{trace_id}-{secrets.token_hex(8)}-01")


@task_prerun.connect
def _restore_request_context(task_id: str, task, **kwargs: object) -> None:
    tokens = []
    request_id = getattr(task.request, REQUEST_ID_HEADER, None)
    if isinstance(request_id, str) and context.REQUEST_ID_PATTERN.match(request_id):
        tokens.append((context.request_id_var, context.request_id_var.set(request_id)))
    trace_id = context.trace_id_from(getattr(task.request, "traceparent", None))
    if trace_id:
        tokens.append((context.trace_id_var, context.trace_id_var.set(trace_id)))
    if tokens:
        _context_tokens[task_id] = tokens


@task_postrun.connect
def _clear_request_context(task_id: str, **kwargs: object) -> None:
    for var, token in reversed(_context_tokens.pop(task_id, [])):
        var.reset(token)
