from django.core.management.base import BaseCommand, CommandError

from transfers.holds import holds_expire


class Command(BaseCommand):
    help = (
        "Release every pending hold whose expires_at has passed (what the expire-holds beat task "
        "runs every HOLD_EXPIRY_INTERVAL_SECONDS). Safe to run at any time, and alongside the task."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--batch-size", type=int, default=None, help="Holds read per batch.")

    def handle(self, *args, **options) -> None:
        batch_size = options["batch_size"]
        if batch_size is not None and batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        count = holds_expire(batch_size=batch_size)
        self.stdout.write(f"Expired {count} holds.")
