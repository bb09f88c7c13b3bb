"""`manage.py webhook_secrets_reencrypt`: after a new key is put first in WEBHOOK_SECRET_KEYS,
encrypt every stored signing secret with it; then the old key can be removed."""

from __future__ import annotations

from django.core.management.base import BaseCommand
from django.db import transaction

from webhooks.models import WebhookEndpoint
from webhooks.secrets import secret_reencrypt


class Command(BaseCommand):
    help = "Re-encrypt every webhook signing secret with the first key of WEBHOOK_SECRET_KEYS."

    def handle(self, *args, **options) -> None:
        count = 0
        ids = list(WebhookEndpoint.objects.order_by("pk").values_list("pk", flat=True))
        for endpoint_id in ids:
            with transaction.atomic():
                endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint_id)
                endpoint.secret_encrypted = secret_reencrypt(endpoint.secret_encrypted)
                if endpoint.previous_secret_encrypted:
                    endpoint.previous_secret_encrypted = secret_reencrypt(endpoint.previous_secret_encrypted)
                endpoint.save(update_fields=["secret_encrypted", "previous_secret_encrypted"])
                count += 1
        self.stdout.write(f"{count} endpoints re-encrypted with the first key of WEBHOOK_SECRET_KEYS.")
