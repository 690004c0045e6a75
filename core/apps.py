from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Kubeboard core"

    def ready(self) -> None:
        # Signal receivers: open streams learn about lost access; workers write heartbeats.
        from core import access, heartbeat  # noqa: F401
