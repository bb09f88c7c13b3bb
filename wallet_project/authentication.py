from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from rest_framework.request import Request
from rest_framework_simplejwt.authentication import JWTAuthentication

from wallet_project.context import user_id_var


class ContextJWTAuthentication(JWTAuthentication):
    """simplejwt's bearer authentication, also recording the user for logs and the audit trail."""

    def authenticate(self, request: Request):  # type: ignore[override]
        result = super().authenticate(request)
        if result is not None:
            user_id_var.set(result[0].id)
        return result


class ContextJWTScheme(SimpleJWTScheme):
    """OpenAPI: document ContextJWTAuthentication as the bearer JWT scheme it is."""

    target_class = "wallet_project.authentication.ContextJWTAuthentication"
