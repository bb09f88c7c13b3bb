"""Builders for the money path's tests: Movements as their owners ask for them, and the ledger's state."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.db import transaction

from audit.models import AuditEvent
from transfers.models import IdempotencyRecord, LedgerEntry, Transfer
from transfers.services import Movement
from wallets.models import Wallet


def deposit(wallet: Wallet, amount: int, **fields: Any) -> Movement:
    """A deposit into `wallet`, asked for by its owner (or `initiated_by_id`)."""
    return _own(Transfer.Kind.DEPOSIT, wallet, amount, **fields)


def withdrawal(wallet: Wallet, amount: int, **fields: Any) -> Movement:
    return _own(Transfer.Kind.WITHDRAWAL, wallet, amount, **fields)


def transfer(source: Wallet, destination: Wallet, amount: int, **fields: Any) -> Movement:
    fields.setdefault("initiated_by_id", source.owner_id)
    return Movement(
        kind=Transfer.Kind.TRANSFER,
        own_wallet_id=source.id,
        other_wallet_id=destination.id,
        amount=amount,
        **fields,
    )


def _own(kind: Transfer.Kind, wallet: Wallet, amount: int, **fields: Any) -> Movement:
    fields.setdefault("initiated_by_id", wallet.owner_id)
    return Movement(kind=kind, own_wallet_id=wallet.id, other_wallet_id=None, amount=amount, **fields)


def ledger_rows() -> tuple[dict, Counter]:
    """Every wallet's balance, and how many rows each table the money path writes holds."""
    balances = dict(Wallet.objects.values_list("id", "balance"))
    counts = Counter(
        {
            model.__name__: model.objects.count()
            for model in (Transfer, LedgerEntry, AuditEvent, IdempotencyRecord)
        }
    )
    return balances, counts


def balance(wallet: Wallet) -> int:
    wallet.refresh_from_db()
    return wallet.balance


@contextmanager
def refused(error: type[Exception], match: str | None = None) -> Iterator[pytest.ExceptionInfo]:
    """The block raises `error` and leaves every balance and every money table as it was.

    The block runs in a savepoint of its own, so a refusal inside a test's transaction
    rolls back only what the block did.
    """
    before = ledger_rows()
    with pytest.raises(error, match=match) as info, transaction.atomic():
        yield info
    assert ledger_rows() == before
