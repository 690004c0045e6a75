"""What ``manage.py cluster init`` and ``manage.py node join`` share: start, then follow live.

Exit status: 0 when the operation succeeded; 1 when it failed, was cancelled or interrupted
(resume it with ``manage.py operation resume ID --follow``); 2 when it was refused before
anything ran or the input was wrong.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError

from core.permissions import OPERATE, can
from operations.follow import follow
from operations.models import Operation

REFUSED = 2
# Printed when nothing picked the operation up: the commands only queue work.
WORKER_HINT_AFTER = 10.0


def acting_user(username: str | None, cluster):
    if not username:
        return None
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise CommandError(f"there is no user {username!r}", returncode=REFUSED)
    if not can(user, OPERATE, cluster):
        raise CommandError(f"{username} may not operate cluster {cluster.name}", returncode=REFUSED)
    return user


def split_names(values: list[str]) -> list[str]:
    """``--skip-phases a,b --skip-phases c`` -> [a, b, c]."""
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def follow_to_exit(command, operation: Operation, *, wait: bool = True) -> None:
    """Print the operation's events as they happen and exit with its outcome."""
    out = command.stdout
    out.write(f"{operation} queued: {operation.get_absolute_url()}")
    if not wait:
        return

    def write(line: str) -> None:
        out.write(line)
        out.flush()

    def nobody_home() -> None:
        if Operation.objects.filter(pk=operation.pk, status=Operation.Status.QUEUED, last_seq=0).exists():
            write(
                f"(still queued after {WORKER_HINT_AFTER:.0f} s: is a worker running? `bin/run` or "
                "`manage.py qcluster` runs operations; this command only follows)"
            )

    timer = threading.Timer(WORKER_HINT_AFTER, nobody_home)
    timer.daemon = True
    timer.start()
    try:
        status = follow(operation, write)
    finally:
        timer.cancel()
    if status != Operation.Status.SUCCEEDED:
        write(
            f"operation {operation.pk} {status}; after fixing the cause: manage.py operation resume {operation.pk} --follow"
        )
    sys.exit(0 if status == Operation.Status.SUCCEEDED else 1)


# --- subcommands the workflows add ----------------------------------------------------------
# ``manage.py cluster`` and ``manage.py node`` live with their nouns, but most of their actions are
# workflows (init, join, upgrade, reset, ...) and a noun may not import the workflows above it: the
# workflows app registers its subcommands here from its AppConfig.ready(), and each command adds
# and runs what is registered under its name.


@dataclass(frozen=True)
class Subcommands:
    actions: tuple[str, ...]  # the names ``add_parsers`` adds
    add_parsers: Callable[[Any], None]  # (the command's argparse subparsers) -> None
    run: Callable[..., None]  # (command, action, **options) -> None


_SUBCOMMANDS: dict[str, list[Subcommands]] = {}


def register_subcommands(command: str, subcommands: Subcommands) -> None:
    """Add ``subcommands`` to ``manage.py COMMAND``, after its own actions, in registration order."""
    registered = _SUBCOMMANDS.setdefault(command, [])
    if subcommands not in registered:
        registered.append(subcommands)


def add_registered_parsers(command: str, actions: Any) -> None:
    for subcommands in _SUBCOMMANDS.get(command, []):
        subcommands.add_parsers(actions)


def registered_runner(command: str, action: str) -> Callable[..., None] | None:
    """What runs ``manage.py COMMAND ACTION`` when another app registered it, else None."""
    for subcommands in _SUBCOMMANDS.get(command, []):
        if action in subcommands.actions:
            return subcommands.run
    return None
