"""Per-request context (request id, client, user) for logs, traces and the audit trail.

Context variables, so they follow the request through the view, services and
log calls without being passed around, and are empty in workers and commands
unless set there.
"""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar
from dataclasses import dataclass

REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
# W3C Trace Context: version-traceid-parentid-flags, lower-case hex; version ff is invalid.
TRACEPARENT = re.compile(r"^(?!ff)[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}")
_INVALID_TRACE_ID = "0" * 32

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
client_ip_var: ContextVar[str | None] = ContextVar("client_ip", default=None)
user_agent_var: ContextVar[str | None] = ContextVar("user_agent", default=None)
user_id_var: ContextVar[int | None] = ContextVar("user_id", default=None)
method_var: ContextVar[str | None] = ContextVar("method", default=None)
path_var: ContextVar[str | None] = ContextVar("path", default=None)
# The caller's W3C trace id (from `traceparent`), for log lines and task headers when
# this process records no spans of its own (foundation.tracing: no exporter configured).
trace_id_var: ContextVar[str | None] = ContextVar("trace_id", default=None)


@dataclass(frozen=True)
class RequestContext:
    request_id: str | None
    client_ip: str | None
    user_agent: str | None
    user_id: int | None


def current() -> RequestContext:
    return RequestContext(
        request_id=request_id_var.get(),
        client_ip=client_ip_var.get(),
        user_agent=user_agent_var.get(),
        user_id=user_id_var.get(),
    )


def accept_request_id(raw: str | None) -> str:
    """The caller's X-Request-ID if it is a sane token, else a fresh one."""
    if raw and REQUEST_ID_PATTERN.match(raw):
        return raw
    return uuid.uuid4().hex


def trace_id_from(traceparent: str | None) -> str | None:
    """The trace id of a W3C `traceparent` header, or None if there is no valid one."""
    if not traceparent:
        return None
    match = TRACEPARENT.match(traceparent.strip())
    if match is None or match.group(1) == _INVALID_TRACE_ID:
        return None
    return match.group(1)
