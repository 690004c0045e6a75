from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Kubeboard core"

    def ready(self) -> None:
        # Signal receivers: open streams learn about lost access; workers write heartbeats.
        from core import access, heartbeat  # noqa: F401
        # SQLite files (password hashes, sessions) are created and kept owner-only.
        from core import sqlite_files  # noqa: F401
