"""Endpoint signing secrets: made here, shown to their owner once, stored encrypted.

The service must sign with a secret, so it keeps the secret itself (a hash would not do);
a database dump or a read-only role must still not hand the secrets out, so each is
encrypted with Fernet (AES-128-CBC with HMAC-SHA256, from `cryptography`) under
WEBHOOK_SECRET_KEYS. MultiFernet decrypts with any listed key and encrypts with the first,
which is how the key is rotated (webhook_secrets_reencrypt).
"""

from __future__ import annotations

import base64
import hashlib
import secrets

from cryptography.fernet import Fernet, MultiFernet
from django.conf import settings

FORMAT_PREFIX = "whsec_"  # Standard Webhooks' marker of a signing secret
SECRET_BYTES = 32  # Standard Webhooks: 24 to 64 bytes


def secret_generate() -> str:
    """A new signing secret in the Standard Webhooks form: whsec_ and base64 of 32 random bytes."""
    return FORMAT_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def _cipher() -> MultiFernet:
    keys = list(settings.WEBHOOK_SECRET_KEYS)
    if not keys:
        # Development and tests: a key derived from SECRET_KEY under a name of its own
        # (check --deploy warns when production runs like this: webhooks.W001).
        digest = hashlib.sha256(b"wallet-webhook-secrets:" + settings.SECRET_KEY.encode()).digest()
        keys = [base64.urlsafe_b64encode(digest).decode()]
    return MultiFernet([Fernet(key) for key in keys])


def secret_encrypt(secret: str) -> str:
    return _cipher().encrypt(secret.encode()).decode()


def secret_decrypt(token: str) -> str:
    return _cipher().decrypt(token.encode()).decode()


def secret_reencrypt(token: str) -> str:
    """The same secret under the first key (after a key rotation)."""
    return _cipher().rotate(token.encode()).decode()
