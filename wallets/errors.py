"""The domain's error tree. Each error has a stable `code` clients can rely on."""

from foundation.errors import ServiceError


class WalletError(ServiceError):
    """Base of every wallet and money-movement error."""


class WalletNotFound(WalletError):
    code = "not_found"
    status = 404
    title = "Wallet not found"


class TransferNotFound(WalletError):
    code = "not_found"
    status = 404
    title = "Transfer not found"


class UnsupportedCurrency(WalletError):
    code = "unsupported_currency"
    status = 422
    title = "Unsupported currency"


class InsufficientFunds(WalletError):
    code = "insufficient_funds"
    status = 422
    title = "Insufficient funds"


class CurrencyMismatch(WalletError):
    code = "currency_mismatch"
    status = 422
    title = "Currency mismatch"


class SameWallet(WalletError):
    code = "same_wallet"
    status = 422
    title = "Source and destination are the same wallet"


class WalletNotActive(WalletError):
    code = "wallet_not_active"
    status = 409
    title = "Wallet is not active"


class DuplicateReference(WalletError):
    code = "duplicate_reference"
    status = 409
    title = "Duplicate reference"


class BalanceLimitExceeded(WalletError):
    code = "balance_limit_exceeded"
    status = 422
    title = "Balance limit exceeded"


class LedgerInconsistent(WalletError):
    """PostgreSQL refused the movement's commit: a wallet's balance or entries disagree with its ledger.

    409, not 503: nothing the client does and no short wait fixes it, only an operator
    (docs/operations.md), so it must not invite automatic retries. Never stored as the
    Idempotency-Key's outcome: the same key works once the wallet is repaired.
    """

    code = "ledger_inconsistent"
    status = 409
    title = "Wallet under review"


class IdempotencyKeyRequired(WalletError):
    code = "idempotency_key_required"
    status = 400
    title = "Idempotency-Key header required"


class IdempotencyKeyInvalid(WalletError):
    code = "idempotency_key_invalid"
    status = 400
    title = "Invalid Idempotency-Key header"


class IdempotencyKeyReused(WalletError):
    code = "idempotency_key_reused"
    status = 422
    title = "Idempotency key reused with a different request"


class IdempotencyKeyInUse(WalletError):
    code = "idempotency_key_in_use"
    status = 409
    title = "A request with this idempotency key is still being processed"


class ServiceBusy(WalletError):
    code = "service_busy"
    status = 503
    title = "Service busy, retry"
    retry_after = 1
