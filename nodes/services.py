"""Machine life-cycle services: each one owns its transaction and writes one audit record.

Audit details never hold a secret: credentials appear only as their kind, keys only as
fingerprints.
"""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import record, refusals_of
from nodes.models import ClusterSSHKey, Node
from remote import keys


class NodeStateError(Exception):
    """The node is not in a state that allows the requested change."""


# --- the cluster's key pair ----------------------------------------------------------------


def ensure_cluster_key(cluster, *, user=None) -> ClusterSSHKey:
    """The cluster's SSH key pair, generated (and audited) the first time it is needed."""
    existing = ClusterSSHKey.objects.filter(cluster=cluster).first()
    if existing is not None:
        return existing
    pair = keys.generate_key_pair(comment=f"kubeboard@{cluster.name}")
    try:
        with transaction.atomic():
            created = ClusterSSHKey.objects.create(
                cluster=cluster, private_key=pair.private_key, public_key=pair.public_key, fingerprint=pair.fingerprint
            )
            record(
                "cluster.ssh_key_generated",
                actor=user,
                obj=cluster,
                cluster=cluster,
                details={"algorithm": "ssh-ed25519", "fingerprint": pair.fingerprint},
            )
    except IntegrityError:
        # Another request generated it at the same moment; theirs is the one.
        return ClusterSSHKey.objects.get(cluster=cluster)
    # Read back, so callers always get the private key as a SecretValue.
    return ClusterSSHKey.objects.get(pk=created.pk)


def cluster_public_key(cluster) -> ClusterSSHKey | None:
    return ClusterSSHKey.objects.filter(cluster=cluster).first()


# --- host keys -----------------------------------------------------------------------------


def note_offered_host_key(node_id: int, line: str, fingerprint: str, *, changed: bool) -> None:
    """Record the key a machine offered that is not (yet) pinned; audited once per new key."""
    with transaction.atomic():
        node = Node.objects.select_for_update().select_related("cluster").filter(pk=node_id).first()
        if node is None or node.offered_host_key == line or node.ssh_host_key == line:
            return
        node.offered_host_key = line
        node.offered_host_key_fingerprint = fingerprint
        node.offered_host_key_at = timezone.now()
        node.save(
            update_fields=["offered_host_key", "offered_host_key_fingerprint", "offered_host_key_at", "updated_at"]
        )
        if changed:
            record(
                "node.host_key_changed",
                obj=node,
                details={"pinned_fingerprint": node.ssh_host_key_fingerprint, "offered_fingerprint": fingerprint},
            )
        else:
            record("node.host_key_offered", obj=node, details={"offered_fingerprint": fingerprint})


@refusals_of("node.host_key_accepted", NodeStateError)
def accept_host_key(node: Node, *, user, fingerprint: str) -> Node:
    """Pin the key the machine offered. ``fingerprint`` is what the person saw and compared:
    if the machine offered another key since, nothing is pinned."""
    with transaction.atomic():
        locked = Node.objects.select_for_update().select_related("cluster").get(pk=node.pk)
        if not locked.offered_host_key:
            raise NodeStateError(
                "there is no offered host key to accept; run Check machine first to fetch the machine's key"
            )
        if fingerprint.strip() != locked.offered_host_key_fingerprint:
            raise NodeStateError(
                f"the fingerprint {fingerprint.strip() or '(empty)'} does not match the key the machine offered "
                f"({locked.offered_host_key_fingerprint}); nothing was accepted"
            )
        previous = locked.ssh_host_key_fingerprint
        locked.ssh_host_key = locked.offered_host_key
        locked.ssh_host_key_fingerprint = locked.offered_host_key_fingerprint
        locked.host_key_accepted_by = user if getattr(user, "pk", None) else None
        locked.host_key_accepted_at = timezone.now()
        locked.offered_host_key = ""
        locked.offered_host_key_fingerprint = ""
        locked.offered_host_key_at = None
        locked.save()
        details = {"fingerprint": locked.ssh_host_key_fingerprint}
        if previous:
            details["replaced_fingerprint"] = previous
        record("node.host_key_accepted", actor=user, obj=locked, details=details)
    return locked


def accept_host_keys(choices: list[tuple[Node, str]], *, user) -> tuple[list[Node], list[tuple[Node, str]]]:
    """Accept several host keys, each exactly as ``accept_host_key`` does (its own check of the
    fingerprint the person saw, its own transaction and audit record): one machine whose key
    changed since the page was shown is refused without holding back the others.
    Returns (accepted, [(refused, why)])."""
    accepted: list[Node] = []
    refused: list[tuple[Node, str]] = []
    for node, fingerprint in choices:
        try:
            accepted.append(accept_host_key(node, user=user, fingerprint=fingerprint))
        except NodeStateError as exc:
            refused.append((node, str(exc)))
    return accepted, refused


@refusals_of("node.host_key_kept", NodeStateError)
def keep_pinned_host_key(node: Node, *, user) -> Node:
    """Dismiss a different key the machine offered; the pinned key stays the only one trusted."""
    with transaction.atomic():
        locked = Node.objects.select_for_update().select_related("cluster").get(pk=node.pk)
        if not (locked.ssh_host_key and locked.offered_host_key):
            raise NodeStateError("there is no changed host key to dismiss")
        dismissed = locked.offered_host_key_fingerprint
        locked.offered_host_key = ""
        locked.offered_host_key_fingerprint = ""
        locked.offered_host_key_at = None
        locked.save(
            update_fields=["offered_host_key", "offered_host_key_fingerprint", "offered_host_key_at", "updated_at"]
        )
        record(
            "node.host_key_kept",
            actor=user,
            obj=locked,
            details={"fingerprint": locked.ssh_host_key_fingerprint, "dismissed_fingerprint": dismissed},
        )
    return locked


# --- machine check -------------------------------------------------------------------------

# A check queued or running longer than this is taken as lost (its worker died) and may be re-run.
CHECK_STALE_SECONDS = 300


@refusals_of("node.check_requested", NodeStateError)
def request_check(node: Node, *, user) -> Node:
    """Queue a machine check in the background (a django-q2 task), once the request commits."""
    from django_q.tasks import async_task

    with transaction.atomic():
        locked = Node.objects.select_for_update().select_related("cluster").get(pk=node.pk)
        busy = locked.check_status in (Node.CheckStatus.QUEUED, Node.CheckStatus.RUNNING)
        if (
            busy
            and locked.check_started_at
            and (timezone.now() - locked.check_started_at).total_seconds() < CHECK_STALE_SECONDS
        ):
            raise NodeStateError(f"a check of {locked.name} is already {locked.get_check_status_display().lower()}")
        locked.check_status = Node.CheckStatus.QUEUED
        locked.check_started_at = timezone.now()
        locked.check_progress = []
        locked.save(update_fields=["check_status", "check_started_at", "check_progress", "updated_at"])
        record("node.check_requested", actor=user, obj=locked, details={"address": locked.address})
        node_id = locked.pk
        transaction.on_commit(
            lambda: async_task("nodes.tasks.check_machine", node_id, task_name=f"check-node-{node_id}")
        )
    return locked


def request_checks(nodes: list[Node], *, user) -> tuple[list[Node], list[tuple[Node, str]]]:
    """Queue a check of each machine with ``request_check`` (each audited on its own); one that is
    already being checked is refused and the others still go. Returns (queued, [(refused, why)])."""
    queued: list[Node] = []
    refused: list[tuple[Node, str]] = []
    for node in nodes:
        try:
            queued.append(request_check(node, user=user))
        except NodeStateError as exc:
            refused.append((node, str(exc)))
    return queued, refused


def _status_after_check(report: dict, status: str) -> str:
    """A machine that answered but waits for a person to accept its host key is not unreachable."""
    if report["login"]:
        return Node.Status.REACHABLE
    if report.get("host_key") == "offered":
        return Node.Status.NEW
    if report.get("host_key") == "changed":
        return status
    return Node.Status.UNREACHABLE


def run_check(node_id: int, *, actor=None, progress=None) -> dict:
    """Run the check now (the task, or ``manage.py node check``) and store its report on the node."""
    from nodes.checks import check_machine

    node = Node.objects.select_related("cluster").get(pk=node_id)
    steps: list[str] = []
    Node.objects.filter(pk=node_id).update(
        check_status=Node.CheckStatus.RUNNING, check_started_at=timezone.now(), check_progress=steps
    )

    def step(message: str) -> None:
        steps.append(message)
        Node.objects.filter(pk=node_id).update(check_progress=steps)
        if progress is not None:
            progress(message)

    report = check_machine(node, progress=step)
    with transaction.atomic():
        locked = Node.objects.select_for_update().select_related("cluster").get(pk=node_id)
        locked.facts = report
        locked.checked_at = timezone.now()
        locked.check_status = Node.CheckStatus.DONE if report["login"] else Node.CheckStatus.FAILED
        locked.check_progress = steps
        if not locked.is_joined:
            locked.status = _status_after_check(report, locked.status)
        locked.save()
        kubeadm = report.get("binaries", {}).get("kubeadm", {})
        # A check that could not log in failed; one that did succeeded, whatever problems it found.
        record(
            "node.checked",
            actor=actor,
            obj=locked,
            outcome=AuditEvent.Outcome.SUCCESS if report["login"] else AuditEvent.Outcome.FAILURE,
            details={
                "reachable": report["reachable"],
                "login": report["login"],
                "problems": len(report["problems"]),
                "kubeadm_version": kubeadm.get("version"),
                "error": report["error"],
            },
        )
    return report


# --- adding, changing and removing machines ------------------------------------------------

CREDENTIAL_FIELDS = ("ssh_private_key", "ssh_key_passphrase", "ssh_password")


def _description(node: Node) -> dict:
    """What the audit trail keeps of a node: never the secret, only which kind of credential."""
    return {
        "name": node.name,
        "address": node.address,
        "ssh_port": node.ssh_port,
        "ssh_user": node.ssh_user,
        "credential": node.credential,
        "role": node.role,
        "ignore_preflight_errors": list(node.ignore_preflight_errors or []),
    }


def _clear_unused_credentials(node: Node) -> None:
    # Keep only the secret of the chosen kind, so a key pasted earlier does not linger unseen.
    if node.credential != Node.Credential.PRIVATE_KEY:
        node.ssh_private_key = ""
        node.ssh_key_passphrase = ""
    if node.credential != Node.Credential.PASSWORD:
        node.ssh_password = ""


def add_node(node: Node, *, user) -> Node:
    """Save a validated new machine; a cluster-key machine gets the cluster's key pair made."""
    with transaction.atomic():
        if node.credential == Node.Credential.CLUSTER_KEY:
            ensure_cluster_key(node.cluster, user=user)
        _clear_unused_credentials(node)
        node.save()
        record("node.added", actor=user, obj=node, details=_description(node))
    return node


def add_nodes(nodes: list[Node], *, user) -> list[Node]:
    """Save validated new machines all or none (bulk add): each as ``add_node`` does, with its
    ``node.added`` record, in one transaction."""
    with transaction.atomic():
        return [add_node(node, user=user) for node in nodes]


@refusals_of("node.changed", NodeStateError)
def update_node(node: Node, *, user, changed: list[str]) -> Node:
    """Save validated changes. A new address or port means another machine: its host key is unpinned."""
    with transaction.atomic():
        previous = Node.objects.select_for_update().get(pk=node.pk)
        if previous.is_joined and {"address", "ssh_port"} & set(changed):
            raise NodeStateError("a joined machine keeps its address and port; remove it from the cluster first")
        if (node.address, node.ssh_port) != (previous.address, previous.ssh_port):
            node.ssh_host_key = node.ssh_host_key_fingerprint = ""
            node.offered_host_key = node.offered_host_key_fingerprint = ""
            node.host_key_accepted_by = node.host_key_accepted_at = node.offered_host_key_at = None
            node.facts, node.checked_at, node.check_status = {}, None, Node.CheckStatus.NONE
        if node.credential == Node.Credential.CLUSTER_KEY:
            ensure_cluster_key(node.cluster, user=user)
        _clear_unused_credentials(node)
        node.save()
        details = _description(node) | {"changed": sorted(changed)}
        record("node.changed", actor=user, obj=node, details=details)
    return node


@refusals_of("node.deleted", NodeStateError)
def delete_node(node: Node, *, user) -> None:
    with transaction.atomic():
        locked = Node.objects.select_for_update().select_related("cluster").get(pk=node.pk)
        if locked.is_joined:
            raise NodeStateError(
                f"{locked.name} is {locked.get_status_display().lower()}: remove it from the cluster (reset) before "
                "deleting it from Kubeboard"
            )
        record("node.deleted", actor=user, obj=locked, cluster=locked.cluster, details=_description(locked))
        locked.delete()
