"""Redis: the cache, the rate-limit counters, Celery's broker and results, and the beat schedule."""

from foundation.store_health import IGNORED_ERRORS_LOGGER

from .environment import env

REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")
# How long to wait for Redis before treating it as down (seconds).
REDIS_TIMEOUT = env.float("REDIS_TIMEOUT_SECONDS", default=0.25)
_redis_options = {
    "SOCKET_CONNECT_TIMEOUT": REDIS_TIMEOUT,
    "SOCKET_TIMEOUT": REDIS_TIMEOUT,
    # Redis down degrades to the database (cache) or to the fail-open/closed rule
    # (rate limits), never to an error.
    "IGNORE_EXCEPTIONS": True,
}
_cache_url = env.str("CACHE_URL", default=REDIS_URL)
CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": _cache_url,
        "OPTIONS": _redis_options,
        "KEY_PREFIX": "wallet",
        "TIMEOUT": env.int("CACHE_TIMEOUT_SECONDS", default=300),
    },
    # Rate-limit counters (foundation.ratelimits); RATELIMIT_USE_CACHE names this alias.
    "ratelimit": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": env.str("RATELIMIT_CACHE_URL", default=_cache_url),
        "OPTIONS": _redis_options,
        "KEY_PREFIX": "rl",
    },
}
# django-redis reports each connection error it ignores to this logger; its filter
# (foundation.store_health) counts them and logs an outage once, not per call.
DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS = True
DJANGO_REDIS_LOGGER = IGNORED_ERRORS_LOGGER

CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL)
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default=REDIS_URL)
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_RESULT_EXPIRES = env.int("CELERY_RESULT_EXPIRES_SECONDS", default=86400)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT_SECONDS", default=1800)
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT_SECONDS", default=1500)
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_QUEUE", default="wallet")
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_TASK_TIME_LIMIT + 600}
CELERY_TIMEZONE = "UTC"

# Periodic work (Celery beat). Intervals in seconds.
RECONCILE_INTERVAL_SECONDS = env.int("RECONCILE_INTERVAL_SECONDS", default=15 * 60)
RECONCILE_FULL_INTERVAL_SECONDS = env.int("RECONCILE_FULL_INTERVAL_SECONDS", default=24 * 3600)
RECONCILE_BATCH_SIZE = env.int("RECONCILE_BATCH_SIZE", default=500)
IDEMPOTENCY_CLEANUP_INTERVAL_SECONDS = env.int("IDEMPOTENCY_CLEANUP_INTERVAL_SECONDS", default=3600)
IDEMPOTENCY_CLEANUP_BATCH_SIZE = env.int("IDEMPOTENCY_CLEANUP_BATCH_SIZE", default=1000)
HOLD_EXPIRY_INTERVAL_SECONDS = env.int("HOLD_EXPIRY_INTERVAL_SECONDS", default=60)
HOLD_EXPIRY_BATCH_SIZE = env.int("HOLD_EXPIRY_BATCH_SIZE", default=200)
LEDGER_CHECKPOINT_INTERVAL_SECONDS = env.int("LEDGER_CHECKPOINT_INTERVAL_SECONDS", default=24 * 3600)
CELERY_BEAT_SCHEDULE = {
    "expire-holds": {
        "task": "transfers.tasks.expire_holds",
        "schedule": float(HOLD_EXPIRY_INTERVAL_SECONDS),
    },
    "reconcile-changed-wallets": {
        "task": "transfers.tasks.reconcile_ledger",
        "schedule": float(RECONCILE_INTERVAL_SECONDS),
        "kwargs": {"incremental": True},
    },
    "reconcile-everything": {
        "task": "transfers.tasks.reconcile_ledger",
        "schedule": float(RECONCILE_FULL_INTERVAL_SECONDS),
        "kwargs": {"incremental": False},
    },
    "ledger-checkpoint": {
        "task": "transfers.tasks.ledger_checkpoint",
        "schedule": float(LEDGER_CHECKPOINT_INTERVAL_SECONDS),
    },
    "cleanup-idempotency-records": {
        "task": "transfers.tasks.cleanup_idempotency_records",
        "schedule": float(IDEMPOTENCY_CLEANUP_INTERVAL_SECONDS),
    },
}
