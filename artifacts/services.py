"""Importing an artifact set: from a directory on Kubeboard's host or from an uploaded archive;
deleting one.

Either way the files are copied in 1 MiB pieces (never read whole), hashed while they are
copied, and compared with the set's SHA256SUMS (kubeadm.artifacts holds the layout and its
rules). A set whose files do not match, that has a file SHA256SUMS does not list, or that lacks
a required file is refused naming the file, and nothing of it is kept: the copy goes to a
staging directory that is renamed into place only once the whole set checked out.

Deleting a set is refused while something still needs it. What needs a set is known above this
app (clusters, machines, operations): the workflows app registers the function that finds it
(``register_use_finder``). The rows go first, in one transaction, then the directory: a crash in
between leaves a directory without rows (never rows without files), which the next import of
that set replaces and ``leftover_directories`` reports. Import and delete hold the store's lock
(a file lock, so across web and worker processes) while they swap a set's rows and directory.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import logging
import os
import shutil
import tarfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from django.conf import settings
from django.db import transaction

from artifacts.models import ArtifactFile, ArtifactSet
from audit.services import record, refusals
from kubeadm import artifacts as layout
from kubeadm.versions import with_v

logger = logging.getLogger(__name__)

CHUNK = 1024 * 1024
# An OCI archive's index.json / docker manifest.json are a few KiB; read at most this much of one.
MAX_INDEX_BYTES = 1024 * 1024


class ImportRefused(Exception):
    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


def _store() -> Path:
    root = Path(settings.ARTIFACTS_DIR)
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    return root


# The prefix of a deleted set's directory while it is being removed.
DELETED_PREFIX = ".deleted-"


@contextmanager
def _store_lock() -> Iterator[None]:
    """Held while a set's rows and its directory change together (import's swap, a delete), so a
    delete never removes the directory an import of the same set has just put in place. A file
    lock on the store directory itself: it holds across web and worker processes and is let go
    when a process dies."""
    descriptor = os.open(_store(), os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # releases the lock


def _sweep_deleted() -> None:
    """Remove what a delete that stopped half-way left (its rows are gone already)."""
    for entry in _store().glob(f"{DELETED_PREFIX}*"):
        shutil.rmtree(entry, ignore_errors=True)


@contextmanager
def _staging() -> Iterator[Path]:
    staging = _store() / f".import-{uuid.uuid4().hex[:12]}"
    staging.mkdir(mode=0o700)
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _copy(source: IO[bytes], target: Path, *, limit: int) -> tuple[str, int]:
    """Copy in pieces while hashing; refuse past ``limit`` bytes in all."""
    digest = hashlib.sha256()
    size = 0
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "wb") as out:
        while chunk := source.read(CHUNK):
            size += len(chunk)
            if size > limit:
                raise ImportRefused(
                    f"{target.name}: the set is larger than {limit // (1024 * 1024)} MiB",
                    hint="KUBEBOARD_ARTIFACT_MAX_BYTES raises the bound",
                )
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest(), size


def image_names_of(path: Path) -> list[str]:
    """The references an image archive holds (its index.json or manifest.json, bounded)."""
    try:
        with tarfile.open(path, "r:") as archive:
            found: dict[str, bytes] = {}
            for member in archive:
                if member.name.lstrip("./") in ("index.json", "manifest.json") and member.isfile():
                    if member.size > MAX_INDEX_BYTES:
                        continue
                    handle = archive.extractfile(member)
                    found[member.name.lstrip("./")] = handle.read() if handle else b""
                if len(found) == 2:
                    break
    except (tarfile.TarError, OSError) as exc:
        raise layout.SetError(f"{path.name} is not an image archive (tar): {exc}") from None
    return layout.image_names(found.get("index.json", b""), found.get("manifest.json"))


def _check_and_save(staging: Path, sizes: dict[str, tuple[str, int]], *, source: str, user) -> ArtifactSet:
    """The staged set checked against its SHA256SUMS, then moved into place and recorded."""
    try:
        sums = layout.parse_sums((staging / layout.SUMS_FILE).read_text(errors="replace"))
        version, architecture = layout.check_identity(
            (staging / layout.VERSION_FILE).read_text(errors="replace")[:100],
            (staging / layout.ARCHITECTURE_FILE).read_text(errors="replace")[:100],
        )
    except FileNotFoundError as exc:
        raise ImportRefused(
            f"the set has no {Path(exc.filename).name}",
            hint=f"a set holds {layout.VERSION_FILE}, {layout.ARCHITECTURE_FILE} and {layout.SUMS_FILE} at its top",
        ) from None
    except layout.SetError as exc:
        raise ImportRefused(str(exc)) from None
    try:
        layout.check_complete(sums, set(sizes))
    except layout.SetError as exc:
        raise ImportRefused(str(exc), hint="build the set again (every file listed in SHA256SUMS)") from None
    for path, expected in sorted(sums.items()):
        found = sizes[path][0]
        if found != expected:
            raise ImportRefused(
                f"{path}: SHA-256 {found} does not match SHA256SUMS ({expected})",
                hint="the file was changed or damaged on the way; copy the set again",
            )
    images: dict[str, list[str]] = {}
    for path in sums:
        if path.startswith("images/"):
            try:
                images[path] = image_names_of(staging / path)
            except layout.SetError as exc:
                raise ImportRefused(str(exc)) from None
            if not images[path]:
                raise ImportRefused(
                    f"{path} names no image (no io.containerd.image.name or org.opencontainers.image.ref.name "
                    "annotation, no RepoTags)",
                    hint="export it with `ctr images export` or `docker save` so it carries its name",
                )
    with _store_lock():
        _sweep_deleted()
        artifact_set, old = _save(staging, sums, sizes, images, version, architecture, source=source, user=user)
    if old is not None:  # the replaced copy, removed outside the lock (it can be ~1 GiB)
        shutil.rmtree(old, ignore_errors=True)
    return artifact_set


def _save(
    staging: Path,
    sums: dict[str, str],
    sizes: dict[str, tuple[str, int]],
    images: dict[str, list[str]],
    version: str,
    architecture: str,
    *,
    source: str,
    user,
) -> tuple[ArtifactSet, Path | None]:
    """The rows and the directory swapped in one transaction; the replaced directory, if any."""
    name = f"{version}-{architecture}"
    final = _store() / name
    with transaction.atomic():
        previous = (
            ArtifactSet.objects.select_for_update()
            .filter(kubernetes_version=version, architecture=architecture)
            .first()
        )
        replaced = previous is not None
        if previous is not None:
            previous.delete()
        artifact_set = ArtifactSet.objects.create(
            kubernetes_version=version,
            architecture=architecture,
            source=source[:300],
            total_bytes=sum(size for _, size in sizes.values()),
            imported_by=user if getattr(user, "pk", None) else None,
        )
        ArtifactFile.objects.bulk_create(
            ArtifactFile(
                artifact_set=artifact_set, path=path, sha256=digest, size=sizes[path][1], images=images.get(path, [])
            )
            for path, digest in sorted(sums.items())
        )
        # The old copy goes aside first, so a failure here leaves the database's rollback and
        # the old files together.
        old = None
        if final.exists():
            old = final.with_name(f".old-{name}-{uuid.uuid4().hex[:8]}")
            final.rename(old)
        staging.rename(final)
        record(
            "artifacts.imported",
            actor=user,
            details={
                "set": name,
                "files": len(sums),
                "bytes": artifact_set.total_bytes,
                "source": source[:200],
                "replaced": replaced,
            },
        )
    return artifact_set, old


def _limit() -> int:
    return int(settings.ARTIFACT_MAX_BYTES)


def import_directory(directory: str | os.PathLike, *, user=None) -> ArtifactSet:
    """Import the set in ``directory`` (``manage.py artifacts import DIR``)."""
    with refusals("artifacts.imported", ImportRefused, actor=user, details={"source": str(directory)[:200]}):
        root = Path(directory)
        if not root.is_dir():
            raise ImportRefused(f"{directory} is not a directory", hint="give the set's top directory")
        with _staging() as staging:
            sizes: dict[str, tuple[str, int]] = {}
            budget = _limit()
            for current, dirs, files in os.walk(root, followlinks=False):
                for entry in sorted(dirs + files):
                    full = Path(current) / entry
                    relative = full.relative_to(root).as_posix()
                    if full.is_symlink():
                        raise ImportRefused(f"{relative} is a symbolic link; a set holds plain files only")
                    if full.is_dir():
                        continue
                    try:
                        layout.check_path(relative)
                    except layout.SetError as exc:
                        raise ImportRefused(str(exc)) from None
                    if len(sizes) >= layout.MAX_FILES + 3:
                        raise ImportRefused(f"the set has more than {layout.MAX_FILES} files")
                    with open(full, "rb") as handle:
                        sizes[relative] = _copy(handle, staging / relative, limit=budget)
                    budget -= sizes[relative][1]
            return _check_and_save(staging, sizes, source=f"directory {root.resolve()}", user=user)


def import_archive(archive: IO[bytes], *, name: str, user=None) -> ArtifactSet:
    """Import a set uploaded as a tar archive (.tar, .tar.gz): its files at the top, or in one
    top directory. Only plain files and directories; read as a stream, bounded."""
    with refusals("artifacts.imported", ImportRefused, actor=user, details={"source": f"upload {name[:100]}"}):
        with _staging() as staging:
            sizes: dict[str, tuple[str, int]] = {}
            budget = _limit()
            try:
                stream = tarfile.open(fileobj=archive, mode="r|*")
            except tarfile.TarError as exc:
                raise ImportRefused(
                    f"{name} is not a tar archive ({exc})", hint="upload the set as .tar or .tar.gz"
                ) from None
            prefix: str | None = None
            with stream:
                try:
                    for member in stream:
                        path = member.name.removeprefix("./").rstrip("/")
                        if not path or member.isdir():
                            continue
                        if not member.isfile():
                            raise ImportRefused(f"{path[:200]} is not a plain file (links and devices are refused)")
                        if prefix is None:
                            top = path.split("/", 1)[0]
                            prefix = f"{top}/" if "/" in path and top not in ("bin", "systemd", "images") else ""
                        if prefix and not path.startswith(prefix):
                            raise ImportRefused(f"{path[:200]} is outside the archive's top directory {prefix}")
                        relative = path[len(prefix) :]
                        try:
                            layout.check_path(relative)
                        except layout.SetError as exc:
                            raise ImportRefused(str(exc)) from None
                        if relative in sizes:
                            raise ImportRefused(f"{relative} is in the archive twice")
                        if len(sizes) >= layout.MAX_FILES + 3:
                            raise ImportRefused(f"the set has more than {layout.MAX_FILES} files")
                        handle = stream.extractfile(member) or io.BytesIO()
                        sizes[relative] = _copy(handle, staging / relative, limit=budget)
                        budget -= sizes[relative][1]
                except (tarfile.TarError, EOFError, OSError) as exc:
                    raise ImportRefused(f"{name} could not be read ({exc})", hint="upload the archive again") from None
            return _check_and_save(staging, sizes, source=f"upload {name}", user=user)


class DeleteRefused(Exception):
    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


@dataclass(frozen=True)
class SetUse:
    """Something that needs a set (``blocking``: it cannot be deleted now, ``todo`` says what
    frees it), or a note on what its deletion leaves behind (shown on the confirmation page)."""

    what: str
    todo: str = ""
    blocking: bool = True


# finder(artifact_set) -> its uses (blocking first, then notes).
UseFinder = Callable[[ArtifactSet], list[SetUse]]
_USE_FINDERS: list[UseFinder] = []


def register_use_finder(finder: UseFinder) -> None:
    """Called by the apps that know what uses a set (workflows.apps), once at start-up."""
    if finder not in _USE_FINDERS:
        _USE_FINDERS.append(finder)


def uses_of(artifact_set: ArtifactSet) -> list[SetUse]:
    return [use for finder in _USE_FINDERS for use in finder(artifact_set)]


@dataclass(frozen=True)
class DeletedSet:
    name: str
    files: int
    bytes: int
    left: str  # why its directory was not removed ("": removed)
    notes: list[SetUse] = field(default_factory=list)


def get_set(key: str) -> ArtifactSet | None:
    """A set by its name (``v1.37.2-amd64``, the ``v`` optional) or its id; None when none."""
    key = key.strip()
    if key.isdigit():
        return ArtifactSet.objects.filter(pk=int(key)).first()
    version, _, architecture = key.rpartition("-")
    if not version or not architecture:
        return None
    return find_set(with_v(version), architecture)


def refusal_of(name: str, uses: list[SetUse]) -> DeleteRefused:
    blocking = [use for use in uses if use.blocking]
    todo = list(dict.fromkeys(use.todo for use in blocking if use.todo))
    return DeleteRefused(
        f"artifact set {name} is in use: " + "; ".join(use.what for use in blocking), hint="; ".join(todo)
    )


def delete_set(artifact_set: ArtifactSet, *, user=None) -> DeletedSet:
    """Delete a set's rows, then its files under ARTIFACTS_DIR; refused (DeleteRefused, one
    "denied" record) while a cluster or an operation still needs it. Machines keep the copies
    Prepare pushed to them (kubeadm.prepare.ARTIFACTS_DIR): nothing is contacted."""
    name = artifact_set.name
    identity = {
        "set": name,
        "version": artifact_set.kubernetes_version,
        "architecture": artifact_set.architecture,
    }
    with refusals("artifacts.deleted", DeleteRefused, actor=user, details=identity):
        with _store_lock():
            _sweep_deleted()
            files = artifact_set.files.count()
            size = artifact_set.total_bytes
            with transaction.atomic():
                # The record comes first: appending it takes the audit chain's head lock until this
                # transaction ends, and queueing any operation (a Prepare, an upgrade) appends its
                # operation.queued record in the transaction that inserts it. So an operation queued
                # at this moment is either committed before the uses are read below (and the
                # deletion refused), or committed after the set is gone, and its first step that
                # looks the set up refuses: no set is held. A refusal rolls this record back, and
                # ``refusals`` writes the denied one.
                record("artifacts.deleted", actor=user, details={**identity, "files": files, "bytes": size})
                locked = ArtifactSet.objects.select_for_update().filter(pk=artifact_set.pk).first()
                if locked is None:
                    raise DeleteRefused(
                        f"artifact set {name} is no longer held (deleted or imported again meanwhile)",
                        hint="reload the Artifact sets page (manage.py artifacts list)",
                    )
                uses = uses_of(locked)
                if any(use.blocking for use in uses):
                    raise refusal_of(name, uses)
                locked.delete()
            # Committed: the rows are gone, so nothing uses the directory any more. It goes aside
            # under the lock (an import of the same set may put a new one in place right after).
            aside = _store() / f"{DELETED_PREFIX}{name}-{uuid.uuid4().hex[:8]}"
            try:
                artifact_set.directory.rename(aside)
            except FileNotFoundError:
                left = "its directory was already gone"
            except OSError as exc:  # the rows are gone; the directory is reported as a leftover
                left = f"its directory {artifact_set.directory} could not be removed ({exc.strerror})"
                logger.warning("artifact set %s deleted, %s", name, left)
            else:
                left = ""
    if not left:
        shutil.rmtree(aside, ignore_errors=True)
    return DeletedSet(name=name, files=files, bytes=size, left=left, notes=uses)


def leftover_directories() -> list[str]:
    """Entries under ARTIFACTS_DIR that are no held set: a delete or an import stopped half-way
    (an import's ``.import-*`` staging directory while it copies, too). Kubeboard uses none of them."""
    root = Path(settings.ARTIFACTS_DIR)
    if not root.is_dir():
        return []
    held = {s.name for s in ArtifactSet.objects.all()}
    return sorted(entry.name for entry in root.iterdir() if entry.name not in held)


def find_set(kubernetes_version: str, architecture: str) -> ArtifactSet | None:
    return ArtifactSet.objects.filter(kubernetes_version=kubernetes_version, architecture=architecture).first()


def verify_stored(artifact_set: ArtifactSet) -> list[str]:
    """The files whose stored copy no longer matches its recorded SHA-256 (none: intact)."""
    bad = []
    for item in artifact_set.files.all():
        digest = hashlib.sha256()
        try:
            with open(item.local_path, "rb") as handle:
                while chunk := handle.read(CHUNK):
                    digest.update(chunk)
        except OSError:
            bad.append(f"{item.path} (missing)")
            continue
        if digest.hexdigest() != item.sha256:
            bad.append(item.path)
    return bad
