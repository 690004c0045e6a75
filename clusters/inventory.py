"""Read back what init and joins produced: the API server's node list, and on control-plane
machines the certificates (with expiry, compared with Kubeboard's custody) and the static Pod
manifests.

The machine side is one read-only command (``kubeadm.readback``): it prints every certificate
under /etc/kubernetes/pki, only the *certificate* of each kubeconfig's client (never the key),
and the manifests. Nothing secret leaves the machine.
"""

from __future__ import annotations

import hashlib

import yaml
from cryptography import x509
from django.db import transaction
from django.utils import timezone

import kube
from clusters.models import ClusterInventory, MachineInventory
from kubeadm import pki, readback
from remote import ssh

READ_TIMEOUT = 60


def custody_certificates(cluster) -> dict[str, x509.Certificate]:
    """The certificates of the CAs Kubeboard holds for ``cluster``, by kubeadm base name ("etcd/ca")."""
    held = {}
    for authority in cluster.authorities.exclude(certificate_pem=""):
        held[authority.name] = pki.load_certificate(authority.certificate_pem.encode(), name=authority.name)
    return held


def _manifest_row(path: str, text: str) -> dict:
    images: list[str] = []
    try:
        pod = yaml.safe_load(text) or {}
        images = [c.get("image", "") for c in (pod.get("spec") or {}).get("containers") or []]
    except yaml.YAMLError:
        pass
    return {
        "name": path.rsplit("/", 1)[-1],
        "path": path,
        "sha256": hashlib.sha256(text.encode()).hexdigest(),
        "images": images,
        "text": text,
    }


def read_machine(conn: ssh.Connection, node) -> MachineInventory:
    """Read the certificates and manifests of a control-plane machine and store them."""
    lines: list[str] = []
    result = conn.run(readback.read_command(manifests=True), on_line=lines.append, timeout=READ_TIMEOUT)
    now = timezone.now()
    held = custody_certificates(node.cluster)
    certificates, manifests = [], []
    for kind, path, text in readback.parse_sections(lines):
        if kind in ("cert", "kubeconfig"):
            if text.strip():
                certificates.append(readback.certificate_row(kind, path, text, held, now))
        elif kind == "manifest":
            manifests.append(_manifest_row(path, text))
    error = "" if result.exit_status == 0 else f"the read-back command ended with exit status {result.exit_status}"
    inventory, _ = MachineInventory.objects.update_or_create(
        node=node,
        defaults={"collected_at": now, "certificates": certificates, "manifests": manifests, "error": error},
    )
    return inventory


def read_api(cluster) -> ClusterInventory:
    """Store the API server's node list (or why it could not be read)."""
    try:
        rows, error = kube.list_nodes(cluster), ""
    except kube.KubeAPIError as exc:
        rows, error = None, str(exc)
    with transaction.atomic():
        inventory, _ = ClusterInventory.objects.select_for_update().get_or_create(cluster=cluster)
        inventory.collected_at = timezone.now()
        inventory.error = error
        if rows is not None:
            inventory.api_nodes = rows
        inventory.save()
    return inventory


def api_nodes_summary(api: ClusterInventory) -> str:
    return f"The API server lists {len(api.api_nodes)} node(s): " + ", ".join(
        f"{n['name']} ({'Ready' if n['ready'] else 'NotReady'})" for n in api.api_nodes
    )


def machine_summary(machine: MachineInventory) -> str:
    return (
        f"Read back {len(machine.certificates)} certificates and {len(machine.manifests)} static Pod manifests "
        f"from {machine.node.name}."
    )
