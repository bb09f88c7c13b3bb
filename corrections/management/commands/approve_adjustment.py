from __future__ import annotations

from django.core.management.base import BaseCommand

from corrections.management.operator import operator_id, refusal
from corrections.services import adjustment_approve
from foundation.currencies import format_major
from foundation.errors import ServiceError


class Command(BaseCommand):
    help = "Approve a pending adjustment proposal and post it. The proposer cannot approve it."

    def add_arguments(self, parser) -> None:
        parser.add_argument("proposal_id", help="The proposal's id.")
        parser.add_argument("--operator", required=True, help="Username of the approving operator.")
        parser.add_argument("--note", default="", help="An optional note kept with the decision.")

    def handle(self, *args, **options) -> None:
        try:
            proposal = adjustment_approve(
                proposal_id=options["proposal_id"],
                operator_id=operator_id(options["operator"]),
                note=options["note"],
            )
        except ServiceError as error:
            raise refusal(error) from error
        amount = format_major(proposal.amount, proposal.currency)
        self.stdout.write(
            f"Proposal {proposal.id} approved: {amount} on wallet {proposal.wallet_id}, "
            f"posted as transfer {proposal.transfer_id}."
        )
