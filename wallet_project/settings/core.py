"""Django itself: secret key, hosts, apps, middleware, URLs, templates, auth, i18n, static files.

The development-friendly default: static files are served by Django's finders (`make run`)
or not at all (tests); production adds WhiteNoise and the manifest storage for the files
collectstatic gathered.
"""

from pathlib import Path

from .environment import env, env_items, secret

BASE_DIR = Path(__file__).resolve().parent.parent.parent

SECRET_KEY = secret("DJANGO_SECRET_KEY", default="dev-only-insecure-key-never-use-in-production")
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env_items("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])

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
    "events",
    "webhooks",
    "users",
    "wallets",
    "transfers",
    "corrections",
    "audit",
    "dashboard",
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
    # production.py inserts WhiteNoise here, right after SecurityMiddleware.
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
# Where collectstatic gathers the files (production serves them from here).
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
