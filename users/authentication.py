"""Bearer-JWT authentication that records the user for logs and audit, without a query per request.

simplejwt's JWTAuthentication loads the user row on every request to check it still
exists and is active. This one reads the same few columns through the cache
(foundation.cache), invalidated when the user row changes (users.signals), so a
deactivated or deleted user is refused on the next request while a normal request
costs no user query. With Redis down it falls back to the database.
"""

from __future__ import annotations

import functools
from typing import Any

from django.contrib.auth import get_user_model
from django.db import DEFAULT_DB_ALIAS
from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from rest_framework.request import Request
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import AuthenticationFailed, InvalidToken, TokenError
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import Token
from rest_framework_simplejwt.utils import aware_utcnow

from foundation.cache import cached, from_read
from foundation.context import user_id_var

USER_AUTH_CACHE = "user-auth"
USER_AUTH_TIMEOUT = 60  # bounds staleness should an invalidation be lost while Redis flaps
# In the model's field order: Model.from_db() takes the values of a partial load in that order.
_USER_FIELDS = ("id", "is_superuser", "username", "is_staff", "is_active", "date_joined", "email")


# Access tokens whose signature and claims were checked, per process (about 1 kB each).
VERIFIED_TOKENS_KEPT = 4096


@functools.lru_cache(maxsize=VERIFIED_TOKENS_KEPT)
def _checked_token(raw: bytes) -> Token:
    """The token `raw` after simplejwt's full check (signature, type, claims, expiry).

    A client sends the same access token on every request of its 5 minutes; verifying
    its HMAC and decoding its JSON each time was 5-7 % of a transfer's CPU. The cache is
    keyed by the whole token, signature included, so only the exact bytes that passed
    are served from it; a token that fails raises and is not kept. What can change with
    time, the expiry, is checked again on every use (_unexpired). Access tokens are not
    revocable one by one (docs/security.md), so nothing else can turn a checked token bad.
    """
    return JWTAuthentication().get_validated_token(raw)


def _unexpired(token: Token) -> Token:
    try:
        token.check_exp(current_time=aware_utcnow())
    except TokenError as exc:
        # The answer simplejwt gives a token that expired (get_validated_token).
        message = {
            "token_class": type(token).__name__,
            "token_type": token.token_type,
            "message": exc.args[0],
        }
        detail = {"detail": "Given token not valid for any token type", "messages": [message]}
        raise InvalidToken(detail) from None
    return token


def _load_user(user_id: Any) -> dict[str, Any] | None:
    return get_user_model().objects.filter(pk=user_id).values(*_USER_FIELDS).first()


class ContextJWTAuthentication(JWTAuthentication):
    """simplejwt's bearer JWT, with the user's row read through the cache.

    Also a foundation.views.RoundTripAuthentication: verify() checks the token without
    I/O, so the view can read the cached row together with its quota counters.
    """

    def verify(self, request: Request) -> tuple[Any, Any] | None:
        """(validated token, user id) for a request with a bearer token, None without one."""
        header = self.get_header(request)
        raw = self.get_raw_token(header) if header is not None else None
        if raw is None:
            return None
        validated = _unexpired(_checked_token(raw))  # InvalidToken: a bad, expired or forged token
        try:
            return validated, validated[api_settings.USER_ID_CLAIM]
        except KeyError:
            raise InvalidToken("Token contained no recognizable user identification") from None

    def user_id(self, verified: tuple[Any, Any]) -> Any:
        return verified[1]

    def cached_row(self, verified: tuple[Any, Any]) -> tuple[str, object]:
        return USER_AUTH_CACHE, verified[1]

    def resolve(self, verified: tuple[Any, Any], read: Any) -> tuple[Any, Any]:
        validated, user_id = verified
        data = from_read(USER_AUTH_CACHE, user_id, read, lambda: _load_user(user_id), USER_AUTH_TIMEOUT)
        user_id_var.set(user_id)
        return self._user(data), validated

    def get_user(self, validated_token: Any):  # type: ignore[override]
        try:
            user_id = validated_token[api_settings.USER_ID_CLAIM]
        except KeyError:
            raise InvalidToken("Token contained no recognizable user identification") from None
        return self._user(
            cached(USER_AUTH_CACHE, user_id, lambda: _load_user(user_id), timeout=USER_AUTH_TIMEOUT)
        )

    def authenticate(self, request: Request):  # type: ignore[override]
        result = super().authenticate(request)
        if result is not None:
            user_id_var.set(result[0].id)
        return result

    @staticmethod
    def _user(data: dict[str, Any] | None) -> Any:
        if data is None:
            raise AuthenticationFailed("User not found", code="user_not_found")
        if not data["is_active"]:
            raise AuthenticationFailed("User is inactive", code="user_inactive")
        # from_db: an instance as the ORM loads one (saved, from the default database).
        return get_user_model().from_db(DEFAULT_DB_ALIAS, _USER_FIELDS, [data[name] for name in _USER_FIELDS])


class ContextJWTScheme(SimpleJWTScheme):
    """OpenAPI: document ContextJWTAuthentication as the bearer JWT scheme it is."""

    target_class = "users.authentication.ContextJWTAuthentication"
