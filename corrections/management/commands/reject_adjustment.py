from __future__ import annotations

from django.core.management.base import BaseCommand

from corrections.management.operator import operator_id, refusal
from corrections.services import adjustment_reject
from foundation.errors import ServiceError


class Command(BaseCommand):
    help = "Reject a pending adjustment proposal; nothing moves. The proposer cannot reject it."

    def add_arguments(self, parser) -> None:
        parser.add_argument("proposal_id", help="The proposal's id.")
        parser.add_argument("--operator", required=True, help="Username of the rejecting operator.")
        parser.add_argument("--note", default="", help="Why it is rejected (kept with the decision).")

    def handle(self, *args, **options) -> None:
        try:
            proposal = adjustment_reject(
                proposal_id=options["proposal_id"],
                operator_id=operator_id(options["operator"]),
                note=options["note"],
            )
        except ServiceError as error:
            raise refusal(error) from error
        self.stdout.write(f"Proposal {proposal.id} rejected.")
