"""The phases of kubeadm init, join, reset and upgrade, as data.

Order and names follow kubeadm v1.31-v1.34 (cmd/kubeadm/app/cmd/{init,join,
reset,upgrade/apply,upgrade/node}.go; kubeadm-facts.md sections 1, 15).
Descriptions are our own words. ``command`` is the argv that runs exactly
that phase on a node (parents with sub-phases run them all). ``needs_api_server``
says whether the phase must reach a running kube-apiserver; every join phase
does, because `kubeadm join phase ...` first discovers the cluster through it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Phase:
    name: str
    description: str
    command: tuple[str, ...]
    sub_phases: tuple[Phase, ...] = ()
    needs_api_server: bool = False
    # kubeadm hides some phases from --help (still runnable and skippable).
    hidden: bool = False

    def find(self, path: str) -> Phase | None:
        """Find "certs/apiserver"-style paths among this phase's sub-phases."""
        head, _, rest = path.partition("/")
        for sub in self.sub_phases:
            if sub.name == head:
                return sub if not rest else sub.find(rest)
        return None

    @property
    def skip_names(self) -> tuple[str, ...]:
        """Names usable with --skip-phases: "certs" and "certs/<sub>"."""
        return (self.name,) + tuple(f"{self.name}/{s.name}" for s in self.sub_phases)


def _init(*args: str) -> tuple[str, ...]:
    return ("kubeadm", "init", "phase") + args


def _sub(parent: str, name: str, description: str, *, api: bool = False, cmd=_init) -> Phase:
    return Phase(name, description, cmd(parent, name), needs_api_server=api)


INIT_PHASES: tuple[Phase, ...] = (
    Phase("preflight", "Check the machine can host a control plane and pull the control-plane images.",
          _init("preflight")),
    Phase("certs", "Create the cluster CAs, the serving and client certificates, and the service-account key.",
          _init("certs", "all"), sub_phases=(
              _sub("certs", "ca", "Create the cluster CA that signs API server and client certificates."),
              _sub("certs", "apiserver", "Issue the API server serving certificate with all its names and IPs."),
              _sub("certs", "apiserver-kubelet-client", "Issue the certificate the API server uses to call kubelets."),
              _sub("certs", "front-proxy-ca", "Create the CA for the aggregation-layer front proxy."),
              _sub("certs", "front-proxy-client", "Issue the front-proxy client certificate."),
              _sub("certs", "etcd-ca", "Create the CA that signs etcd certificates."),
              _sub("certs", "etcd-server", "Issue the etcd serving certificate."),
              _sub("certs", "etcd-peer", "Issue the certificate etcd members use with each other."),
              _sub("certs", "etcd-healthcheck-client", "Issue the client certificate for etcd health probes."),
              _sub("certs", "apiserver-etcd-client", "Issue the client certificate the API server uses for etcd."),
              _sub("certs", "sa", "Create the key pair that signs service-account tokens."),
          )),
    Phase("kubeconfig", "Write the kubeconfig files for admins, the kubelet and the control-plane components.",
          _init("kubeconfig", "all"), sub_phases=(
              _sub("kubeconfig", "admin", "Write admin.conf for the kubeadm:cluster-admins group."),
              _sub("kubeconfig", "super-admin", "Write super-admin.conf, the break-glass system:masters credential."),
              _sub("kubeconfig", "kubelet", "Write kubelet.conf for this node's kubelet."),
              _sub("kubeconfig", "controller-manager", "Write controller-manager.conf."),
              _sub("kubeconfig", "scheduler", "Write scheduler.conf."),
          )),
    Phase("etcd", "Write the static Pod manifest of the local etcd member.", _init("etcd", "local"),
          sub_phases=(_sub("etcd", "local", "Write etcd.yaml for a single local etcd member."),)),
    Phase("control-plane", "Write the static Pod manifests of the API server, controller manager and scheduler.",
          _init("control-plane", "all"), sub_phases=(
              _sub("control-plane", "apiserver", "Write kube-apiserver.yaml."),
              _sub("control-plane", "controller-manager", "Write kube-controller-manager.yaml."),
              _sub("control-plane", "scheduler", "Write kube-scheduler.yaml."),
          )),
    Phase("kubelet-start", "Write the kubelet's flags and configuration, then (re)start the kubelet.",
          _init("kubelet-start")),
    Phase("wait-control-plane", "Wait until the kubelet and every control-plane component report healthy.",
          _init("wait-control-plane"), needs_api_server=True),
    Phase("upload-config", "Store the cluster and kubelet configuration in ConfigMaps for later joins and upgrades.",
          _init("upload-config", "all"), needs_api_server=True, sub_phases=(
              _sub("upload-config", "kubeadm", "Store the ClusterConfiguration in kube-system/kubeadm-config.",
                   api=True),
              _sub("upload-config", "kubelet", "Store the KubeletConfiguration in kube-system/kubelet-config.",
                   api=True),
          )),
    Phase("upload-certs", "Encrypt the shared CA and service-account keys into the kubeadm-certs Secret "
          "(only with --upload-certs).", _init("upload-certs", "--upload-certs"), needs_api_server=True),
    Phase("mark-control-plane", "Label and taint this node as a control-plane node.", _init("mark-control-plane"),
          needs_api_server=True),
    Phase("bootstrap-token", "Create bootstrap tokens, the RBAC rules for joining nodes, and the cluster-info "
          "ConfigMap.", _init("bootstrap-token"), needs_api_server=True),
    Phase("kubelet-finalize", "Point kubelet.conf at the kubelet's rotating client certificate.",
          _init("kubelet-finalize", "all"), sub_phases=(
              _sub("kubelet-finalize", "enable-client-cert-rotation",
                   "Switch kubelet.conf to /var/lib/kubelet/pki/kubelet-client-current.pem."),
          )),
    Phase("addon", "Install the CoreDNS and kube-proxy add-ons.", _init("addon", "all"), needs_api_server=True,
          sub_phases=(
              _sub("addon", "coredns", "Install CoreDNS and the kube-dns Service.", api=True),
              _sub("addon", "kube-proxy", "Install the kube-proxy DaemonSet and its configuration.", api=True),
          )),
    Phase("show-join-command", "Print the commands that join more control-plane and worker nodes.",
          _init("show-join-command")),
)


def _join(*args: str) -> tuple[str, ...]:
    return ("kubeadm", "join", "phase") + args


def _jsub(parent: str, name: str, description: str) -> Phase:
    return Phase(name, description, _join(parent, name), needs_api_server=True)


_JOIN_PREFLIGHT = Phase("preflight", "Check the machine, discover and verify the cluster, read its configuration.",
                        _join("preflight"), needs_api_server=True)
_JOIN_KUBELET_START = Phase("kubelet-start", "Write the bootstrap kubeconfig and kubelet configuration, start the "
                            "kubelet and let it complete TLS bootstrap.", _join("kubelet-start"),
                            needs_api_server=True)

JOIN_WORKER_PHASES: tuple[Phase, ...] = (_JOIN_PREFLIGHT, _JOIN_KUBELET_START)

# With ControlPlaneKubeletLocalMode (beta, on by default since 1.33) kubeadm
# runs the hidden etcd-join and kubelet-wait-bootstrap phases and skips
# control-plane-join/etcd; this list is that default layout.
JOIN_CONTROL_PLANE_PHASES: tuple[Phase, ...] = (
    _JOIN_PREFLIGHT,
    Phase("control-plane-prepare", "Fetch the shared certificates and write this node's certificates, "
          "kubeconfigs and control-plane manifests.", _join("control-plane-prepare", "all"),
          needs_api_server=True, sub_phases=(
              _jsub("control-plane-prepare", "download-certs",
                    "Download and decrypt the kubeadm-certs Secret (with --certificate-key)."),
              _jsub("control-plane-prepare", "certs", "Issue this node's serving and client certificates."),
              _jsub("control-plane-prepare", "kubeconfig",
                    "Write admin.conf, controller-manager.conf and scheduler.conf."),
              _jsub("control-plane-prepare", "control-plane", "Write the three control-plane static Pod manifests."),
          )),
    Phase("check-etcd", "Check that the existing etcd cluster is healthy before adding a member.",
          _join("check-etcd"), needs_api_server=True),
    _JOIN_KUBELET_START,
    Phase("etcd-join", "Add this node as an etcd learner, write its etcd manifest and promote it.",
          _join("etcd-join"), needs_api_server=True, hidden=True),
    Phase("kubelet-wait-bootstrap", "Wait for the kubelet to become healthy and finish TLS bootstrap.",
          _join("kubelet-wait-bootstrap"), needs_api_server=True, hidden=True),
    Phase("control-plane-join", "Mark this node as a control-plane node.", _join("control-plane-join", "all"),
          needs_api_server=True, sub_phases=(
              _jsub("control-plane-join", "mark-control-plane", "Label and taint the node as control plane."),
          )),
    Phase("wait-control-plane", "Wait until this node's control-plane components report healthy.",
          _join("wait-control-plane"), needs_api_server=True),
)


def _reset(*args: str) -> tuple[str, ...]:
    return ("kubeadm", "reset", "phase") + args


RESET_PHASES: tuple[Phase, ...] = (
    Phase("preflight", "Confirm the reset and check privileges.", _reset("preflight")),
    Phase("remove-etcd-member", "Remove this node's member from the etcd cluster and clear its data directory.",
          _reset("remove-etcd-member")),
    Phase("cleanup-node", "Stop the kubelet, remove containers and delete kubeadm's files on this node.",
          _reset("cleanup-node")),
)


def _apply(*args: str) -> tuple[str, ...]:
    return ("kubeadm", "upgrade", "apply", "phase") + args


def _asub(parent: str, name: str, description: str) -> Phase:
    return Phase(name, description, _apply(parent, name), needs_api_server=True)


# `kubeadm upgrade apply` on the first control-plane node (phased since 1.32).
UPGRADE_PHASES: tuple[Phase, ...] = (
    Phase("preflight", "Check cluster health and the version skew policy, then pull the new images.",
          _apply("preflight"), needs_api_server=True),
    Phase("control-plane", "Upgrade etcd and the control-plane static Pods one by one, renewing certificates.",
          _apply("control-plane"), needs_api_server=True),
    Phase("upload-config", "Store the upgraded cluster and kubelet configuration.", _apply("upload-config", "all"),
          needs_api_server=True, sub_phases=(
              _asub("upload-config", "kubeadm", "Update kube-system/kubeadm-config."),
              _asub("upload-config", "kubelet", "Update kube-system/kubelet-config."),
          )),
    Phase("kubelet-config", "Rewrite this node's kubelet configuration from the cluster's ConfigMap.",
          _apply("kubelet-config"), needs_api_server=True),
    Phase("bootstrap-token", "Re-apply the RBAC rules that bootstrap tokens rely on.", _apply("bootstrap-token"),
          needs_api_server=True),
    Phase("addon", "Upgrade CoreDNS and kube-proxy once every control-plane node is upgraded.",
          _apply("addon", "all"), needs_api_server=True, sub_phases=(
              _asub("addon", "coredns", "Upgrade CoreDNS."),
              _asub("addon", "kube-proxy", "Upgrade kube-proxy."),
          )),
    Phase("post-upgrade", "Run version-specific clean-ups after the upgrade.", _apply("post-upgrade"),
          needs_api_server=True),
)


def _node(*args: str) -> tuple[str, ...]:
    return ("kubeadm", "upgrade", "node", "phase") + args


# `kubeadm upgrade node` on every other node.
UPGRADE_NODE_PHASES: tuple[Phase, ...] = (
    Phase("preflight", "Check the node can be upgraded and pull images.", _node("preflight"), needs_api_server=True),
    Phase("control-plane", "Upgrade this node's control-plane static Pods (control-plane nodes only).",
          _node("control-plane"), needs_api_server=True),
    Phase("kubelet-config", "Rewrite this node's kubelet configuration from the cluster's ConfigMap.",
          _node("kubelet-config"), needs_api_server=True),
    Phase("addon", "Upgrade CoreDNS and kube-proxy once every control-plane node is upgraded.",
          _node("addon", "all"), needs_api_server=True),
    Phase("post-upgrade", "Run version-specific clean-ups after the upgrade.", _node("post-upgrade"),
          needs_api_server=True),
)

WORKFLOWS: dict[str, tuple[Phase, ...]] = {
    "init": INIT_PHASES,
    "join-worker": JOIN_WORKER_PHASES,
    "join-control-plane": JOIN_CONTROL_PLANE_PHASES,
    "reset": RESET_PHASES,
    "upgrade": UPGRADE_PHASES,
    "upgrade-node": UPGRADE_NODE_PHASES,
}


def phase_names(phases: tuple[Phase, ...]) -> list[str]:
    """Flat "parent" / "parent/sub" names in execution order."""
    names = []
    for phase in phases:
        names.append(phase.name)
        names.extend(f"{phase.name}/{s.name}" for s in phase.sub_phases)
    return names


def find_phase(phases: tuple[Phase, ...], path: str) -> Phase | None:
    head, _, rest = path.partition("/")
    for phase in phases:
        if phase.name == head:
            return phase if not rest else phase.find(rest)
    return None
