from __future__ import annotations

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction

from audit.models import AuditEvent
from audit.services import audit_record
from users.models import User
from wallet_project.errors import ValidationFailed


def user_create(*, username: str, email: str, password: str) -> User:
    """Register a user. Django's password validators apply; username and email are unique."""
    errors: dict[str, list[str]] = {}
    if User.objects.filter(username__iexact=username).exists():
        errors["username"] = ["A user with that username already exists."]
    if User.objects.filter(email__iexact=email).exists():
        errors["email"] = ["A user with that email already exists."]
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
    except IntegrityError:  # lost a race for the same username or email
        raise ValidationFailed({"username": ["A user with that username or email already exists."]}) from None
    return candidate
