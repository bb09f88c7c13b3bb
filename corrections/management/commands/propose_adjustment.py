from __future__ import annotations

from django.core.management.base import BaseCommand

from corrections.management.operator import operator_id, refusal
from corrections.services import adjustment_propose
from foundation.currencies import format_major
from foundation.errors import ServiceError


class Command(BaseCommand):
    help = (
        "Propose an adjustment of a user wallet (minor units: positive credits, negative debits). "
        "Moves nothing until another operator approves it (approve_adjustment)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--wallet", required=True, help="The wallet's id.")
        parser.add_argument("--amount", required=True, type=int, help="Minor units; negative for a debit.")
        parser.add_argument("--reason", required=True, help="Why (becomes the adjustment's description).")
        parser.add_argument("--operator", required=True, help="Username of the operator proposing it.")

    def handle(self, *args, **options) -> None:
        try:
            proposal = adjustment_propose(
                wallet_id=options["wallet"],
                amount=options["amount"],
                reason=options["reason"],
                operator_id=operator_id(options["operator"]),
            )
        except ServiceError as error:
            raise refusal(error) from error
        amount = format_major(proposal.amount, proposal.currency)
        self.stdout.write(
            f"Proposal {proposal.id}: {amount} on wallet {proposal.wallet_id}, awaiting approval."
        )
