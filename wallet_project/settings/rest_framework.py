"""The HTTP API: body size limits, REST framework, JWT (simplejwt), the OpenAPI schema (drf-spectacular)."""

from datetime import timedelta

from .core import SECRET_KEY
from .environment import env, secret

# Request bodies above this size are refused with 413 before they are parsed.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("API_MAX_BODY_BYTES", default=64 * 1024)
API_MAX_BODY_BYTES = DATA_UPLOAD_MAX_MEMORY_SIZE
API_MAX_JSON_DEPTH = env.int("API_MAX_JSON_DEPTH", default=20)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "users.authentication.ContextJWTAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["foundation.parsers.StrictJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "foundation.errors.problem_exception_handler",
    "DEFAULT_THROTTLE_CLASSES": ["foundation.ratelimits.UserQuota"],
    "UNAUTHENTICATED_USER": None,
}

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env.int("JWT_ACCESS_MINUTES", default=5)),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env.int("JWT_REFRESH_DAYS", default=1)),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": False,
    "ALGORITHM": "HS256",
    # A key of its own, so rotating JWT_SIGNING_KEY logs everyone out without
    # touching sessions, password reset tokens or anything else SECRET_KEY signs.
    "SIGNING_KEY": secret("JWT_SIGNING_KEY", default=SECRET_KEY),
    "AUTH_HEADER_TYPES": ("Bearer",),
}
# A refresh token presented again within this many seconds of its first redemption is
# taken for a client racing itself (two tabs, a quick retry) and only refused; later,
# it is taken for a stolen copy and every live refresh token of the user is revoked
# (docs/security.md, "Refresh token reuse").
JWT_REFRESH_REUSE_GRACE_SECONDS = env.int("JWT_REFRESH_REUSE_GRACE_SECONDS", default=10)

SPECTACULAR_SETTINGS = {
    "TITLE": "Wallet service API",
    "DESCRIPTION": (
        "Wallets, deposits, withdrawals and transfers with a double-entry ledger. "
        "Amounts are integers in the currency's minor unit. Money-moving POSTs "
        "require an Idempotency-Key header. Errors are application/problem+json."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # PATCH bodies are validated like the others (PATCH wallets/{id} needs `name`), so the
    # schema must not drop their required fields into a separate "Patched" component.
    "COMPONENT_SPLIT_PATCH": False,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "foundation.openapi.postprocess_schema",
    ],
}
