"""Schemathesis hooks for the API's contract tests.

Loaded through `hooks` in schemathesis.toml by every `schemathesis run` started from
the repository root (`make test`, and the README's run against `make run`):

- authentication: the access token in WALLET_API_TOKEN, if set; without it every
  request goes without a token;
- generated requests act like a real client where the server's rules go beyond what
  JSON Schema can say (a fresh Idempotency-Key per request, no invented cursors);
  every other generated value is sent as drawn.
"""

from __future__ import annotations

import os
import re
import uuid
from typing import Any

import schemathesis

# transfers.idempotency.KEY_PATTERN, restated so the CLI can load this file without Django.
IDEMPOTENCY_KEY = re.compile(r"[\x20-\x7e]{1,255}")


# retry_on=[]: a fixed token cannot be refreshed, so a 401 is an answer, not a cue to log in again.
@schemathesis.auth(refresh_interval=None, retry_on=[])
class AccessToken:
    """Authorization: Bearer $WALLET_API_TOKEN (an access token from POST /api/v1/auth/token)."""

    def get(self, case: Any, context: Any) -> str | None:
        return os.environ.get("WALLET_API_TOKEN") or None

    def set(self, case: Any, data: str, context: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


@schemathesis.hook
def before_call(context: Any, case: Any, **kwargs: Any) -> None:
    # A key belongs to the first request sent with it: generated keys repeat ("0", "a"),
    # and a repeat with another body is rightly 422 idempotency_key_reused. A client makes
    # one key per request it means to make, so a valid key becomes a fresh one; an invalid
    # one (a negative case) is sent as drawn.
    if case.headers and IDEMPOTENCY_KEY.fullmatch(str(case.headers.get("Idempotency-Key", ""))):
        case.headers["Idempotency-Key"] = str(uuid.uuid4())
    # `cursor` is opaque: only the `next`/`previous` links the server mints are valid, and
    # any other string is rightly a 400. A drawn string (the schema's type) is dropped; a
    # value of another type is a negative case and is sent.
    if case.query and isinstance(case.query.get("cursor"), str):
        del case.query["cursor"]
