"""Times and counts every HTTP request by URL pattern, method and status."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from foundation.metrics.registry import observe_request

# --- Request timing -----------------------------------------------------------


def route_of(request: HttpRequest) -> str:
    """The resolved URL pattern's name (or its route), never the raw path."""
    match = getattr(request, "resolver_match", None)
    if match is None:
        return "unmatched"
    return match.view_name or match.route or "unmatched"


class MetricsMiddleware:
    """Counts and times every request. Goes first in MIDDLEWARE so it sees every answer."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        status = 500
        try:
            response = self.get_response(request)
            status = response.status_code
            return response
        finally:
            observe_request(
                route=route_of(request),
                method=request.method or "",
                status=status,
                seconds=time.perf_counter() - started,
            )
