"""A local, signed APT mirror made from the test bed's cached binaries (issue 19).

It proves the product's package-repository source against a real package manager: Kubeboard's
Prepare machine, with the cluster's repository mirror and key fingerprint pointing here, runs
apt-get in a bare node's private root and installs these packages over HTTP on the sandbox bridge.

Two repositories, as a machine at an air-gapped site sees them (the Kubernetes one once per minor
built: the package-source upgrade test builds two, signed by the same key):

* ``kubernetes/v<minor>/deb/``: a mirror laid out like pkgs.k8s.io (``<base>/v1.37/deb/``, flat:
  ``deb [signed-by=…] <base>/v1.37/deb/ /``) with its armored ``Release.key``, so the product's
  mirror setting (``PrepareSettings.repository_url`` = ``<server>/kubernetes``) is used unchanged:
  ``kubeadm``, ``kubelet``, ``kubectl`` <k8s>-1.1 and ``cri-tools`` <minor>.0-1.1 (pkgs.k8s.io's
  repository of a minor carries cri-tools of that minor; here the one crictl binary, labelled so);
* ``debian/``: a flat stand-in for the site's own distribution mirror, which is where a Debian
  machine gets ``containerd`` (pkgs.k8s.io does not carry it): ``containerd`` 2.4.2-1.

Each has ``Packages``, ``Packages.gz`` and a ``Release`` signed as ``InRelease`` and
``Release.gpg`` by one throwaway ed25519 key made per build (its public key as the binary keyring
``kubeboard-testbed-archive-keyring.gpg`` at the top, for the distribution source a node is set
up with, and armored as the Kubernetes mirror's ``Release.key``, which the product downloads and
checks against the pinned fingerprint, ``fingerprint()``). The packages, built with dpkg-deb:

* ``kubeadm``: /usr/bin/kubeadm and kubeadm's drop-in
  /usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf (as pkgs.k8s.io's kubeadm ships it);
* ``kubelet``: /usr/bin/kubelet (the hollow kubelet, kubemark) and kubelet.service;
* ``kubectl``, ``cri-tools`` (/usr/bin/crictl);
* ``containerd``: containerd, containerd-shim-runc-v2, ctr in /usr/bin, runc in /usr/sbin and
  containerd.service with ExecStart=/usr/bin/containerd (as Debian's package).

Package relations are kept to the ones between these packages (kubeadm depends on a minimum
cri-tools, not on a kubelet of its own version: kubeadm is upgraded before the kubelet);
pkgs.k8s.io's also require kubernetes-cni, iptables, conntrack and others that this repository
does not carry. No package has maintainer scripts.
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import os
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from tools.testbed.artifacts import UNITS, find_runtime, go_arch, newer_sources
from tools.testbed.binaries import cache_root, find_binaries, selected_version

KEYRING = "kubeboard-testbed-archive-keyring.gpg"
CRI_TOOLS_MINIMUM = "1.30.0"
CONTAINERD_VERSION = "2.4.2"


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    files: tuple[tuple[str, Path | bytes, int], ...]  # (path in the package, source, mode)
    depends: str = ""
    description: str = ""


def packages(version: str) -> list[Package]:
    k8s = find_binaries(version)
    rt = find_runtime()
    kv = version.lstrip("v") + "-1.1"
    cri_tools = ".".join(version.lstrip("v").split(".")[:2]) + ".0"
    containerd_unit = (
        (UNITS / "containerd.service")
        .read_bytes()
        .replace(b"ExecStart=/usr/local/bin/containerd", b"ExecStart=/usr/bin/containerd")
    )
    return [
        Package(
            "kubeadm",
            kv,
            (
                ("usr/bin/kubeadm", k8s / "kubeadm", 0o755),
                ("usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf", UNITS / "10-kubeadm.conf", 0o644),
            ),
            # A minimum, as pkgs.k8s.io's kubeadm has: kubeadm's upgrade guide installs kubeadm
            # first, with kubelet and kubectl held at the old version until the node is drained.
            depends=f"cri-tools (>= {CRI_TOOLS_MINIMUM})",
            description="Command-line utility for administering a Kubernetes cluster",
        ),
        Package(
            "kubelet",
            kv,
            (
                ("usr/bin/kubelet", k8s / "kubemark", 0o755),
                ("usr/lib/systemd/system/kubelet.service", UNITS / "kubelet.service", 0o644),
            ),
            description="Node agent for Kubernetes clusters (test bed: kubemark's hollow kubelet)",
        ),
        Package("kubectl", kv, (("usr/bin/kubectl", k8s / "kubectl", 0o755),), description="Kubernetes CLI"),
        Package(
            "cri-tools",
            cri_tools + "-1.1",
            (("usr/bin/crictl", rt / "crictl", 0o755),),
            description="Command-line utility for interacting with a container runtime",
        ),
        Package(
            "containerd",
            CONTAINERD_VERSION + "-1",
            (
                ("usr/bin/containerd", rt / "containerd", 0o755),
                ("usr/bin/containerd-shim-runc-v2", rt / "containerd-shim-runc-v2", 0o755),
                ("usr/bin/ctr", rt / "ctr", 0o755),
                ("usr/sbin/runc", rt / "runc", 0o755),
                ("usr/lib/systemd/system/containerd.service", containerd_unit, 0o644),
            ),
            description="An industry-standard container runtime (with runc)",
        ),
    ]


def _build_deb(pkg: Package, arch: str, out_dir: Path, tmp: Path) -> Path:
    root = tmp / pkg.name
    (root / "DEBIAN").mkdir(parents=True)
    size_kb = 0
    for path, src, mode in pkg.files:
        dst = root / path
        dst.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(src, bytes):
            dst.write_bytes(src)
        else:
            shutil.copyfile(src, dst)
        os.chmod(dst, mode)
        size_kb += (dst.stat().st_size + 1023) // 1024
    control = (
        f"Package: {pkg.name}\nVersion: {pkg.version}\nArchitecture: {arch}\n"
        "Maintainer: Kubeboard test bed <testbed@kubeboard.invalid>\n"
        f"Installed-Size: {size_kb}\nSection: admin\nPriority: optional\n"
        + (f"Depends: {pkg.depends}\n" if pkg.depends else "")
        + f"Description: {pkg.description}\n Built by Kubeboard's test bed from its cached binaries.\n"
    )
    (root / "DEBIAN" / "control").write_text(control)
    deb = out_dir / f"{pkg.name}_{pkg.version}_{arch}.deb"
    # gzip -1: the binaries are large and this runs on 2 shared cores; apt reads any of them.
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "-Zgzip", "-z1", "-b", str(root), str(deb)],
        check=True,
        capture_output=True,
    )
    return deb


def _digests(path: Path) -> dict[str, str]:
    hs = {n: hashlib.new(n) for n in ("md5", "sha1", "sha256")}
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            for h in hs.values():
                h.update(chunk)
    return {n: h.hexdigest() for n, h in hs.items()}


def _gpg(home: Path, *args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["gpg", "--homedir", str(home), "--batch", "--no-tty", *args],
        check=True,
        capture_output=True,
        text=True,
        **kw,  # type: ignore[arg-type]
    )


KUBERNETES_DIR = "kubernetes"  # the mirror's base, as pkgs.k8s.io's "core:/stable:"
DISTRO_DIR = "debian"  # the stand-in for the site's distribution mirror
DISTRO_PACKAGES = ("containerd",)


def kubernetes_repository(repo: Path, version: str | None = None) -> Path:
    """The pkgs.k8s.io-shaped directory of ``version``'s minor: ``<repo>/kubernetes/v1.37/deb``."""
    minor = ".".join((version or selected_version()).lstrip("v").split(".")[:2])
    return repo / KUBERNETES_DIR / f"v{minor}" / "deb"


def _index(directory: Path, arch: str, home: Path, description: str) -> None:
    """Packages, Packages.gz and Release for the .deb files in ``directory``, signed."""
    stanzas = []
    for deb in sorted(directory.glob("*.deb")):
        fields = subprocess.run(["dpkg-deb", "-f", str(deb)], check=True, capture_output=True, text=True).stdout
        d = _digests(deb)
        stanzas.append(
            fields.rstrip("\n")
            + f"\nFilename: ./{deb.name}\nSize: {deb.stat().st_size}\n"
            + f"MD5sum: {d['md5']}\nSHA1: {d['sha1']}\nSHA256: {d['sha256']}\n"
        )
    (directory / "Packages").write_text("\n".join(stanzas))
    (directory / "Packages.gz").write_bytes(gzip.compress((directory / "Packages").read_bytes(), mtime=0))
    release = [
        "Origin: Kubeboard test bed",
        "Label: kubeboard-testbed",
        f"Date: {time.strftime('%a, %d %b %Y %H:%M:%S UTC', time.gmtime())}",
        f"Architectures: {arch}",
        f"Description: {description}",
    ]
    indexes = {
        name: (_digests(directory / name), (directory / name).stat().st_size) for name in ("Packages", "Packages.gz")
    }
    for algo, label in (("md5", "MD5Sum"), ("sha1", "SHA1"), ("sha256", "SHA256")):
        release.append(f"{label}:")
        release += [f" {digests[algo]} {size} {name}" for name, (digests, size) in indexes.items()]
    (directory / "Release").write_text("\n".join(release) + "\n")
    _gpg(home, "--clearsign", "-o", str(directory / "InRelease"), str(directory / "Release"))
    _gpg(home, "--armor", "--detach-sign", "-o", str(directory / "Release.gpg"), str(directory / "Release"))


def build(dest: Path, version: str | None = None, *more: str) -> Path:
    """Write the repositories for ``version`` (and each of ``more``: one Kubernetes repository per
    minor, as pkgs.k8s.io has, all signed by the same key) under ``dest`` (must not exist)."""
    chosen = (version or selected_version(), *more)
    if dest.exists():
        raise FileExistsError(f"{dest} exists; remove it or choose another directory")
    arch = go_arch()
    work = dest.with_name(dest.name + ".partial")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    kubernetes = {v: kubernetes_repository(work, v) for v in chosen}
    distro = work / DISTRO_DIR
    for directory in (*kubernetes.values(), distro):
        directory.mkdir(parents=True)
    with tempfile.TemporaryDirectory(dir=work.parent) as tmp:
        for v, directory in kubernetes.items():
            for pkg in packages(v):
                if pkg.name not in DISTRO_PACKAGES:
                    _build_deb(pkg, arch, directory, Path(tmp) / v)
        for pkg in packages(chosen[0]):
            if pkg.name in DISTRO_PACKAGES:
                _build_deb(pkg, arch, distro, Path(tmp))
        # A throwaway signing key, made for these repositories and then forgotten (only its
        # public half stays: the keyring a node's distribution source names with signed-by, and
        # the mirror's Release.key that Prepare downloads and checks against the pinned fingerprint).
        home = Path(tmp) / "gnupg"
        home.mkdir(mode=0o700)
        try:
            _gpg(
                home,
                "--passphrase",
                "",
                "--quick-gen-key",
                "Kubeboard test bed <testbed@kubeboard.invalid>",
                "ed25519",
                "sign",
                "1d",
            )
            for directory in kubernetes.values():
                _index(
                    directory, arch, home, "kubeadm, kubelet, kubectl, cri-tools from the test bed's cached binaries"
                )
                _gpg(home, "--armor", "--export", "-o", str(directory / "Release.key"))
            _index(distro, arch, home, "stand-in for a distribution mirror: containerd from the test bed's binaries")
            _gpg(home, "--export", "-o", str(work / KEYRING))
        finally:
            subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], capture_output=True, check=False)
    work.rename(dest)
    return dest


def fingerprint(repo: Path) -> str:
    """The signing key's fingerprint: what a cluster's preparation settings pin for this mirror."""
    with tempfile.TemporaryDirectory() as home:
        shown = _gpg(Path(home), "--show-keys", "--with-colons", str(repo / KEYRING)).stdout
    return next(line.split(":")[9] for line in shown.splitlines() if line.startswith("fpr:"))


def cached_repo(version: str | None = None, *more: str) -> Path:
    """The repositories for ``version`` (and ``more``, see build()) in the binary cache (built
    once). The signing key expires a day after the build, so an older build is rebuilt, as is one
    older than a cached binary."""
    chosen = (version or selected_version(), *more)
    dest = cache_root() / "apt-mirror" / "+".join(chosen)
    for v in chosen:
        release = kubernetes_repository(dest, v) / "Release"
        if release.exists() and (time.time() - release.stat().st_mtime > 20 * 3600 or newer_sources(release, v)):
            shutil.rmtree(dest)
            break
    if not (dest / DISTRO_DIR / "InRelease").exists():
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(dest, ignore_errors=True)
        build(dest, *chosen)
    return dest


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


class RepoServer:
    """Serves a repository directory over HTTP on one address (the sandbox bridge's), so only
    the sandbox's nodes and this host reach it. Use as a context manager."""

    def __init__(self, directory: Path, address: str, port: int = 0) -> None:
        handler = lambda *a, **k: _Quiet(*a, directory=str(directory), **k)  # noqa: E731
        self.server = http.server.ThreadingHTTPServer((address, port), handler)
        self.address = address
        self.port = self.server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}/"

    @property
    def mirror(self) -> str:
        """The Kubernetes mirror's base, as a cluster's preparation settings name it."""
        return self.url + KUBERNETES_DIR

    @property
    def distro_url(self) -> str:
        return f"{self.url}{DISTRO_DIR}/"

    def __enter__(self) -> RepoServer:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
