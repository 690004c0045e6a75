"""An air-gapped artifact set made from the test bed's cached binaries (issue 19).

Layout (agreed with the product's importer)::

    <set>/kubernetes-version      one line, e.g. v1.37.2
    <set>/architecture            one line, e.g. amd64
    <set>/SHA256SUMS              sha256sum format, every other file listed
    <set>/bin/{kubeadm,kubelet,kubectl,crictl,containerd,containerd-shim-runc-v2,ctr,runc}
    <set>/systemd/{kubelet.service,10-kubeadm.conf,containerd.service}
    <set>/images/<name>.tar       OCI image archives for `ctr -n k8s.io images import`

What is real and what stands in:

* ``bin/kubelet`` is kubemark's **hollow kubelet** (the test bed's kubelet; a real kubelet
  cannot run in a node sandbox), the rest are the binaries tools/build-k8s.sh and
  tools/build-runtime.sh built from the Go module proxy.
* The unit files are kubeadm's documented ones: ``kubelet.service`` and ``10-kubeadm.conf``
  from kubernetes/release ``cmd/krel/templates/latest/`` (copied into tools/testbed/units/),
  ``containerd.service`` from the containerd v2.4.2 module.
* The images carry exactly the names and tags ``kubeadm config images list`` prints for the
  version, built here as single-layer OCI images of the binaries the test bed built (the
  upstream images add a distroless base, which nothing here needs): kube-* and etcd at
  /usr/local/bin like upstream, CoreDNS (built from github.com/coredns/coredns at the tag
  kubeadm names) as /coredns, pause (kubernetes' build/pause/linux/pause.c, static) as /pause.

Layers are uncompressed tars with fixed timestamps and owners, so a set is byte-for-byte
reproducible from the same binaries (same SHA256SUMS).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tools.testbed.binaries import BinariesMissing, cache_root, find_binaries, selected_version
from tools.testbed.sandbox import BARE_ABSENT

UNITS = Path(__file__).resolve().parent / "units"
# What a set installs is exactly what a bare machine lacks.
SET_BINARIES = BARE_ABSENT
RUNTIME_BINARIES = ("containerd", "containerd-shim-runc-v2", "ctr", "runc", "crictl", "coredns", "pause")
OCI_LAYOUT = b'{"imageLayoutVersion":"1.0.0"}'
MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = "application/vnd.oci.image.layer.v1.tar"
CHUNK = 1 << 20


def runtime_bin_dir() -> Path:
    """Where tools/build-runtime.sh put containerd, runc, crictl, CoreDNS and pause."""
    return cache_root() / "runtime" / "bin"


def find_runtime() -> Path:
    path = runtime_bin_dir()
    missing = [b for b in RUNTIME_BINARIES if not os.access(path / b, os.X_OK)]
    if missing or not (path / ".complete").exists():
        raise BinariesMissing(
            f"runtime binaries incomplete in {path} (missing: {', '.join(missing) or 'build stamp'}); "
            "run `bash tools/setup-testbed.sh` (or tools/build-runtime.sh)"
        )
    return path


def go_arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


@dataclass(frozen=True)
class ImageSpec:
    ref: str  # registry.k8s.io/kube-apiserver:v1.37.2
    files: tuple[tuple[str, Path], ...]  # (path in the image, source file)
    entrypoint: tuple[str, ...]

    @property
    def archive_name(self) -> str:
        """images/<name>.tar: the last path element of the repository (coredns, pause, etcd)."""
        return self.ref.rsplit("/", 1)[-1].split(":", 1)[0] + ".tar"


def image_specs(version: str, k8s_bin: Path, runtime_bin: Path) -> list[ImageSpec]:
    """One spec per image kubeadm of ``version`` lists (its own names and tags)."""
    listed = subprocess.run(
        [str(k8s_bin / "kubeadm"), "config", "images", "list", "--kubernetes-version", version],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    specs = []
    for ref in listed:
        component = ref.rsplit("/", 1)[-1].split(":", 1)[0]
        if component in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy"):
            files = ((f"usr/local/bin/{component}", k8s_bin / component),)
            entry = (f"/usr/local/bin/{component}",)
        elif component == "etcd":
            files = tuple((f"usr/local/bin/{b}", k8s_bin / b) for b in ("etcd", "etcdctl", "etcdutl"))
            entry = ("/usr/local/bin/etcd",)
        elif component == "coredns":
            files = (("coredns", runtime_bin / "coredns"),)
            entry = ("/coredns",)
        elif component == "pause":
            files = (("pause", runtime_bin / "pause"),)
            entry = ("/pause",)
        else:
            raise ValueError(f"kubeadm lists an image this builder does not know: {ref}")
        for _, src in files:
            if not src.exists():
                raise BinariesMissing(f"{src} missing for image {ref} (run bash tools/setup-testbed.sh)")
        specs.append(ImageSpec(ref=ref, files=files, entrypoint=entry))
    return specs


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _tarinfo(name: str, size: int, mode: int, kind: bytes = tarfile.REGTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.type = size, mode, kind
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def _write_layer(spec: ImageSpec, out: Path) -> None:
    """A layer tar: parent directories, then each file (mode 0755), fixed metadata."""
    dirs: list[str] = []
    for path, _ in spec.files:
        parts = path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in dirs:
                dirs.append(d)
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        for d in dirs:
            tar.addfile(_tarinfo(d + "/", 0, 0o755, tarfile.DIRTYPE))
        for path, src in spec.files:
            with open(src, "rb") as fh:
                tar.addfile(_tarinfo(path, src.stat().st_size, 0o755), fh)


def write_oci_archive(spec: ImageSpec, dest: Path, arch: str) -> None:
    """Write ``spec`` as an OCI image layout in a tar (oci-layout, index.json, blobs)."""
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        layer = Path(tmp) / "layer.tar"
        _write_layer(spec, layer)
        layer_digest = _sha256_file(layer)
        config = json.dumps(
            {
                "architecture": arch,
                "os": "linux",
                "config": {
                    "Entrypoint": list(spec.entrypoint),
                    "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                    "User": "0",
                    "WorkingDir": "/",
                },
                "rootfs": {"type": "layers", "diff_ids": [f"sha256:{layer_digest}"]},
                "history": [
                    {"created_by": "kubeboard test bed (tools/testbed/artifacts.py)", "created": "1970-01-01T00:00:00Z"}
                ],
            },
            sort_keys=True,
        ).encode()
        config_digest = hashlib.sha256(config).hexdigest()
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": MT_MANIFEST,
                "config": {"mediaType": MT_CONFIG, "digest": f"sha256:{config_digest}", "size": len(config)},
                "layers": [{"mediaType": MT_LAYER, "digest": f"sha256:{layer_digest}", "size": layer.stat().st_size}],
            },
            sort_keys=True,
        ).encode()
        manifest_digest = hashlib.sha256(manifest).hexdigest()
        index = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": MT_INDEX,
                "manifests": [
                    {
                        "mediaType": MT_MANIFEST,
                        "digest": f"sha256:{manifest_digest}",
                        "size": len(manifest),
                        "platform": {"architecture": arch, "os": "linux"},
                        # The full name for containerd's importer, the tag for OCI tools.
                        "annotations": {
                            "io.containerd.image.name": spec.ref,
                            "org.opencontainers.image.ref.name": spec.ref.rsplit(":", 1)[1],
                        },
                    }
                ],
            },
            sort_keys=True,
        ).encode()
        partial = dest.with_name(f".{dest.name}.tmp")
        with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as tar:
            tar.addfile(_tarinfo("blobs/", 0, 0o755, tarfile.DIRTYPE))
            tar.addfile(_tarinfo("blobs/sha256/", 0, 0o755, tarfile.DIRTYPE))
            for digest, data in ((config_digest, config), (manifest_digest, manifest)):
                tar.addfile(_tarinfo(f"blobs/sha256/{digest}", len(data), 0o644), io.BytesIO(data))
            with open(layer, "rb") as fh:
                tar.addfile(_tarinfo(f"blobs/sha256/{layer_digest}", layer.stat().st_size, 0o644), fh)
            tar.addfile(_tarinfo("oci-layout", len(OCI_LAYOUT), 0o644), io.BytesIO(OCI_LAYOUT))
            tar.addfile(_tarinfo("index.json", len(index), 0o644), io.BytesIO(index))
        partial.rename(dest)


def build(dest: Path, version: str | None = None, log=print) -> Path:  # type: ignore[no-untyped-def]
    """Write the artifact set for ``version`` to ``dest`` (must not exist yet); returns it.

    Built in ``<dest>.partial`` and renamed at the end, so a set that exists is complete.
    """
    version = version or selected_version()
    if dest.exists():
        raise FileExistsError(f"{dest} exists; remove it or choose another directory")
    k8s_bin = find_binaries(version)
    runtime_bin = find_runtime()
    if not os.access(k8s_bin / "kubemark", os.X_OK):
        raise BinariesMissing(f"{k8s_bin}/kubemark missing (the set's kubelet): run bash tools/setup-testbed.sh")
    if not os.access(k8s_bin / "kube-proxy", os.X_OK):
        raise BinariesMissing(f"{k8s_bin}/kube-proxy missing (its image): run bash tools/setup-testbed.sh")
    arch = go_arch()
    work = dest.with_name(dest.name + ".partial")
    shutil.rmtree(work, ignore_errors=True)
    (work / "bin").mkdir(parents=True)
    (work / "systemd").mkdir()
    (work / "images").mkdir()
    (work / "kubernetes-version").write_text(version + "\n")
    (work / "architecture").write_text(arch + "\n")
    sources = {b: k8s_bin / b for b in ("kubeadm", "kubectl")}
    sources["kubelet"] = k8s_bin / "kubemark"  # the hollow kubelet: see the module docstring
    sources.update({b: runtime_bin / b for b in ("crictl", "containerd", "containerd-shim-runc-v2", "ctr", "runc")})
    for name in SET_BINARIES:
        shutil.copyfile(sources[name], work / "bin" / name)  # copies: a pushed set never aliases the cache
        os.chmod(work / "bin" / name, 0o755)
    for unit in ("kubelet.service", "10-kubeadm.conf", "containerd.service"):
        shutil.copyfile(UNITS / unit, work / "systemd" / unit)
        os.chmod(work / "systemd" / unit, 0o644)
    for spec in image_specs(version, k8s_bin, runtime_bin):
        log(f"artifacts: image {spec.ref} -> images/{spec.archive_name}")
        write_oci_archive(spec, work / "images" / spec.archive_name, arch)
    files = sorted(p.relative_to(work).as_posix() for p in work.rglob("*") if p.is_file())
    sums = "".join(f"{_sha256_file(work / f)}  {f}\n" for f in files)
    (work / "SHA256SUMS").write_text(sums)
    work.rename(dest)
    log(f"artifacts: set for {version} ({arch}) in {dest}: {len(files)} files")
    return dest


def newer_sources(made: Path, version: str) -> bool:
    """Whether a cached binary changed after ``made`` was written (the cache is then stale)."""
    since = made.stat().st_mtime
    sources = [cache_root() / version / "bin", runtime_bin_dir()]
    return any(f.stat().st_mtime > since for d in sources if d.is_dir() for f in d.iterdir() if f.is_file())


def cached_set(version: str | None = None) -> Path:
    """The set for ``version`` in the binary cache (built once, reused): what tests push."""
    version = version or selected_version()
    dest = cache_root() / "artifacts" / version
    if (dest / "SHA256SUMS").exists() and newer_sources(dest / "SHA256SUMS", version):
        shutil.rmtree(dest)  # a binary was rebuilt since: the set would push the old one
    if not (dest / "SHA256SUMS").exists():
        dest.parent.mkdir(parents=True, exist_ok=True)
        build(dest, version)
    return dest


def copy_set(dest: Path, version: str | None = None, log=print) -> Path:  # type: ignore[no-untyped-def]
    """Write the set for ``version`` to ``dest`` (must not exist) as a copy of the cached one.

    The set is reproducible, so the copy is byte for byte what ``build`` would write; building
    once into the cache and copying afterwards saves the images' writing and hashing on every run
    (the README's walkthrough runs this each time). A copy, not links: the directory is the
    user's, and changing a file there must never change what the tests push.
    """
    version = version or selected_version()
    if dest.exists():
        raise FileExistsError(f"{dest} exists; remove it or choose another directory")
    source = cached_set(version)
    partial = dest.with_name(dest.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(source, partial)
    partial.rename(dest)
    files = sum(1 for p in dest.rglob("*") if p.is_file())
    log(f"artifacts: set for {version} ({go_arch()}) in {dest}: {files} files")
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.testbed artifacts", description=__doc__.split("\n\n")[0])
    parser.add_argument("dir", type=Path, help="where to write the set (must not exist)")
    parser.add_argument("--version", default=selected_version())
    args = parser.parse_args(argv)
    try:
        copy_set(args.dir, args.version)
    except (BinariesMissing, FileExistsError, ValueError) as exc:
        print(f"artifacts: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
