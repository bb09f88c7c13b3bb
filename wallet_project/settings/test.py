"""The test suite: PostgreSQL from DATABASE_URL (pytest-django creates test_<name>_<pid>).

Real Redis on databases of its own, budgets no test reaches by accident, fast password
hashing. Static files: base's default (no collectstatic, no WhiteNoise).
"""

import os

from .base import *  # noqa: F403
from .environment import env

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
DEBUG = False

# Real Redis, on databases of its own so tests never touch development data: cache and
# rate-limit counters (14: one Redis for both, as in production, so a request's cache
# read and counters share one round trip: foundation.views), Celery broker and results (15).
_redis = env.str("TEST_REDIS_URL", default="redis://127.0.0.1:6379").rstrip("/")
CACHES["default"]["LOCATION"] = f"{_redis}/14"  # noqa: F405
CACHES["ratelimit"]["LOCATION"] = f"{_redis}/14"  # noqa: F405
# Keys carry the pytest process id, so two runs on one machine never clear each other's.
CACHES["default"]["KEY_PREFIX"] = f"test{os.getpid()}"  # noqa: F405
CACHES["ratelimit"]["KEY_PREFIX"] = f"test{os.getpid()}rl"  # noqa: F405
CELERY_BROKER_URL = f"{_redis}/15"
CELERY_RESULT_BACKEND = f"{_redis}/15"
CELERY_TASK_DEFAULT_QUEUE = "wallet-test"
# Budgets high enough that only the rate-limit tests (which lower them) ever hit one.
RATE_LIMITS = {
    "user": "100000/m",
    "money": "100000/m",
    "wallet_outgoing": "100000/m",
    "anon": "100000/m",
    "login_ip": "100000/m",
    "login_user": "100000/m",
}

# One test database per pytest process, so two runs on one machine (an editor's
# and a terminal's, or CI next to a developer) never drop each other's database.
DATABASES["default"]["TEST"] = {"NAME": f"test_{DATABASES['default']['NAME']}_{os.getpid()}"}  # noqa: F405

# The router tests add their own replica alias (a mirror of the test database).
DATABASES.pop("replica", None)  # noqa: F405
