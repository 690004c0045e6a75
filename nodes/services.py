"""Machine life-cycle services: each one owns its transaction and writes one audit record.

Audit details never hold a secret: credentials appear only as their kind, keys only as
fingerprints.
"""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.services import record
from nodes import keys
from nodes.models import ClusterSSHKey, Node


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
    return created


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
