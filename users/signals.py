"""Keep the authentication cache honest: any change to a user retires its cached row on commit."""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from foundation.cache import invalidate_on_commit
from users.authentication import USER_AUTH_CACHE
from users.models import User


@receiver(post_save, sender=User, dispatch_uid="users_auth_cache_save")
@receiver(post_delete, sender=User, dispatch_uid="users_auth_cache_delete")
def _retire_cached_user(sender, instance: User, **kwargs) -> None:
    invalidate_on_commit(USER_AUTH_CACHE, instance.pk)
