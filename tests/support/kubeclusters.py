"""Clusters on the real test bed, as the tokens tests use them.

``store_authorities`` puts CA key pairs into a cluster's custody the way the identity
operation does; ``seed_node_pki`` writes them onto a sandbox node before ``kubeadm init
phase certs`` runs, so kubeadm reuses Kubeboard's CA ("Using existing ca certificate
authority") exactly as on a cluster Kubeboard creates.
"""

from __future__ import annotations

from kubeadm import pki, uploads


def store_authorities(cluster, pairs: dict[str, pki.KeyPair]) -> None:
    from clusters.identity import store_authority

    for name, pair in pairs.items():
        store_authority(cluster, name, pair)


def seed_node_pki(node, pairs: dict[str, pki.KeyPair]) -> None:
    """Write Kubeboard's CAs into the node's /etc/kubernetes/pki (kubeadm then reuses them)."""
    for name, (cert_file, key_file) in uploads.AUTHORITY_FILES.items():
        pair = pairs[name]
        cert_path = node.host_path(f"/etc/kubernetes/pki/{cert_file}")
        key_path = node.host_path(f"/etc/kubernetes/pki/{key_file}")
        cert_path.parent.mkdir(parents=True, exist_ok=True)
        cert_path.write_bytes(pair.public_key_pem() if name == "sa" else pair.cert_pem())
        key_path.write_bytes(pair.key_pem())
        key_path.chmod(0o600)


# What `kubeadm join phase preflight` needs ignored on a test-bed machine (no container
# runtime, no kubelet binary, ip_forward never enabled); discovery still runs for real.
PREFLIGHT_IGNORE = (
    "CRI,ContainerRuntimeVersion,SystemVerification,KubeletVersion,FileContent--proc-sys-net-ipv4-ip_forward"
)


class TokenTestbed:
    """A real control plane whose CA Kubeboard generated (and so holds), on node1 of a sandbox."""

    def __init__(self, sandbox, control_plane, bins, authorities, init_outputs: dict[str, str] | None = None) -> None:
        self.sandbox = sandbox
        self.cp = control_plane
        self.bins = bins
        self.authorities = authorities
        self.init_outputs = init_outputs or {}  # what kubeadm said in the uploads and token phases

    @property
    def endpoint(self) -> str:
        return f"{self.cp.node.address}:6443"

    @property
    def admin_conf(self) -> str:
        return self.cp.admin_conf.read_text()

    def kubectl_json(self, *args: str) -> dict:
        import json

        return json.loads(self.cp.kubectl(*args, "-o", "json").stdout)

    def created_cluster(self, name: str = "created", **fields):
        """A Cluster row for the control plane the test bed initialized: CA custody, pin, endpoint,
        and running (Kubeboard offers API actions only on an initialized cluster)."""
        from clusters.models import Cluster
        from kubeadm import discovery
        from tests.factories import make_cluster

        values = {
            "control_plane_endpoint": self.endpoint,
            "ca_pin_hash": discovery.ca_pin_hash(self.authorities["ca"].cert),
            "status": Cluster.Status.RUNNING,
        }
        cluster = make_cluster(name, **(values | fields))
        store_authorities(cluster, self.authorities)
        return cluster


def start_token_testbed(name: str, subnet: str, size: int = 1, log=print):
    """Context manager: sandbox + real control plane with Kubeboard's CAs; torn down after."""
    from contextlib import contextmanager

    @contextmanager
    def run():
        from tools.testbed.binaries import selected_version
        from tools.testbed.cluster import ControlPlane, new_bootstrap_token
        from tools.testbed.testing import require_binaries, sandbox

        bins = require_binaries()
        authorities = pki.generate_cluster_authorities("RSA-2048")
        with sandbox(name, subnet, size=size) as sb:
            node = sb.node(1)
            seed_node_pki(node, authorities)
            cp = ControlPlane(node=node, bin_dir=bins, version=selected_version(), token=new_bootstrap_token())
            cp.init_static_pods(log=log)
            log(f"testbed: static-pod runner on {node.name}, pid {node.start_runner(bins)}")
            cp.wait_ready(log=log)
            outputs = cp.finish_init(log=log)
            yield TokenTestbed(sb, cp, bins, authorities, outputs)

    return run()


class SharedTokenTestbed:
    """One token test bed for every module that needs one (booted on first use: CI time).

    tests/conftest.py keeps its users back to back and closes it after the last one, so the
    control plane does not idle through the rest of the run; a later user boots it again.
    """

    def __init__(self, name: str, subnet: str, size: int) -> None:
        self.name, self.subnet, self.size = name, subnet, size
        self._running = None
        self._bed: TokenTestbed | None = None

    def get(self) -> TokenTestbed:
        if self._bed is None:
            running = start_token_testbed(self.name, self.subnet, size=self.size)
            self._bed = running.__enter__()
            self._running = running
        return self._bed

    def close(self) -> None:
        running, self._running, self._bed = self._running, None, None
        if running is not None:
            running.__exit__(None, None, None)  # tears down and checks that nothing is left


def stored_column(cluster, column: str = "admin_kubeconfig") -> str:
    """What the database really holds for a cluster column (bypassing field decryption)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM clusters_cluster WHERE id = %s", [cluster.pk])
        return cursor.fetchone()[0]
