"""Settings: production passes `check --deploy` with real values and nothing loads without them.

Each case runs in a subprocess, because settings are read once per process and refuse to
import at all when a required value is missing.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys

import pytest
from cryptography.fernet import Fernet
from django.conf import settings

MANAGE = str(settings.BASE_DIR / "manage.py")
PRODUCTION = "wallet_project.settings.production"


def production_env(**overrides: str | None) -> dict[str, str]:
    """A realistic production environment; an override of None removes the variable."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("DJANGO_", "JWT_", "DATABASE_URL", "SECURE_", "LOG_", "WEBHOOK_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE=PRODUCTION,
        DJANGO_SECRET_KEY=secrets.token_urlsafe(64),
        JWT_SIGNING_KEY=secrets.token_urlsafe(64),
        WEBHOOK_SECRET_KEYS=Fernet.generate_key().decode(),
        DJANGO_ALLOWED_HOSTS="wallet.example.com",
        DJANGO_CSRF_TRUSTED_ORIGINS="https://wallet.example.com",
        DATABASE_URL="postgres://wallet_app:app-password@db.internal:5432/wallet",
    )
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def run(*args: str, **overrides: str | None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        env=production_env(**overrides),
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def deploy_check(**overrides: str | None) -> subprocess.CompletedProcess[str]:
    return run(MANAGE, "check", "--deploy", "--fail-level", "WARNING", **overrides)


def test_production_settings_pass_the_deploy_check():
    result = deploy_check()

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_settings_are_hardened():
    code = (
        "import json; from django.conf import settings as s; print(json.dumps({"
        "'debug': s.DEBUG, 'hsts': s.SECURE_HSTS_SECONDS, 'ssl_redirect': s.SECURE_SSL_REDIRECT,"
        "'proxy': list(s.SECURE_PROXY_SSL_HEADER), 'session_secure': s.SESSION_COOKIE_SECURE,"
        "'csrf_secure': s.CSRF_COOKIE_SECURE, 'hosts': s.ALLOWED_HOSTS, 'origins': s.CSRF_TRUSTED_ORIGINS,"
        "'jwt_key_is_secret_key': s.SIMPLE_JWT['SIGNING_KEY'] == s.SECRET_KEY,"
        "'jwt_key': s.SIMPLE_JWT['SIGNING_KEY']}))"
    )
    jwt_key = secrets.token_urlsafe(64)

    result = run(MANAGE, "shell", "-c", code, JWT_SIGNING_KEY=jwt_key)

    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout.strip().splitlines()[-1])
    assert values["debug"] is False
    assert values["hsts"] >= 31536000
    assert values["ssl_redirect"] is True
    assert values["proxy"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert values["session_secure"] and values["csrf_secure"]
    assert values["hosts"] == ["wallet.example.com"]
    assert values["origins"] == ["https://wallet.example.com"]
    assert values["jwt_key"] == jwt_key
    assert values["jwt_key_is_secret_key"] is False


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"DJANGO_SECRET_KEY": None}, "DJANGO_SECRET_KEY must be set"),
        ({"DJANGO_SECRET_KEY": ""}, "DJANGO_SECRET_KEY must be set"),
        ({"JWT_SIGNING_KEY": None}, "JWT_SIGNING_KEY must be set"),
        ({"JWT_SIGNING_KEY": ""}, "JWT_SIGNING_KEY must be set"),
        ({"DATABASE_URL": "sqlite:////tmp/wallet.sqlite3"}, "runs on PostgreSQL only"),
        ({"WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true"}, "for development and tests only"),
        ({"WEBHOOK_REQUIRE_HTTPS": "false"}, "for development and tests only"),
    ],
    ids=[
        "no-secret-key",
        "empty-secret-key",
        "no-jwt-key",
        "empty-jwt-key",
        "sqlite",
        "webhooks-to-private-networks",
        "webhooks-over-http",
    ],
)
def test_production_settings_refuse_to_load_without_real_values(overrides, message):
    result = run(MANAGE, "check", **overrides)

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert message in result.stderr


@pytest.mark.parametrize(
    ("overrides", "warning"),
    [
        ({"DJANGO_SECRET_KEY": "too-short-to-be-a-real-key"}, "security.W009"),
        ({"DJANGO_ALLOWED_HOSTS": None}, "security.W020"),
        # Blank items are dropped: a variable holding only spaces and commas names no host.
        ({"DJANGO_ALLOWED_HOSTS": " , "}, "security.W020"),
        ({"DJANGO_SECURE_HSTS_SECONDS": "0"}, "security.W004"),
        ({"DJANGO_SECURE_SSL_REDIRECT": "false"}, "security.W008"),
        ({"WEBHOOK_SECRET_KEYS": None}, "webhooks.W001"),
        ({"WEBHOOK_SECRET_KEYS": "not-a-fernet-key"}, "webhooks.E001"),
    ],
    ids=[
        "weak-secret-key",
        "no-allowed-hosts",
        "blank-allowed-hosts",
        "no-hsts",
        "no-ssl-redirect",
        "no-webhook-secret-keys",
        "bad-webhook-secret-key",
    ],
)
def test_the_deploy_check_fails_on_a_weakened_configuration(overrides, warning):
    """The check this module relies on does catch what it is meant to catch."""
    result = deploy_check(**overrides)

    assert result.returncode != 0
    assert warning in result.stdout + result.stderr


def shell_json(code: str, settings_module: str = PRODUCTION, **overrides: str | None) -> dict:
    """Runs `code` (which prints one JSON line) in `manage.py shell` under the given settings."""
    result = run(MANAGE, "shell", "-c", code, DJANGO_SETTINGS_MODULE=settings_module, **overrides)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_keys_are_taken_exactly_as_set_even_with_a_leading_dollar():
    # django-environ would read "$name" as "the value of variable name"; keys and tokens
    # are random and may start with "$" (Django's get_random_secret_key() can draw one).
    secret_key = "$" + secrets.token_urlsafe(64)
    jwt_key = "$" + secrets.token_urlsafe(64)
    code = (
        "import json; from django.conf import settings as s; print(json.dumps({"
        "'secret': s.SECRET_KEY, 'jwt': s.SIMPLE_JWT['SIGNING_KEY'], 'metrics': s.METRICS_TOKEN}))"
    )

    values = shell_json(code, DJANGO_SECRET_KEY=secret_key, JWT_SIGNING_KEY=jwt_key, METRICS_TOKEN="$token")

    assert values == {"secret": secret_key, "jwt": jwt_key, "metrics": "$token"}


def test_only_production_serves_collected_static_files_through_whitenoise():
    code = (
        "import json; from django.conf import settings as s; print(json.dumps({"
        "'middleware': s.MIDDLEWARE, 'static': s.STORAGES['staticfiles']['BACKEND']}))"
    )

    production = shell_json(code)
    development = shell_json(code, "wallet_project.settings.local", REDIS_URL=None)

    security = production["middleware"].index("django.middleware.security.SecurityMiddleware")
    assert production["middleware"][security + 1] == "whitenoise.middleware.WhiteNoiseMiddleware"
    assert production["static"] == "whitenoise.storage.CompressedManifestStaticFilesStorage"
    assert [m for m in production["middleware"] if not m.startswith("whitenoise.")] == development[
        "middleware"
    ]
    assert development["static"] == "django.contrib.staticfiles.storage.StaticFilesStorage"


@pytest.mark.parametrize(
    "settings_module", [PRODUCTION, "wallet_project.settings.local", "wallet_project.settings.test"]
)
@pytest.mark.parametrize("variable", ["DATABASE_URL", "DATABASE_REPLICA_URL"])
def test_every_environment_refuses_a_database_other_than_postgresql(settings_module, variable):
    result = run(
        MANAGE, "check", DJANGO_SETTINGS_MODULE=settings_module, **{variable: "sqlite:////tmp/wallet.sqlite3"}
    )

    assert result.returncode != 0
    assert f"runs on PostgreSQL only ({variable}=" in result.stderr
