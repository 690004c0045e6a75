"""What a blank machine needs before kubeadm can run there, as data and pure functions.

This is the knowledge behind Kubeboard's "Prepare machine" operation (workflows/prepare*.py):
which distributions are supported, the kernel modules and sysctls kubeadm's preflight checks
(``SystemVerification``, ``FileContent--proc-sys-net-ipv4-ip_forward``,
``FileContent--proc-sys-net-bridge-bridge-nf-call-iptables``), the swap rule (``Swap``), how
containerd is configured for the kubelet (``CRI``, ``ContainerRuntimeVersion``, ``ImagePull``),
where pkgs.k8s.io keeps each minor's packages and which key signs them, and what a package
manager says when another process holds its lock. No Django, no I/O: the operation reads the
machine, hands what it read to these functions and writes what they render.

Every path here is absolute as it is on a machine (``/etc/sysctl.d/k8s.conf``); ``Layout``
places them under another directory that stands for ``/`` (a test bed whose machines do not
have a private root), so the same rendering serves both.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from dataclasses import dataclass, field

from kubeadm.versions import minor_of, parse_version, with_v

# --- supported machines ------------------------------------------------------------------

DEBIAN = "debian"
RHEL = "rhel"
FAMILY_NAMES = {DEBIAN: "Debian/Ubuntu", RHEL: "RHEL family"}


@dataclass(frozen=True)
class Distribution:
    id: str  # os-release ID
    name: str
    family: str
    minimum: tuple[int, ...]  # the oldest VERSION_ID supported

    @property
    def described(self) -> str:
        return f"{self.name} {'.'.join(str(n) for n in self.minimum)}+"


# The distributions pkgs.k8s.io's packages and containerd 1.7/2.x are built for and whose
# systemd is new enough for the kubelet's systemd cgroup driver (cgroup v2 by default).
DISTRIBUTIONS: tuple[Distribution, ...] = (
    Distribution("debian", "Debian", DEBIAN, (12,)),
    Distribution("ubuntu", "Ubuntu", DEBIAN, (22, 4)),
    Distribution("rhel", "Red Hat Enterprise Linux", RHEL, (9,)),
    Distribution("rocky", "Rocky Linux", RHEL, (9,)),
    Distribution("almalinux", "AlmaLinux", RHEL, (9,)),
    Distribution("centos", "CentOS Stream", RHEL, (9,)),
    Distribution("ol", "Oracle Linux", RHEL, (9,)),
)
# uname -m -> the architecture Kubernetes release binaries are named after.
ARCHITECTURES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
INIT_SYSTEM = "systemd"


def supported_text() -> str:
    """What a refusal names as supported."""
    return (
        ", ".join(d.described for d in DISTRIBUTIONS)
        + f"; architectures {', '.join(sorted(set(ARCHITECTURES.values())))}; init system {INIT_SYSTEM}"
    )


class Unsupported(ValueError):
    """The machine is not one Kubeboard prepares; the message names what it is and what is supported."""


@dataclass(frozen=True)
class Facts:
    distribution: Distribution
    version: str  # VERSION_ID as the machine says it
    pretty_name: str
    architecture: str  # amd64, arm64
    init_system: str

    @property
    def family(self) -> str:
        return self.distribution.family

    def describe(self) -> str:
        return f"{self.pretty_name} ({FAMILY_NAMES[self.family]}), {self.architecture}, init system {self.init_system}"


def parse_os_release(text: str) -> dict[str, str]:
    """/etc/os-release's KEY=value lines (shell quoting), bounded: at most 200 lines are read."""
    values: dict[str, str] = {}
    for line in text.splitlines()[:200]:
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, raw = line.partition("=")
        try:
            words = shlex.split(raw)
        except ValueError:
            continue
        values[key.strip()] = words[0] if words else ""
    return values


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def facts(os_release: str, machine: str, init_system: str) -> Facts:
    """The machine's facts from /etc/os-release, ``uname -m`` and the init system (PID 1's name,
    or "systemd" when /run/systemd/system exists); Unsupported says why not and what is."""
    values = parse_os_release(os_release)
    os_id = values.get("ID", "").lower()
    version = values.get("VERSION_ID", "")
    pretty = values.get("PRETTY_NAME") or f"{os_id} {version}".strip() or "an unknown system"
    by_id = {d.id: d for d in DISTRIBUTIONS}
    distribution = by_id.get(os_id)
    if distribution is None:
        raise Unsupported(
            f"{pretty} (ID={os_id or 'none'}) is not a supported distribution; supported: {supported_text()}"
        )
    if _version_tuple(version) < distribution.minimum:
        raise Unsupported(f"{pretty} is older than {distribution.described}; supported: {supported_text()}")
    architecture = ARCHITECTURES.get(machine.strip())
    if architecture is None:
        raise Unsupported(
            f"architecture {machine.strip() or 'unknown'} is not supported; supported: {supported_text()}"
        )
    if init_system.strip() != INIT_SYSTEM:
        raise Unsupported(
            f"init system {init_system.strip() or 'unknown'} is not supported (the kubelet runs as a systemd "
            f"unit); supported: {supported_text()}"
        )
    return Facts(distribution, version, pretty, architecture, INIT_SYSTEM)


# --- where things go ------------------------------------------------------------------------

MODULES = ("overlay", "br_netfilter")
MODULES_FILE = "/etc/modules-load.d/k8s.conf"
SYSCTLS: dict[str, str] = {
    "net.ipv4.ip_forward": "1",
    "net.bridge.bridge-nf-call-iptables": "1",
    "net.bridge.bridge-nf-call-ip6tables": "1",
}
SYSCTL_FILE = "/etc/sysctl.d/k8s.conf"
FSTAB = "/etc/fstab"
PROC_SWAPS = "/proc/swaps"
CONTAINERD_CONFIG = "/etc/containerd/config.toml"
CONTAINERD_CERTS_DIR = "/etc/containerd/certs.d"
CONTAINERD_SOCKET = "/run/containerd/containerd.sock"
CRIO_SOCKET = "/var/run/crio/crio.sock"
CRICTL_CONFIG = "/etc/crictl.yaml"
BIN_DIR = "/usr/local/bin"
SBIN_DIR = "/usr/local/sbin"
SYSTEMD_DIR = "/etc/systemd/system"
KUBELET_DROPIN = "/etc/systemd/system/kubelet.service.d/10-kubeadm.conf"
# Where an artifact set is pushed on the machine, one directory per set (kept: a second
# prepare or an upgrade finds the same files and pushes nothing).
ARTIFACTS_DIR = "/var/lib/kubeboard/artifacts"
HEADER = "# Written by Kubeboard (Prepare machine): kubeadm's preflight needs this.\n"


def sysctl_proc_path(key: str) -> str:
    return "/proc/sys/" + key.replace(".", "/")


# What else the kernel shows when a module's function is there. A built-in module appears in
# /sys/module only if it has parameters or a version: a kernel with br_netfilter built in (and no
# loadable modules, so no modprobe at all) shows it only as its sysctls under /proc/sys/net/bridge.
MODULE_SIGNS: dict[str, tuple[str, ...]] = {"br_netfilter": ("/proc/sys/net/bridge",)}


def module_loaded_paths(name: str) -> tuple[str, ...]:
    """Paths any one of which shows the module is loaded or built in: /sys/module/<name> (/proc/modules
    lists only loadable ones, so a built-in overlay would look missing there), then MODULE_SIGNS."""
    return (f"/sys/module/{name}", *MODULE_SIGNS.get(name, ()))


def module_loaded(name: str, existing: set[str] | frozenset[str]) -> bool:
    """Whether the kernel shows ``name``, given which of module_loaded_paths(name) exist: only a
    module it does not show needs modprobe."""
    return any(path in existing for path in module_loaded_paths(name))


@dataclass(frozen=True)
class Layout:
    """Machine paths under ``root`` (``/`` on a real machine)."""

    root: str = "/"

    def path(self, absolute: str) -> str:
        if not absolute.startswith("/"):
            raise ValueError(f"a machine path must be absolute, got {absolute!r}")
        return posixpath.normpath(posixpath.join(self.root, absolute.lstrip("/"))) if self.root != "/" else absolute

    @property
    def search_path(self) -> str:
        """PATH for the machine's commands: the root's own directories first, so programs the
        operation installs (and a test bed's stand-ins under its root) are the ones that run."""
        dirs = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
        own = [self.path(d) for d in dirs]
        return ":".join(own if self.root == "/" else [*own, *dirs])


def modules_file() -> str:
    return HEADER + "".join(f"{name}\n" for name in MODULES)


def sysctl_file(values: dict[str, str] | None = None) -> str:
    values = SYSCTLS if values is None else values
    return HEADER + "".join(f"{key} = {value}\n" for key, value in values.items())


# --- swap -------------------------------------------------------------------------------------

SWAP_COMMENT = "  # swap off for the kubelet (Kubeboard)"


def swaps_in_use(proc_swaps: str) -> list[str]:
    """The devices or files /proc/swaps lists (its first line is a header)."""
    return [line.split()[0] for line in proc_swaps.splitlines()[1:] if line.strip()]


def comment_out_swap(fstab: str) -> tuple[str, list[str]]:
    """fstab with every active swap entry commented out, and the entries it commented (none:
    already done). Other lines, comments and spacing are kept byte for byte."""
    out: list[str] = []
    changed: list[str] = []
    for line in fstab.splitlines(keepends=True):
        fields = line.split()
        if fields and not fields[0].startswith("#") and len(fields) >= 3 and fields[2] == "swap":
            body = line.rstrip("\n")
            out.append(f"# {body}{SWAP_COMMENT}\n")
            changed.append(body.strip())
        else:
            out.append(line)
    return "".join(out), changed


def swap_units(list_units_output: list[str]) -> list[str]:
    """Unit names from ``systemctl list-units --type=swap --all --plain --no-legend``."""
    return [line.split()[0] for line in list_units_output if line.strip().endswith(".swap") or ".swap " in line]


@dataclass(frozen=True)
class KubeletSettings:
    """What of the cluster's KubeletConfiguration machine preparation follows."""

    cgroup_driver: str = "systemd"  # kubeadm's default since v1.22
    swap_allowed: bool = False  # failSwapOn: false

    @property
    def systemd_cgroup(self) -> bool:
        return self.cgroup_driver == "systemd"


def kubelet_settings(documents: list[dict]) -> KubeletSettings:
    """From the cluster's extra kubeadm documents: a KubeletConfiguration's cgroupDriver and
    failSwapOn (false: the kubelet tolerates swap, so swap may stay on)."""
    for doc in documents:
        if isinstance(doc, dict) and doc.get("kind") == "KubeletConfiguration":
            driver = doc.get("cgroupDriver") or "systemd"
            return KubeletSettings(
                cgroup_driver=driver if driver in ("systemd", "cgroupfs") else "systemd",
                swap_allowed=doc.get("failSwapOn") is False,
            )
    return KubeletSettings()


# --- container runtime ------------------------------------------------------------------------

# kubeadm's sandbox image per minor (`kubeadm config images list --kubernetes-version`): measured
# with kubeadm v1.37.2 and v1.36.3 for v1.35.4, v1.36.3 and v1.37.2.
PAUSE_VERSIONS: dict[str, str] = {"1.35": "3.10.2", "1.36": "3.10.2", "1.37": "3.10.2"}
DEFAULT_IMAGE_REPOSITORY = "registry.k8s.io"


def pause_image(kubernetes_version: str, image_repository: str = DEFAULT_IMAGE_REPOSITORY) -> str:
    minor = minor_of(kubernetes_version)
    if minor not in PAUSE_VERSIONS:
        parse_version(kubernetes_version)  # raises naming the supported minors
    return f"{(image_repository or DEFAULT_IMAGE_REPOSITORY).rstrip('/')}/pause:{PAUSE_VERSIONS[minor]}"


class MirrorError(ValueError):
    pass


_HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?(:[0-9]{1,5})?$")
_URL = re.compile(r"^https?://[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?$")


def parse_mirrors(text: str) -> dict[str, list[str]]:
    """``registry=URL`` lines (``registry.k8s.io=https://mirror.local:5000``), blank lines and
    ``#`` comments skipped; a registry may have several mirrors, tried in order. At most 50 lines."""
    mirrors: dict[str, list[str]] = {}
    lines = text.splitlines()
    if len(lines) > 50:
        raise MirrorError("at most 50 mirror lines")
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        registry, sep, url = (part.strip() for part in line.partition("="))
        if not sep or not _HOST.match(registry) or not _URL.match(url):
            raise MirrorError(
                f"line {number}: {line[:80]!r} is not registry=URL (e.g. registry.k8s.io=https://mirror.local:5000)"
            )
        mirrors.setdefault(registry, []).append(url.rstrip("/"))
    return mirrors


def hosts_toml(registry: str, urls: list[str]) -> str:
    """certs.d/<registry>/hosts.toml: pull through the mirrors first, the registry itself last."""
    lines = [HEADER.rstrip("\n"), f'server = "https://{registry}"', ""]
    for url in urls:
        lines += [f'[host."{url}"]', '  capabilities = ["pull", "resolve"]', ""]
    return "\n".join(lines)


def containerd_config(
    *, major: int, sandbox_image: str, systemd_cgroup: bool, certs_dir: str = CONTAINERD_CERTS_DIR
) -> str:
    """config.toml as kubeadm expects containerd: the CRI plugin on, the runc runtime's cgroup
    driver matching the kubelet's, the sandbox image kubeadm's version uses (kubeadm warns and
    the kubelet's pods stall on a different one), registry hosts from ``certs_dir``. containerd
    2.x reads config version 3 (the CRI plugin split into images and runtime), 1.7 version 2."""
    cgroup = "true" if systemd_cgroup else "false"
    if major >= 2:
        body = [
            "version = 3",
            "",
            "[plugins.'io.containerd.cri.v1.images'.pinned_images]",
            f"  sandbox = '{sandbox_image}'",
            "",
            "[plugins.'io.containerd.cri.v1.images'.registry]",
            f"  config_path = '{certs_dir}'",
            "",
            "[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]",
            f"  SystemdCgroup = {cgroup}",
        ]
    else:
        body = [
            "version = 2",
            "",
            '[plugins."io.containerd.grpc.v1.cri"]',
            f'  sandbox_image = "{sandbox_image}"',
            "",
            '[plugins."io.containerd.grpc.v1.cri".registry]',
            f'  config_path = "{certs_dir}"',
            "",
            '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]',
            f"  SystemdCgroup = {cgroup}",
        ]
    return HEADER + "\n".join(body) + "\n"


def containerd_major(version_output: str) -> int | None:
    """``containerd --version``: "containerd github.com/containerd/containerd/v2 v2.1.4 <commit>"."""
    match = re.search(r"\sv?(\d+)\.(\d+)\.(\d+)", version_output)
    return int(match.group(1)) if match else None


def configured_by_kubeboard(config: str | None) -> bool:
    """Whether containerd's config.toml is one Prepare wrote (it starts with HEADER). Such a
    containerd is Prepare's own (the distribution's package it installed, or one the user let it
    replace), so a later Prepare checks it like the rest rather than leaving it alone as a runtime
    that was there before."""
    return bool(config) and config.startswith(HEADER)


def crictl_config(socket: str = CONTAINERD_SOCKET) -> str:
    return HEADER + f"runtime-endpoint: unix://{socket}\nimage-endpoint: unix://{socket}\ntimeout: 10\n"


# --- package repositories ----------------------------------------------------------------------

PKGS_K8S_IO = "https://pkgs.k8s.io/core:/stable:"
# The OBS key "isv:kubernetes OBS Project" that signs every pkgs.k8s.io repository (the same key
# for apt's Release and dnf's repomd.xml); a downloaded key is used only if it is this one.
PKGS_K8S_IO_FINGERPRINT = "DE15B14486CD377B9E876E1A234654DA9A296436"
APT_KEYRING = "/etc/apt/keyrings/kubernetes-apt-keyring.gpg"
APT_SOURCE = "/etc/apt/sources.list.d/kubernetes.list"
RPM_KEY = "/etc/pki/rpm-gpg/kubernetes.key"
RPM_REPO = "/etc/yum.repos.d/kubernetes.repo"
PACKAGES = ("kubeadm", "kubelet", "kubectl", "cri-tools")
CONTAINERD_PACKAGE = {DEBIAN: "containerd", RHEL: "containerd.io"}


def normalize_fingerprint(text: str) -> str:
    return re.sub(r"[\s:]", "", text).upper()


@dataclass(frozen=True)
class Repository:
    """A pkgs.k8s.io-shaped repository for one minor (pkgs.k8s.io itself, or a mirror of it
    with the same layout under ``base``)."""

    family: str
    minor: str  # "1.37"
    base: str = PKGS_K8S_IO
    fingerprint: str = PKGS_K8S_IO_FINGERPRINT

    @property
    def url(self) -> str:
        kind = "deb" if self.family == DEBIAN else "rpm"
        return f"{self.base.rstrip('/')}/v{self.minor}/{kind}/"

    @property
    def key_url(self) -> str:
        return self.url + ("Release.key" if self.family == DEBIAN else "repodata/repomd.xml.key")

    @property
    def key_path(self) -> str:
        return APT_KEYRING if self.family == DEBIAN else RPM_KEY

    @property
    def source_path(self) -> str:
        return APT_SOURCE if self.family == DEBIAN else RPM_REPO

    def source(self) -> str:
        if self.family == DEBIAN:
            return HEADER + f"deb [signed-by={APT_KEYRING}] {self.url} /\n"
        # exclude=: a plain `dnf upgrade` never moves them (the hold); installs pass --disableexcludes.
        return HEADER + "\n".join(
            [
                "[kubernetes]",
                "name=Kubernetes",
                f"baseurl={self.url}",
                "enabled=1",
                "gpgcheck=1",
                f"gpgkey=file://{RPM_KEY}",
                "exclude=kubelet kubeadm kubectl cri-tools kubernetes-cni",
                "",
            ]
        )


def package_specs(family: str, kubernetes_version: str) -> list[str]:
    """The packages at the cluster's exact version (cri-tools: the repository's minor)."""
    minor = minor_of(kubernetes_version)
    cri_tools = f"cri-tools={minor}.*" if family == DEBIAN else f"cri-tools-{minor}*"
    return [*exact_specs(family, kubernetes_version, ("kubeadm", "kubelet", "kubectl")), cri_tools]


def install_command(family: str, specs: list[str], *, lock_wait: int) -> list[str]:
    if family == DEBIAN:
        return [
            "apt-get", "install", "-y", "-q", f"-oDPkg::Lock::Timeout={lock_wait}",
            "--allow-downgrades", "--allow-change-held-packages", *specs,
        ]  # fmt: skip
    return ["dnf", "install", "-y", "--disableexcludes=kubernetes", *specs]


def refresh_command(family: str, *, lock_wait: int) -> list[str]:
    if family == DEBIAN:
        return ["apt-get", "update", "-q", f"-oDPkg::Lock::Timeout={lock_wait}"]
    return ["dnf", "makecache", "-y", "--repo", "kubernetes"]


def runtime_install_commands(family: str, *, lock_wait: int) -> list[list[str]]:
    """Install the distribution's containerd package from the machine's own sources. apt-get
    install reads only the lists the last ``apt-get update`` fetched: on a fresh machine (empty
    lists, or a mirror configured after the last update) it says "Unable to locate package
    containerd", so apt refreshes first. dnf refreshes expired metadata itself (and the
    ``kubernetes`` repository that refresh_command names does not exist yet at this step)."""
    install = install_command(family, [CONTAINERD_PACKAGE[family]], lock_wait=lock_wait)
    return [refresh_command(family, lock_wait=lock_wait), install] if family == DEBIAN else [install]


def hold_command(family: str) -> list[str]:
    return hold_packages(family, PACKAGES)


def installed_query(family: str) -> list[str]:
    """Lines "<name> <version> <state>" for the installed packages (state: dpkg's abbreviated
    status, "ii" installed, "hi" installed and held, "rc" removed; rpm's are all "ii")."""
    if family == DEBIAN:
        return ["dpkg-query", "-W", "-f=${Package} ${Version} ${db:Status-Abbrev}\\n", *PACKAGES]
    return ["rpm", "-q", "--qf", "%{NAME} %{VERSION}-%{RELEASE} ii\\n", *PACKAGES]


def parse_installed(lines: list[str]) -> dict[str, str]:
    """name -> version of the packages installed, from ``installed_query``: dpkg's status letter
    (the second) is "i", whatever was selected ("ii", or "hi" once held)."""
    found: dict[str, str] = {}
    for line in lines:
        parts = line.split()
        if len(parts) >= 3 and parts[0] in PACKAGES and parts[2][1:2] == "i":
            found[parts[0]] = parts[1]
    return found


def installed_matches(installed: dict[str, str], kubernetes_version: str) -> list[str]:
    """The packages missing or at another version than the cluster's (cri-tools: its minor)."""
    number = with_v(kubernetes_version)[1:]
    wrong = []
    for name in PACKAGES:
        version = installed.get(name, "")
        want = f"{minor_of(kubernetes_version)}." if name == "cri-tools" else f"{number}-"
        if not version.startswith(want):
            wrong.append(f"{name} {version or 'not installed'}")
    return wrong


# "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 1234 (apt-get)"
_APT_LOCK = re.compile(r"Could not get lock (/\S+)(?:\s+It is held by process (\d+) \(([^)]*)\))?", re.I)
_DPKG_FRONTEND = re.compile(r"Unable to acquire the dpkg frontend lock \((\S+)\), is another process using it", re.I)
_DNF_LOCK = re.compile(r"Waiting for process with pid (\d+) to finish|another copy is running as pid (\d+)", re.I)


def package_manager_locked(lines: list[str]) -> str | None:
    """What holds the package manager's lock, from its output, or None."""
    for line in lines:
        match = _APT_LOCK.search(line)
        if match:
            path, pid, program = match.groups()
            path = path.rstrip(".")
            holder = f"process {pid} ({program})" if pid else "another process"
            return f"{holder} holds {path}"
        match = _DPKG_FRONTEND.search(line)
        if match:
            return f"another process holds {match.group(1)}"
        match = _DNF_LOCK.search(line)
        if match:
            return f"process {match.group(1) or match.group(2)} holds dnf's lock"
    return None


APT_LOCKS = ("/var/lib/dpkg/lock-frontend", "/var/lib/dpkg/lock", "/var/lib/apt/lists/lock")
RPM_LOCKS = ("/var/lib/rpm/.rpm.lock", "/var/lib/dnf/rpmdb_lock.pid")


def lock_paths(family: str) -> tuple[str, ...]:
    return APT_LOCKS if family == DEBIAN else RPM_LOCKS


def lock_holders(lslocks_lines: list[str], paths: list[str]) -> list[str]:
    """``lslocks --noheadings --raw -o PID,COMMAND,PATH`` lines for ``paths`` ("1234 apt-get /var/…")."""
    wanted = set(paths)
    held = []
    for line in lslocks_lines:
        parts = line.split(None, 2)
        if len(parts) == 3 and parts[2].strip() in wanted:
            held.append(f"process {parts[0]} ({parts[1]}) holds {parts[2].strip()}")
    return held


# --- what a step found -------------------------------------------------------------------------


@dataclass
class StepReport:
    """What one step found and did: "already done" when ``changes`` stays empty."""

    step: str
    changes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def change(self, text: str) -> None:
        self.changes.append(text)

    @property
    def done_already(self) -> bool:
        return not self.changes


# --- upgrading what Prepare installed (issue 19 item 2: the day-two upgrade's package steps) ----
# The upgrade (workflows/upgrade_packages.py) moves a prepared machine to a target version from
# the same source Prepare used, so no one types a shell line per cluster. pkgs.k8s.io has one
# repository per minor: the source file's URL moves to the target's minor first.

KUBEADM_PACKAGES = ("kubeadm",)
KUBELET_PACKAGES = ("kubelet", "kubectl")
KUBEADM_BINARIES = ("bin/kubeadm",)
# The kubelet's unit and kubeadm's drop-in come with the binaries: a newer set may change them.
KUBELET_FILES = ("bin/kubelet", "bin/kubectl", "bin/crictl", "systemd/kubelet.service", "systemd/10-kubeadm.conf")


def upgrade_repository(family: str, target: str, *, base: str = PKGS_K8S_IO, fingerprint: str = "") -> Repository:
    """The repository the upgrade switches to: the target's minor, same base and key as Prepare's."""
    return Repository(
        family=family,
        minor=minor_of(target),
        base=base or PKGS_K8S_IO,
        fingerprint=normalize_fingerprint(fingerprint) or PKGS_K8S_IO_FINGERPRINT,
    )


def exact_specs(family: str, target: str, names: tuple[str, ...]) -> list[str]:
    """``names`` at the target's exact version (apt: ``kubeadm=1.38.0-*``, dnf: ``kubeadm-1.38.0``)."""
    number = with_v(target)[1:]
    return [f"{name}={number}-*" if family == DEBIAN else f"{name}-{number}" for name in names]


def unhold_packages(family: str, names: tuple[str, ...]) -> list[str]:
    if family == DEBIAN:
        return ["apt-mark", "unhold", *names]
    return ["dnf", "versionlock", "delete", *names]


def hold_packages(family: str, names: tuple[str, ...]) -> list[str]:
    if family == DEBIAN:
        return ["apt-mark", "hold", *names]
    return ["dnf", "versionlock", "add", *names]


def upgrade_package_commands(
    family: str, target: str, names: tuple[str, ...], *, lock_wait: int, restart_kubelet: bool = False
) -> list[list[str]]:
    """After the repository file names the target's minor: refresh, unhold, install the exact
    versions, hold again (and restart the kubelet when it was among them). A failed install
    leaves the packages unheld; the resume runs the same lines again."""
    lines = [
        refresh_command(family, lock_wait=lock_wait),
        unhold_packages(family, names),
        install_command(family, exact_specs(family, target, names), lock_wait=lock_wait),
        hold_packages(family, names),
    ]
    if restart_kubelet:
        lines += [list(argv) for argv in RESTART_KUBELET]
    return lines


def install_set_file_command(staged: str, destination: str, mode: int) -> list[str]:
    """Put one pushed file in place. ``install`` unlinks the destination first, so a running
    kubelet's binary is replaced without "Text file busy"."""
    return ["install", "-D", "-m", f"{mode:04o}", staged, destination]


# After a new kubelet binary, unit or drop-in: systemd reads the unit again, the kubelet restarts.
RESTART_KUBELET: tuple[tuple[str, ...], ...] = (("systemctl", "daemon-reload"), ("systemctl", "restart", "kubelet"))


def set_name(version: str, architecture: str) -> str:
    """An artifact set's name as Kubeboard stores it (artifacts.models.ArtifactSet.name)."""
    return f"{with_v(version)}-{architecture}"


# --- end of the upgrade block ------------------------------------------------------------------------
