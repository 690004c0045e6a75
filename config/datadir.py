"""Where the embedded installation lives, and the refusal of a command pointed at the wrong place.

Read by config.settings and by manage.py before Django starts: a command that needs the database,
run with a data directory that holds none (a mistyped ``KUBEBOARD_DATA_DIR``, another checkout),
is refused with what to do, before the settings would create a secret key and an empty database
file there. No Django imports: manage.py calls this before Django is set up.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Mapping, Sequence
from contextlib import closing
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

# Commands that may start from an empty data directory: they make the database, or need none.
WITHOUT_DATABASE = frozenset({"migrate", "makemigrations", "check", "help", "version", "--help", "-h", "--version"})


def data_dir(environ: Mapping[str, str] = os.environ) -> Path:
    return Path(environ.get("KUBEBOARD_DATA_DIR", BASE_DIR / "var")).resolve()


def sqlite_path(environ: Mapping[str, str] = os.environ) -> Path:
    return Path(environ.get("KUBEBOARD_SQLITE_PATH", data_dir(environ) / "kubeboard.sqlite3"))


def _is_migrated(path: Path) -> bool | None:
    """Whether the SQLite file holds Django's migration table (None: cannot tell, let Django say)."""
    if path.stat().st_size == 0:
        return False
    try:
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as connection:
            found = connection.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'django_migrations'"
            ).fetchone()
    except sqlite3.Error:
        return None
    return found is not None


def refusal(argv: Sequence[str], environ: Mapping[str, str] = os.environ) -> str | None:
    """Why ``manage.py`` with these arguments must not run here, or None."""
    command = argv[1] if len(argv) > 1 else "help"
    if command in WITHOUT_DATABASE or environ.get("DATABASE_URL"):
        return None
    database = sqlite_path(environ)
    where = f"the data directory {data_dir(environ)}"
    if "KUBEBOARD_SQLITE_PATH" in environ:
        where = f"KUBEBOARD_SQLITE_PATH ({database})"
    if not database.exists():
        problem = f"Kubeboard has no database in {where}: {database} does not exist."
    elif _is_migrated(database) is False:
        problem = f"{database} in {where} is not a Kubeboard database (it was never migrated)."
    else:
        return None
    return (
        f"{problem}\n"
        "Run manage.py with the data directory Kubeboard was set up with: by default var/ next to manage.py "
        "(what bin/run uses), or the KUBEBOARD_DATA_DIR it was started with. To start a new installation in it, "
        "run `.venv/bin/python manage.py migrate` first (bin/run does). Nothing was created."
    )
