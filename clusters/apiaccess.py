"""Which credentials Kubeboard uses for a cluster's API server (``kube/`` does the talking).

* A cluster Kubeboard created holds its CA key pair. Every client gets its **own short-lived
  client certificate** issued from that CA (CN ``kubeboard`` or ``kubeboard:<username>``,
  valid for minutes) — never a copy of a node's ``admin.conf``.
* An adopted cluster (``Cluster.origin == "adopted"``) is reached with the admin kubeconfig it
  was adopted with (stored encrypted): embedded client certificate or bearer token only.

Which group the certificate carries (``CLIENT_GROUP``): ``kubeadm:cluster-admins``. Since
v1.29 kubeadm binds that group to ``cluster-admin`` (ClusterRoleBinding
``kubeadm:cluster-admins``, created when ``kubeadm init`` first talks to the API server), so
our identity is an ordinary RBAC subject: it shows up in the API server's audit log by name,
and deleting that binding revokes it. ``system:masters`` would bypass RBAC and admission
webhooks entirely and can only be revoked by replacing the CA — kubeadm itself keeps it for
the break-glass ``super-admin.conf`` only. The price: before kubeadm has created the binding
(the first moments of ``kubeadm init``) the identity may only call the public endpoints
(``/readyz``, ``/livez``, ``/version``), which is all Kubeboard needs at that point.
"""

from __future__ import annotations

import datetime
from datetime import timedelta

from audit.services import record
from core.encryption import SecretValue
from kube.client import CLIENT_GROUP, ClusterNotConnectable, Credentials, credentials_from_kubeconfig
from kubeadm import kubeconfig as kubeconfig_files
from kubeadm import netutil, pki
from kubeadm.components import API_SERVER_PORT

CLIENT_COMMON_NAME = "kubeboard"
# Short enough that a leaked in-memory certificate is useless soon; long enough for one action.
CLIENT_CERT_TTL = timedelta(minutes=15)
# ECDSA keys take a millisecond to make (RSA-2048: ~50 ms); the API server accepts them under
# any CA algorithm, and the key never outlives the client.
CLIENT_KEY_ALGORITHM = "ECDSA-P256"
MAX_ADMIN_KUBECONFIG_TTL = timedelta(days=1)
DEFAULT_API_PORT = str(API_SERVER_PORT)

__all__ = [
    "CLIENT_CERT_TTL",
    "CLIENT_GROUP",
    "MAX_ADMIN_KUBECONFIG_TTL",
    "ca_key_pair",
    "credentials",
    "holds_ca_key",
    "issue_admin_kubeconfig",
    "issue_client_certificate",
    "server_url",
]


def server_url(cluster) -> str:
    """https://<control-plane endpoint>, port 6443 when the endpoint has none."""
    endpoint = (cluster.control_plane_endpoint or "").strip()
    if not endpoint:
        raise ClusterNotConnectable(
            f"cluster {cluster.name} has no control-plane endpoint", hint="set the endpoint of its API server first"
        )
    try:
        host, port = netutil.parse_host_port(endpoint)
    except ValueError as exc:
        raise ClusterNotConnectable(
            f"cluster {cluster.name}: control-plane endpoint {endpoint!r} is not host[:port]: {exc}"
        ) from None
    return "https://" + netutil.join_host_port(host, port or DEFAULT_API_PORT)


def _authority(cluster, name: str = "ca"):
    return cluster.authorities.filter(name=name).first()


def holds_ca_key(cluster) -> bool:
    """True when Kubeboard holds the cluster CA's private key (a cluster it created)."""
    ca = _authority(cluster)
    return ca is not None and bool(ca.certificate_pem) and bool(ca.private_key)


def ca_key_pair(cluster) -> pki.KeyPair:
    ca = _authority(cluster)
    if ca is None or not ca.certificate_pem or not ca.private_key:
        raise ClusterNotConnectable(
            f"Kubeboard holds no CA key for cluster {cluster.name}",
            hint="prepare the cluster's identity first, or adopt it with an admin kubeconfig",
        )
    return pki.load_key_pair(ca.certificate_pem.encode(), ca.private_key.reveal().encode(), name="cluster CA")


def client_common_name(user=None) -> str:
    username = getattr(user, "username", "") if user is not None else ""
    return f"{CLIENT_COMMON_NAME}:{username}" if username else CLIENT_COMMON_NAME


def issue_client_certificate(
    cluster,
    *,
    user=None,
    ttl: timedelta = CLIENT_CERT_TTL,
    group: str = CLIENT_GROUP,
    now: datetime.datetime | None = None,
) -> pki.KeyPair:
    """A fresh client certificate from the cluster CA (clientAuth, NotBefore now - 5 min)."""
    return pki.issue_certificate(
        ca_key_pair(cluster),
        client_common_name(user),
        organization=(group,),
        usages=(pki.CLIENT_AUTH,),
        algorithm=CLIENT_KEY_ALGORITHM,
        validity=ttl,
        now=now,
    )


def credentials(cluster, *, user=None) -> Credentials:
    """How Kubeboard authenticates to ``cluster`` right now (see the module docstring)."""
    if cluster.is_adopted:
        if not cluster.admin_kubeconfig:
            raise ClusterNotConnectable(
                f"adopted cluster {cluster.name} has no stored kubeconfig",
                hint="adopt it again with an admin kubeconfig",
            )
        stored = cluster.admin_kubeconfig
        return credentials_from_kubeconfig(stored.reveal() if isinstance(stored, SecretValue) else str(stored))
    client = issue_client_certificate(cluster, user=user)
    ca = ca_key_pair(cluster)
    return Credentials(
        server=server_url(cluster),
        ca_pem=ca.cert_pem(),
        client_cert_pem=client.cert_pem(),
        client_key_pem=client.key_pem(),
    )


def issue_admin_kubeconfig(cluster, *, user, ttl: timedelta) -> str:
    """An admin kubeconfig with its own client certificate (CN ``kubeboard:<username>``, group
    ``kubeadm:cluster-admins``) valid for ``ttl``; audited here as ``cluster.admin_kubeconfig_issued``.

    Only for clusters whose CA Kubeboard holds: an adopted cluster's stored kubeconfig is
    never handed out.
    """
    if ttl <= timedelta(0) or ttl > MAX_ADMIN_KUBECONFIG_TTL:
        raise ValueError(f"ttl: expected more than 0 and at most {MAX_ADMIN_KUBECONFIG_TTL}, found {ttl}")
    if cluster.is_adopted:
        raise ClusterNotConnectable(
            f"cluster {cluster.name} was adopted; Kubeboard holds no CA key to issue a kubeconfig from",
            hint="use your own admin kubeconfig for this cluster",
        )
    client = issue_client_certificate(cluster, user=user, ttl=ttl)
    ca = ca_key_pair(cluster)
    common_name = client_common_name(user)
    text = kubeconfig_files.render_kubeconfig(
        kubeconfig_files.build_kubeconfig(server_url(cluster), cluster.name, common_name, ca.cert, client=client)
    )
    record(
        "cluster.admin_kubeconfig_issued",
        actor=user,
        obj=cluster,
        cluster=cluster,
        details={
            "common_name": common_name,
            "group": CLIENT_GROUP,
            "serial": str(client.cert.serial_number),
            "expires": client.cert.not_valid_after_utc.isoformat(),
            "ttl_seconds": int(ttl.total_seconds()),
        },
    )
    return text
