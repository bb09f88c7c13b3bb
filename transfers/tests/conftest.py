"""Fixtures for the money path's service, selector and executor tests (builders: movements.py)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from wallets.services import system_wallet_id


@pytest.fixture
def accounts(make_user, make_wallet) -> SimpleNamespace:
    """alice: `a` (USD 1,000) and `eur` (EUR 300); bob: `b` (USD 500) and `b_eur` (EUR, empty);
    carol: `c` (USD, empty).

    Every wallet was funded through the service, so the USD and EUR system wallets exist.
    """
    alice, bob, carol = make_user("alice"), make_user("bob"), make_user("carol")
    return SimpleNamespace(
        alice=alice,
        bob=bob,
        carol=carol,
        a=make_wallet(alice, "USD", balance=1000),
        eur=make_wallet(alice, "EUR", balance=300),
        b=make_wallet(bob, "USD", balance=500),
        b_eur=make_wallet(bob, "EUR"),
        c=make_wallet(carol, "USD"),
        usd_system=system_wallet_id(currency="USD"),
    )
