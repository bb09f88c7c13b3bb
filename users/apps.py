from django.apps import AppConfig


class UsersConfig(AppConfig):
    name = "users"

    def ready(self) -> None:
        from users import signals  # noqa: F401  (auth cache invalidation)
