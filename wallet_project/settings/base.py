"""Settings shared by every environment.

Every value comes from an environment variable with a safe development default;
`.env.example` documents each one. Environment-specific modules (local, test,
production) import this one and override what they must.
"""

import os
from datetime import timedelta
from pathlib import Path

from foundation.db_router import database_from_url
from foundation.logging import logging_config
from foundation.store_health import IGNORED_ERRORS_LOGGER

BASE_DIR = Path(__file__).resolve().parent.parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "dev-only-insecure-key-never-use-in-production")
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")

INSTALLED_APPS = [
    "wallet_project.apps.WalletAdminConfig",  # django.contrib.admin with a guarded login
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_simplejwt",
    "rest_framework_simplejwt.token_blacklist",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "users",
    "wallets",
    "transfers",
    "audit",
]

MIDDLEWARE = [
    # First, and kept in front of the tracing middleware (foundation.tracing).
    "foundation.middleware.ResponseContractMiddleware",
    "foundation.metrics.middleware.MetricsMiddleware",
    "foundation.middleware.RequestContextMiddleware",
    "foundation.db_router.ReadYourWritesMiddleware",
    "foundation.middleware.RequestBodyMiddleware",
    "foundation.middleware.RetryReadOnLostConnectionMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "wallet_project.urls"
# A CSRF refusal under /api/ is a problem+json 403 (csrf_failed); the admin keeps Django's page.
CSRF_FAILURE_VIEW = "foundation.errors.csrf_failure"
WSGI_APPLICATION = "wallet_project.wsgi.application"
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------
# DATABASE_URL selects the PostgreSQL database (`make run` sets it to its embedded one).
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/wallet"
DATABASE_URL = os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)
# A persistent connection is not pinged before each request unless DB_CONN_HEALTH_CHECKS
# is on: that check is a round trip per request. A connection found dead instead makes a
# money request reconnect and retry, and a read run once more (foundation.middleware).
DB_CONN_HEALTH_CHECKS = env_bool("DB_CONN_HEALTH_CHECKS", False)
DATABASES = {
    "default": database_from_url(
        DATABASE_URL,
        conn_max_age=env_int("DB_CONN_MAX_AGE", 60),
        conn_health_checks=DB_CONN_HEALTH_CHECKS,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # A money transaction that cannot get a wallet's row lock in time fails fast
    # (503 service_busy) instead of piling up behind a stuck one.
    # Server-side parameter binding, and prepared statements for what a connection runs
    # again and again (from its DB_PREPARE_THRESHOLD-th run; 0 turns preparing off):
    # PostgreSQL then skips parsing and planning them. Django leaves both off by default
    # for the sake of connection poolers that cannot carry prepared statements.
    _options = DATABASES["default"].setdefault("OPTIONS", {})
    _options["server_side_binding"] = env_bool("DB_SERVER_SIDE_BINDING", True)
    _options["prepare_threshold"] = env_int("DB_PREPARE_THRESHOLD", 5) or None
    DATABASES["default"]["OPTIONS"]["options"] = f"-c lock_timeout={env_int('DB_LOCK_TIMEOUT_MS', 5000)}"

# Optional read replica (a hot standby): only history and transfer lists read from it,
# never a money decision and never right after the caller's own write (docs/failover.md).
DATABASE_REPLICA_URL = os.environ.get("DATABASE_REPLICA_URL", "")
if DATABASE_REPLICA_URL:
    DATABASES["replica"] = database_from_url(
        DATABASE_REPLICA_URL,
        conn_max_age=env_int("DB_CONN_MAX_AGE", 60),
        conn_health_checks=DB_CONN_HEALTH_CHECKS,
    )
    DATABASES["replica"]["TEST"] = {"MIRROR": "default"}
DATABASE_ROUTERS = ["foundation.db_router.PrimaryReplicaRouter"]
# Seconds a user's list reads stay on the primary after they make a write request.
REPLICA_PIN_SECONDS = env_int("REPLICA_PIN_SECONDS", 10)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "users.User"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# Request bodies above this size are refused with 413 before they are parsed.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("API_MAX_BODY_BYTES", 64 * 1024)
API_MAX_BODY_BYTES = DATA_UPLOAD_MAX_MEMORY_SIZE
API_MAX_JSON_DEPTH = env_int("API_MAX_JSON_DEPTH", 20)

# --- REST API -----------------------------------------------------------------
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
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env_int("JWT_ACCESS_MINUTES", 5)),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env_int("JWT_REFRESH_DAYS", 1)),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": False,
    "ALGORITHM": "HS256",
    # A key of its own, so rotating JWT_SIGNING_KEY logs everyone out without
    # touching sessions, password reset tokens or anything else SECRET_KEY signs.
    "SIGNING_KEY": os.environ.get("JWT_SIGNING_KEY", SECRET_KEY),
    "AUTH_HEADER_TYPES": ("Bearer",),
}
# A refresh token presented again within this many seconds of its first redemption is
# taken for a client racing itself (two tabs, a quick retry) and only refused; later,
# it is taken for a stolen copy and every live refresh token of the user is revoked
# (docs/security.md, "Refresh token reuse").
JWT_REFRESH_REUSE_GRACE_SECONDS = env_int("JWT_REFRESH_REUSE_GRACE_SECONDS", 10)

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

# --- Money --------------------------------------------------------------------
# ISO 4217 codes accepted for new wallets. Exponents live in wallets/currencies.py.
WALLET_CURRENCIES = env_list("WALLET_CURRENCIES", "USD,EUR,GBP,NGN,JPY,KWD")
# The largest amount one movement may carry, in minor units.
MAX_MOVEMENT_AMOUNT = env_int("MAX_MOVEMENT_AMOUNT", 10**15)
# How long an idempotency record is kept (hours); never less than 24.
IDEMPOTENCY_KEY_TTL_HOURS = max(24, env_int("IDEMPOTENCY_KEY_TTL_HOURS", 24))
# Deadlock or serialization failures are retried this many times before giving up.
MONEY_TX_RETRIES = env_int("MONEY_TX_RETRIES", 3)
# A money request whose database connection is lost (failover, restart) reconnects and
# retries this many times, waiting DB_RECONNECT_BACKOFF_SECONDS, doubling each time.
DB_RECONNECT_ATTEMPTS = env_int("DB_RECONNECT_ATTEMPTS", 5)
DB_RECONNECT_BACKOFF_SECONDS = float(os.environ.get("DB_RECONNECT_BACKOFF_SECONDS", "0.2"))

# --- Redis: cache, Celery broker and results, rate-limit counters ---------------
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
# How long to wait for Redis before treating it as down (seconds).
REDIS_TIMEOUT = float(os.environ.get("REDIS_TIMEOUT_SECONDS", "0.25"))
_redis_options = {
    "SOCKET_CONNECT_TIMEOUT": REDIS_TIMEOUT,
    "SOCKET_TIMEOUT": REDIS_TIMEOUT,
    # Redis down degrades to the database (cache) or to the fail-open/closed rule
    # (rate limits), never to an error.
    "IGNORE_EXCEPTIONS": True,
}
CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": os.environ.get("CACHE_URL", REDIS_URL),
        "OPTIONS": _redis_options,
        "KEY_PREFIX": "wallet",
        "TIMEOUT": env_int("CACHE_TIMEOUT_SECONDS", 300),
    },
    "ratelimit": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": os.environ.get("RATELIMIT_CACHE_URL", os.environ.get("CACHE_URL", REDIS_URL)),
        "OPTIONS": _redis_options,
        "KEY_PREFIX": "rl",
    },
}
# django-redis reports each connection error it ignores to this logger; its filter
# (foundation.store_health) counts them and logs an outage once, not per call.
DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS = True
DJANGO_REDIS_LOGGER = IGNORED_ERRORS_LOGGER

CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", REDIS_URL)
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND", REDIS_URL)
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_RESULT_EXPIRES = env_int("CELERY_RESULT_EXPIRES_SECONDS", 86400)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT_SECONDS", 1800)
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT_SECONDS", 1500)
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("CELERY_QUEUE", "wallet")
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_TASK_TIME_LIMIT + 600}
CELERY_TIMEZONE = "UTC"

# Periodic work (Celery beat). Intervals in seconds.
RECONCILE_INTERVAL_SECONDS = env_int("RECONCILE_INTERVAL_SECONDS", 15 * 60)
RECONCILE_FULL_INTERVAL_SECONDS = env_int("RECONCILE_FULL_INTERVAL_SECONDS", 24 * 3600)
RECONCILE_BATCH_SIZE = env_int("RECONCILE_BATCH_SIZE", 500)
IDEMPOTENCY_CLEANUP_INTERVAL_SECONDS = env_int("IDEMPOTENCY_CLEANUP_INTERVAL_SECONDS", 3600)
IDEMPOTENCY_CLEANUP_BATCH_SIZE = env_int("IDEMPOTENCY_CLEANUP_BATCH_SIZE", 1000)
CELERY_BEAT_SCHEDULE = {
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
    "cleanup-idempotency-records": {
        "task": "transfers.tasks.cleanup_idempotency_records",
        "schedule": float(IDEMPOTENCY_CLEANUP_INTERVAL_SECONDS),
    },
}

# --- Rate limits (foundation.ratelimits; counters in the "ratelimit" cache) ------
# Rates are "<count>/<period>" with period s, m, h or d.
RATELIMIT_USE_CACHE = "ratelimit"
RATELIMIT_ENABLE = env_bool("RATELIMIT_ENABLE", True)
RATE_LIMITS = {
    # every authenticated API request, per user
    "user": os.environ.get("RATE_LIMIT_USER", "600/m"),
    # money-moving POSTs (deposits, withdrawals, transfers), per user
    "money": os.environ.get("RATE_LIMIT_MONEY", "120/m"),
    # outgoing transfers and withdrawals, per source wallet (all its owner's clients together)
    "wallet_outgoing": os.environ.get("RATE_LIMIT_WALLET_OUTGOING", "60/m"),
    # unauthenticated endpoints (register, token, refresh, logout), per client IP
    "anon": os.environ.get("RATE_LIMIT_ANON", "30/m"),
    # failed logins per client IP and per username; over budget -> 429 until the window ends
    "login_ip": os.environ.get("RATE_LIMIT_LOGIN_IP", "20/10m"),
    "login_user": os.environ.get("RATE_LIMIT_LOGIN_USER", "10/10m"),
}
# When the rate-limit store (Redis) is unreachable: true lets requests through,
# false refuses them with 503 rate_limit_unavailable.
RATE_LIMIT_FAIL_OPEN_READS = env_bool("RATE_LIMIT_FAIL_OPEN_READS", True)
RATE_LIMIT_FAIL_OPEN_MONEY = env_bool("RATE_LIMIT_FAIL_OPEN_MONEY", False)
# Logins without brute-force counters are refused (503) unless this is true.
RATE_LIMIT_FAIL_OPEN_LOGIN = env_bool("RATE_LIMIT_FAIL_OPEN_LOGIN", False)
# Number of trusted proxies in front of the app; the client IP is taken from
# X-Forwarded-For that many hops from the right (0 = use REMOTE_ADDR).
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0)

# --- Metrics (Prometheus, GET /metrics) -----------------------------------------
# A scraper must present this bearer token (if set) and come from these networks (if set).
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")
METRICS_ALLOWED_NETWORKS = env_list("METRICS_ALLOWED_NETWORKS", "127.0.0.1/32,::1/128")

# "console" (human-readable) or "json" (one JSON object per line; the production default).
LOG_FORMAT = os.environ.get("LOG_FORMAT", "console")
LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO")
LOGGING = logging_config(fmt=LOG_FORMAT, level=LOG_LEVEL)
CELERY_WORKER_HIJACK_ROOT_LOGGER = False  # workers log through LOGGING too
