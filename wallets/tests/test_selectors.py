"""Reads on wallets (wallets.selectors), called directly: ownership, the metadata cache, fresh balances."""

from __future__ import annotations

import uuid

import pytest

from transfers.services import deposit_create
from wallets.errors import WalletNotFound
from wallets.models import Wallet
from wallets.selectors import wallet_check_owner, wallet_get, wallet_list
from wallets.services import system_wallet_id

pytestmark = pytest.mark.django_db


@pytest.fixture
def wallets(make_user, make_wallet):
    alice, bob = make_user(), make_user()
    return {
        "alice": alice,
        "bob": bob,
        "main": make_wallet(alice, "USD", balance=700, name="main"),
        "spare": make_wallet(alice, "EUR", name="spare"),
        "bobs": make_wallet(bob, "USD", balance=5),
    }


def not_the_callers(wallets, whose: str) -> uuid.UUID:
    return {
        "someone-elses": wallets["bobs"].id,
        "system": system_wallet_id(currency="USD"),
        "missing": uuid.uuid4(),
    }[whose]


NOT_THE_CALLERS = pytest.mark.parametrize("whose", ["someone-elses", "system", "missing"])


def test_wallet_list_is_the_callers_user_wallets(wallets):
    assert set(wallet_list(owner_id=wallets["alice"].id)) == {wallets["main"], wallets["spare"]}
    assert list(wallet_list(owner_id=wallets["bob"].id)) == [wallets["bobs"]]
    assert Wallet.objects.filter(kind="system").exists()  # and none of them is listed for anyone


def test_wallet_check_owner_accepts_the_callers_wallet_in_one_query(wallets, django_assert_num_queries):
    with django_assert_num_queries(1):
        assert wallet_check_owner(wallet_id=wallets["spare"].id, owner_id=wallets["alice"].id) is None


@NOT_THE_CALLERS
def test_wallet_check_owner_refuses_a_wallet_that_is_not_the_callers(wallets, whose):
    with pytest.raises(WalletNotFound):
        wallet_check_owner(wallet_id=not_the_callers(wallets, whose), owner_id=wallets["alice"].id)


def test_wallet_get_reads_the_whole_wallet_fresh_in_one_query(wallets, django_assert_num_queries):
    main, alice = wallets["main"], wallets["alice"]
    wallet_get(wallet_id=main.id, owner_id=alice.id)
    deposit_create(wallet_id=main.id, owner_id=alice.id, amount=45)  # the balance changes

    with django_assert_num_queries(1):
        wallet = wallet_get(wallet_id=main.id, owner_id=alice.id)

    assert isinstance(wallet, Wallet)
    assert (wallet.id, wallet.owner_id, wallet.name, wallet.currency, wallet.balance) == (
        main.id,
        alice.id,
        "main",
        "USD",
        745,
    )
    assert wallet.updated_at == Wallet.objects.get(pk=main.pk).updated_at


@NOT_THE_CALLERS
def test_wallet_get_refuses_a_wallet_that_is_not_the_callers(wallets, whose):
    with pytest.raises(WalletNotFound):
        wallet_get(wallet_id=not_the_callers(wallets, whose), owner_id=wallets["alice"].id)


def test_the_read_statements_select_the_wallet_fields_in_the_models_order():
    from wallets.selectors import OWNED_WALLET_SQL, WALLET_FIELDS

    order = [field.attname for field in Wallet._meta.concrete_fields]
    selected = OWNED_WALLET_SQL.split("SELECT ", 1)[1].split(" FROM", 1)[0].split(", ")
    assert tuple(selected) == WALLET_FIELDS
    assert sorted(WALLET_FIELDS, key=order.index) == list(WALLET_FIELDS)
