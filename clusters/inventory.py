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
from audit.services import refusals_of
from clusters.models import ClusterInventory, MachineInventory
from kubeadm import pki, readback
from operations.registry import OperationKind, PhaseSpec, PlannedPhase
from operations.runner import PhaseContext, PhaseError
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


# --- the read-back operation (the cluster page's "Read back now") ---------------------------------

READ_BACK_KIND = "read-back"


class ReadBackRefused(Exception):
    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


def _read_api_phase(ctx: PhaseContext) -> None:
    api = read_api(ctx.cluster)
    if api.error:
        raise PhaseError(api.error, hint="check that the control plane runs, then read back again")
    ctx.log(api_nodes_summary(api))


def _read_machine_phase(ctx: PhaseContext) -> None:
    from nodes.connect import phase_connection

    with phase_connection(ctx) as conn:
        machine = read_machine(conn, ctx.node)
    ctx.log(machine_summary(machine))


def _read_back_plan(operation) -> list[PlannedPhase]:
    planned = [PlannedPhase("read-api")]
    for node_id, name in zip(operation.params["node_ids"], operation.params["nodes"], strict=True):
        planned.append(PlannedPhase("read-machine", group=name, node_id=node_id))
    return planned


READ_BACK = OperationKind(
    name=READ_BACK_KIND,
    label="Read back the cluster's state",
    phases=(
        PhaseSpec("read-api", "Read the node list from the API server", _read_api_phase, idempotent=True),
        PhaseSpec(
            "read-machine",
            "Read the certificates and static Pod manifests of a control-plane machine",
            _read_machine_phase,
            idempotent=True,
        ),
    ),
    plan=_read_back_plan,
    max_parallel_groups=4,
    # Reading changes nothing: it may run beside an init or a join.
    mutating=False,
)


@refusals_of("operation.queued", ReadBackRefused, details={"kind": READ_BACK_KIND})
def start_read_back(cluster, *, user=None):
    from nodes.models import Node
    from operations.services import start_operation

    cluster = type(cluster).objects.get(pk=cluster.pk)  # its state now, not when the page was drawn
    if cluster.status != cluster.Status.RUNNING and not cluster.is_adopted:
        raise ReadBackRefused(f"cluster {cluster.name} has no control plane yet", hint="initialize it first")
    machines = list(cluster.nodes.filter(role=Node.Role.CONTROL_PLANE, status=Node.Status.JOINED).order_by("name"))
    return start_operation(
        cluster,
        READ_BACK_KIND,
        user=user,
        params={"node_ids": [node.pk for node in machines], "nodes": [node.name for node in machines]},
    )
