"""Refuse oversized bodies before anything reads them."""

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from wallet_project.errors import PayloadTooLarge, problem_response, service_error_body


class BodySizeLimitMiddleware:
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
