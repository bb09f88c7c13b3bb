"""Errors about wallets themselves. Each has a stable `code` clients can rely on.

The domain's tree: foundation.errors.ServiceError -> WalletError (here) -> MoneyError
(transfers.errors), for the money path's refusals and the Idempotency-Key's.
"""

from foundation.errors import ServiceError


class WalletError(ServiceError):
    """Base of every wallet and money-movement error: what the money path refuses with."""


class WalletNotFound(WalletError):
    code = "not_found"
    status = 404
    title = "Wallet not found"


class UnsupportedCurrency(WalletError):
    code = "unsupported_currency"
    status = 422
    title = "Unsupported currency"
