from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

from django.conf import settings
from django.contrib.auth import authenticate
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import RefreshToken, UntypedToken

from audit.models import AuditEvent
from audit.services import audit_record
from foundation.errors import ValidationFailed
from users.login_guard import LoginGuard
from users.models import User, username_match

logger = logging.getLogger(__name__)

USERNAME_TAKEN = "A user with that username already exists."
EMAIL_TAKEN = "A user with that email already exists."


# The unique indexes on users_user, and the field each one guards.
_UNIQUE_FIELDS = {
    "users_user_username_key": "username",
    "users_user_username_ci_unique": "username",
    "users_user_email_ci_unique": "email",
}


def user_create(*, username: str, email: str, password: str) -> User:
    """Register a user. Django's password validators apply; username and email are unique
    regardless of case.

    The look-ups below give the common case a precise answer; the unique indexes decide
    a race (two registrations of "Alice" and "alice" at once): the loser's insert fails
    and it gets the same 400 as if it had come second.
    """
    errors: dict[str, list[str]] = {}
    if User.objects.filter(username_match(username)).exists():
        errors["username"] = [USERNAME_TAKEN]
    if User.objects.filter(email__iexact=email).exists():
        errors["email"] = [EMAIL_TAKEN]
    candidate = User(username=username, email=email)
    try:
        validate_password(password, user=candidate)
    except DjangoValidationError as exc:
        errors["password"] = list(exc.messages)
    if errors:
        raise ValidationFailed(errors)
    candidate.set_password(password)
    try:
        with transaction.atomic():
            candidate.save(force_insert=True)
            audit_record(
                action=AuditEvent.Action.USER_REGISTERED,
                actor_id=candidate.id,
                target_type="user",
                target_id=candidate.id,
            )
    except IntegrityError as exc:  # lost a race for the same username or email
        field = _UNIQUE_FIELDS.get(_violated_constraint(exc) or "", "username")
        raise ValidationFailed({field: [EMAIL_TAKEN if field == "email" else USERNAME_TAKEN]}) from None
    return candidate


def _violated_constraint(exc: IntegrityError) -> str | None:
    """The name of the constraint PostgreSQL reports (psycopg's diagnostics); None elsewhere."""
    diag = getattr(exc.__cause__, "diag", None)
    return getattr(diag, "constraint_name", None)


# --- login -------------------------------------------------------------------------


def user_login(
    *, request: Any, username: str, password: str, via: str = "api", staff_only: bool = False
) -> User | None:
    """Check a username and password behind the brute-force guard; audit the outcome.

    The one login flow of the API (`POST auth/token`) and the admin's login form:
    the attempt is counted against the per-IP and per-username budgets before the
    password is checked (LoginGuard raises Throttled or RateLimitUnavailable when
    they refuse), a success gives the count back, and both outcomes are audited.
    Returns the user, or None for wrong credentials, an inactive account, or (with
    `staff_only`) an account that may not use the admin.
    """
    guard = LoginGuard(request, username)
    guard.attempt()
    user = authenticate(request, username=username, password=password)
    details = {} if via == "api" else {"via": via}
    if user is None or (staff_only and not user.is_staff):
        audit_record(
            action=AuditEvent.Action.LOGIN_FAILED,
            actor_label=username,
            target_type="user",
            target_id=username[:64],
            outcome="invalid_credentials",
            details=details,
        )
        return None
    guard.succeeded()
    audit_record(
        action=AuditEvent.Action.LOGIN_SUCCEEDED,
        actor_id=user.pk,
        target_type="user",
        target_id=user.pk,
        details=details,
    )
    return user


def token_pair(*, user: User) -> dict[str, str]:
    """A new session: a refresh token (recorded as outstanding) and its access token."""
    refresh = RefreshToken.for_user(user)
    return {"access": str(refresh.access_token), "refresh": str(refresh)}


# --- refresh tokens ----------------------------------------------------------------


def token_refresh(*, refresh: str) -> dict[str, str]:
    """Redeem a refresh token: a new access token and a new refresh token (rotation).

    Invariant: a refresh token is redeemed at most once. The redemption inserts the
    token's BlacklistedToken row, its successor's OutstandingToken row and the
    `auth.token_refreshed` audit event in one transaction. BlacklistedToken.token is
    unique, so of several concurrent redemptions exactly one insert commits; the others
    wait for it on that index, fail, and are refused as a reuse. The blacklist check
    RefreshToken() makes first is only a fast path: it cannot see a redemption that has
    not committed yet. (simplejwt's own refresh uses get_or_create for the blacklist
    row, which returns the row a concurrent redemption just committed, so both succeed.)

    Raises TokenError (the API answers 401 not_authenticated) for anything that cannot
    be redeemed; a genuine refresh token presented again is handled by _refuse_reuse.
    """
    token = _redeemable_token(refresh)
    user_id = token.payload.get(jwt_settings.USER_ID_CLAIM)
    user = User.objects.filter(**{jwt_settings.USER_ID_FIELD: user_id}).first()
    if user is None or not jwt_settings.USER_AUTHENTICATION_RULE(user):
        raise TokenError("No active account found for the given token.")
    jti = token[jwt_settings.JTI_CLAIM]
    with transaction.atomic():
        presented = _outstanding(token, user)
        try:
            with transaction.atomic():
                BlacklistedToken.objects.create(token=presented)
        except IntegrityError:
            redeemed = None  # another redemption committed first
        else:
            access = str(token.access_token)
            # The successor keeps every claim of the presented token but its id and times,
            # as simplejwt's own rotation does.
            token.set_jti()
            token.set_exp()
            token.set_iat()
            _outstanding(token, user)
            audit_record(
                action=AuditEvent.Action.TOKEN_REFRESHED,
                actor_id=user.pk,
                target_type="user",
                target_id=user.pk,
            )
            redeemed = {"access": access, "refresh": str(token)}
    if redeemed is None:
        _refuse_reuse(user_id=user.pk, jti=jti)
    return redeemed


def token_revoke(*, refresh: str) -> None:
    """Log out: blacklist a refresh token and audit it, in one transaction.

    A token already used (rotated, logged out, or redeemed by a concurrent request at
    this very moment) raises TokenError, so a logout never reports success for a
    session that another request has just continued.
    """
    token = RefreshToken(refresh)
    user_id = token.payload.get(jwt_settings.USER_ID_CLAIM)
    with transaction.atomic():
        user = User.objects.filter(**{jwt_settings.USER_ID_FIELD: user_id}).first()
        try:
            with transaction.atomic():
                BlacklistedToken.objects.create(token=_outstanding(token, user))
        except IntegrityError:
            raise TokenError("Token is blacklisted") from None
        audit_record(action=AuditEvent.Action.LOGOUT, actor_id=user_id, target_type="user", target_id=user_id)


def _redeemable_token(raw: str) -> RefreshToken:
    """The refresh token, verified (signature, expiry, type, not blacklisted)."""
    try:
        return RefreshToken(raw)
    except TokenError:
        claims = _genuine_refresh_claims(raw)
        if claims is None:
            raise
    jti = claims[jwt_settings.JTI_CLAIM]
    if not BlacklistedToken.objects.filter(token__jti=jti).exists():
        raise TokenError("Token is invalid")
    _refuse_reuse(user_id=claims.get(jwt_settings.USER_ID_CLAIM), jti=jti)


def _genuine_refresh_claims(raw: str) -> dict[str, Any] | None:
    """The claims of a refresh token this service signed and that has not expired, used or not."""
    try:
        # UntypedToken checks the signature, expiry and id, but neither the type nor the blacklist.
        claims = UntypedToken(raw).payload
    except TokenError:
        return None
    return claims if claims.get(jwt_settings.TOKEN_TYPE_CLAIM) == RefreshToken.token_type else None


def _outstanding(token: RefreshToken, user: User | None) -> OutstandingToken:
    """The token's OutstandingToken row (simplejwt creates it when it issues a token;
    get_or_create covers one issued before the blacklist app was installed)."""
    row, _ = OutstandingToken.objects.get_or_create(
        jti=token[jwt_settings.JTI_CLAIM],
        defaults={
            "user": user,
            "token": str(token),
            "created_at": token.current_time,
            "expires_at": datetime.fromtimestamp(token["exp"], tz=UTC),
        },
    )
    return row


def _refuse_reuse(*, user_id: Any, jti: str) -> NoReturn:
    """A refresh token that was already used is presented again: refuse it, audit it, warn.

    Within JWT_REFRESH_REUSE_GRACE_SECONDS of the token's first use this is taken for
    the client racing itself (two tabs, a retry): outcome "concurrent". Later, someone
    holds a copy of a token that should exist nowhere: the thief or the rightful client
    (whichever came second) is holding it, and the service cannot tell which, so every
    live refresh token of the user is revoked (outcome "sessions_revoked"), ending the
    session that went on with the stolen copy. Access tokens already issued live on
    until they expire (JWT_ACCESS_MINUTES).
    """
    used_at = BlacklistedToken.objects.filter(token__jti=jti).values_list("blacklisted_at", flat=True).first()
    grace = timedelta(seconds=settings.JWT_REFRESH_REUSE_GRACE_SECONDS)
    concurrent = used_at is not None and timezone.now() - used_at <= grace
    with transaction.atomic():
        revoked = 0 if concurrent or user_id is None else _revoke_refresh_tokens(user_id=user_id)
        audit_record(
            action=AuditEvent.Action.REFRESH_REUSED,
            actor_id=user_id,
            target_type="user",
            target_id=user_id or "",
            outcome="concurrent" if concurrent else "sessions_revoked",
            details={"revoked_refresh_tokens": revoked},
        )
    logger.warning(
        "refresh token reused: user %s, %s, %d refresh tokens revoked",
        user_id,
        "within the grace window" if concurrent else "after the grace window",
        revoked,
    )
    raise TokenError("Token is blacklisted")


def _revoke_refresh_tokens(*, user_id: Any) -> int:
    """Blacklist every refresh token of the user that could still be redeemed."""
    live = OutstandingToken.objects.filter(
        user_id=user_id, expires_at__gt=timezone.now(), blacklistedtoken__isnull=True
    ).only("pk")
    rows = [BlacklistedToken(token=outstanding) for outstanding in live]
    # A token redeemed or logged out meanwhile is already blacklisted: nothing to add.
    BlacklistedToken.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)
