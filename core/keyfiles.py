"""Key files of the embedded default: made once, kept beside the database, never in it."""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Callable
from pathlib import Path


def _create_private_file(path: Path, content: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # O_EXCL: two processes starting together must not overwrite each other's key.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(content + "\n")


def load_or_create(path: Path, make: Callable[[], str], announce: str | None = None) -> str:
    path = Path(path)
    if not path.exists():
        try:
            _create_private_file(path, make())
            if announce:
                print(announce.format(path=path), file=sys.stderr)
        except FileExistsError:
            pass
    return path.read_text().strip()


def load_or_create_secret_key(path: Path) -> str:
    return load_or_create(path, lambda: secrets.token_urlsafe(50))
