"""One error tree for the domain and one mapping to RFC 9457 problem details.

Every error the API returns is `application/problem+json` with a stable
machine-readable `code`. Services raise `ServiceError` subclasses; DRF and Django
exceptions are translated here too, so no view formats an error by hand.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError, connection, connections
from django.http import Http404, HttpRequest, HttpResponse
from django.views.csrf import csrf_failure as django_csrf_failure
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions as drf_exceptions
from rest_framework.renderers import JSONRenderer

from foundation.db import is_connection_lost, is_lock_timeout

logger = logging.getLogger(__name__)

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://wallet.example/problems/"


class ServiceError(Exception):
    """Base of every domain error. Subclasses set `code`, `status` and `title`."""

    code = "service_error"
    status = 400
    title = "Request failed"
    # Seconds to put in a Retry-After header, for errors worth retrying.
    retry_after: int | None = None

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        self.detail = detail or self.title
        self.extra = extra
        super().__init__(self.detail)


class ValidationFailed(ServiceError):
    code = "validation_error"
    status = 400
    title = "Invalid request"

    def __init__(self, errors: dict[str, list[str]], detail: str | None = None) -> None:
        super().__init__(detail or "The request has invalid fields.", errors=errors)


class RateLimitUnavailable(ServiceError):
    code = "rate_limit_unavailable"
    status = 503
    title = "Rate limiting unavailable"
    retry_after = 1


class DatabaseUnavailable(ServiceError):
    code = "database_unavailable"
    status = 503
    title = "Database unavailable"
    retry_after = 1


class RowBusy(ServiceError):
    """A statement outside the money path waited DB_LOCK_TIMEOUT_MS for a row lock (a
    rename behind a stuck transaction): retry shortly. The money path has its own
    (transfers.errors.ServiceBusy), after its attempts."""

    code = "service_busy"
    status = 503
    title = "Service busy, retry"
    retry_after = 1


class PayloadTooLarge(ServiceError):
    code = "payload_too_large"
    status = 413
    title = "Request body too large"


class LengthRequired(ServiceError):
    code = "length_required"
    status = 411
    title = "Content-Length required"


def problem_body(
    *, status: int, code: str, title: str, detail: str, instance: str | None = None, **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + code,
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if instance:
        body["instance"] = instance
    body.update(extra)
    return body


def service_error_body(exc: ServiceError) -> dict[str, Any]:
    return problem_body(status=exc.status, code=exc.code, title=exc.title, detail=exc.detail, **exc.extra)


def render_problem(body: dict[str, Any]) -> bytes:
    return JSONRenderer().render(body)


def problem_response(body: dict[str, Any], headers: dict[str, str] | None = None) -> HttpResponse:
    response = HttpResponse(render_problem(body), status=body["status"], content_type=PROBLEM_CONTENT_TYPE)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def _flatten_errors(detail: Any) -> dict[str, list[str]]:
    """DRF error details -> {field: [messages]}; nested fields become dotted paths."""
    out: dict[str, list[str]] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, sub in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), sub)
        elif isinstance(value, list):
            if all(not isinstance(v, (dict, list)) for v in value):
                out.setdefault(prefix or "non_field_errors", []).extend(str(v) for v in value)
            else:
                for index, sub in enumerate(value):
                    walk(f"{prefix}.{index}" if prefix else str(index), sub)
        else:
            out.setdefault(prefix or "non_field_errors", []).append(str(value))

    walk("", detail)
    return out


_DRF_CODES: dict[type[drf_exceptions.APIException], tuple[str, str]] = {
    drf_exceptions.ParseError: ("malformed_request", "Malformed request body"),
    drf_exceptions.NotAuthenticated: ("not_authenticated", "Authentication required"),
    drf_exceptions.AuthenticationFailed: ("not_authenticated", "Authentication failed"),
    drf_exceptions.PermissionDenied: ("permission_denied", "Permission denied"),
    drf_exceptions.NotFound: ("not_found", "Not found"),
    drf_exceptions.MethodNotAllowed: ("method_not_allowed", "Method not allowed"),
    drf_exceptions.NotAcceptable: ("not_acceptable", "Not acceptable"),
    drf_exceptions.UnsupportedMediaType: ("unsupported_media_type", "Unsupported media type"),
    drf_exceptions.Throttled: ("rate_limited", "Too many requests"),
}


def exception_to_problem(exc: Exception) -> tuple[dict[str, Any], dict[str, str]] | None:
    """Map any exception we know to (problem body, extra headers); None if unknown."""
    headers: dict[str, str] = {}
    if isinstance(exc, ServiceError):
        if exc.retry_after is not None:
            headers["Retry-After"] = str(exc.retry_after)
        return service_error_body(exc), headers
    if isinstance(exc, RequestDataTooBig):
        return service_error_body(PayloadTooLarge(str(exc))), headers
    if isinstance(exc, (OperationalError, InterfaceError)) and _connection_lost(exc):
        # A failover or restart: nothing was acknowledged, so the client may retry
        # (money requests with the same Idempotency-Key). Close every connection that is
        # gone, so the next request (or RetryReadOnLostConnectionMiddleware) reconnects.
        _close_lost_connections()
        error = DatabaseUnavailable("The database is unavailable; retry shortly.")
        return service_error_body(error), {"Retry-After": str(error.retry_after)}
    if isinstance(exc, OperationalError) and is_lock_timeout(exc):
        error = RowBusy("A row this request needs is busy; retry shortly.")
        return service_error_body(error), {"Retry-After": str(error.retry_after)}
    if isinstance(exc, Http404):
        exc = drf_exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf_exceptions.PermissionDenied()
    if isinstance(exc, drf_exceptions.ValidationError):
        errors = _flatten_errors(exc.detail)
        return (
            problem_body(
                status=400,
                code="validation_error",
                title="Invalid request",
                detail="The request has invalid fields.",
                errors=errors,
            ),
            headers,
        )
    if isinstance(exc, drf_exceptions.APIException):
        code, title = "error", "Request failed"
        for klass, pair in _DRF_CODES.items():
            if isinstance(exc, klass):
                code, title = pair
                break
        detail = exc.detail
        if isinstance(detail, dict):  # simplejwt nests {"detail": ..., "code": ..., "messages": ...}
            detail = detail.get("detail", title)
        elif isinstance(detail, list):
            detail = "; ".join(str(item) for item in detail) or title
        if isinstance(exc, drf_exceptions.Throttled) and exc.wait is not None:
            headers["Retry-After"] = str(max(1, math.ceil(exc.wait)))
        if isinstance(exc, (drf_exceptions.NotAuthenticated, drf_exceptions.AuthenticationFailed)):
            headers["WWW-Authenticate"] = 'Bearer realm="api"'
        return problem_body(status=exc.status_code, code=code, title=title, detail=str(detail)), headers
    return None


def _close_lost_connections() -> None:
    for conn in connections.all(initialized_only=True):
        raw = conn.connection
        if raw is not None and (getattr(raw, "closed", False) or getattr(raw, "broken", False)):
            conn.close()
    connection.close()  # the default connection raised; never reuse it for this request


def _connection_lost(exc: Exception) -> bool:
    return isinstance(exc, InterfaceError) or is_connection_lost(exc)


def problem_exception_handler(exc: Exception, context: dict[str, Any]) -> HttpResponse | None:
    """DRF EXCEPTION_HANDLER: every known error becomes problem+json."""
    mapped = exception_to_problem(exc)
    if mapped is None:
        return None  # a real bug: let Django log it and answer with handler500
    body, headers = mapped
    # Rendered here rather than by the renderer the view negotiated: the schema view
    # would write the problem as YAML and the docs view as HTML.
    response = problem_response(body, headers)
    response.database_connection_lost = body["code"] == DatabaseUnavailable.code
    return response


def handler404(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return problem_response(
        problem_body(status=404, code="not_found", title="Not found", detail="No such resource.")
    )


def handler400(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if isinstance(exception, RequestDataTooBig):
        return problem_response(service_error_body(PayloadTooLarge(str(exception))))
    return problem_response(
        problem_body(status=400, code="bad_request", title="Bad request", detail="Bad request.")
    )


def handler403(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return problem_response(
        problem_body(status=403, code="permission_denied", title="Permission denied", detail="Forbidden.")
    )


def handler500(request: HttpRequest) -> HttpResponse:
    return problem_response(
        problem_body(
            status=500,
            code="internal_error",
            title="Internal server error",
            detail="An unexpected error occurred; it has been logged.",
        )
    )


def is_api_path(path: str) -> bool:
    """Whether a path is the API's (leading slashes aside: `//api/v1/x` is too)."""
    path = path.lstrip("/")
    return path == "api" or path.startswith("api/")


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF_FAILURE_VIEW: a problem under /api/; the admin keeps Django's page."""
    if not is_api_path(request.path_info):
        return django_csrf_failure(request, reason)
    body = problem_body(
        status=403, code="csrf_failed", title="CSRF check failed", detail="CSRF verification failed."
    )
    return problem_response(body)


@csrf_exempt  # a 404 whatever the method; no CSRF page in front of it
def api_not_found(request: HttpRequest) -> HttpResponse:
    return handler404(request)
