"""Reads on the ledger (transfers.selectors), called directly."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from transfers.errors import TransferNotFound
from transfers.models import Transfer
from transfers.selectors import (
    find_reference_use,
    system_wallet_balance,
    transfer_get,
    transfer_list,
    wallet_history,
    with_ledger_balance,
)
from transfers.services import movement_execute
from transfers.tests.movements import deposit, transfer, withdrawal
from wallets.errors import WalletNotFound
from wallets.models import Wallet

pytestmark = pytest.mark.django_db


@pytest.fixture
def traffic(accounts) -> dict[str, Transfer]:
    """On top of the funding deposits: alice -> bob 100, alice withdraws 30, bob -> carol 50."""
    return {
        "a_to_b": movement_execute(transfer(accounts.a, accounts.b, 100, reference="inv-1")),
        "a_out": movement_execute(withdrawal(accounts.a, 30)),
        "b_to_c": movement_execute(transfer(accounts.b, accounts.c, 50)),
    }


def history(accounts, wallet: Wallet | None = None, **filters) -> list[tuple[str, int, int]]:
    """(type, amount, balance_after) of the wallet's entries, in the order the API pages them."""
    wallet = wallet or accounts.a
    entries = wallet_history(wallet_id=wallet.id, owner_id=wallet.owner_id, **filters)
    return [(e.type, e.amount, e.balance_after) for e in entries.order_by("wallet_id", "-id")]


# --- wallet_history -----------------------------------------------------------------------------


def test_history_is_the_wallets_entries_newest_first(accounts, traffic):
    assert history(accounts) == [
        ("withdrawal", -30, 870),
        ("transfer_out", -100, 900),
        ("deposit", 1000, 1000),
    ]
    assert history(accounts, accounts.c) == [("transfer_in", 50, 50)]


def test_history_reads_each_entry_with_its_transfer_in_one_query(
    accounts, traffic, django_assert_num_queries
):
    wallet_history(wallet_id=accounts.a.id, owner_id=accounts.alice.id)  # warm the ownership cache
    entries = wallet_history(wallet_id=accounts.a.id, owner_id=accounts.alice.id).order_by("wallet_id", "-id")

    with django_assert_num_queries(1):
        rows = [(e.transfer_id, e.transfer.reference, e.transfer.description) for e in entries]

    assert rows[1] == (traffic["a_to_b"].id, "inv-1", "")


def test_history_keeps_the_wallet_in_the_order_by_for_its_index(accounts):
    """PinnedExact: `wallet_id = ANY(ARRAY[...])`, which PostgreSQL does not fold out of ORDER BY."""
    entries = wallet_history(wallet_id=accounts.a.id, owner_id=accounts.alice.id).order_by("wallet_id", "-id")

    with CaptureQueriesContext(connection) as captured:
        list(entries)

    (sql,) = [q["sql"] for q in captured]
    assert '"transfers_ledgerentry"."wallet_id" = ANY(ARRAY[' in sql
    assert sql.endswith('ORDER BY "transfers_ledgerentry"."wallet_id" ASC, "transfers_ledgerentry"."id" DESC')


@pytest.mark.parametrize(
    ("entry_type", "expected"),
    [
        ("deposit", [("deposit", 1000, 1000)]),
        ("transfer_out", [("transfer_out", -100, 900)]),
        ("transfer_in", []),
    ],
)
def test_history_filters_by_type(accounts, traffic, entry_type, expected):
    assert history(accounts, entry_type=entry_type) == expected


def test_history_filters_by_time_after_inclusive_and_before_exclusive(accounts, traffic):
    times = {
        e.type: e.created_at for e in wallet_history(wallet_id=accounts.a.id, owner_id=accounts.alice.id)
    }
    middle = times["transfer_out"]

    assert [t for t, _, _ in history(accounts, created_after=middle)] == ["withdrawal", "transfer_out"]
    assert [t for t, _, _ in history(accounts, created_before=middle)] == ["deposit"]
    assert history(accounts, created_after=middle, created_before=times["withdrawal"]) == [
        ("transfer_out", -100, 900)
    ]


@pytest.mark.parametrize("whose", ["someone-elses", "system", "missing"])
def test_history_of_a_wallet_that_is_not_the_callers_is_not_found(accounts, traffic, whose):
    wallet_id = {"someone-elses": accounts.b.id, "system": accounts.usd_system, "missing": uuid.uuid4()}[
        whose
    ]

    with pytest.raises(WalletNotFound):
        wallet_history(wallet_id=wallet_id, owner_id=accounts.alice.id)


# --- transfer_list / transfer_get -------------------------------------------------------------


def ids(transfers) -> set[uuid.UUID]:
    return set(transfers.values_list("id", flat=True))


def deposits_into(*wallets: Wallet) -> set[uuid.UUID]:
    return ids(Transfer.objects.filter(kind="deposit", destination_wallet__in=wallets))


def test_transfer_list_shows_the_transfers_touching_the_callers_wallets(accounts, traffic):
    a_to_b, a_out, b_to_c = (traffic[name].id for name in ("a_to_b", "a_out", "b_to_c"))

    assert ids(transfer_list(user_id=accounts.alice.id)) == deposits_into(accounts.a, accounts.eur) | {
        a_to_b,
        a_out,
    }
    assert ids(transfer_list(user_id=accounts.bob.id)) == deposits_into(accounts.b) | {a_to_b, b_to_c}
    assert ids(transfer_list(user_id=accounts.carol.id)) == {b_to_c}


def test_transfer_list_filters_by_one_of_the_callers_wallets(accounts, traffic):
    assert ids(transfer_list(user_id=accounts.alice.id, wallet_id=accounts.eur.id)) == deposits_into(
        accounts.eur
    )
    assert ids(transfer_list(user_id=accounts.carol.id, wallet_id=accounts.c.id)) == {traffic["b_to_c"].id}


@pytest.mark.parametrize("whose", ["someone-elses", "missing"])
def test_transfer_list_of_a_wallet_that_is_not_the_callers_is_not_found(accounts, traffic, whose):
    # Bob's wallet shares a transfer with alice, but its other transfers are none of her business.
    wallet_id = accounts.b.id if whose == "someone-elses" else uuid.uuid4()

    with pytest.raises(WalletNotFound):
        transfer_list(user_id=accounts.alice.id, wallet_id=wallet_id)


def test_transfer_get_shows_a_transfer_to_either_party_only(accounts, traffic):
    made = traffic["a_to_b"]

    by_source = transfer_get(transfer_id=made.id, user_id=accounts.alice.id)
    by_destination = transfer_get(transfer_id=made.id, user_id=accounts.bob.id)

    for seen in (by_source, by_destination):
        assert {name: getattr(seen, name) for name in Transfer.PUBLIC_FIELDS} == {
            name: getattr(made, name) for name in Transfer.PUBLIC_FIELDS
        }
    with pytest.raises(TransferNotFound):
        transfer_get(transfer_id=made.id, user_id=accounts.carol.id)
    with pytest.raises(TransferNotFound):
        transfer_get(transfer_id=uuid.uuid4(), user_id=accounts.alice.id)


def test_transfer_get_reads_one_row_for_either_party_in_one_query(
    accounts, traffic, django_assert_num_queries
):
    made = traffic["b_to_c"]

    with django_assert_num_queries(1):
        again = transfer_get(transfer_id=made.id, user_id=accounts.carol.id)
    with django_assert_num_queries(1), pytest.raises(TransferNotFound):
        transfer_get(transfer_id=made.id, user_id=accounts.alice.id)

    assert (again.id, again.amount, again.source_wallet_id) == (made.id, 50, accounts.b.id)


def test_an_unknown_transfer_is_not_found(accounts):
    with pytest.raises(TransferNotFound):
        transfer_get(transfer_id=uuid.uuid4(), user_id=accounts.alice.id)


# --- find_reference_use -----------------------------------------------------------------------


def test_find_reference_use_names_the_transfer_and_its_currency(accounts, traffic):
    made = traffic["a_to_b"]

    assert find_reference_use(wallet_id=accounts.a.id, reference="inv-1") == (made.id, "USD")
    assert find_reference_use(wallet_id=accounts.a.id, reference="inv-1", owner_id=accounts.alice.id) == (
        made.id,
        "USD",
    )
    # The reference belongs to the wallet the request was made on, not to the destination.
    assert find_reference_use(wallet_id=accounts.b.id, reference="inv-1") is None
    assert find_reference_use(wallet_id=accounts.a.id, reference="inv-2") is None


def test_find_reference_use_with_an_owner_says_nothing_about_other_wallets(accounts, traffic):
    assert find_reference_use(wallet_id=accounts.a.id, reference="inv-1", owner_id=accounts.bob.id) is None


# --- balances ---------------------------------------------------------------------------------


def test_a_system_wallets_balance_is_the_sum_of_its_entries(accounts, traffic):
    # USD in: 1,000 + 500 (funding); out: 30 (alice's withdrawal). EUR in: 300.
    assert system_wallet_balance(wallet_id=accounts.usd_system) == -1470
    eur_system = Wallet.objects.get(kind="system", currency="EUR").id
    assert system_wallet_balance(wallet_id=eur_system) == -300
    assert system_wallet_balance(wallet_id=uuid.uuid4()) == 0  # no entries


def test_with_ledger_balance_reads_any_number_of_wallets_in_one_query(
    accounts, traffic, django_assert_num_queries
):
    movement_execute(deposit(accounts.b_eur, 20))
    wallets = with_ledger_balance(Wallet.objects.order_by("id"))

    with django_assert_num_queries(1):
        found = {w.id: (w.kind, w.balance, w.ledger_balance) for w in wallets}

    eur_system = Wallet.objects.get(kind="system", currency="EUR").id
    assert found == {
        accounts.a.id: ("user", 870, 870),
        accounts.eur.id: ("user", 300, 300),
        accounts.b.id: ("user", 550, 550),
        accounts.b_eur.id: ("user", 20, 20),
        accounts.c.id: ("user", 50, 50),
        accounts.usd_system: ("system", 0, -1470),
        eur_system: ("system", 0, -320),
    }


def test_transfer_get_selects_the_public_fields_in_the_models_order_then_the_refunded_sum():
    from transfers.models import Transfer
    from transfers.selectors import TRANSFER_GET_SQL

    order = [field.attname for field in Transfer._meta.concrete_fields]
    columns, refunded = TRANSFER_GET_SQL.split("SELECT ", 1)[1].split(", (SELECT ", 1)
    assert tuple(name.removeprefix("t.") for name in columns.split(", ")) == Transfer.PUBLIC_FIELDS
    assert refunded.startswith(
        "coalesce(sum(r.amount), 0) FROM transfers_transfer r WHERE r.refund_of_id = t.id)"
    )
    assert sorted(Transfer.PUBLIC_FIELDS, key=order.index) == list(Transfer.PUBLIC_FIELDS)
