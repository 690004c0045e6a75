"""Bring up a real control plane on a sandbox node with real kubeadm phases.

The kubelet is replaced by the static-pod runner (tools.testbed.runner); the
phases that need a kubelet (kubelet-start, wait-control-plane,
mark-control-plane, kubelet-finalize, addon) are not run here: see
tools/README.md, "The kubelet".
"""

from __future__ import annotations

import os
import secrets
import string
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tools.testbed.guard import assert_routed_via_bridge
from tools.testbed.sandbox import Node, SandboxError, run

KUBEADM_CONFIG = "/etc/kubernetes/kubeadm-testbed.yaml"
_ALNUM = string.ascii_lowercase + string.digits


def new_bootstrap_token() -> str:
    """A random token in kubeadm's format [a-z0-9]{6}.[a-z0-9]{16}."""
    pick = secrets.choice
    return "".join(pick(_ALNUM) for _ in range(6)) + "." + "".join(pick(_ALNUM) for _ in range(16))


def kubeadm_config(node: Node, version: str, token: str, endpoint: str = "", cert_sans: tuple[str, ...] = ()) -> str:
    """A kubeadm v1beta4 config for a control-plane node at node.address.

    kubernetesVersion is explicit: without it kubeadm would ask the internet
    for the latest stable release. ``endpoint``: controlPlaneEndpoint (default the node's own
    address:6443; e.g. a virtual IP's ``VIP:8443``); ``cert_sans``: extra API server names.
    """
    sans = "".join(f"  - {name}\n" for name in cert_sans)
    api_server = f"apiServer:\n  certSANs:\n{sans}" if sans else ""
    return f"""\
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
bootstrapTokens:
- token: "{token}"
  description: kubeboard testbed
  ttl: 2h0m0s
  groups:
  - system:bootstrappers:kubeadm:default-node-token
  usages:
  - signing
  - authentication
localAPIEndpoint:
  advertiseAddress: {node.address}
  bindPort: 6443
nodeRegistration:
  name: {node.name}
  criSocket: unix:///run/containerd/containerd.sock
  imagePullPolicy: IfNotPresent
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: {version}
clusterName: kubeboard-testbed
controlPlaneEndpoint: {endpoint or f"{node.address}:6443"}
{api_server}networking:
  serviceSubnet: 10.96.0.0/12
  podSubnet: 10.244.0.0/16
  dnsDomain: cluster.local
"""


@dataclass
class ControlPlane:
    node: Node
    bin_dir: Path
    version: str
    token: str
    endpoint: str = ""  # controlPlaneEndpoint; default the node's address:6443
    cert_sans: tuple[str, ...] = ()

    @property
    def kubeadm(self) -> str:
        return str(self.bin_dir / "kubeadm")

    @property
    def admin_conf(self) -> Path:
        """admin.conf as seen from the host (the node's private /etc/kubernetes)."""
        return self.node.host_path("/etc/kubernetes/admin.conf")

    @property
    def ca_crt(self) -> Path:
        return self.node.host_path("/etc/kubernetes/pki/ca.crt")

    def kubeadm_phase(self, phase: str, *extra: str, timeout: float = 300) -> str:
        """Run ``kubeadm init phase <phase> --config ...`` on the node over SSH."""
        cmd = f"{self.kubeadm} init phase {phase} --config {KUBEADM_CONFIG} {' '.join(extra)}"
        proc = self.node.ssh(cmd + " 2>&1", check=False, timeout=timeout)
        if proc.returncode != 0:
            raise SandboxError(f"`{cmd}` on {self.node.name} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
        return proc.stdout

    def kubectl(
        self, *args: str, kubeconfig: Path | None = None, check: bool = True, timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        """kubectl on the host against the node's API server (route-guarded)."""
        assert_routed_via_bridge(self.node.address, self.node.sandbox.bridge)
        cmd = [
            str(self.bin_dir / "kubectl"),
            f"--kubeconfig={kubeconfig or self.admin_conf}",
            "--request-timeout=10s",
            *args,
        ]
        # No *_proxy variables: the guard vouches for the direct route only.
        env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
        return run(cmd, check=check, timeout=timeout, env=env)

    def whoami_with_token(self, token: str) -> subprocess.CompletedProcess[str]:
        """``kubectl auth whoami`` authenticating with only ``token`` (no client cert)."""
        return self.kubectl(
            f"--server=https://{self.node.address}:6443",
            f"--certificate-authority={self.ca_crt}",
            f"--token={token}",
            "auth",
            "whoami",
            "-o",
            "json",
            kubeconfig=Path("/dev/null"),
            check=False,
        )

    def write_files(self) -> None:
        cfg = self.node.host_path(KUBEADM_CONFIG)
        cfg.parent.mkdir(parents=True, exist_ok=True)
        cfg.write_text(kubeadm_config(self.node, self.version, self.token, self.endpoint, self.cert_sans))

    def init_static_pods(self, log: Callable[..., None] = print) -> None:
        """certs, kubeconfig, etcd and control-plane phases (files only)."""
        self.write_files()
        for phase in ("certs all", "kubeconfig all", "etcd local", "control-plane all"):
            log(f"testbed: kubeadm init phase {phase}")
            self.kubeadm_phase(phase)

    def wait_ready(self, timeout: float = 240, log: Callable[..., None] = print) -> None:
        """Wait until /readyz answers ok, else raise with the component logs' tails."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            proc = self.kubectl("get", "--raw", "/readyz", check=False, timeout=20)
            if proc.returncode == 0 and proc.stdout.strip() == "ok":
                return
            last = (proc.stdout + proc.stderr).strip()[-300:]
            time.sleep(2)
        raise SandboxError(
            f"API server on {self.node.name} not ready after {timeout:.0f}s: {last}\n" + self.log_tails()
        )

    def log_tails(self, lines: int = 15) -> str:
        out = []
        for f in sorted((self.node.dir / "logs").glob("*.log")):
            tail = f.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {f.name}\n" + "\n".join(tail))
        return "\n".join(out)

    def kubeadm_init(self, timeout: float = 600) -> str:
        """The whole ``kubeadm init`` (all phases but preflight) over SSH.

        Needs the node's runner started with ``kubelet=True`` (hollow kubelet).
        preflight is skipped: it needs a container runtime to pull images.
        """
        self.write_files()
        cmd = f"{self.kubeadm} init --config {KUBEADM_CONFIG} --skip-phases=preflight --upload-certs"
        proc = self.node.ssh(cmd + " 2>&1", check=False, timeout=timeout)
        if proc.returncode != 0:
            raise SandboxError(f"`{cmd}` failed ({proc.returncode}):\n{proc.stdout}\n{self.log_tails()}")
        return proc.stdout

    def join_command(self, control_plane: bool = False) -> str:
        """``kubeadm token create --print-join-command`` (+ a fresh certificate key)."""
        cmd = f"{self.kubeadm} token create --print-join-command --kubeconfig /etc/kubernetes/admin.conf"
        if control_plane:
            # Re-upload with a new key (kubeadm refuses --certificate-key with --config).
            out = self.kubeadm_phase("upload-certs", "--upload-certs")
            key = out.strip().splitlines()[-1].strip()
            if len(key) != 64:
                raise SandboxError(f"no certificate key in upload-certs output:\n{out}")
            cmd += f" --certificate-key {key}"
        return self.node.ssh(cmd).stdout.strip()

    def finish_init(self, log: Callable[..., None] = print) -> dict[str, str]:
        """upload-config, upload-certs and bootstrap-token phases against the live API."""
        outputs = {}
        for phase, extra in (("upload-config all", ()), ("upload-certs", ("--upload-certs",)), ("bootstrap-token", ())):
            log(f"testbed: kubeadm init phase {phase} {' '.join(extra)}")
            outputs[phase] = self.kubeadm_phase(phase, *extra)
        return outputs


def start_control_plane(
    node: Node, bin_dir: Path, version: str, token: str | None = None, log: Callable[..., None] = print
) -> ControlPlane:
    """Full bring-up on ``node``: phases, runner, readiness, uploads, token."""
    cp = ControlPlane(node=node, bin_dir=bin_dir, version=version, token=token or new_bootstrap_token())
    cp.init_static_pods(log=log)
    log(f"testbed: static-pod runner on {node.name}, pid {node.start_runner(bin_dir)}")
    cp.wait_ready(log=log)
    cp.finish_init(log=log)
    return cp


def kubeadm_join(node: Node, bin_dir: Path, join_command: str, timeout: float = 600) -> str:
    """Run a printed ``kubeadm join ...`` on ``node`` (all phases but preflight).

    The node's runner must run with ``kubelet=True``. The address and name are
    explicit because nodes have no default route for kubeadm to guess from.
    """
    if not join_command.startswith("kubeadm join "):
        raise ValueError(f"not a join command: {join_command!r}")
    cmd = (
        f"{bin_dir / 'kubeadm'} {join_command[len('kubeadm ') :]} --skip-phases=preflight "
        f"--node-name {node.name} --cri-socket unix:///run/containerd/containerd.sock"
    )
    if "--control-plane" in join_command:
        cmd += f" --apiserver-advertise-address {node.address}"
    proc = node.ssh(cmd + " 2>&1", check=False, timeout=timeout)
    if proc.returncode != 0:
        tails = []
        for f in sorted((node.dir / "logs").glob("*.log")):
            tails.append(f"--- {f.name}\n" + "\n".join(f.read_text(errors="replace").splitlines()[-15:]))
        raise SandboxError(f"`{cmd}` on {node.name} failed ({proc.returncode}):\n{proc.stdout}\n" + "\n".join(tails))
    return proc.stdout
