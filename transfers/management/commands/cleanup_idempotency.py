from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from transfers.idempotency import idempotency_cleanup


class Command(BaseCommand):
    help = "Delete idempotency records older than IDEMPOTENCY_KEY_TTL_HOURS (or --older-than), in batches."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--older-than", type=int, default=None, metavar="HOURS")
        parser.add_argument("--dry-run", action="store_true", help="Only count what would be deleted.")

    def handle(self, *args, **options) -> None:
        hours = options["older_than"]
        if hours is None:
            hours = settings.IDEMPOTENCY_KEY_TTL_HOURS
        if hours < 0:
            raise CommandError("--older-than must be zero or more hours")
        count = idempotency_cleanup(older_than_hours=hours, dry_run=options["dry_run"])
        verb = "Would delete" if options["dry_run"] else "Deleted"
        self.stdout.write(f"{verb} {count} idempotency records older than {hours} hours.")
