"""Shared steps of the kubeadm e2e tests: kubeadm/'s recipes run phase by phase on test-bed nodes
over SSH (the engine does the same through remote.ssh). Not a test module."""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from kubeadm import certkeys, discovery, nodeconfig, pki, tokens, uploads, workflow
from kubeadm.config import ClusterConfiguration, default_cluster_configuration
from tests.support import etcdctl
from tools.testbed import preflight
from tools.testbed.cluster import ControlPlane
from tools.testbed.sandbox import Node

CRI_SOCKET = "unix:///run/containerd/containerd.sock"


def run(node: Node, argv: list[str], *, timeout: float = 600) -> tuple[int, str]:
    proc = node.ssh(shlex.join(argv) + " 2>&1", check=False, timeout=timeout)
    return proc.returncode, proc.stdout


def ok(node: Node, argv: list[str], *, timeout: float = 600) -> str:
    status, out = run(node, argv, timeout=timeout)
    assert status == 0, f"{shlex.join(argv)} on {node.name} exited {status}:\n{out}"
    return out


@dataclass
class Cluster:
    """A cluster made with kubeadm/'s recipes; ``cp`` gives host-side kubectl."""

    first: Node
    config: ClusterConfiguration
    authorities: dict
    token: tokens.BootstrapTokenString
    certificate_key: str
    cp: ControlPlane
    outputs: dict = field(default_factory=dict)

    @property
    def pin(self) -> str:
        return discovery.ca_pin_hash(self.authorities["ca"].cert)

    def kubectl_json(self, *args: str) -> dict:
        return json.loads(self.cp.kubectl(*args, "-o", "json").stdout)

    def join_worker(self, node: Node) -> dict[str, str]:
        node.write_file(
            nodeconfig.JOIN_CONFIG_PATH,
            nodeconfig.join_config_for_node(
                api_server_endpoint=self.config.control_plane_endpoint,
                token=self.token,
                ca_cert_hashes=[self.pin],
                node_name=node.name,
                cri_socket=CRI_SOCKET,
                ignore_preflight_errors=preflight.TESTBED_JOIN_WORKER,
            ).encode(),
            nodeconfig.CONFIG_MODE,
        )
        return {
            p.name: ok(node, workflow.join_phase_command(p.name, nodeconfig.JOIN_CONFIG_PATH))
            for p in workflow.JOIN_WORKER_PHASES
        }

    def join_control_plane(self, node: Node, *, pre_seed: bool) -> dict[str, str]:
        if pre_seed:
            for item in uploads.control_plane_shared_files(self.authorities):
                node.write_file(item.path, item.data, item.mode)
        node.write_file(
            nodeconfig.JOIN_CONFIG_PATH,
            nodeconfig.join_config_for_node(
                api_server_endpoint=self.config.control_plane_endpoint,
                token=self.token,
                ca_cert_hashes=[self.pin],
                node_name=node.name,
                cri_socket=CRI_SOCKET,
                ignore_preflight_errors=preflight.TESTBED_JOIN_CONTROL_PLANE,
                control_plane_address=node.address,
                certificate_key="" if pre_seed else self.certificate_key,
            ).encode(),
            nodeconfig.CONFIG_MODE,
        )
        return {
            p.name: ok(node, workflow.join_phase_command(p.name, nodeconfig.JOIN_CONFIG_PATH))
            for p in workflow.JOIN_CONTROL_PLANE_PHASES
        }

    def wait_ready(self, names: set[str], timeout: float = 90) -> dict[str, bool]:
        deadline = time.monotonic() + timeout
        while True:
            nodes = self.kubectl_json("get", "nodes")["items"]
            ready = {
                n["metadata"]["name"]: any(
                    c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"]
                )
                for n in nodes
            }
            if (set(ready) == names and all(ready.values())) or time.monotonic() > deadline:
                return ready
            time.sleep(2)

    def etcd_members(self, bins) -> list[str]:
        return etcdctl.member_names(self.first, bins)


def run_init_phases(
    node: Node,
    cluster: ClusterConfiguration,
    authorities: dict,
    token: tokens.BootstrapTokenString,
    certificate_key: str,
    *,
    kubeadm: str = "kubeadm",
    run: Callable[[Node, list[str]], str] = ok,
) -> dict[str, str]:
    """Kubeboard's CAs and InitConfiguration onto ``node``, then every init phase as its own
    command; ``run(node, argv)`` runs one and returns its output. show-join-command is left out:
    it prints join lines with secrets, and Kubeboard builds its own (kubeadm.join)."""
    for item in uploads.init_upload_files(authorities):
        node.write_file(item.path, item.data, item.mode)
    node.write_file(
        nodeconfig.INIT_CONFIG_PATH,
        nodeconfig.init_config_for_node(
            cluster,
            node_name=node.name,
            advertise_address=node.address,
            bootstrap_tokens=[token],
            cri_socket=CRI_SOCKET,
            ignore_preflight_errors=preflight.TESTBED_INIT,
            certificate_key=certificate_key,
        ).encode(),
        nodeconfig.CONFIG_MODE,
    )
    outputs = {}
    for phase in workflow.INIT_PHASES:
        if phase.name != "show-join-command":
            argv = workflow.init_phase_command(
                phase.name,
                nodeconfig.INIT_CONFIG_PATH,
                upload_certs=True,
                certificate_key_in_config=True,
                kubeadm=kubeadm,
            )
            outputs[phase.name] = run(node, argv)
    return outputs


def init_cluster(node: Node, bins, version: str, *, kubeadm: str = "kubeadm") -> Cluster:
    """kubeadm init on ``node``, every phase on its own, with Kubeboard's CAs and token."""
    authorities = pki.generate_cluster_authorities("ECDSA-P256")
    token = tokens.generate_token()
    certificate_key = certkeys.generate_certificate_key()
    cluster = default_cluster_configuration(version)
    cluster.control_plane_endpoint = f"{node.address}:6443"
    cluster.encryption_algorithm = "ECDSA-P256"
    outputs = run_init_phases(node, cluster, authorities, token, certificate_key, kubeadm=kubeadm)
    cp = ControlPlane(node=node, bin_dir=bins, version=version, token=str(token))
    made = Cluster(node, cluster, authorities, token, certificate_key, cp, outputs)
    deadline = time.monotonic() + 60  # the bootstrap signer adds jws-kubeconfig-<id> shortly after
    while (
        f"jws-kubeconfig-{token.id}" not in made.kubectl_json("-n", "kube-public", "get", "cm", "cluster-info")["data"]
    ):
        assert time.monotonic() < deadline, "cluster-info never got our token's signature"
        time.sleep(1)
    return made
