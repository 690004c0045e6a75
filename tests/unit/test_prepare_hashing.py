"""The script Prepare hashes files with on a machine, run by a real sh: OpenSSL's digest where
the machine has openssl, coreutils' sha256sum where it does not, the same answer either way."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from workflows.prepare_steps import SHA256_EACH, digests


def _hash_on_machine(path_dirs: list[Path], *paths: Path) -> dict[str, str]:
    result = subprocess.run(
        ["/bin/sh", "-c", SHA256_EACH, "kubeboard", *map(str, paths)],
        env={"PATH": ":".join(map(str, path_dirs))},
        capture_output=True,
        text=True,
        check=True,
    )
    return digests(result.stdout.splitlines())


@pytest.fixture
def files(tmp_path):
    made = {}
    for name, data in (("kubeadm", b"k" * 100_000), ("with space.tar", b"image"), ("empty", b"")):
        made[name] = tmp_path / name
        made[name].write_bytes(data)
    return made


def _bin_with(tmp_path: Path, *programs: str) -> Path:
    """A directory holding only those programs (a machine with nothing else on its PATH)."""
    directory = tmp_path / ("bin-" + "-".join(programs))
    directory.mkdir()
    for program in programs:
        found = shutil.which(program)
        if found is None:
            pytest.skip(f"{program} is not installed here")
        os.symlink(found, directory / program)
    return directory


@pytest.mark.parametrize("programs", [("openssl", "sha256sum"), ("sha256sum",)], ids=["openssl", "sha256sum only"])
def test_each_regular_file_is_hashed_and_nothing_else_is_listed(tmp_path, files, programs):
    directory = tmp_path / "a-directory"
    directory.mkdir()
    missing = tmp_path / "missing"
    found = _hash_on_machine([_bin_with(tmp_path, *programs)], *files.values(), directory, missing)
    assert found == {str(path): hashlib.sha256(path.read_bytes()).hexdigest() for path in files.values()}


def test_openssl_is_the_one_used_where_the_machine_has_it(tmp_path, files):
    # A machine whose only hashing program is openssl: the files are still all hashed.
    found = _hash_on_machine([_bin_with(tmp_path, "openssl")], files["kubeadm"])
    assert found == {str(files["kubeadm"]): hashlib.sha256(files["kubeadm"].read_bytes()).hexdigest()}


def test_lines_that_are_not_digests_are_ignored():
    lines = ["noise from a login shell", "a" * 64 + "  /x", "B" * 64 + " */y z", "c" * 63 + "  /short"]
    assert digests(lines) == {"/x": "a" * 64, "/y z": "b" * 64}
