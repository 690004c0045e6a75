"""A machine root for Prepare machine tests against a real sshd on this host, and a small artifact set.

The sshd these tests log in to runs on the computer that runs the tests, so nothing may touch its
/etc, its kernel or its services. Prepare renders every path under ``KUBEBOARD_PREPARE_ROOT``
(kubeadm.prepare.Layout) and runs the root's own programs first; this module builds such a root:
the files a blank Debian 12 machine has (/etc/os-release, an fstab with a swap entry, /proc/swaps,
/proc/sys values at 0, /run/systemd/system), and stand-ins for the programs that would change the
host's kernel or services (modprobe, sysctl, swapoff, systemctl, journalctl), each recording its
calls in ``<root>/calls.log`` and changing only files under the root. Everything else is real: SSH,
SFTP, openssl dgst (or sha256sum), install, df, lslocks, the package-manager lock a real process holds.

The artifact set's binaries are stand-ins too (scripts printing the versions kubeadm's and the
operation's checks read); the real binaries are proven on the test bed's bare machines.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

VERSION = "v1.37.2"
PAUSE = "registry.k8s.io/pause:3.10.2"
IMAGES = {"pause": PAUSE, "kube-apiserver": f"registry.k8s.io/kube-apiserver:{VERSION}"}

DEBIAN_12 = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nID=debian\n'


def _script(path: Path, body: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)


def machine_root(root: Path, *, os_release: str = DEBIAN_12) -> Path:
    """A blank machine's files and the stand-ins, under ``root`` (returned)."""
    r = str(root)
    (root / "etc").mkdir(parents=True, exist_ok=True)
    (root / "etc/os-release").write_text(os_release)
    (root / "etc/fstab").write_text("UUID=abc / ext4 defaults 0 1\n/swap.img none swap sw 0 0\n")
    (root / "proc").mkdir(exist_ok=True)
    (root / "proc/swaps").write_text("Filename\tType\tSize\tUsed\tPriority\n/swap.img file 1048572 0 -2\n")
    (root / "proc/sys/net/ipv4").mkdir(parents=True, exist_ok=True)
    (root / "proc/sys/net/ipv4/ip_forward").write_text("0\n")
    (root / "run/systemd/system").mkdir(parents=True, exist_ok=True)
    (root / "sys/module").mkdir(parents=True, exist_ok=True)
    (root / "state/enabled").mkdir(parents=True, exist_ok=True)
    (root / "state/swap-units").write_text("swap.img.swap loaded active active /swap.img\n")
    log = f'echo "$(basename "$0") $*" >> {r}/calls.log\n'
    sbin = root / "usr/sbin"
    # modprobe: loading br_netfilter is what creates net/bridge/* in /proc/sys.
    _script(
        sbin / "modprobe",
        log + f'mkdir -p {r}/sys/module/"$1"\n'
        f'[ "$1" = br_netfilter ] && mkdir -p {r}/proc/sys/net/bridge && '
        f"for f in bridge-nf-call-iptables bridge-nf-call-ip6tables; do [ -f {r}/proc/sys/net/bridge/$f ] || "
        f"echo 0 > {r}/proc/sys/net/bridge/$f; done\nexit 0\n",
    )
    _script(
        sbin / "sysctl",
        log + '[ "$1" = -p ] || exit 2\n'
        "grep -v '^#' \"$2\" | while IFS='= ' read -r key value; do [ -n \"$key\" ] || continue; "
        f'f={r}/proc/sys/$(echo "$key" | tr . /); [ -f "$f" ] || {{ echo "sysctl: cannot stat $f" >&2; exit 1; }}; '
        'echo "$value" > "$f"; echo "$key = $value"; done\n',
    )
    _script(
        sbin / "swapoff",
        log + f"head -n 1 {r}/proc/swaps > {r}/proc/swaps.new && mv {r}/proc/swaps.new {r}/proc/swaps\n",
    )
    _script(
        sbin / "systemctl",
        log
        + f"""case "$1" in
  list-units) cat {r}/state/swap-units ;;
  is-enabled) cat {r}/state/enabled/"$2" 2>/dev/null || {{ echo disabled; exit 1; }} ;;
  enable) echo enabled > {r}/state/enabled/"$2" ;;
  mask) shift; for u; do echo masked > {r}/state/enabled/"$u"; done ;;
  daemon-reload) ;;
  restart|start)
    if [ "$2" = containerd ]; then
      [ -x {r}/usr/local/bin/containerd ] || {{ echo "Unit containerd.service not found." >&2; exit 5; }}
      [ -e {r}/state/containerd-broken ] && {{ rm -f {r}/run/containerd/containerd.sock; exit 1; }}
      mkdir -p {r}/run/containerd && touch {r}/run/containerd/containerd.sock
    fi ;;
esac
""",
    )
    _script(
        root / "usr/bin/journalctl", log + 'echo "containerd[42]: failed to load plugin io.containerd.grpc.v1.cri"\n'
    )
    return root


def calls(root: Path) -> list[str]:
    path = root / "calls.log"
    return path.read_text().splitlines() if path.exists() else []


def oci_archive(name: str) -> bytes:
    """A minimal OCI image archive whose index.json names ``name``."""
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": "sha256:" + hashlib.sha256(name.encode()).hexdigest(),
                "size": 2,
                "annotations": {"io.containerd.image.name": name},
            }
        ],
    }
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as archive:
        for member, data in (
            ("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'),
            ("index.json", json.dumps(index).encode()),
        ):
            info = tarfile.TarInfo(member)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _ctr() -> str:
    # The stand-in containerd keeps its images beside its socket: <socket>.images, one name a line.
    return """sock=""
while [ $# -gt 0 ]; do case "$1" in --address) sock="$2"; shift 2 ;; -n) shift 2 ;; *) break ;; esac; done
[ -e "$sock" ] || { echo "ctr: failed to dial $sock: connection refused" >&2; exit 1; }
case "$1 $2" in
  "version "*) echo "Server: containerd v2.1.4" ;;
  "images ls") cat "$sock.images" 2>/dev/null; true ;;
  "images import") { tar -xOf "$3" index.json | sed 's/.*"io.containerd.image.name": *"\\([^"]*\\)".*/\\1/'; echo; } >> "$sock.images"; echo "unpacking $3" ;;
esac
"""


def artifact_set(directory: Path, *, version: str = VERSION, architecture: str = "amd64", padding: int = 0) -> Path:
    """A set in the agreed layout, with stand-in binaries (``padding`` bytes added to each, for
    benchmarks that need a realistic size). Returns ``directory``."""
    # The padding follows an exit: sh reads a script as it runs it, so a stand-in that went on to
    # read 15 MiB of comments would cost CPU no real binary does.
    pad = ("exit\n" + ("#" + "x" * 79 + "\n") * (padding // 81)) if padding else ""
    scripts = {
        "kubeadm": f'[ "$1" = version ] && echo {version}\n',
        "kubelet": f'echo "Kubernetes {version}"\n',
        "kubectl": f'echo "Client Version: {version}"\n',
        "crictl": 'echo "crictl version v1.37.0"\n',
        "containerd": 'echo "containerd github.com/containerd/containerd/v2 v2.1.4 75cb2b7"\n',
        "containerd-shim-runc-v2": "exit 0\n",
        "ctr": _ctr(),
        "runc": 'echo "runc version 1.3.0"\n',
    }
    for name, body in scripts.items():
        _script(directory / "bin" / name, body + pad)
    (directory / "systemd").mkdir(parents=True, exist_ok=True)
    (directory / "systemd/kubelet.service").write_text(
        "[Unit]\nDescription=kubelet\n[Service]\nExecStart=/usr/local/bin/kubelet\nRestart=always\n"
    )
    (directory / "systemd/10-kubeadm.conf").write_text(
        '[Service]\nEnvironment="KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf'
        ' --kubeconfig=/etc/kubernetes/kubelet.conf"\nExecStart=\nExecStart=/usr/local/bin/kubelet $KUBELET_KUBECONFIG_ARGS\n'
    )
    (directory / "systemd/containerd.service").write_text(
        "[Unit]\nDescription=containerd\n[Service]\nExecStart=/usr/local/bin/containerd\nDelegate=yes\n"
    )
    (directory / "images").mkdir(parents=True, exist_ok=True)
    for short, name in IMAGES.items():
        (directory / "images" / f"{short}.tar").write_bytes(oci_archive(name))
    (directory / "kubernetes-version").write_text(version + "\n")
    (directory / "architecture").write_text(architecture + "\n")
    write_sums(directory)
    return directory


def write_sums(directory: Path) -> None:
    lines = []
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory).as_posix()
        if path.is_file() and relative not in ("SHA256SUMS", "kubernetes-version", "architecture"):
            lines.append(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {relative}\n")
    (directory / "SHA256SUMS").write_text("".join(lines))


def host_state() -> dict[str, str]:
    """What of this host a Prepare must never change (compared before and after a test)."""
    state = {}
    for path in (
        "/proc/sys/net/ipv4/ip_forward",
        "/proc/swaps",
        "/etc/fstab",
        "/etc/modules-load.d/k8s.conf",
        "/etc/sysctl.d/k8s.conf",
        "/etc/containerd/config.toml",
        "/usr/local/bin/kubeadm",
        "/etc/crictl.yaml",
    ):
        try:
            state[path] = Path(path).read_text(errors="replace")
        except OSError:
            state[path] = "(absent)"
    state["modules"] = ",".join(sorted(os.listdir("/sys/module"))) if os.path.isdir("/sys/module") else ""
    return state
