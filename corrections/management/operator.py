"""What the three adjustment commands share: the operator named on the command line and
the way a refusal is reported."""

from __future__ import annotations

from django.core.management.base import CommandError

from foundation.errors import ServiceError, ValidationFailed
from users.models import User


def operator_id(username: str) -> int:
    """The id of the operator the command acts as (the audit trail names them)."""
    operator = User.objects.filter(username__iexact=username).first()
    if operator is None:
        raise CommandError(f"No operator with username {username!r}.")
    return operator.pk


def refusal(error: ServiceError) -> CommandError:
    """The service's refusal, as the command's error: its detail and stable code."""
    message = f"Refused: {error.detail} ({error.code})"
    if isinstance(error, ValidationFailed):
        fields = "; ".join(
            f"{field}: {' '.join(problems)}" for field, problems in error.extra["errors"].items()
        )
        message = f"{message}: {fields}"
    return CommandError(message)
