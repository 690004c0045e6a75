from django.apps import AppConfig


class TeamsConfig(AppConfig):
    name = "teams"
    verbose_name = "Teams and roles"

    def ready(self) -> None:
        # The login hook that carries a required password change into the session.
        from teams import accounts  # noqa: F401
