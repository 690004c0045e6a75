"""Importing an air-gapped artifact set (artifacts.services): from a directory or an uploaded
archive, every file checked against SHA256SUMS, refused naming the file, nothing kept of a
refused set, one audit record either way."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from artifacts.models import ArtifactSet
from artifacts.services import ImportRefused, import_archive, import_directory, verify_stored
from audit.models import AuditEvent
from tests.support import prepare_bed

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def store(tmp_path, settings):
    settings.ARTIFACTS_DIR = tmp_path / "store"
    return settings.ARTIFACTS_DIR


@pytest.fixture
def a_set(tmp_path) -> Path:
    return prepare_bed.artifact_set(tmp_path / "set")


def _records(outcome: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action="artifacts.imported", outcome=outcome))


def test_a_whole_set_is_imported_with_each_files_checksum_and_image_names(a_set, store):
    artifact_set = import_directory(a_set)
    assert artifact_set.name == "v1.37.2-amd64"
    files = {f.path: f for f in artifact_set.files.all()}
    assert set(files) >= {"bin/kubeadm", "bin/runc", "systemd/10-kubeadm.conf", "images/pause.tar"}
    assert files["images/pause.tar"].images == [prepare_bed.PAUSE]
    assert (store / "v1.37.2-amd64/bin/kubeadm").read_bytes() == (a_set / "bin/kubeadm").read_bytes()
    assert not [p for p in store.iterdir() if p.name.startswith(".")]  # no staging left
    assert verify_stored(artifact_set) == []
    [record] = _records("success")
    assert record.details["set"] == "v1.37.2-amd64" and record.details["replaced"] is False
    # Again: the same set replaces the first (one row per version and architecture).
    import_directory(a_set)
    assert ArtifactSet.objects.count() == 1


@pytest.mark.parametrize(
    ("damage", "named"),
    [
        (lambda d: (d / "bin/kubelet").write_bytes(b"other"), "bin/kubelet: SHA-256 "),
        (lambda d: (d / "images/extra.tar").write_bytes(b"x"), "images/extra.tar is in the set but not listed"),
        (lambda d: (d / "bin/ctr").unlink(), "SHA256SUMS lists bin/ctr, which is not in the set"),
        (lambda d: (d / "kubernetes-version").write_text("v1.20.0\n"), "kubernetes-version: "),
        (lambda d: (d / "SHA256SUMS").unlink(), "the set has no SHA256SUMS"),
        (lambda d: os.symlink("/etc/passwd", d / "bin/evil"), "bin/evil is a symbolic link"),
    ],
)
def test_a_set_that_is_not_whole_is_refused_naming_the_file(a_set, store, damage, named):
    damage(a_set)
    with pytest.raises(ImportRefused) as info:
        import_directory(a_set)
    assert named in str(info.value)
    assert ArtifactSet.objects.count() == 0
    assert not store.exists() or not list(store.iterdir())
    [record] = _records("denied")
    assert named in record.details["error"]


def test_an_image_archive_without_a_name_is_refused(a_set):
    (a_set / "images/pause.tar").write_bytes(prepare_bed.oci_archive("3.10"))
    prepare_bed.write_sums(a_set)
    with pytest.raises(ImportRefused, match="images/pause.tar names no image"):
        import_directory(a_set)


def _tar(a_set: Path, *, top: str = "set", extra: list[tarfile.TarInfo] | None = None) -> io.BytesIO:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as archive:
        archive.add(a_set, arcname=top)
        for info in extra or []:
            archive.addfile(info, io.BytesIO(b"x" * info.size))
    out.seek(0)
    return out


def test_an_uploaded_archive_is_imported_the_same_way(a_set):
    artifact_set = import_archive(_tar(a_set), name="set.tar.gz")
    assert artifact_set.name == "v1.37.2-amd64" and artifact_set.source == "upload set.tar.gz"
    assert verify_stored(artifact_set) == []


@pytest.mark.parametrize(
    ("member", "named"),
    [
        ("set/../escape", "not a plain relative path"),
        ("other/bin/kubeadm", "outside the archive's top directory"),
    ],
)
def test_an_archive_with_a_path_outside_the_set_is_refused(a_set, member, named):
    info = tarfile.TarInfo(member)
    info.size = 1
    with pytest.raises(ImportRefused, match=named):
        import_archive(_tar(a_set, extra=[info]), name="bad.tar.gz")
    assert ArtifactSet.objects.count() == 0


def test_a_link_in_an_archive_is_refused(a_set):
    link = tarfile.TarInfo("set/bin/link")
    link.type = tarfile.SYMTYPE
    link.linkname = "/etc/shadow"
    with pytest.raises(ImportRefused, match="set/bin/link is not a plain file"):
        import_archive(_tar(a_set, extra=[link]), name="bad.tar.gz")


def test_a_set_larger_than_the_bound_is_refused(a_set, settings):
    settings.ARTIFACT_MAX_BYTES = 1000
    with pytest.raises(ImportRefused, match="larger than"):
        import_archive(_tar(a_set), name="big.tar.gz")
    with pytest.raises(ImportRefused, match="larger than"):
        import_directory(a_set)


def test_not_an_archive_is_refused():
    with pytest.raises(ImportRefused, match="not a tar archive"):
        import_archive(io.BytesIO(b"no tar here" * 100), name="x.tar")


def test_the_command_imports_and_lists(a_set, capsys):
    call_command("artifacts", "import", str(a_set))
    assert "Imported v1.37.2-amd64:" in capsys.readouterr().out
    call_command("artifacts", "list")
    assert capsys.readouterr().out.startswith("v1.37.2-amd64\t")
    (a_set / "bin/kubelet").write_bytes(b"other")
    with pytest.raises(CommandError) as info:
        call_command("artifacts", "import", str(a_set))
    assert info.value.returncode == 2 and "bin/kubelet: SHA-256" in str(info.value)


def test_a_missing_set_names_each_held_version_once():
    """One version held for two architectures is one version in the refusal, not two."""
    from types import SimpleNamespace

    from core.phases import PhaseError
    from kubeadm import prepare as knowledge
    from workflows.prepare_steps import _artifact_set

    for version, arch in (("v1.37.2", "amd64"), ("v1.37.2", "arm64"), ("v1.36.3", "amd64")):
        ArtifactSet.objects.create(kubernetes_version=version, architecture=arch)
    ctx = SimpleNamespace(cluster=SimpleNamespace(kubernetes_version="v1.38.0"))
    found = knowledge.Facts(
        distribution=knowledge.Distribution("debian", "Debian", knowledge.DEBIAN, (12,)),
        version="12",
        pretty_name="Debian 12",
        architecture="amd64",
        init_system="systemd",
    )
    with pytest.raises(PhaseError, match=r"\(held: v1\.37\.2, v1\.36\.3\)"):
        _artifact_set(ctx, found)
