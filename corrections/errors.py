"""Refusals of operators' corrections. Each has a stable `code`.

The tree: foundation.errors.ServiceError -> CorrectionError (here). What the posting
itself refuses (insufficient_funds, wallet_not_active, ...) comes from transfers.errors;
an invalid proposal (zero amount, blank reason) is foundation.errors.ValidationFailed.
"""

from foundation.errors import ServiceError


class CorrectionError(ServiceError):
    """Base of every refusal of a proposal or of its decision."""


class ProposalNotFound(CorrectionError):
    code = "not_found"
    status = 404
    title = "Adjustment proposal not found"


class ProposalNotPending(CorrectionError):
    """The proposal was already approved or rejected: decisions are final."""

    code = "proposal_not_pending"
    status = 409
    title = "Adjustment proposal already decided"


class SelfApproval(CorrectionError):
    """The four-eyes rule: whoever proposed an adjustment may not decide it."""

    code = "self_approval_forbidden"
    status = 403
    title = "Operators cannot decide their own proposals"


class OperatorNotPermitted(CorrectionError):
    """The operator lacks the permission (propose_adjustment or approve_adjustment) or is inactive."""

    code = "operator_not_permitted"
    status = 403
    title = "Operator lacks the permission"
