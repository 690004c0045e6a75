"""The embedded SQLite database holds password hashes and sessions: owner-only files.

SQLite creates its -wal and -shm files with the database file's mode, so keeping the main
file 0600 keeps all three private; existing ones are corrected on every new connection.
"""

from __future__ import annotations

import os

from django.db.backends.signals import connection_created
from django.dispatch import receiver

PRIVATE = 0o600


def database_files(name: str) -> list[str]:
    return [name + suffix for suffix in ("", "-wal", "-shm", "-journal")]


@receiver(connection_created, dispatch_uid="core_private_sqlite_files")
def make_private(sender, connection, **kwargs) -> None:
    if connection.vendor != "sqlite":
        return
    name = str(connection.settings_dict.get("NAME") or "")
    if not name or name == ":memory:" or name.startswith("file:"):
        return
    for path in database_files(name):
        try:
            os.chmod(path, PRIVATE)
        except FileNotFoundError:
            pass
