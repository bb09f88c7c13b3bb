from django.contrib.auth.models import AbstractUser
from django.db import models


class User(AbstractUser):
    """The account that owns wallets. Custom from day one so it can grow safely."""

    email = models.EmailField("email address")

    class Meta:
        db_table = "users_user"
        constraints = [
            models.UniqueConstraint(models.functions.Lower("email"), name="users_user_email_ci_unique"),
        ]
