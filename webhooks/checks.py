"""Deploy checks of the webhook settings (`manage.py check --deploy`)."""

from __future__ import annotations

from cryptography.fernet import Fernet
from django.conf import settings
from django.core import checks


@checks.register(checks.Tags.security, deploy=True)
def webhook_secret_keys(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    if not settings.WEBHOOK_SECRET_KEYS:
        return [
            checks.Warning(
                "WEBHOOK_SECRET_KEYS is not set: webhook signing secrets are encrypted with a key "
                "derived from DJANGO_SECRET_KEY.",
                hint="Set WEBHOOK_SECRET_KEYS to a key of its own (see .env.example).",
                id="webhooks.W001",
            )
        ]
    errors = []
    for index, key in enumerate(settings.WEBHOOK_SECRET_KEYS):
        try:
            Fernet(key)
        except ValueError:
            errors.append(
                checks.Error(
                    f"WEBHOOK_SECRET_KEYS item {index + 1} is not a Fernet key (32 url-safe base64 bytes).",
                    hint='Make one with: python -c "from cryptography.fernet import Fernet; '
                    'print(Fernet.generate_key().decode())"',
                    id="webhooks.E001",
                )
            )
    return errors
