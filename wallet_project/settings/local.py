"""`make run`: the development server on the database scripts/devserver.py chose.

That is the embedded PostgreSQL unless DATABASE_URL named another one.
"""

import os

os.environ.setdefault("DJANGO_DEBUG", "true")

# Without REDIS_URL the embedded default needs no Redis: tasks run inline and the
# cache and rate-limit counters live in process memory.
_use_redis = "REDIS_URL" in os.environ

from .base import *  # noqa: E402,F403

STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# WhiteNoise serves collected files in production; here Django's finders do.
MIDDLEWARE = [m for m in MIDDLEWARE if not m.startswith("whitenoise.")]  # noqa: F405

if not _use_redis:
    CELERY_TASK_ALWAYS_EAGER = True
    CELERY_BROKER_URL = "memory://"
    CELERY_RESULT_BACKEND = "cache+memory://"
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "wallet"},
        "ratelimit": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "ratelimit"},
    }
