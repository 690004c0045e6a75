"""kubeadm's control-plane components: their names, the ports they serve, their static Pod manifests.

Sources: cmd/kubeadm/app/constants/constants.go (``KubeAPIServer``, ``Etcd``,
``KubeAPIServerPort``, ``EtcdListenClientPort``, ``EtcdListenPeerPort``, ``KubeletPort``,
``KubeControllerManagerPort``, ``KubeSchedulerPort``, ``ManifestsSubDirName``) and
cmd/kubeadm/app/preflight/checks.go (the ``Port-NNNN`` checks before init and join).
"""

from __future__ import annotations

ETCD = "etcd"
KUBE_APISERVER = "kube-apiserver"
KUBE_CONTROLLER_MANAGER = "kube-controller-manager"
KUBE_SCHEDULER = "kube-scheduler"

# The static Pods kubeadm writes on a control plane, etcd first: the API server needs etcd, the
# controller manager and the scheduler need the API server, so they are restarted in this order.
CONTROL_PLANE_COMPONENTS = (ETCD, KUBE_APISERVER, KUBE_CONTROLLER_MANAGER, KUBE_SCHEDULER)
# The ones whose image carries the Kubernetes version (etcd has its own, which kubeadm picks).
VERSIONED_COMPONENTS = (KUBE_APISERVER, KUBE_CONTROLLER_MANAGER, KUBE_SCHEDULER)
# The order ``kubeadm upgrade plan`` lists them in.
UPGRADE_PLAN_ORDER = (*VERSIONED_COMPONENTS, ETCD)

API_SERVER_PORT = 6443
ETCD_CLIENT_PORT = 2379
ETCD_PEER_PORT = 2380
KUBELET_PORT = 10250
CONTROLLER_MANAGER_PORT = 10257
SCHEDULER_PORT = 10259

# The port each component's static Pod listens on: it is up once that port listens, and
# stopped once it no longer does (the kubelet has no other sign a shell can read).
PORT_OF = {
    ETCD: ETCD_CLIENT_PORT,
    KUBE_APISERVER: API_SERVER_PORT,
    KUBE_CONTROLLER_MANAGER: CONTROLLER_MANAGER_PORT,
    KUBE_SCHEDULER: SCHEDULER_PORT,
}
CONTROL_PLANE_PORTS = tuple(sorted(PORT_OF.values()))

# The ports kubeadm's preflight checks (Port-NNNN) before init or a control-plane join
# (local etcd), and before a worker join, with what uses each.
PREFLIGHT_PORTS_CONTROL_PLANE = {
    API_SERVER_PORT: KUBE_APISERVER,
    ETCD_CLIENT_PORT: "etcd client",
    ETCD_PEER_PORT: "etcd peer",
    KUBELET_PORT: "kubelet",
    CONTROLLER_MANAGER_PORT: KUBE_CONTROLLER_MANAGER,
    SCHEDULER_PORT: KUBE_SCHEDULER,
}
PREFLIGHT_PORTS_WORKER = {KUBELET_PORT: "kubelet"}
# kube-apiserver's default --service-node-port-range: ports a NodePort Service may take.
NODEPORT_RANGE = (30000, 32767)

# Which static Pod uses each certificate ``kubeadm certs renew`` renews, by its check-expiration
# name: the Pods to restart after a renewal (kubeadm only says "You must restart the
# kube-apiserver, kube-controller-manager, kube-scheduler and etcd"). None: no static Pod.
COMPONENT_OF_CERTIFICATE = {
    "apiserver": KUBE_APISERVER,
    "apiserver-kubelet-client": KUBE_APISERVER,
    "apiserver-etcd-client": KUBE_APISERVER,
    "front-proxy-client": KUBE_APISERVER,
    "etcd-server": ETCD,
    "etcd-peer": ETCD,
    "etcd-healthcheck-client": ETCD,
    "controller-manager.conf": KUBE_CONTROLLER_MANAGER,
    "scheduler.conf": KUBE_SCHEDULER,
    "admin.conf": None,
    "super-admin.conf": None,
}

KUBERNETES_DIR = "/etc/kubernetes"
MANIFESTS_DIR = f"{KUBERNETES_DIR}/manifests"
# kubeadm's own scratch directory (its upgrade backups live there): on the same disk as
# /etc/kubernetes, and emptied by ``kubeadm reset --cleanup-tmp-dir``.
TMP_DIR = f"{KUBERNETES_DIR}/tmp"


def manifest_name(component: str) -> str:
    """The file name of a component's static Pod manifest ("etcd" -> etcd.yaml)."""
    return f"{component}.yaml"


def manifest_path(component: str) -> str:
    """Where kubeadm writes a component's static Pod manifest ("etcd" -> /etc/kubernetes/manifests/etcd.yaml)."""
    return f"{MANIFESTS_DIR}/{manifest_name(component)}"
