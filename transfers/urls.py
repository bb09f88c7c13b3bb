"""/api/v1/transfers, and a wallet's money under /api/v1/wallets/{id}/ (deposits,
withdrawals, transactions). The wallet routes keep the `wallet-*` names of the wallet's
own routes (wallets.urls), one router each, since one router takes a basename once."""

from foundation.routing import OptionalSlashRouter
from transfers.api import TransferViewSet, WalletMoneyViewSet

transfers = OptionalSlashRouter()
transfers.register("transfers", TransferViewSet, basename="transfer")
wallet_money = OptionalSlashRouter()
wallet_money.register("wallets", WalletMoneyViewSet, basename="wallet")
urlpatterns = [*transfers.urls, *wallet_money.urls]
