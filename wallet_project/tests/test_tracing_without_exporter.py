"""Tracing with no exporter configured (the production default): no spans, the caller's trace id kept.

The rest of the suite records spans (conftest.py asks for them, as a process with an
exporter has them). These tests run fresh processes with no OTEL_* setting, as a
production web or worker process starts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from celery.result import AsyncResult
from opentelemetry import trace
from opentelemetry.propagate import extract

from foundation import context
from transfers.tasks import reconcile_ledger
from wallet_project.celery import _restore_request_context, _send_request_context
from wallet_project.celery import app as celery_app
from wallet_project.tests.celery_worker import celery_worker as start_worker
from wallet_project.tests.celery_worker import database_url_for_this_run

BASE_DIR = Path(__file__).resolve().parents[2]
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"

WEB_PROCESS = textwrap.dedent(
    """
    import json, sys
    import django
    django.setup()
    from opentelemetry import trace
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.sdk.trace import TracerProvider
    from django.test import Client
    from foundation.tracing import configure_tracing, recording
    configure_tracing()
    print(json.dumps({
        "recording": recording(),
        "sdk_provider": isinstance(trace.get_tracer_provider(), TracerProvider),
        "psycopg_instrumented": PsycopgInstrumentor().is_instrumented_by_opentelemetry,
    }))
    Client().get("/healthz", HTTP_TRACEPARENT=sys.argv[1], HTTP_X_REQUEST_ID="req-light-1")
    Client().get("/healthz", HTTP_TRACEPARENT="not a traceparent", HTTP_X_REQUEST_ID="req-light-2")
    """
)


def clean_env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return {**env, "DJANGO_SETTINGS_MODULE": "wallet_project.settings.test", "LOG_FORMAT": "json", **extra}


def test_without_an_exporter_no_spans_are_made_and_logs_keep_the_callers_trace_id():
    result = subprocess.run(
        [sys.executable, "-c", WEB_PROCESS, TRACEPARENT],
        cwd=BASE_DIR,
        env=clean_env(DATABASE_URL=database_url_for_this_run()),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    state = json.loads(result.stdout.splitlines()[0])
    assert state == {"recording": False, "sdk_provider": False, "psycopg_instrumented": False}
    access = {
        line["request_id"]: line
        for line in map(json.loads, (x for x in result.stderr.splitlines() if x.startswith("{")))
        if line.get("logger") == "wallet.access"
    }
    assert access["req-light-1"]["trace_id"] == TRACE_ID
    assert "span_id" not in access["req-light-1"]  # no span of this process's own
    assert "trace_id" not in access["req-light-2"]  # a malformed header is ignored


def test_an_exporter_turns_spans_on():
    script = "import django; django.setup()\nfrom foundation.tracing import configure_tracing, recording\n"
    script += "configure_tracing(); print(recording())"
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=BASE_DIR,
        env=clean_env(OTEL_TRACES_EXPORTER="console"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "True"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (TRACEPARENT, TRACE_ID),
        (f"  {TRACEPARENT}  ", TRACE_ID),
        (f"00-{'0' * 32}-00f067aa0ba902b7-01", None),  # the all-zero trace id is invalid
        (f"ff-{TRACE_ID}-00f067aa0ba902b7-01", None),  # version ff is invalid
        (TRACEPARENT.upper(), None),  # the specification's hex is lower case
        ("", None),
        (None, None),
    ],
)
def test_trace_id_from_reads_w3c_traceparent(header, expected):
    assert context.trace_id_from(header) == expected


def test_a_task_published_without_recorded_spans_carries_the_callers_trace(monkeypatch):
    monkeypatch.setattr("wallet_project.celery.tracing_recording", lambda: False)
    headers: dict = {}
    token = context.trace_id_var.set(TRACE_ID)
    try:
        _send_request_context(headers=headers)
    finally:
        context.trace_id_var.reset(token)

    assert context.trace_id_from(headers["traceparent"]) == TRACE_ID

    class Task:
        request = type("Request", (), {"traceparent": headers["traceparent"]})()

    _restore_request_context("task-1", Task())
    assert context.trace_id_var.get() == TRACE_ID
    from wallet_project.celery import _clear_request_context

    _clear_request_context("task-1")
    assert context.trace_id_var.get() is None


@pytest.mark.django_db(transaction=True)
def test_a_worker_without_an_exporter_logs_the_trace_id_of_the_task_it_runs(tmp_path):
    env = {key: "" for key in os.environ if key.startswith("OTEL_")}
    env["LOG_FORMAT"] = "json"
    with start_worker(tag="light", output=tmp_path, env=env) as worker:
        # Published inside a span of the caller's trace (this test process records spans,
        # so its Celery instrumentation writes the message's traceparent).
        with trace.get_tracer(__name__).start_as_current_span(
            "caller", context=extract({"traceparent": TRACEPARENT})
        ):
            result = reconcile_ledger.apply_async(kwargs={"incremental": True}, queue=worker.queue)
        assert AsyncResult(result.id, app=celery_app).get(timeout=60)["status"] == "clean"
        log = worker.stderr.read_text(errors="replace")
    lines = [json.loads(x) for x in log.splitlines() if x.startswith("{")]
    ran = [x for x in lines if x.get("logger") == "transfers.reconciliation"]
    assert ran, log[-2000:]
    assert ran[-1]["trace_id"] == TRACE_ID
    assert "span_id" not in ran[-1]  # the worker made no span of its own
