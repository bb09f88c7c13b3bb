from django.contrib.auth.models import AbstractUser, UserManager
from django.db import models
from django.db.models.functions import Lower


def username_match(username: str) -> models.Q:
    """Rows whose username equals `username` regardless of case, as the database folds case:
    the same lower() as users_user_username_ci_unique, so the look-up can use that index."""
    return models.Q(models.lookups.Exact(Lower("username"), Lower(models.Value(username))))


class CaseInsensitiveUserManager(UserManager):
    def get_by_natural_key(self, username: str) -> "User":
        # ModelBackend (the API login and the admin login) and createsuperuser find users
        # here. users_user_username_ci_unique allows one user per case-folded username,
        # so "alice" finds "Alice" and never two users.
        return self.get(username_match(username))


class User(AbstractUser):
    """The account that owns wallets. Custom from day one so it can grow safely.

    Usernames and e-mail addresses are unique regardless of case ("Alice" and "alice"
    are one account); the spelling given at registration is kept and shown.
    """

    email = models.EmailField("email address")

    objects = CaseInsensitiveUserManager()

    class Meta:
        db_table = "users_user"
        constraints = [
            models.UniqueConstraint(Lower("email"), name="users_user_email_ci_unique"),
            models.UniqueConstraint(Lower("username"), name="users_user_username_ci_unique"),
        ]
