"""The money path's refusals and the Idempotency-Key's. Each has a stable `code`.

Raised by transfers.services and transfers.idempotency; foundation.errors maps every one
to an application/problem+json answer.
"""

from wallets.errors import WalletError


class MoneyError(WalletError):
    """Base of every refusal of a money movement."""


class TransferNotFound(MoneyError):
    code = "not_found"
    status = 404
    title = "Transfer not found"


class InsufficientFunds(MoneyError):
    code = "insufficient_funds"
    status = 422
    title = "Insufficient funds"


class CurrencyMismatch(MoneyError):
    code = "currency_mismatch"
    status = 422
    title = "Currency mismatch"


class SameWallet(MoneyError):
    code = "same_wallet"
    status = 422
    title = "Source and destination are the same wallet"


class WalletNotActive(MoneyError):
    code = "wallet_not_active"
    status = 409
    title = "Wallet is not active"


class DuplicateReference(MoneyError):
    code = "duplicate_reference"
    status = 409
    title = "Duplicate reference"


class BalanceLimitExceeded(MoneyError):
    code = "balance_limit_exceeded"
    status = 422
    title = "Balance limit exceeded"


class LedgerInconsistent(MoneyError):
    """PostgreSQL refused the movement's commit: a wallet's balance or entries disagree with its ledger.

    409, not 503: nothing the client does and no short wait fixes it, only an operator
    (docs/operations.md), so it must not invite automatic retries. Never stored as the
    Idempotency-Key's outcome: the same key works once the wallet is repaired.
    """

    code = "ledger_inconsistent"
    status = 409
    title = "Wallet under review"


class IdempotencyKeyRequired(MoneyError):
    code = "idempotency_key_required"
    status = 400
    title = "Idempotency-Key header required"


class IdempotencyKeyInvalid(MoneyError):
    code = "idempotency_key_invalid"
    status = 400
    title = "Invalid Idempotency-Key header"


class IdempotencyKeyReused(MoneyError):
    code = "idempotency_key_reused"
    status = 422
    title = "Idempotency key reused with a different request"


class IdempotencyKeyInUse(MoneyError):
    code = "idempotency_key_in_use"
    status = 409
    title = "A request with this idempotency key is still being processed"


class ServiceBusy(MoneyError):
    code = "service_busy"
    status = 503
    title = "Service busy, retry"
    retry_after = 1


class WalletUnderReview(MoneyError):
    """Reconciliation found the wallet inconsistent with its ledger; an operator releases it."""

    code = "wallet_under_review"
    status = 409
    title = "Wallet under review"


class LimitExceeded(MoneyError):
    """An operator's limit on the wallet's outgoing money refuses the amount. Carries which
    limit (`limit`: per_movement or per_day), its value (`max`) and what may still leave
    (`remaining`: in one movement, or today)."""

    code = "limit_exceeded"
    status = 422
    title = "Limit exceeded"


class HoldNotFound(MoneyError):
    code = "not_found"
    status = 404
    title = "Hold not found"


class HoldNotPending(MoneyError):
    """The hold was already captured, voided or expired (`hold_status` says which)."""

    code = "hold_not_pending"
    status = 409
    title = "Hold is not pending"


class CaptureExceedsHold(MoneyError):
    code = "capture_exceeds_hold"
    status = 422
    title = "Capture exceeds the hold"


class TransferNotRefundable(MoneyError):
    """Only transfers between wallets are refunded (a deposit, withdrawal, refund or
    adjustment is not)."""

    code = "transfer_not_refundable"
    status = 422
    title = "Transfer cannot be refunded"


class RefundExceedsTransfer(MoneyError):
    """The transfer's refunds would add up to more than it moved (`refundable` is what is left)."""

    code = "refund_exceeds_transfer"
    status = 422
    title = "Refund exceeds the transfer"
