"""The admin's login form, on the same login flow as the API (users.services.user_login)."""

from __future__ import annotations

from typing import Any

from django.contrib.admin.forms import AdminAuthenticationForm

from users.services import user_login


class GuardedAdminLoginForm(AdminAuthenticationForm):
    """Django's admin login form, but the credentials go through `user_login`: the
    brute-force guard counts the attempt first, and success and failure are audited.
    The guard's refusals (Throttled, RateLimitUnavailable) propagate to the admin site,
    which answers them as problems (wallet_project.admin_site)."""

    def clean(self) -> dict[str, Any]:
        username = self.cleaned_data.get("username")
        password = self.cleaned_data.get("password")
        if username is not None and password:
            self.user_cache = user_login(
                request=self.request, username=username, password=password, via="admin", staff_only=True
            )
            if self.user_cache is None:
                raise self.get_invalid_login_error()
            self.confirm_login_allowed(self.user_cache)
        return self.cleaned_data
