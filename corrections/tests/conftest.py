"""Operators for the corrections tests: makers propose, checkers approve or reject."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth.models import Permission

from users.models import User


def grant(user: User, *codenames: str) -> User:
    """`user` (made staff, so they may use the admin) with these corrections permissions."""
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="corrections", codename__in=codenames)
    )
    return User.objects.get(pk=user.pk)  # a fresh instance: no cached permissions


@pytest.fixture
def make_operator(make_user) -> Callable[..., User]:
    def make(*codenames: str, username: str | None = None) -> User:
        return grant(make_user(username), *codenames)

    return make


@pytest.fixture
def maker(make_operator) -> User:
    return make_operator("propose_adjustment", "view_adjustmentproposal", username="maker")


@pytest.fixture
def checker(make_operator) -> User:
    return make_operator("approve_adjustment", "view_adjustmentproposal", username="checker")


@pytest.fixture
def customer(make_user) -> User:
    return make_user("customer")


@pytest.fixture
def wallet(make_wallet, customer):
    return make_wallet(customer, currency="USD", balance=1_000)
