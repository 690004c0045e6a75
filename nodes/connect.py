"""A machine's SSH connection target, from its rows: address, user, credential, pinned key.

``remote.ssh`` carries the connection and keeps the pinning rule; what it needs from the
database comes from here, read again for each connection (a person may have accepted a key
meanwhile), with the credential decrypted only right before the login.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import asyncssh

from core.phases import PhaseError
from nodes import places, services
from nodes.models import ClusterSSHKey, Node
from remote import commands, keys, ssh

if TYPE_CHECKING:
    from operations.runner import PhaseContext


def target(node: Node) -> ssh.Target:
    """The node's current connection facts (re-read when the node is saved)."""
    if node.pk is not None:
        node = Node.objects.select_related("cluster").get(pk=node.pk)
    node_id, cluster_id = node.pk, node.cluster_id
    label = str(node) if cluster_id else node.name
    cluster_name = node.cluster.name if cluster_id else ""
    credential = node.credential
    private_key, passphrase, password = node.ssh_private_key, node.ssh_key_passphrase, node.ssh_password

    def credentials() -> ssh.Credentials:
        if credential == Node.Credential.CLUSTER_KEY:
            pair = ClusterSSHKey.objects.filter(cluster_id=cluster_id).first()
            if pair is None:
                raise ssh.AuthenticationFailed(
                    f"cluster {cluster_name} has no SSH key pair yet",
                    hint="generate it on the cluster page (or `manage.py node show-key CLUSTER`) and add its public "
                    "key to the machine's ~/.ssh/authorized_keys",
                )
            key = asyncssh.import_private_key(pair.private_key.reveal())
            return ssh.Credentials(client_keys=[key], key_fingerprint=pair.fingerprint)
        if credential == Node.Credential.PRIVATE_KEY:
            try:
                key = keys.load_private_key(
                    private_key.reveal() if private_key else "", passphrase.reveal() if passphrase else None
                )
            except keys.InvalidKey as exc:
                raise ssh.AuthenticationFailed(
                    f"the private key stored for {label} cannot be used: {exc}", hint="edit the machine"
                ) from exc
            return ssh.Credentials(client_keys=[key], key_fingerprint=key.get_fingerprint("sha256"))
        return ssh.Credentials(password=password.reveal() if password else "")

    def on_offered(line: str, fingerprint: str, changed: bool) -> None:
        if node_id is not None:
            services.note_offered_host_key(node_id, line, fingerprint, changed=changed)

    return ssh.Target(
        label=label,
        host=node.address,
        port=node.ssh_port,
        user=node.ssh_user,
        credential=credential,
        pinned_line=node.ssh_host_key,
        pinned_fingerprint=node.ssh_host_key_fingerprint,
        offered_line=node.offered_host_key,
        offered_fingerprint=node.offered_host_key_fingerprint,
        cluster_name=cluster_name,
        credentials=credentials,
        on_offered=on_offered,
    )


def connect(node: Node, *, timeout: float | None = None) -> ssh.Connection:
    """Open an SSH connection to ``node``; use as ``with connect(node) as conn:``."""
    return ssh.connect(target(node), timeout=timeout)


def scan_host_key(node: Node, *, timeout: float | None = None) -> tuple[str, str]:
    """The host key the machine offers: (OpenSSH public key line, "SHA256:…"). The node as given,
    not re-read: a machine not saved yet may be scanned."""
    return ssh.scan_host_key(
        ssh.Target(
            label=str(node), host=node.address, port=node.ssh_port, user=node.ssh_user, credential=node.credential
        ),
        timeout=timeout,
    )


@contextmanager
def phase_connection(ctx: PhaseContext) -> Iterator[ssh.Connection]:
    """The phase's SSH connection to its node (``remote.commands.connection``). A phase that
    fails inside it gets the addresses of the pages its hint names (nodes.places)."""
    try:
        with commands.connection(ctx, lambda: connect(ctx.node)) as conn:
            yield conn
    except PhaseError as exc:
        linked = places.linked_hint(exc.hint, ctx.node)
        if linked == exc.hint:
            raise
        raise PhaseError(exc.message, hint=linked, exit_status=exc.exit_status) from exc


def run_kubeadm(ctx: PhaseContext, command: str | Iterable[str], *, label: str) -> None:
    """A kubeadm phase on ``ctx.node`` that survives one broken connection (``remote.commands.run_reconnecting``)."""
    commands.run_reconnecting(ctx, lambda: connect(ctx.node), command, label=label)
