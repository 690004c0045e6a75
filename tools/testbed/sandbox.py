"""Node sandboxes: several "hosts" on this machine, made of Linux namespaces.

Layout of a sandbox called NAME with subnet 10.213.0.0/24 and N nodes:

* root network namespace: bridge ``NAME-br`` holding 10.213.0.1/24; one veth
  pair per node, the host end ``NAME-vI`` enslaved to the bridge;
* node I: network namespace ``NAME-nI`` (``/run/netns``) whose ``eth0`` has
  10.213.0.(10+I)/24 and whose loopback is up; no default route, so nothing
  a node sends can leave the sandbox subnet;
* node I: a persistent mount namespace and UTS namespace (hostname ``nodeI``)
  whose /etc/kubernetes, /var/lib/kubelet, /var/lib/etcd and /run are bind
  mounts of per-node directories under the sandbox state directory, and whose
  /etc/hosts names every node of the sandbox;
* node I: an OpenSSH sshd on 10.213.0.(10+I):22 accepting only the sandbox
  key pair (``STATE/id_ed25519``), with per-node host keys pinned in
  ``STATE/known_hosts``.

State lives in ``$KUBEBOARD_TESTBED_STATE/NAME`` (default
/var/lib/kubeboard-testbed/NAME). Teardown finds everything by name, so it
also cleans a sandbox whose state file was lost in a crash.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from tools.testbed.binaries import bin_dir as default_bin_dir
from tools.testbed.guard import assert_routed_via_bridge

STATE_ROOT = Path(os.environ.get("KUBEBOARD_TESTBED_STATE", "/var/lib/kubeboard-testbed"))
REPO_ROOT = Path(__file__).resolve().parents[2]

# Paths made private per node, in mount order (/run last: its source path is
# under the state dir, which stays visible inside the node).
PRIVATE_DIRS = ("/etc/kubernetes", "/var/lib/kubelet", "/var/lib/etcd", "/run")
# The test bed's stand-in for what a package manager installs on one machine (node-private,
# first on the PATH of SSH sessions): linking a cached release's kubeadm or kubemark here as
# `kubeadm` / `kubelet` "upgrades the package" on that node only (the runner's hollow kubelet
# follows PACKAGES_BIN/kubelet too). Empty on a new sandbox: the release's bin dir serves.
PACKAGES_BIN = "/run/testbed/bin"
# What a bare machine must not have on its PATH (issue 19: the machines start blank). Each one
# the host has is removed from the node's private root: its Debian package purged there by
# dpkg (so the node's package database does not claim it either), or the file deleted (the
# overlay records a whiteout), never on the host.
BARE_ABSENT = (
    "kubeadm",
    "kubelet",
    "kubectl",
    "crictl",
    "containerd",
    "containerd-shim-runc-v2",
    "ctr",
    "runc",
)
BARE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# On a bare node these are bind mounts of node directories on the host's ext4 rather than
# directories of the overlay: containerd's overlayfs snapshotter cannot put its upper layers on
# an overlayfs (the kernel refuses overlayfs as an upper filesystem), and a real machine's
# /var/lib/containerd is on a disk filesystem too.
BARE_PRIVATE_DIRS = ("/var/lib/containerd",)
EMPTY_SWAPS = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"
NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,9}$")  # interface names are <= 15 chars


class SandboxError(Exception):
    """A sandbox could not be created or used; the message says what to do."""


def blank_shell_files(home: Path) -> Path:
    """root's shell start-up files as Debian installs them, in ``home``: the host's own (which put
    Go, pyenv or cargo on PATH, and cost ~0.14 CPU-s a command) are not a blank machine's."""
    home.mkdir(parents=True, exist_ok=True)
    for dot in ("bashrc", "profile"):
        shutil.copyfile(f"/usr/share/base-files/dot.{dot}", home / f".{dot}")
    return home


def run(cmd: list[str], check: bool = True, **kw: object) -> subprocess.CompletedProcess[str]:
    """Run a command, raising SandboxError with its output on failure."""
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, **kw)  # type: ignore[call-overload]
    if check and proc.returncode != 0:
        raise SandboxError(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout}{proc.stderr}")
    return proc


def _mountpoints() -> list[str]:
    """Mount points of the calling process's mount namespace."""
    points = []
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            points.append(line.split()[4].replace("\\040", " "))
    return points


def _ns_inode(path: str) -> int | None:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def _pids_in_namespaces(inodes: dict[str, set[int]]) -> list[int]:
    """PIDs whose ns/<kind> inode is in ``inodes[kind]`` (kind: net, mnt, uts)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        for kind, wanted in inodes.items():
            if not wanted:
                continue
            try:
                ino = os.stat(f"/proc/{entry}/ns/{kind}").st_ino
            except OSError:
                continue
            if ino in wanted:
                found.append(int(entry))
                break
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def check_host_tools() -> list[str]:
    """Return what is missing on this machine to run sandboxes (empty if fine)."""
    missing = []
    if os.geteuid() != 0:
        missing.append("root privileges (namespaces, bridges and mounts need root)")
    for tool in ("ip", "nsenter", "unshare", "mount", "umount", "ssh", "ssh-keygen"):
        if shutil.which(tool) is None:
            missing.append(tool)
    if not Path("/usr/sbin/sshd").exists():
        missing.append("/usr/sbin/sshd (Debian package openssh-server)")
    return missing


@dataclass
class Node:
    """One sandbox node. Reach it over SSH like a real machine, or via nsenter."""

    sandbox: Sandbox
    index: int

    @property
    def name(self) -> str:
        return f"node{self.index}"

    @property
    def address(self) -> str:
        return str(self.sandbox.network.network_address + 10 + self.index)

    @property
    def netns(self) -> str:
        return f"{self.sandbox.name}-n{self.index}"

    @property
    def veth(self) -> str:
        return f"{self.sandbox.name}-v{self.index}"

    @property
    def dir(self) -> Path:
        return self.sandbox.state_dir / self.name

    @property
    def bare(self) -> bool:
        return self.sandbox.bare

    @property
    def private_root(self) -> bool:
        """Whether the node has a root of its own (bare, or provisioned with ``private_root``)."""
        return self.sandbox.has_private_root

    @property
    def rootfs(self) -> Path:
        """A bare node's private root: ``upper`` and ``work`` of its overlay over /."""
        return self.dir / "rootfs"

    @property
    def root(self) -> Path:
        """The node's whole filesystem as its processes see it, from the host: the root of its
        sshd (``/proc/PID/root``). On a bare node that is the private root; read files there,
        and write them over SSH or with ``exec`` as the node would."""
        pid = int(self.host_path("/run/sshd.pid").read_text().split()[0])
        return Path(f"/proc/{pid}/root")

    def host_path(self, node_path: str) -> Path:
        """Where a node-private path (under PRIVATE_DIRS) lives on the host."""
        for private in PRIVATE_DIRS + (BARE_PRIVATE_DIRS if self.private_root else ()):
            if node_path == private or node_path.startswith(private + "/"):
                rest = node_path[len(private) :].lstrip("/")
                return self.dir / "root" / private.strip("/").replace("/", "-") / rest
        raise ValueError(f"{node_path} is not a node-private path ({', '.join(PRIVATE_DIRS)})")

    @property
    def mnt_ns(self) -> Path:
        return self.sandbox.state_dir / "ns" / f"{self.name}-mnt"

    @property
    def uts_ns(self) -> Path:
        return self.sandbox.state_dir / "ns" / f"{self.name}-uts"

    def nsenter_prefix(self) -> list[str]:
        return [
            "nsenter",
            f"--net=/run/netns/{self.netns}",
            f"--mount={self.mnt_ns}",
            f"--uts={self.uts_ns}",
            "--wd=/",
            "--",
        ]

    def exec(
        self, cmd: list[str], check: bool = True, timeout: float | None = None, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``cmd`` inside the node's namespaces (no network hop)."""
        return run(self.nsenter_prefix() + cmd, check=check, timeout=timeout, env=env)

    def popen(self, cmd: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start a long-running process inside the node, output to ``log``."""
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
            return subprocess.Popen(
                self.nsenter_prefix() + cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # survives Ctrl-C of the caller; teardown kills it
                env=env,
            )

    def write_file(self, node_path: str, data: bytes, mode: int = 0o600) -> None:
        """Write a node-private file (under PRIVATE_DIRS) with ``mode``, parents 0755, as an
        upload over SFTP would leave it."""
        path = self.host_path(node_path)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(path, mode)

    def ssh_command(self, command: str) -> list[str]:
        """The ssh argv for ``command`` on this node (after the route guard)."""
        assert_routed_via_bridge(self.address, self.sandbox.bridge)
        return [
            "ssh",
            "-F",
            "/dev/null",
            "-i",
            str(self.sandbox.key),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            f"UserKnownHostsFile={self.sandbox.known_hosts}",
            "-o",
            "ConnectTimeout=5",
            f"root@{self.address}",
            command,
        ]

    def ssh(self, command: str, check: bool = True, timeout: float | None = 300) -> subprocess.CompletedProcess[str]:
        """Run a shell command on the node over SSH, as Kubeboard would."""
        return run(self.ssh_command(command), check=check, timeout=timeout)

    def start_runner(self, bin_dir: Path, kubelet: bool = False, systemd: bool = False) -> int:
        """Start the static-pod runner for this node; returns its PID.

        With ``kubelet=True`` it also plays the kubelet service, running
        kubemark's hollow kubelet once kubeadm has configured it. With ``systemd=True`` (nodes
        with a private root, started by ``up``) it is also the node's init: it runs the services
        the systemctl test double starts (containerd, kubelet, keepalived, haproxy).
        """
        pidfile = self.dir / "runner.pid"
        if pidfile.exists() and _alive(int(pidfile.read_text())):
            raise SandboxError(
                f"a runner already runs on {self.name} (pid {pidfile.read_text()}); it owns the "
                "node's static pods and kubelet ports. Stop it (kill PID) or recreate the sandbox."
            )
        env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
        proc = self.popen(
            [
                sys.executable,
                "-m",
                "tools.testbed.runner",
                "--bin-dir",
                str(bin_dir),
                "--log-dir",
                str(self.dir / "logs"),
            ]
            + (["--kubelet"] if kubelet else [])
            + (["--systemd"] if systemd else []),
            self.dir / "logs" / "runner.log",
            env=env,
        )
        pidfile.write_text(str(proc.pid))
        return proc.pid


@dataclass
class Sandbox:
    """A set of nodes on one private bridge. Use ``up()`` / ``down()``."""

    name: str = "kbtb"
    subnet: str = "10.213.0.0/24"
    size: int = 1
    nodes: list[Node] = field(default_factory=list)
    # Put first on PATH in SSH sessions (default: the selected release's cache).
    bin_dir: Path = field(default_factory=default_bin_dir)
    # Blank machines (issue 19): a private root per node (an overlay over /), none of
    # BARE_ABSENT on the PATH, the systemctl test double, the runner as the node's init.
    bare: bool = False
    # Provisioned machines (the release's binaries on PATH, the hollow kubelet as the kubelet,
    # as without it) that also get a private root, the systemctl test double and the runner as
    # their init: what installing and running system services (keepalived, haproxy) needs,
    # without the Prepare a bare machine needs before kubeadm. ``up`` starts the runner with
    # both roles (kubelet and systemd); do not call ``start_runner`` again.
    private_root: bool = False

    @property
    def has_private_root(self) -> bool:
        return self.bare or self.private_root

    def __post_init__(self) -> None:
        if not NAME_RE.match(self.name):
            raise SandboxError(f"sandbox name {self.name!r} must match {NAME_RE.pattern}")
        self.network = ipaddress.ip_network(self.subnet)
        if not self.network.is_private or self.network.prefixlen > 28:
            raise SandboxError(f"subnet {self.subnet} must be a private /28 or larger")
        if self.size < 1 or self.size > min(50, self.network.num_addresses - 12):
            raise SandboxError(f"node count {self.size} does not fit {self.subnet}")
        self.nodes = [Node(self, i) for i in range(1, self.size + 1)]

    # -- names and paths -------------------------------------------------
    @property
    def bridge(self) -> str:
        return f"{self.name}-br"

    @property
    def gateway(self) -> str:
        return str(self.network.network_address + 1)

    @property
    def state_dir(self) -> Path:
        return STATE_ROOT / self.name

    @property
    def key(self) -> Path:
        return self.state_dir / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.state_dir / "known_hosts"

    def node(self, index: int) -> Node:
        return self.nodes[index - 1]

    # -- lifecycle ---------------------------------------------------------
    def up(self, log: Callable[..., None] = print) -> Sandbox:
        """Create the sandbox. A leftover of the same name is cleaned first."""
        missing = check_host_tools()
        if missing:
            raise SandboxError(
                "cannot create sandboxes, missing: " + ", ".join(missing) + ". Run tools/setup-testbed.sh as root."
            )
        owner = self._live_owner()
        if owner:
            raise SandboxError(
                f"sandbox {self.name!r} is in use by running process {owner}; wait for it to "
                "finish, stop it, or use another --name/--subnet"
            )
        left = self.leftovers()
        if left:
            log(
                f"testbed: leftover sandbox {self.name!r} from a crashed run found "
                f"({'; '.join(left)}); cleaning it up before starting a new one"
            )
            self.down(log=log)
        self._check_subnet_free()
        try:
            self._create(log)
        except BaseException:
            # Half-built sandboxes are never left behind nor reused.
            self.down(log=lambda *_a, **_k: None)
            raise
        return self

    def _live_owner(self) -> str:
        """'PID (cmdline)' of a still-running process that created this sandbox, else ''."""
        meta = self.state_dir / "meta.json"
        try:
            pid = int(json.loads(meta.read_text())["pid"])
        except (OSError, ValueError, KeyError):
            return ""
        if pid == os.getpid() or not _alive(pid):
            return ""
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        return f"{pid} ({cmdline.strip()[:120]})"

    def _check_subnet_free(self) -> None:
        proc = run(["ip", "-j", "route", "show", "table", "all"])
        for route in json.loads(proc.stdout or "[]"):
            dst = route.get("dst", "")
            if dst in ("default", "") or route.get("type") in ("local", "broadcast", "multicast"):
                continue
            try:
                net = ipaddress.ip_network(dst, strict=False)
            except ValueError:
                continue
            if net.version == 4 and net.overlaps(self.network):
                raise SandboxError(
                    f"subnet {self.subnet} is already routed ({dst} dev {route.get('dev')}); "
                    "another sandbox or a real network uses it. Pick another --subnet, or "
                    "remove the other sandbox with `python -m tools.testbed down --name NAME`."
                )

    def _create(self, log: Callable[..., None]) -> None:
        say = log
        state = self.state_dir
        (state / "ns").mkdir(parents=True, exist_ok=True)
        (state / "meta.json").write_text(
            json.dumps(
                {
                    "name": self.name,
                    "subnet": self.subnet,
                    "size": self.size,
                    "pid": os.getpid(),
                    "created": time.time(),
                    "bare": self.bare,
                    "private_root": self.private_root,
                }
            )
        )
        self._record_created_mountpoints()
        # Namespace files must live on a private mount, or the kernel refuses
        # to bind a mount namespace there (and it would propagate into nodes).
        run(["mount", "--bind", str(state / "ns"), str(state / "ns")])
        run(["mount", "--make-private", str(state / "ns")])

        run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"kubeboard-testbed-{self.name}", "-f", str(self.key)]
        )
        (state / "authorized_keys").write_text(Path(f"{self.key}.pub").read_text())
        self._link_node_bin()

        run(["ip", "link", "add", self.bridge, "type", "bridge"])
        run(["ip", "addr", "add", f"{self.gateway}/{self.network.prefixlen}", "dev", self.bridge])
        run(["ip", "link", "set", self.bridge, "up"])
        known = []
        for node in self.nodes:
            say(f"testbed: creating {node.name} ({node.address}) in sandbox {self.name}")
            self._create_node(node)
            pub = Path(f"{node.dir}/ssh_host_ed25519_key.pub").read_text().split()
            known.append(f"{node.address} {pub[0]} {pub[1]}\n")
        self.known_hosts.write_text("".join(known))
        for node in self.nodes:
            self._wait_ssh(node)
        if self.has_private_root:
            for node in self.nodes:
                # The node's init (systemd's part): runs what the systemctl double starts; on a
                # provisioned machine also its kubelet (the hollow one), as start_runner(kubelet).
                node.start_runner(self.bin_dir, kubelet=not self.bare, systemd=True)
                # And what systemd creates at boot: /run/systemd/system is how programs tell that
                # systemd is the init (sd_booted(3)); PID 1 here is the host's, never systemd.
                node.exec(["mkdir", "-p", "/run/systemd/system"])
        say(f"testbed: sandbox {self.name} up: " + ", ".join(f"{n.name}={n.address}" for n in self.nodes))

    @property
    def node_bin(self) -> Path:
        """First on the nodes' PATH: `kubelet` -> kubemark (see _link_node_bin)."""
        return self.state_dir / "node-bin"

    def _link_node_bin(self) -> None:
        # The nodes' kubelet is kubemark's hollow kubelet (runner.py --kubelet); naming it
        # `kubelet` on PATH lets kubeadm's preflight read its version for real ("kubelet
        # --version" -> "Kubernetes v1.37.2") instead of failing KubeletVersion and
        # SystemVerification with "executable file not found", and lets a machine check
        # report the kubelet version the node really runs.
        self.node_bin.mkdir(parents=True, exist_ok=True)
        kubemark = self.bin_dir / "kubemark"
        if os.access(kubemark, os.X_OK):
            (self.node_bin / "kubelet").symlink_to(kubemark)

    def _record_created_mountpoints(self) -> None:
        # The private dirs need a mount point on the host's filesystem; create
        # missing ones and remember that we did (in a record shared by all
        # sandboxes), so the last sandbox torn down removes them.
        record = STATE_ROOT / ".created-mountpoints.json"
        created = set(json.loads(record.read_text())) if record.exists() else set()
        for path in PRIVATE_DIRS:
            if not os.path.isdir(path):
                os.makedirs(path, exist_ok=True)
                created.add(path)
        record.write_text(json.dumps(sorted(created)))

    def _create_node(self, node: Node) -> None:
        node.dir.mkdir(parents=True, exist_ok=True)
        for private in PRIVATE_DIRS:
            node.host_path(private).mkdir(parents=True, exist_ok=True)
        os.chmod(node.host_path("/var/lib/etcd"), 0o700)
        sshd_run = node.host_path("/run/sshd")
        sshd_run.mkdir(parents=True, exist_ok=True)
        os.chmod(sshd_run, 0o755)

        # Network: a namespace with its own eth0 on the bridge and lo up.
        run(["ip", "netns", "add", node.netns])
        run(["ip", "link", "add", node.veth, "type", "veth", "peer", "name", "eth0", "netns", node.netns])
        run(["ip", "link", "set", node.veth, "master", self.bridge])
        run(["ip", "link", "set", node.veth, "up"])
        ns = ["ip", "-n", node.netns]
        run(ns + ["addr", "add", f"{node.address}/{self.network.prefixlen}", "dev", "eth0"])
        run(ns + ["link", "set", "lo", "up"])
        run(ns + ["link", "set", "eth0", "up"])
        # Deliberately no default route: a node can reach only the sandbox subnet.

        # Mount + UTS namespaces, persisted as files so no holder process is needed.
        node.mnt_ns.touch()
        node.uts_ns.touch()
        run(["unshare", f"--mount={node.mnt_ns}", f"--uts={node.uts_ns}", "--propagation", "private", "true"])
        # A private /etc/hosts naming every node, as on real machines: the
        # kubelet derives its node IP from its hostname (no default route here).
        hosts = node.dir / "hosts"
        hosts.write_text(
            "127.0.0.1 localhost\n::1 localhost ip6-localhost\n"
            + "".join(f"{n.address} {n.name}\n" for n in self.nodes)
        )
        if self.has_private_root:
            self._make_private_root(node, hosts)
        else:
            binds = " && ".join(
                [f"mount --bind {node.host_path(p)} {p}" for p in PRIVATE_DIRS] + [f"mount --bind {hosts} /etc/hosts"]
            )
            run(
                [
                    "nsenter",
                    f"--mount={node.mnt_ns}",
                    f"--uts={node.uts_ns}",
                    "--",
                    "sh",
                    "-c",
                    f"{binds} && hostname {node.name}",
                ]
            )

        # sshd inside the node, key-only.
        hostkey = node.dir / "ssh_host_ed25519_key"
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", node.name, "-f", str(hostkey)])
        cfg = node.dir / "sshd_config"
        cfg.write_text(
            f"ListenAddress {node.address}:22\n"
            f"HostKey {hostkey}\n"
            "PidFile /run/sshd.pid\n"
            f"AuthorizedKeysFile {self.state_dir / 'authorized_keys'}\n"
            "PermitRootLogin prohibit-password\n"
            "PasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n"
            "PubkeyAuthentication yes\n"
            "UsePAM no\n"
            "StrictModes no\n"
            "PrintMotd no\n"
            "UseDNS no\n"
            "Subsystem sftp internal-sftp\n"
            + (
                # A bare machine's PATH is a Debian default: what it runs is what was installed
                # in its private root.
                f"SetEnv PATH={BARE_PATH}\n"
                if self.bare
                # Sessions find kubeadm/kubectl/etcdctl as on a provisioned machine; a package
                # installed on this node alone (PACKAGES_BIN, node-private) comes first.
                else f"SetEnv PATH={PACKAGES_BIN}:{self.node_bin}:{self.bin_dir}:{BARE_PATH}\n"
            )
        )
        node.exec(["/usr/sbin/sshd", "-t", "-f", str(cfg)])
        node.exec(["/usr/sbin/sshd", "-f", str(cfg), "-E", str(node.dir / "sshd.log")])

    def _make_private_root(self, node: Node, hosts: Path) -> None:
        """Give a bare node a root of its own: an overlay whose lower layer is the host's / and
        whose upper layer is ``node.rootfs/upper``, made the root of the node's mount namespace
        with pivot_root. Everything the node writes (packages in /usr, /etc, /opt, /var, its
        dpkg database) lands in the upper layer; the host's files are never written. sshd,
        every SSH session and the runner live in that root.

        Kernel state that is not per network namespace is shielded where a blank machine's
        preparation would touch it: /proc/sys is read-only except /proc/sys/net (per netns:
        ip_forward, bridge-nf-call-*), /proc/swaps shows no swap and /etc/fstab is the node's
        own, so `swapoff -a` finds nothing of the host's to switch off.
        """
        rootfs = node.rootfs
        upper, work, merged = rootfs / "upper", rootfs / "work", rootfs / "merged"
        for d in (upper, work, merged):
            d.mkdir(parents=True, exist_ok=True)
        for private in BARE_PRIVATE_DIRS:
            node.host_path(private).mkdir(parents=True, exist_ok=True)
        # Files a blank machine has of its own, laid into the upper layer before mounting.
        (upper / "etc").mkdir(exist_ok=True)
        (upper / "etc" / "fstab").write_text(
            "# /etc/fstab of a bare test-bed machine (node-private): no swap, nothing to mount\n"
        )
        (upper / "etc" / "hostname").write_text(f"{node.name}\n")
        blank_shell_files(upper / "root")
        systemctl = upper / "usr" / "bin" / "systemctl"
        systemctl.parent.mkdir(parents=True, exist_ok=True)
        # The systemctl TEST DOUBLE (systemd cannot run as these namespaces' init; see
        # tools/README.md): it hands units to the node's runner (runner.py --systemd).
        systemctl.write_text(
            "#!/bin/sh\n# Kubeboard test bed: systemctl TEST DOUBLE (tools/testbed/systemctl.py)\n"
            f'PYTHONPATH={REPO_ROOT} exec {sys.executable} -m tools.testbed.systemctl "$@"\n'
        )
        systemctl.chmod(0o755)
        if not self.bare:
            # A provisioned machine has kubeadm's kubelet unit, enabled; here it is the runner's
            # hollow kubelet (runner.Services.adopt_kubelet), so `systemctl restart kubelet`
            # (kubeadm's, or the local-proxy endpoint's after it rewrites kubelet.conf) restarts it.
            units = upper / "etc" / "systemd" / "system"
            (units / "multi-user.target.wants").mkdir(parents=True, exist_ok=True)
            (units / "kubelet.service").write_text(
                "# Kubeboard test bed: a provisioned machine's kubelet is the runner's hollow kubelet\n"
                "[Unit]\nDescription=kubelet: The Kubernetes Node Agent (test bed: kubemark's hollow kubelet)\n\n"
                f"[Service]\nExecStart={self.node_bin}/kubelet\nRestart=always\n\n"
                "[Install]\nWantedBy=multi-user.target\n"
            )
            (units / "multi-user.target.wants" / "kubelet.service").symlink_to("/etc/systemd/system/kubelet.service")
        swaps = rootfs / "swaps"
        swaps.write_text(EMPTY_SWAPS)
        purge, remove = self._bare_absent if self.bare else ([], [])

        m = str(merged)
        steps = [
            f"mount -t overlay kubeboard-{self.name}-{node.name} -o lowerdir=/,upperdir={upper},workdir={work} {m}",
            f"mount --rbind /dev {m}/dev",
            f"mount -t proc proc {m}/proc",
            # Non-network sysctls are the host's kernel: read-only. /proc/sys/net shows the
            # reading process's network namespace, i.e. the node's own values: writable.
            f"mount --bind {m}/proc/sys {m}/proc/sys",
            f"mount -o remount,bind,ro {m}/proc/sys",
            f"mount --bind {m}/proc/sys/net {m}/proc/sys/net",
            f"mount -o remount,bind,rw {m}/proc/sys/net",
            f"mount --bind {swaps} {m}/proc/swaps",
            f"mount --rbind /sys {m}/sys",
        ]
        for private in PRIVATE_DIRS + BARE_PRIVATE_DIRS:
            steps += [f"mkdir -p {m}{private}", f"mount --bind {node.host_path(private)} {m}{private}"]
        steps += [
            f"mount --bind {hosts} {m}/etc/hosts",
            # The sandbox's state (sshd config, keys, logs) stays the host's live directory.
            f"mkdir -p {m}{self.state_dir}",
            f"mount --bind {self.state_dir} {m}{self.state_dir}",
            f"cd {m}",
            "mkdir -p .oldroot",
            "pivot_root . .oldroot",
            "cd /",
            "umount -l /.oldroot",
            "rmdir /.oldroot",
            f"hostname {node.name}",
        ]
        run(
            [
                "nsenter",
                f"--net=/run/netns/{node.netns}",
                f"--mount={node.mnt_ns}",
                f"--uts={node.uts_ns}",
                "--",
                "sh",
                "-ec",
                " && ".join(steps),
            ]
        )
        if purge and self.bare:
            # The host's packages of these binaries, purged from the node's own dpkg database
            # (their files go with them, from the upper layer's view only).
            node.exec(["dpkg", "--purge", "--force-depends", "--force-remove-essential", *purge])
        if remove and self.bare:
            node.exec(["rm", "-f", *remove])

    @cached_property
    def _bare_absent(self) -> tuple[list[str], list[str]]:
        """(packages to purge, unpackaged files to delete) so that no BARE_ABSENT name is on a
        bare node's PATH. Read from the host without changing it (dpkg -S only reads), once per
        sandbox: every node's lower layer is the same host."""
        packages: set[str] = set()
        files = []
        for directory in BARE_PATH.split(":"):
            for name in BARE_ABSENT:
                path = os.path.join(directory, name)
                if not os.path.lexists(path):
                    continue
                owner = run(["dpkg", "-S", path], check=False)
                if owner.returncode == 0:
                    packages.add(owner.stdout.split(":", 1)[0].strip())
                real = os.path.realpath(path)
                if owner.returncode != 0 and real != path:
                    owner = run(["dpkg", "-S", real], check=False)
                    if owner.returncode == 0:
                        packages.add(owner.stdout.split(":", 1)[0].strip())
                files.append(path)
        return sorted(packages), files

    def _wait_ssh(self, node: Node, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while True:
            proc = node.ssh("true", check=False, timeout=10)
            if proc.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise SandboxError(
                    f"sshd on {node.name} ({node.address}) did not accept the sandbox key: "
                    f"{proc.stderr.strip()} (see {node.dir / 'sshd.log'})"
                )
            time.sleep(0.3)

    # -- inspection --------------------------------------------------------
    def _netns_names(self) -> list[str]:
        proc = run(["ip", "-j", "netns", "list"], check=False)
        names = [n["name"] for n in json.loads(proc.stdout or "[]")] if proc.returncode == 0 else []
        return [n for n in names if re.fullmatch(rf"{re.escape(self.name)}-n\d+", n)]

    def _links(self) -> list[str]:
        proc = run(["ip", "-j", "link", "show"], check=False)
        names = [link["ifname"] for link in json.loads(proc.stdout or "[]")]
        return [n for n in names if n == self.bridge or re.fullmatch(rf"{re.escape(self.name)}-v\d+", n)]

    def _ns_inodes(self) -> dict[str, set[int]]:
        inodes: dict[str, set[int]] = {"net": set(), "mnt": set(), "uts": set()}
        for ns in self._netns_names():
            ino = _ns_inode(f"/run/netns/{ns}")
            if ino:
                inodes["net"].add(ino)
        nsdir = self.state_dir / "ns"
        if nsdir.is_dir():
            mounted = set(_mountpoints())
            for f in nsdir.iterdir():
                if str(f) in mounted:
                    ino = _ns_inode(str(f))
                    if ino:
                        inodes["mnt" if f.name.endswith("-mnt") else "uts"].add(ino)
        return inodes

    def processes(self) -> list[int]:
        """PIDs running inside any of this sandbox's node namespaces."""
        return _pids_in_namespaces(self._ns_inodes())

    def leftovers(self) -> list[str]:
        """Everything of this sandbox still present on the machine (empty = gone)."""
        found = []
        pids = self.processes()
        if pids:
            found.append(f"processes {pids}")
        mounts = [m for m in _mountpoints() if m.startswith(str(self.state_dir) + "/") or m == str(self.state_dir)]
        if mounts:
            found.append(f"mounts {mounts}")
        if self._netns_names():
            found.append(f"network namespaces {self._netns_names()}")
        if self._links():
            found.append(f"links {self._links()}")
        if self.state_dir.exists():
            found.append(f"state dir {self.state_dir}")
        return found

    def status(self) -> dict[str, object]:
        """A summary for humans and the CLI."""
        nodes = []
        for node in self.nodes:
            nodes.append(
                {
                    "name": node.name,
                    "address": node.address,
                    "netns": node.netns,
                    "present": node.netns in self._netns_names(),
                }
            )
        return {
            "name": self.name,
            "subnet": self.subnet,
            "bridge": self.bridge,
            "state_dir": str(self.state_dir),
            "key": str(self.key),
            "nodes": nodes,
            "leftovers": self.leftovers(),
        }

    # -- teardown ----------------------------------------------------------
    def down(self, log: Callable[..., None] = print) -> list[str]:
        """Remove every trace of the sandbox. Returns what is still left (empty if clean)."""
        say = log
        # 1. processes in any node namespace (sshd, runner, control plane, sessions)
        self._kill_all()
        # 2. namespaces files (mount/UTS namespaces die with their last reference)
        nsdir = self.state_dir / "ns"
        mounted = _mountpoints()
        for point in sorted((m for m in mounted if m.startswith(str(nsdir) + "/")), reverse=True):
            run(["umount", point], check=False)
        if str(nsdir) in _mountpoints():
            run(["umount", str(nsdir)], check=False)
        # 3. network: netns (takes the node veth ends along) then host links
        for ns in self._netns_names():
            run(["ip", "netns", "del", ns], check=False)
        for link in self._links():
            if link != self.bridge:
                run(["ip", "link", "del", link], check=False)
        if self.bridge in self._links():
            run(["ip", "link", "del", self.bridge], check=False)
        # 4. files, but never across a mount point
        if not any(m.startswith(str(self.state_dir) + "/") for m in _mountpoints()):
            shutil.rmtree(self.state_dir, ignore_errors=True)
        others = [p for p in STATE_ROOT.iterdir() if p.is_dir()] if STATE_ROOT.exists() else []
        record = STATE_ROOT / ".created-mountpoints.json"
        if not others and record.exists():  # other sandboxes may still mount over these dirs
            for path in json.loads(record.read_text()):
                try:
                    os.rmdir(path)  # only if still empty
                except OSError:
                    pass
            record.unlink(missing_ok=True)  # another sandbox's teardown may have removed it first
        if STATE_ROOT.exists() and not any(STATE_ROOT.iterdir()):
            try:
                STATE_ROOT.rmdir()
            except OSError:  # a sandbox created meanwhile uses it
                pass
        left = self.leftovers()
        if left:
            say(f"testbed: WARNING: sandbox {self.name} not fully removed: {'; '.join(left)}")
        else:
            say(f"testbed: sandbox {self.name} removed")
        return left

    def _kill_all(self, grace: float = 5.0) -> None:
        pids = self.processes()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while pids and time.monotonic() < deadline:
            time.sleep(0.1)
            pids = self.processes()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 5
        while self.processes() and time.monotonic() < deadline:
            time.sleep(0.1)
        # Reap any of our own children that just died so they do not linger as zombies.
        try:
            while os.waitpid(-1, os.WNOHANG)[0] > 0:
                pass
        except ChildProcessError:
            pass


def known_sandboxes() -> list[str]:
    """Names of sandboxes present on this machine (state dirs or bridges)."""
    names = set()
    if STATE_ROOT.is_dir():
        names.update(p.name for p in STATE_ROOT.iterdir() if p.is_dir())
    proc = run(["ip", "-j", "link", "show", "type", "bridge"], check=False)
    for link in json.loads(proc.stdout or "[]") if proc.returncode == 0 else []:
        m = re.fullmatch(r"([a-z][a-z0-9]{0,9})-br", link["ifname"])
        if m:
            names.add(m.group(1))
    return sorted(names)


def abandoned_sandboxes() -> list[str]:
    """Known sandboxes whose creating process is gone (a crashed run), safe to remove.

    A sandbox another test run is using right now is left alone: removing it would break
    that run in the middle of its test.
    """
    return [name for name in known_sandboxes() if not load(name)._live_owner()]


def load(name: str) -> Sandbox:
    """A Sandbox object for an existing sandbox (size and subnet from its state)."""
    meta = STATE_ROOT / name / "meta.json"
    if meta.exists():
        data = json.loads(meta.read_text())
        return Sandbox(
            name=name,
            subnet=data["subnet"],
            size=data["size"],
            bare=bool(data.get("bare")),
            private_root=bool(data.get("private_root")),
        )
    return Sandbox(name=name)
