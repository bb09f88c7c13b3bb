"""Request plumbing: request context and access log, the body-size cap, and read retries."""

import logging
import time
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from wallet_project import context
from wallet_project.errors import PayloadTooLarge, problem_response, service_error_body
from wallet_project.ratelimits import client_ip

access_logger = logging.getLogger("wallet.access")
logger = logging.getLogger(__name__)


class BodySizeLimitMiddleware:
    """Refuse oversized bodies (413) before anything reads them."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        length = request.META.get("CONTENT_LENGTH") or "0"
        try:
            too_big = int(length) > settings.API_MAX_BODY_BYTES
        except ValueError:
            too_big = False
        if too_big:
            error = PayloadTooLarge(f"Request bodies are limited to {settings.API_MAX_BODY_BYTES} bytes.")
            return problem_response(service_error_body(error))
        return self.get_response(request)


class RetryReadOnLostConnectionMiddleware:
    """Run a read once more when its database connection turned out to be dead.

    Persistent connections are not pinged before each request (DB_CONN_HEALTH_CHECKS
    is off by default: that check is a round trip on every request). A connection
    that died meanwhile (a restart, a failover) surfaces as 503 database_unavailable
    with the dead connection already closed (wallet_project.errors). A GET or HEAD
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
            (context.user_agent_var, context.user_agent_var.set(request.headers.get("User-Agent", "")[:512])),
            (context.method_var, context.method_var.set(request.method)),
            (context.path_var, context.path_var.set(request.path)),
            (context.user_id_var, context.user_id_var.set(None)),
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
