"""kubeconfig files as kubeadm writes them, and the cluster-info kubeconfig.

Sources: cmd/kubeadm/app/phases/kubeconfig/kubeconfig.go
(getKubeConfigSpecsBase), util/kubeconfig/kubeconfig.go, checked against the
files the real kubeadm v1.37.2 wrote (tests/unit/kubeadm/data/real-v1.37.2):
keys sorted, no ``preferences`` key, cluster named after clusterName, user
named after the certificate CN, context "<user>@<cluster>", client
certificates issued by the cluster CA with the CA's NotBefore.
"""

from __future__ import annotations

import base64
import copy
import datetime
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from kubeadm import netutil, pki, yamlio
from kubeadm.errors import KubeconfigError
from kubeadm.pki import CLIENT_AUTH, KeyPair

if TYPE_CHECKING:
    from kubeadm.config import ClusterConfiguration, InitConfiguration


@dataclass(frozen=True)
class KubeconfigSpec:
    file_name: str
    common_name: str  # "{node}" is replaced by the node name
    organization: tuple[str, ...]
    local_server: bool  # True: https://ADV:PORT; False: the control-plane endpoint URL


# admin.conf -> kubeadm:cluster-admins and super-admin.conf -> system:masters
# since v1.29; kubelet.conf points at the local API server with
# ControlPlaneKubeletLocalMode (default on since 1.33, seen in v1.37.2).
KUBECONFIG_SPECS: tuple[KubeconfigSpec, ...] = (
    KubeconfigSpec("admin.conf", "kubernetes-admin", ("kubeadm:cluster-admins",), False),
    KubeconfigSpec("super-admin.conf", "kubernetes-super-admin", ("system:masters",), False),
    KubeconfigSpec("kubelet.conf", "system:node:{node}", ("system:nodes",), True),
    KubeconfigSpec("controller-manager.conf", "system:kube-controller-manager", (), True),
    KubeconfigSpec("scheduler.conf", "system:kube-scheduler", (), True),
)


def local_api_url(init: InitConfiguration) -> str:
    """https://ADV:PORT (IPv6 bracketed)."""
    endpoint = init.local_api_endpoint
    return "https://" + netutil.join_host_port(endpoint.advertise_address, endpoint.bind_port)


def control_plane_url(init: InitConfiguration, cluster: ClusterConfiguration) -> str:
    """GetControlPlaneEndpoint: the controlPlaneEndpoint (with bindPort if it
    has no port), else the local endpoint."""
    if not cluster.control_plane_endpoint:
        return local_api_url(init)
    try:
        host, port = netutil.parse_host_port(cluster.control_plane_endpoint)
    except ValueError as exc:
        raise KubeconfigError(f"controlPlaneEndpoint: {exc}") from None
    return "https://" + netutil.join_host_port(host, port or init.local_api_endpoint.bind_port)


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def build_kubeconfig(
    server: str,
    cluster_name: str,
    user: str,
    ca_cert: x509.Certificate,
    *,
    client: KeyPair | None = None,
    token: str | None = None,
) -> dict:
    """A one-cluster, one-user kubeconfig (CreateWithCerts / CreateWithToken)."""
    if (client is None) == (token is None):
        raise KubeconfigError("kubeconfig: expected exactly one of a client certificate or a token")
    context = f"{user}@{cluster_name}"
    if client is not None:
        credentials = {"client-certificate-data": _b64(client.cert_pem()), "client-key-data": _b64(client.key_pem())}
    else:
        credentials = {"token": token}
    return {
        "apiVersion": "v1",
        "clusters": [
            {
                "cluster": {"certificate-authority-data": _b64(_cert_pem(ca_cert)), "server": server},
                "name": cluster_name,
            }
        ],
        "contexts": [{"context": {"cluster": cluster_name, "user": user}, "name": context}],
        "current-context": context,
        "kind": "Config",
        "users": [{"name": user, "user": credentials}],
    }


def render_kubeconfig(config: dict) -> str:
    return yamlio.dump(config)


def issue_client(
    ca: KeyPair,
    common_name: str,
    organization: tuple[str, ...] = (),
    *,
    algorithm: str = pki.DEFAULT_ALGORITHM,
    validity: timedelta = pki.CERT_VALIDITY,
    now: datetime.datetime | None = None,
) -> KeyPair:
    """A kubeconfig client certificate: clientAuth, NotBefore = the CA's NotBefore."""
    return pki.issue_certificate(
        ca,
        common_name,
        organization=organization,
        usages=(CLIENT_AUTH,),
        algorithm=algorithm,
        validity=validity,
        now=now,
        not_before=ca.cert.not_valid_before_utc,
    )


def generate_kubeconfigs(
    init: InitConfiguration,
    cluster: ClusterConfiguration,
    ca: KeyPair,
    *,
    files: tuple[str, ...] | None = None,
    now: datetime.datetime | None = None,
) -> dict[str, str]:
    """The kubeconfig files of `kubeadm init phase kubeconfig all`: name -> YAML text.

    ``files`` limits the set (a joining control plane gets admin.conf,
    controller-manager.conf and scheduler.conf only).
    """
    algorithm = cluster.encryption_algorithm or pki.DEFAULT_ALGORITHM
    validity = cluster.certificate_validity_period or pki.CERT_VALIDITY
    result = {}
    for s in KUBECONFIG_SPECS:
        if files is not None and s.file_name not in files:
            continue
        cn = s.common_name.replace("{node}", init.node_registration.name)
        client = issue_client(ca, cn, s.organization, algorithm=algorithm, validity=validity, now=now)
        server = local_api_url(init) if s.local_server else control_plane_url(init, cluster)
        result[s.file_name] = render_kubeconfig(
            build_kubeconfig(server, cluster.cluster_name or "kubernetes", cn, ca.cert, client=client)
        )
    return result


def bootstrap_kubeconfig(server: str, ca_cert: x509.Certificate, token: str) -> str:
    """bootstrap-kubelet.conf: cluster "kubernetes", user tls-bootstrap-token-user."""
    return render_kubeconfig(build_kubeconfig(server, "kubernetes", "tls-bootstrap-token-user", ca_cert, token=token))


def cluster_info_kubeconfig(server: str, ca_cert: x509.Certificate) -> str:
    """The kube-public/cluster-info ``kubeconfig`` value: one cluster named "",
    ``contexts: null``, ``current-context: ""``, ``users: null`` and no
    ``preferences`` key; byte for byte what the real kubeadm v1.37.2 wrote
    (tests/unit/kubeadm/data/real-v1.37.2/cluster-info). The JWS signatures are
    computed over this exact text."""
    config = {
        "apiVersion": "v1",
        "clusters": [
            {"cluster": {"certificate-authority-data": _b64(_cert_pem(ca_cert)), "server": server}, "name": ""}
        ],
        "contexts": None,
        "current-context": "",
        "kind": "Config",
        "users": None,
    }
    return render_kubeconfig(config)


def parse_kubeconfig(text: str | bytes) -> dict:
    config = yamlio.load(text, source="kubeconfig")
    if not isinstance(config, dict) or config.get("kind") != "Config":
        raise KubeconfigError("kubeconfig: expected a mapping with kind: Config")
    return config


def current_entries(config: dict, *, need_user: bool = False) -> tuple[dict, dict]:
    """(cluster, user) entries of the current context; messages never echo credentials.

    The cluster-info kubeconfig (kube-public/cluster-info) has one cluster, no
    contexts, no users and an empty current-context (seen in real v1.37.2): with
    no current-context and no contexts, its only cluster is the answer and the
    user is empty. Several clusters without a context stay an error: which one
    the caller means is not written anywhere. ``need_user`` (a kubeconfig to
    authenticate with) refuses both that shape and a context whose user is not
    defined.
    """
    name = config.get("current-context") or ""
    contexts = {c.get("name"): c.get("context") or {} for c in config.get("contexts") or [] if isinstance(c, dict)}
    clusters = {c.get("name"): c.get("cluster") or {} for c in config.get("clusters") or [] if isinstance(c, dict)}
    users = {u.get("name"): u.get("user") or {} for u in config.get("users") or [] if isinstance(u, dict)}
    if not contexts and (name or need_user):
        raise KubeconfigError("the kubeconfig has no contexts" + (f" for current-context {name!r}" if name else ""))
    if not name and not contexts:
        if len(clusters) != 1:
            raise KubeconfigError(
                f"kubeconfig without a current-context: expected exactly one cluster, found {len(clusters)}"
            )
        return next(iter(clusters.values())), {}
    if name not in contexts:
        raise KubeconfigError(f"current-context {name!r} is not one of the contexts {sorted(contexts)}")
    context = contexts[name]
    if context.get("cluster") not in clusters:
        raise KubeconfigError(f"context {name!r} names cluster {context.get('cluster')!r}, which is not defined")
    if need_user and context.get("user") not in users:
        raise KubeconfigError(f"context {name!r} names user {context.get('user')!r}, which is not defined")
    return clusters[context["cluster"]], users.get(context.get("user"), {})


def server_of(config: dict) -> str:
    return current_entries(config)[0].get("server", "")


def ca_certificates(config: dict) -> list[x509.Certificate]:
    cluster, _ = current_entries(config)
    data = cluster.get("certificate-authority-data")
    if not data:
        raise KubeconfigError("kubeconfig cluster: expected certificate-authority-data, found none")
    try:
        return pki.load_certificates(base64.b64decode(data), name="certificate-authority-data")
    except ValueError:
        raise KubeconfigError("kubeconfig cluster certificate-authority-data: expected base64 PEM") from None


def client_certificate(config: dict) -> x509.Certificate | None:
    """The embedded client certificate of the current user (None if not embedded)."""
    _, user = current_entries(config)
    data = user.get("client-certificate-data")
    if not data:
        return None
    return pki.load_certificate(base64.b64decode(data), name="client-certificate-data")


def client_key_pair(config: dict) -> KeyPair:
    """Client certificate and key of the current user; never echoes the key."""
    _, user = current_entries(config)
    if not user.get("client-certificate-data") or not user.get("client-key-data"):
        raise KubeconfigError("kubeconfig user: expected client-certificate-data and client-key-data")
    return pki.load_key_pair(
        base64.b64decode(user["client-certificate-data"]),
        base64.b64decode(user["client-key-data"]),
        name="kubeconfig client",
    )


def replace_client(config: dict, client: KeyPair) -> dict:
    """A copy with the current user's embedded certificate and key replaced
    (what `kubeadm certs renew admin.conf` does)."""
    current_entries(config)  # raises KubeconfigError for a kubeconfig without a current user
    new = copy.deepcopy(config)
    name = new.get("current-context") or ""
    context = next((c["context"] for c in new.get("contexts") or [] if c["name"] == name), None)
    if context is None:
        raise KubeconfigError(
            "kubeconfig: expected a current-context naming a user whose credentials to "
            "replace, found none (a cluster-info kubeconfig has no users)"
        )
    for u in new["users"]:
        if u["name"] == context["user"]:
            u["user"]["client-certificate-data"] = _b64(client.cert_pem())
            u["user"]["client-key-data"] = _b64(client.key_pem())
    return new
