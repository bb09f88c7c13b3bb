"""Request plumbing: the response contract, request context and access log, body checks, read retries."""

import logging
import time
from collections.abc import Callable
from http import HTTPStatus

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from foundation import context
from foundation.errors import (
    PROBLEM_CONTENT_TYPE,
    LengthRequired,
    PayloadTooLarge,
    is_api_path,
    problem_body,
    problem_response,
    service_error_body,
)
from foundation.ratelimits import client_ip
from foundation.tracing import recording as tracing_recording

access_logger = logging.getLogger("wallet.access")
logger = logging.getLogger(__name__)

# Codes for errors Django answers by itself, when the API's own handlers never ran.
STATUS_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    411: "length_required",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    500: "internal_error",
    503: "service_unavailable",
}
_KEPT_HEADERS = ("Allow", "Retry-After", "WWW-Authenticate")
# Public and the same for everyone: these may be cached. Every other API answer is private.
CACHEABLE_API_VIEWS = frozenset({"schema", "docs"})


class ResponseContractMiddleware:
    """What every response promises, whatever produced it. Goes first in MIDDLEWARE.

    - It carries X-Request-ID (the request's own, when RequestContextMiddleware ran).
    - Under /api/, an error is application/problem+json with a `code`. Views and the
      exception handler answer so themselves; this covers what Django answers on its own
      around them: a CSRF page, DEBUG's technical 404 and 500 pages, a bad Host header
      refused before any other middleware ran.
    - Under /api/, `Cache-Control: no-store` (balances, tokens and ledgers must not sit in
      a shared or browser cache), except for the schema and its docs page.

    The tracing middleware is put in front of every other one when tracing starts;
    foundation.tracing puts this one back in front of it. Before it runs, META's
    PATH_INFO goes back to what WSGI delivered (PEP 3333: the path's bytes as Latin-1
    text). Django replaces it with the decoded path, and OpenTelemetry's WSGI attributes
    rebuild the URL by encoding PATH_INFO as Latin-1, which raises for any character
    beyond it (opentelemetry-python-contrib issue #3237): the request would answer 500.
    Django itself routes on `request.path_info`, which stays decoded.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.META["PATH_INFO"] = request.path_info.encode("utf-8").decode("latin-1")
        response = self.get_response(request)
        if not is_api_path(request.path_info):
            if "X-Request-ID" not in response:
                response["X-Request-ID"] = _request_id(request)
            return response
        if response.status_code >= 400 and not _is_problem(response):
            response = _as_problem(response)
        if "X-Request-ID" not in response:
            response["X-Request-ID"] = _request_id(request)
        match = getattr(request, "resolver_match", None)
        if "Cache-Control" not in response and (match is None or match.url_name not in CACHEABLE_API_VIEWS):
            response["Cache-Control"] = "no-store"
        return response


def _request_id(request: HttpRequest) -> str:
    return getattr(request, "request_id", None) or context.accept_request_id(
        request.headers.get("X-Request-ID")
    )


def _is_problem(response: HttpResponse) -> bool:
    return response.get("Content-Type", "").split(";", 1)[0].strip() == PROBLEM_CONTENT_TYPE


def _as_problem(response: HttpResponse) -> HttpResponse:
    status = response.status_code
    try:
        title = HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    code = STATUS_CODES.get(status) or ("internal_error" if status >= 500 else "bad_request")
    detail = "An unexpected error occurred; it has been logged." if status >= 500 else f"{title}."
    problem = problem_response(problem_body(status=status, code=code, title=title, detail=detail))
    for name in (*_KEPT_HEADERS, "X-Request-ID"):
        if name in response:
            problem[name] = response[name]
    return problem


class RequestBodyMiddleware:
    """Refuse bodies the API would not read whole, before anything reads them.

    - No length: a body sent with Transfer-Encoding (chunked) has no Content-Length, and
      Django reads exactly Content-Length bytes, so it would be read as empty and answered
      as if the client had sent nothing. 411 length_required instead.
    - A Content-Length that is not a number (Django would fail on it later: a 500): 400.
    - Oversized: 413 payload_too_large.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        meta = request.META
        if "HTTP_TRANSFER_ENCODING" in meta:
            error = LengthRequired(
                "Send the body with a Content-Length header; Transfer-Encoding (chunked) is not accepted."
            )
            return problem_response(service_error_body(error))
        length = meta.get("CONTENT_LENGTH")
        if length:
            try:
                size = int(length)
            except ValueError:
                size = -1
            if size < 0:
                body = problem_body(
                    status=400,
                    code="malformed_request",
                    title="Malformed request",
                    detail="Content-Length must be a whole number of bytes.",
                )
                return problem_response(body)
            if size > settings.API_MAX_BODY_BYTES:
                error = PayloadTooLarge(f"Request bodies are limited to {settings.API_MAX_BODY_BYTES} bytes.")
                return problem_response(service_error_body(error))
        return self.get_response(request)


class RetryReadOnLostConnectionMiddleware:
    """Run a read once more when its database connection turned out to be dead.

    Persistent connections are not pinged before each request (DB_CONN_HEALTH_CHECKS
    is off by default: that check is a round trip on every request). A connection
    that died meanwhile (a restart, a failover) surfaces as 503 database_unavailable
    with the dead connection already closed (foundation.errors). A GET or HEAD
    changes nothing, so it is run again once on a fresh connection; money requests
    reconnect and retry inside their idempotent transaction instead
    (transfers.idempotency), and other writes answer 503 for the client to retry.
    """

    SAFE = frozenset({"GET", "HEAD", "OPTIONS"})

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if request.method in self.SAFE and getattr(response, "database_connection_lost", False):
            logger.warning(
                "database connection lost during %s %s; retrying once", request.method, request.path
            )
            response = self.get_response(request)
        return response


class RequestContextMiddleware:
    """Request id, client and timing for every request; one access-log line each.

    An incoming X-Request-ID is kept if it is a sane token (else one is made) and is
    echoed in the response. Runs first, so everything after it logs with the id.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        request_id = context.accept_request_id(request.headers.get("X-Request-ID"))
        request.request_id = request_id
        tokens = [
            (context.request_id_var, context.request_id_var.set(request_id)),
            (context.client_ip_var, context.client_ip_var.set(client_ip(request))),
            (context.user_agent_var, context.user_agent_var.set(_user_agent(request))),
            (context.method_var, context.method_var.set(request.method)),
            (context.path_var, context.path_var.set(request.path)),
            (context.user_id_var, context.user_id_var.set(None)),
            (
                context.trace_id_var,
                context.trace_id_var.set(context.trace_id_from(request.headers.get("traceparent"))),
            ),
        ]
        try:
            response = self.get_response(request)
            response["X-Request-ID"] = request_id
            user = getattr(request, "user", None)
            user_id = getattr(user, "id", None) if user is not None and user.is_authenticated else None
            access_logger.info(
                "%s %s %s",
                request.method,
                request.path,
                response.status_code,
                extra={
                    "status": response.status_code,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    "user_id": user_id or context.user_id_var.get(),
                },
            )
            return response
        finally:
            for var, token in reversed(tokens):
                var.reset(token)


def _caller_trace_id(request: HttpRequest) -> str | None:
    # Only needed when this process records no spans; with spans, the span's ids win.
    return None if tracing_recording() else context.trace_id_from(request.headers.get("traceparent"))


def _user_agent(request: HttpRequest) -> str:
    # The audit trail stores it in a PostgreSQL text column, which cannot hold NUL.
    # (gunicorn refuses NUL in headers; other servers may not.)
    return request.headers.get("User-Agent", "")[:512].replace("\x00", "\ufffd")
