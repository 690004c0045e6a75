"""``manage.py`` pointed at a data directory without Kubeboard's database (a mistyped
KUBEBOARD_DATA_DIR, another checkout) stops with a message naming the directory and what to do,
and creates nothing there: no secret key, no empty database file, no directory."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def manage(*args: str, data_dir: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBEBOARD_") and k != "DATABASE_URL"}
    env["KUBEBOARD_DATA_DIR"] = str(data_dir)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def files_in(directory: Path) -> list[str]:
    return sorted(str(path.relative_to(directory)) for path in directory.rglob("*"))


@pytest.mark.parametrize(
    "argv", [("node", "show-key", "zeta"), ("node", "list", "zeta"), ("reset_password",)], ids=" ".join
)
def test_a_command_in_a_data_directory_that_does_not_exist_is_refused_creating_nothing(tmp_path, argv):
    data_dir = tmp_path / "elsewhere"
    result = manage(*argv, data_dir=data_dir)
    assert result.returncode == 2, result
    assert f"Kubeboard has no database in the data directory {data_dir}" in result.stderr
    assert "manage.py migrate" in result.stderr and "Nothing was created." in result.stderr
    assert "Traceback" not in result.stderr and "no such table" not in result.stderr
    assert not data_dir.exists(), "the refused command created the data directory"
    assert files_in(tmp_path) == []


def test_a_command_in_an_empty_data_directory_leaves_it_empty(tmp_path):
    result = manage("node", "show-key", "zeta", data_dir=tmp_path)
    assert result.returncode == 2 and str(tmp_path) in result.stderr
    assert files_in(tmp_path) == [], "no secret_key, no kubeboard.sqlite3"


def test_a_database_file_that_was_never_migrated_is_named_and_left_alone(tmp_path):
    (tmp_path / "kubeboard.sqlite3").touch()  # what the old refused command left behind
    before = files_in(tmp_path)
    result = manage("node", "list", "zeta", data_dir=tmp_path)
    assert result.returncode == 2
    assert f"{tmp_path / 'kubeboard.sqlite3'} in the data directory {tmp_path} is not a Kubeboard database" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr
    assert files_in(tmp_path) == before and (tmp_path / "kubeboard.sqlite3").stat().st_size == 0


def test_a_database_of_something_else_is_refused(tmp_path):
    with sqlite3.connect(tmp_path / "kubeboard.sqlite3") as other:
        other.execute("CREATE TABLE t (x)")
    result = manage("node", "list", "zeta", data_dir=tmp_path)
    assert result.returncode == 2 and "is not a Kubeboard database" in result.stderr
    assert files_in(tmp_path) == ["kubeboard.sqlite3"]


def test_commands_that_need_no_database_still_run_in_an_empty_data_directory(tmp_path):
    result = manage("help", data_dir=tmp_path / "fresh")
    assert result.returncode == 0 and "Available subcommands" in result.stdout


def test_the_readmes_show_key_line_with_another_data_directory_prints_no_key_and_creates_nothing(tmp_path):
    """The walkthrough's line as a person types it (``.venv/bin/python``, through bash, from the
    repository root), up to its redirection: pointed at a directory bin/run never used, it says
    which directory and what to do on stderr, and prints nothing that ``>> authorized_keys``
    would append."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    walkthrough = readme.split("\n## Try it on the test bed\n", 1)[1].split("\n## ", 1)[0]
    line = next(
        line for line in walkthrough.splitlines() if line.startswith(".venv/bin/python manage.py node show-key ")
    )
    command = line.split(" >> ", 1)[0].replace("CLUSTER", "zeta")
    assert command == ".venv/bin/python manage.py node show-key zeta"
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBEBOARD_") and k != "DATABASE_URL"}
    env["KUBEBOARD_DATA_DIR"] = str(tmp_path / "typo")
    result = subprocess.run(["bash", "-c", command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result
    assert result.stdout == "", "nothing to append to authorized_keys"
    assert f"Kubeboard has no database in the data directory {tmp_path / 'typo'}" in result.stderr
    assert "KUBEBOARD_DATA_DIR" in result.stderr and "var/" in result.stderr and "Nothing was created." in result.stderr
    assert files_in(tmp_path) == []
