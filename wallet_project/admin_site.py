"""The admin site: its login form gets the same brute-force guard and audit as the API's."""

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from rest_framework.exceptions import Throttled

from audit.models import AuditEvent
from audit.services import audit_record
from wallet_project.errors import RateLimitUnavailable, problem_body, problem_response
from wallet_project.ratelimits import LoginGuard


class WalletAdminSite(admin.AdminSite):
    site_header = "Wallet service operations"
    site_title = "Wallet admin"

    def login(self, request: HttpRequest, extra_context=None) -> HttpResponse:
        if request.method != "POST":
            return super().login(request, extra_context)
        username = request.POST.get("username", "")
        guard = LoginGuard(request, username)
        try:
            guard.attempt()
        except Throttled as exc:
            wait = max(1, int(exc.wait or 1))
            body = problem_body(
                status=429, code="rate_limited", title="Too many requests", detail=str(exc.detail)
            )
            return problem_response(body, headers={"Retry-After": str(wait)})
        except RateLimitUnavailable as exc:
            body = problem_body(status=503, code=exc.code, title=exc.title, detail=exc.detail)
            return problem_response(body, headers={"Retry-After": str(exc.retry_after)})
        response = super().login(request, extra_context)
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            guard.succeeded()
            audit_record(
                action=AuditEvent.Action.LOGIN_SUCCEEDED,
                actor_id=user.id,
                target_type="user",
                target_id=user.id,
                details={"via": "admin"},
            )
        else:
            audit_record(
                action=AuditEvent.Action.LOGIN_FAILED,
                actor_label=username,
                target_type="user",
                target_id=username[:64],
                outcome="invalid_credentials",
                details={"via": "admin"},
            )
        return response


class ReadOnlyAdmin(admin.ModelAdmin):
    """For append-only records (ledger, audit): operators look, they never add, change or delete."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
