"""The admin site: its login form runs the API's login flow (guard and audit), every
change made through it records each changed field's old and new value, and its index
links the Ledger overview (dashboard), which only staff can open."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, URLResolver, path
from rest_framework.exceptions import Throttled

from dashboard.views import ledger_overview
from foundation.admin import ChangeValuesMixin
from foundation.errors import RateLimitUnavailable, problem_body, problem_response
from users.forms import GuardedAdminLoginForm


class WalletAdminSite(admin.AdminSite):
    site_header = "Wallet service operations"
    site_title = "Wallet admin"
    login_form = GuardedAdminLoginForm
    index_template = "dashboard/admin_index.html"  # admin/index.html with a link to the overview

    def register(self, model_or_iterable, admin_class=None, **options) -> None:
        admin_class = admin_class or admin.ModelAdmin
        if not issubclass(admin_class, ChangeValuesMixin):
            admin_class = type(admin_class.__name__, (ChangeValuesMixin, admin_class), {})
        super().register(model_or_iterable, admin_class, **options)

    def get_urls(self) -> list[URLPattern | URLResolver]:
        # admin_view: staff only; anyone else is sent to the login page.
        overview = path("ledger-overview/", self.admin_view(self.ledger_overview), name="ledger_overview")
        return [overview, *super().get_urls()]

    def ledger_overview(self, request: HttpRequest) -> TemplateResponse:
        return ledger_overview(request, admin_context=self.each_context(request))

    def login(self, request: HttpRequest, extra_context=None) -> HttpResponse:
        # The form (users.forms.GuardedAdminLoginForm) runs the login flow the API uses;
        # when the brute-force guard refuses, the answer is the API's problem.
        try:
            return super().login(request, extra_context)
        except Throttled as exc:
            wait = max(1, int(exc.wait or 1))
            body = problem_body(
                status=429, code="rate_limited", title="Too many requests", detail=str(exc.detail)
            )
            return problem_response(body, headers={"Retry-After": str(wait)})
        except RateLimitUnavailable as exc:
            body = problem_body(status=503, code=exc.code, title=exc.title, detail=exc.detail)
            return problem_response(body, headers={"Retry-After": str(exc.retry_after)})
