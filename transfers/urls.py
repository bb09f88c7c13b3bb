"""/api/v1/transfers and /api/v1/holds, and a wallet's money under /api/v1/wallets/{id}/ (deposits,
withdrawals, holds, transactions). The wallet routes keep the `wallet-*` names of the wallet's
own routes (wallets.urls), one router each, since one router takes a basename once."""

from foundation.routing import OptionalSlashRouter
from transfers.api import HoldViewSet, TransferViewSet, WalletMoneyViewSet

transfers = OptionalSlashRouter()
transfers.register("transfers", TransferViewSet, basename="transfer")
transfers.register("holds", HoldViewSet, basename="hold")
wallet_money = OptionalSlashRouter()
wallet_money.register("wallets", WalletMoneyViewSet, basename="wallet")
urlpatterns = [*transfers.urls, *wallet_money.urls]
