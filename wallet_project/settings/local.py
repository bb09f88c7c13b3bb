"""`make run`: the embedded default. SQLite unless DATABASE_URL says otherwise."""

import os

os.environ.setdefault("DATABASE_URL", "sqlite:///" + os.path.join(os.getcwd(), "db.sqlite3"))
os.environ.setdefault("DJANGO_DEBUG", "true")

from .base import *  # noqa: F403

STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# WhiteNoise serves collected files in production; here Django's finders do.
MIDDLEWARE = [m for m in MIDDLEWARE if not m.startswith("whitenoise.")]  # noqa: F405
