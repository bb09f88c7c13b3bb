from django.apps import AppConfig


class DashboardConfig(AppConfig):
    """The operators' "Ledger overview" in the admin (docs/operations.md)."""

    name = "dashboard"

    def ready(self) -> None:
        from dashboard import recording  # noqa: F401  (records rate-limit refusals in the audit trail)
