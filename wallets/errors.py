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


class WalletNotUnderReview(WalletError):
    """A release asked for a wallet that is not under review."""

    code = "wallet_not_under_review"
    status = 409
    title = "Wallet not under review"


class WalletStillInconsistent(WalletError):
    """A release asked for a wallet reconciliation has not yet found consistent again."""

    code = "wallet_still_inconsistent"
    status = 409
    title = "Wallet still inconsistent with its ledger"


class ReviewStatusReserved(WalletError):
    """Only reconciliation puts a wallet under review, and only a release takes it out."""

    code = "review_status_reserved"
    status = 409
    title = "Under review is set by reconciliation and ended by a release"


class InvalidLimit(WalletError):
    code = "invalid_limit"
    status = 422
    title = "Invalid limit"
