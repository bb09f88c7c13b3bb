from django.contrib.admin.apps import AdminConfig


class WalletAdminConfig(AdminConfig):
    """The Django admin, served by WalletAdminSite (brute-force-guarded, audited login)."""

    default_site = "wallet_project.admin_site.WalletAdminSite"
