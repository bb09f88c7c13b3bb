"""Logging: human-readable console lines by default, JSON lines when LOG_FORMAT=json.

Every record gets request_id, user_id, method, path (from foundation.context)
and trace_id/span_id (from the current OpenTelemetry span). A redaction filter
scrubs bearer tokens, JWTs and password-like values from messages and arguments,
so no secret reaches a log line even if some code tries to log one.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter

from foundation import context
from foundation.store_health import IGNORED_ERRORS_LOGGER

_REDACTIONS = [
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"), r"\1[REDACTED]"),
    (re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"), "[REDACTED-JWT]"),
    (
        re.compile(
            r"""(?i)(["']?(?:password|passwd|secret|token|refresh|access|authorization|api[_-]?key)["']?"""
            r"""\s*[:=]\s*)("[^"]*"|'[^']*'|[^\s,}&]+)"""
        ),
        r"\1[REDACTED]",
    ),
]


def redact(text: str) -> str:
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


def _trace_ids() -> tuple[str | None, str | None]:
    """The current span's trace and span ids; without one, the caller's trace id, if any."""
    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return context.trace_id_var.get(), None
    return f"{span_context.trace_id:032x}", f"{span_context.span_id:016x}"


class ContextFilter(logging.Filter):
    """Adds request and trace context to every record and redacts secrets."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = getattr(record, "request_id", None) or context.request_id_var.get()
        record.user_id = getattr(record, "user_id", None) or context.user_id_var.get()
        record.method = getattr(record, "method", None) or context.method_var.get()
        record.path = getattr(record, "path", None) or context.path_var.get()
        record.trace_id, record.span_id = _trace_ids()
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not lose the record
            message = str(record.msg)
        record.msg = redact(message)
        record.args = None
        return True


class AnsweredUnavailableFilter(logging.Filter):
    """On `django.request`: drop the ERROR line Django writes for every 503 the service answered
    on purpose (a dependency is down: 503 with Retry-After, in the access log and the metrics).

    Those carry no exception; during a Redis or database outage there is one per request,
    and the outage itself is logged once where it is noticed (foundation.store_health,
    the money path's reconnect warnings). A 500 always carries its exception and stays.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not (getattr(record, "status_code", None) == 503 and not record.exc_info)


# Attributes Django/DRF attach to records that are objects, not data.
_DROP = {"request", "response", "exc_info", "stack_info", "color_message", "taskName"}


class JsonLineFormatter(JsonFormatter):
    def add_fields(self, log_record: dict[str, Any], record: logging.LogRecord, message_dict: dict) -> None:
        super().add_fields(log_record, record, message_dict)
        for key in list(log_record):
            if key in _DROP:
                log_record.pop(key)
        log_record["event"] = log_record.pop("message", record.getMessage())
        log_record.setdefault("level", record.levelname)
        log_record.setdefault("logger", record.name)
        if record.exc_info and "exc_info" not in log_record:
            log_record["exception"] = redact(self.formatException(record.exc_info))

    def process_log_record(self, log_record: dict[str, Any]) -> dict[str, Any]:
        return {key: value for key, value in log_record.items() if value is not None}


CONSOLE_FORMAT = "%(asctime)s %(levelname)-7s %(name)s [%(request_id)s] %(message)s"
JSON_FIELDS = "%(levelname)s %(name)s %(message)s"


def logging_config(*, fmt: str, level: str) -> dict[str, Any]:
    """The LOGGING dict for settings: `fmt` is "json" or "console"."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "context": {"()": "foundation.logging.ContextFilter"},
            "answered_unavailable": {"()": "foundation.logging.AnsweredUnavailableFilter"},
            # Counts the Redis errors django-redis ignores instead of logging each one.
            "redis_ignored_errors": {"()": "foundation.store_health.IgnoredErrorFilter"},
        },
        "formatters": {
            "console": {"format": CONSOLE_FORMAT},
            "json": {
                "()": "foundation.logging.JsonLineFormatter",
                "fmt": JSON_FIELDS,
                "rename_fields": {"levelname": "level", "name": "logger"},
                "timestamp": True,  # ISO 8601, UTC
            },
        },
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "json" if fmt == "json" else "console",
                "filters": ["context"],
            }
        },
        "root": {"handlers": ["default"], "level": level},
        "loggers": {
            "django.db.backends": {"level": "WARNING"},
            # The access log below says the same thing, once, with more fields.
            "django.request": {"level": "ERROR", "filters": ["answered_unavailable"]},
            "django.server": {"level": "WARNING"},
            "celery": {"level": level},
            # DJANGO_REDIS_LOGGER (settings): foundation.store_health logs the outage once.
            IGNORED_ERRORS_LOGGER: {"filters": ["redis_ignored_errors"], "level": "ERROR"},
        },
    }
