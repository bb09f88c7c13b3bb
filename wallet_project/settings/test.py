"""The test suite: PostgreSQL from DATABASE_URL (pytest-django creates test_<name>)."""

from .base import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
DEBUG = False
