from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Kubeboard core"

    def ready(self) -> None:
        # Signal receivers: open streams learn about lost access; workers write heartbeats.
        # SQLite files (password hashes, sessions) are created and kept owner-only.
        from core import (  # noqa: F401
            access,
            heartbeat,
            sqlite_files,  # noqa: F401
        )

        # In the daphne web process: no form parsing by Twisted (core/webserver.py says why).
        from core.webserver import install

        install()
