"""The API renders from plain dicts (speed); each must say exactly what its serializer says
in the OpenAPI document, for the same object."""

import json

import pytest
from rest_framework.renderers import JSONRenderer

from transfers import selectors
from transfers.rendering import transfer_data
from transfers.serializers import LedgerEntrySerializer, TransferSerializer, entry_data
from transfers.services import transfer_create
from wallets.serializers import WalletSerializer, wallet_data

pytestmark = pytest.mark.django_db


def rendered(data) -> dict:
    return json.loads(JSONRenderer().render(data))


def test_each_dict_renders_exactly_as_its_serializer(make_user, make_wallet):
    alice, bob = make_user(), make_user()
    source = make_wallet(alice, balance=1_000, name="main")
    destination = make_wallet(bob)
    transfer = transfer_create(
        source_wallet_id=source.id,
        destination_wallet_id=destination.id,
        initiated_by_id=alice.id,
        amount=250,
        reference="invoice-1",
        description="lunch",
    )
    source.refresh_from_db()
    read = selectors.transfer_get(transfer_id=transfer.id, user_id=alice.id)
    [entry, *_] = selectors.wallet_history(wallet_id=source.id, owner_id=alice.id).order_by("-id")

    assert rendered(wallet_data(source)) == rendered(WalletSerializer(source).data)
    assert rendered(transfer_data(read)) == rendered(TransferSerializer(read).data)
    assert rendered(entry_data(entry)) == rendered(LedgerEntrySerializer(entry).data)
    assert rendered(entry_data(entry))["reference"] == "invoice-1"
