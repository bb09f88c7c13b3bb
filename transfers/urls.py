"""/api/v1/transfers, /api/v1/holds and /api/v1/idempotency-keys/{key}, and a wallet's money
under /api/v1/wallets/{id}/ (deposits, withdrawals, holds, transactions, balance, statement).
The wallet routes keep the `wallet-*` names of the wallet's own routes (wallets.urls), one
router each, since one router takes a basename once."""

from django.urls import re_path

from foundation.routing import OptionalSlashRouter
from transfers.api import HoldViewSet, IdempotencyKeyView, TransferViewSet, WalletMoneyViewSet

transfers = OptionalSlashRouter()
transfers.register("transfers", TransferViewSet, basename="transfer")
transfers.register("holds", HoldViewSet, basename="hold")
wallet_money = OptionalSlashRouter()
wallet_money.register("wallets", WalletMoneyViewSet, basename="wallet")
urlpatterns = [
    *transfers.urls,
    *wallet_money.urls,
    # The key is everything after the prefix, slashes included (clients percent-encode it).
    re_path(r"^idempotency-keys/(?P<key>.+)$", IdempotencyKeyView.as_view(), name="idempotency-key"),
]
