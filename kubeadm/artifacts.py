"""An air-gapped artifact set: the files a machine needs to run kubeadm without a network, and
the rules that decide whether a set is whole.

The layout (agreed with the test bed, which builds such sets from its own binaries)::

    <set>/kubernetes-version      one line, e.g. v1.37.2
    <set>/architecture            one line, e.g. amd64
    <set>/SHA256SUMS              sha256sum format ("<hex>  <relative path>"), every other file listed
    <set>/bin/{kubeadm,kubelet,kubectl,crictl,containerd,containerd-shim-runc-v2,ctr,runc}
    <set>/systemd/{kubelet.service,10-kubeadm.conf,containerd.service}
    <set>/images/<name>.tar       OCI image archives

Pure: the artifacts app reads files and archives and hands their text here.
"""

from __future__ import annotations

import json
import posixpath
import re

from kubeadm.errors import KubeadmError
from kubeadm.prepare import BIN_DIR, KUBELET_DROPIN, SBIN_DIR, SYSTEMD_DIR
from kubeadm.versions import parse_version

VERSION_FILE = "kubernetes-version"
ARCHITECTURE_FILE = "architecture"
SUMS_FILE = "SHA256SUMS"
BINARIES = ("kubeadm", "kubelet", "kubectl", "crictl", "containerd", "containerd-shim-runc-v2", "ctr", "runc")
KUBERNETES_BINARIES = ("kubeadm", "kubelet", "kubectl", "crictl")
RUNTIME_BINARIES = ("containerd", "containerd-shim-runc-v2", "ctr", "runc")
UNITS = ("kubelet.service", "10-kubeadm.conf", "containerd.service")
REQUIRED = tuple(f"bin/{name}" for name in BINARIES) + tuple(f"systemd/{name}" for name in UNITS)
# Bounds for what an import reads: a set holds a few dozen files; SHA256SUMS is a few KiB.
MAX_FILES = 200
MAX_SUMS_BYTES = 64 * 1024
MAX_PATH = 200
_HEX = re.compile(r"^[0-9a-f]{64}$")
_PATH = re.compile(r"^[A-Za-z0-9._+-]+(/[A-Za-z0-9._+-]+)*$")
_ARCH = re.compile(r"^[a-z0-9]{2,16}$")


class SetError(ValueError):
    """The set is not whole or not what it says; the message names the file."""


def check_path(path: str) -> str:
    """A relative path inside a set: no absolute path, no "..", no odd characters."""
    if (
        len(path) > MAX_PATH
        or not _PATH.match(path)
        or any(part in ("", ".", "..") for part in path.split("/"))
        or posixpath.normpath(path) != path
    ):
        raise SetError(f"{path[:MAX_PATH]!r} is not a plain relative path inside the set")
    return path


def parse_sums(text: str) -> dict[str, str]:
    """SHA256SUMS as path -> hex digest (``sha256sum``'s "<hex>  <path>", or "<hex> *<path>")."""
    if len(text.encode()) > MAX_SUMS_BYTES:
        raise SetError(f"{SUMS_FILE} is larger than {MAX_SUMS_BYTES} bytes")
    sums: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        digest, sep, path = line.partition(" ")
        path = path[1:] if path.startswith((" ", "*")) else path
        if not sep or not _HEX.match(digest.lower()):
            raise SetError(f"{SUMS_FILE} line {number} is not '<sha256>  <path>': {line[:100]!r}")
        path = check_path(path)
        if path in (SUMS_FILE,):
            raise SetError(f"{SUMS_FILE} line {number} lists {SUMS_FILE} itself")
        if path in sums:
            raise SetError(f"{SUMS_FILE} lists {path} twice")
        sums[path] = digest.lower()
        if len(sums) > MAX_FILES:
            raise SetError(f"{SUMS_FILE} lists more than {MAX_FILES} files")
    return sums


def render_sums(sums: dict[str, str]) -> str:
    return "".join(f"{digest}  {path}\n" for path, digest in sorted(sums.items()))


def check_identity(version_text: str, architecture_text: str) -> tuple[str, str]:
    """(version "v1.37.2", architecture "amd64") from the two one-line files."""
    version = version_text.strip()
    try:
        parse_version(version, field=VERSION_FILE)
    except KubeadmError as exc:
        raise SetError(f"{VERSION_FILE}: {exc}") from None
    if not version.startswith("v"):
        version = "v" + version
    architecture = architecture_text.strip()
    if not _ARCH.match(architecture):
        raise SetError(f"{ARCHITECTURE_FILE}: {architecture[:40]!r} is not an architecture such as amd64")
    return version, architecture


def check_complete(sums: dict[str, str], present: set[str]) -> None:
    """Every file SHA256SUMS lists is there, every file there is listed, the required ones are
    all listed and there is at least one image. Raises naming the first file that is not so."""
    listed = set(sums) | {SUMS_FILE, VERSION_FILE, ARCHITECTURE_FILE}
    for path in sorted(present - listed):
        raise SetError(f"{path} is in the set but not listed in {SUMS_FILE}")
    for path in sorted(set(sums) - present):
        raise SetError(f"{SUMS_FILE} lists {path}, which is not in the set")
    for path in REQUIRED:
        if path not in sums:
            raise SetError(f"the set has no {path} (a set holds {', '.join(REQUIRED)} and images/*.tar)")
    if not any(p.startswith("images/") and p.endswith(".tar") for p in sums):
        raise SetError("the set has no images/<name>.tar (the control plane's images and pause)")


def destination(path: str) -> tuple[str, int] | None:
    """Where a set's file is installed on a machine and its mode (None: not installed, e.g. images)."""
    folder, _, name = path.partition("/")
    if folder == "bin" and name in BINARIES:
        return (f"{SBIN_DIR if name == 'runc' else BIN_DIR}/{name}", 0o755)
    if folder == "systemd" and name == "10-kubeadm.conf":
        return (KUBELET_DROPIN, 0o644)
    if folder == "systemd" and name in UNITS:
        return (f"{SYSTEMD_DIR}/{name}", 0o644)
    return None


# kubeadm's documented kubelet unit and drop-in start /usr/bin/kubelet (where the packages put
# it), but a set's binaries go where destination() says (/usr/local/bin, owned by no package
# manager): installed as they are, the unit would start a kubelet that is not there.
_PACKAGE_BIN = re.compile(r"^(ExecStart(?:Pre|Post)?=[-@:+!]*)/usr/bin/(" + "|".join(BINARIES) + r")(?=\s|$)", re.M)


def installed_content(path: str, data: bytes) -> bytes:
    """A set's file as it is installed: a unit's ExecStart names the set's binary where the set
    installs it; every other file as it is."""
    if not path.startswith("systemd/"):
        return data
    text = data.decode()

    def ours(found: re.Match[str]) -> str:
        placed = destination(f"bin/{found.group(2)}")
        return found.group(1) + (placed[0] if placed else f"/usr/bin/{found.group(2)}")

    return _PACKAGE_BIN.sub(ours, text).encode()


# What names an image in an OCI archive's index.json (containerd's export and `ctr import`).
_NAME_ANNOTATIONS = ("io.containerd.image.name", "org.opencontainers.image.ref.name")


def image_names(index_json: bytes, manifest_json: bytes | None = None) -> list[str]:
    """The image references an archive holds: OCI index.json annotations (a full reference), or a
    docker-save manifest.json's RepoTags. An annotation that is only a tag ("3.10") is no name."""
    names: list[str] = []
    try:
        index = json.loads(index_json) if index_json else {}
    except ValueError:
        index = {}
    for manifest in index.get("manifests", []) if isinstance(index, dict) else []:
        annotations = (manifest.get("annotations") or {}) if isinstance(manifest, dict) else {}
        for key in _NAME_ANNOTATIONS:
            value = annotations.get(key, "")
            if isinstance(value, str) and ("/" in value or ":" in value) and value not in names:
                names.append(value)
                break
    if not names and manifest_json:
        try:
            entries = json.loads(manifest_json)
        except ValueError:
            entries = []
        for entry in entries if isinstance(entries, list) else []:
            for tag in (entry.get("RepoTags") or []) if isinstance(entry, dict) else []:
                if isinstance(tag, str) and tag not in names:
                    names.append(tag)
    return names


# --- what a machine's role needs ----------------------------------------------------------------

# The images only a control plane runs: its static Pods. kubeadm's ImagePull preflight pulls them
# at init and at join --control-plane, never at a worker's join; a worker runs kube-proxy and
# pause, and CoreDNS may be scheduled on it, so those archives go to every machine.
CONTROL_PLANE_IMAGES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd")


def image_component(reference: str) -> str:
    """The image's own name in a reference: "registry.k8s.io/kube-apiserver:v1.37.2" ->
    "kube-apiserver" (a registry's port, a tag or a digest is no part of it)."""
    name = reference.split("@", 1)[0].rsplit("/", 1)[-1]
    return name.split(":", 1)[0]


def control_plane_only(path: str, images: list[str]) -> bool:
    """An image archive every image of which only a control plane runs. An archive whose images
    are not known (none listed) is not: it is sent, as is any other file of the set."""
    return (
        path.startswith("images/")
        and bool(images)
        and all(image_component(name) in CONTROL_PLANE_IMAGES for name in images)
    )


def for_role(files: dict[str, list[str]], *, control_plane: bool) -> tuple[list[str], list[str]]:
    """(needed, left out): the set's paths (path -> the images its archive holds, [] for other
    files) a machine of that role needs, and those it does not (a worker: the control-plane
    image archives). Both sorted."""
    left_out = [] if control_plane else sorted(p for p, names in files.items() if control_plane_only(p, names))
    return sorted(set(files) - set(left_out)), left_out


def left_out_images(files: dict[str, list[str]], left_out: list[str]) -> list[str]:
    """The image names (kube-apiserver, etcd…) of the archives left out, in kubeadm's order."""
    names = {image_component(name) for path in left_out for name in files.get(path, [])}
    return [name for name in CONTROL_PLANE_IMAGES if name in names] + sorted(names - set(CONTROL_PLANE_IMAGES))
