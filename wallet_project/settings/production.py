"""Production: no default secret, HTTPS only, WhiteNoise serves the collected static files.

Every value comes from the process environment (docker compose loads deploy/.env);
no .env file is read here or anywhere else.
"""

from django.core.exceptions import ImproperlyConfigured

from foundation.logging import logging_config

from .base import *  # noqa: F403
from .base import (
    LOG_LEVEL,
    MIDDLEWARE,
    SIMPLE_JWT,
    STORAGES,
    WEBHOOK_ALLOW_PRIVATE_NETWORKS,
    WEBHOOK_REQUIRE_HTTPS,
)
from .environment import env, env_items, secret

SECRET_KEY = secret("DJANGO_SECRET_KEY")
if not SECRET_KEY:
    raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set in production")
JWT_SIGNING_KEY = secret("JWT_SIGNING_KEY")
if not JWT_SIGNING_KEY:
    raise ImproperlyConfigured("JWT_SIGNING_KEY must be set in production")
if len(JWT_SIGNING_KEY) < 32:
    raise ImproperlyConfigured("JWT_SIGNING_KEY must be at least 32 characters (HS256 needs 256 bits)")
if JWT_SIGNING_KEY == SECRET_KEY:
    raise ImproperlyConfigured("JWT_SIGNING_KEY must differ from DJANGO_SECRET_KEY")
SIMPLE_JWT = {**SIMPLE_JWT, "SIGNING_KEY": JWT_SIGNING_KEY}

# Webhooks: only https endpoints on public addresses (the development and test relaxations
# are refused here). Without WEBHOOK_SECRET_KEYS the deploy check warns (webhooks.W001).
if WEBHOOK_ALLOW_PRIVATE_NETWORKS or not WEBHOOK_REQUIRE_HTTPS:
    raise ImproperlyConfigured(
        "WEBHOOK_ALLOW_PRIVATE_NETWORKS and WEBHOOK_REQUIRE_HTTPS=false are for development and tests only"
    )

DEBUG = False
LOG_FORMAT = env.str("LOG_FORMAT", default="json")
LOGGING = logging_config(fmt=LOG_FORMAT, level=LOG_LEVEL)
ALLOWED_HOSTS = env_items("DJANGO_ALLOWED_HOSTS", default=[])
CSRF_TRUSTED_ORIGINS = env_items("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
SECURE_REDIRECT_EXEMPT = [r"^(healthz|readyz|metrics)/?$"]
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_CONTENT_TYPE_NOSNIFF = True

# The gunicorn processes serve the files collectstatic gathered into STATIC_ROOT (the
# image build and `make serve` run it): WhiteNoise, right after SecurityMiddleware as its
# documentation asks, and the manifest storage, whose content-hashed names it may cache
# forever.
_after_security = MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1
MIDDLEWARE = [
    *MIDDLEWARE[:_after_security],
    "whitenoise.middleware.WhiteNoiseMiddleware",
    *MIDDLEWARE[_after_security:],
]
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"}}
