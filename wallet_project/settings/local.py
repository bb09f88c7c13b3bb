"""`make run`: the development server on the database scripts/devserver.py chose.

That is the embedded PostgreSQL unless DATABASE_URL named another one. DEBUG is on unless
DJANGO_DEBUG says otherwise; static files come from Django's finders (base's default).
"""

from .base import *  # noqa: F403
from .environment import env

DEBUG = env.bool("DJANGO_DEBUG", default=True)

# Without REDIS_URL the embedded default needs no Redis: tasks run inline and the
# cache and rate-limit counters live in process memory.
if "REDIS_URL" not in env:
    CELERY_TASK_ALWAYS_EAGER = True
    CELERY_BROKER_URL = "memory://"
    CELERY_RESULT_BACKEND = "cache+memory://"
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "wallet"},
        "ratelimit": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "ratelimit"},
    }

# Webhook endpoints on this machine (a receiver on localhost, plain http) are fine here;
# production refuses both (wallet_project.settings.production).
WEBHOOK_REQUIRE_HTTPS = env.bool("WEBHOOK_REQUIRE_HTTPS", default=False)
WEBHOOK_ALLOW_PRIVATE_NETWORKS = env.bool("WEBHOOK_ALLOW_PRIVATE_NETWORKS", default=True)
