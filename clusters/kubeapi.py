"""Kubeboard's one way into a cluster's Kubernetes API.

Credentials:

* A cluster Kubeboard created holds its CA key pair. Every client gets its **own short-lived
  client certificate** issued from that CA (CN ``kubeboard`` or ``kubeboard:<username>``,
  valid for minutes) — never a copy of a node's ``admin.conf``. The private key lives in
  memory; Python's ``ssl`` can only load a certificate chain from a file, so it is written to
  a 0600 file in a private temporary directory for the duration of ``load_cert_chain`` and
  removed at once.
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

Every connection passes ``core.network.check_destination`` right before the TCP connect
(inside the connection pool, so a reconnect is checked too); every request has a timeout; no
proxy is ever used (the guard vouches for the direct route only). Failures surface as
``ClusterUnreachable`` (retry later) or ``ClusterForbidden`` (fix the credentials/RBAC), each
with a message naming the endpoint and a hint.
"""

from __future__ import annotations

import base64
import datetime
import os
import re
import ssl
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import urlsplit

import kubernetes.client
import urllib3
from kubernetes.client.exceptions import ApiException
from urllib3.util.retry import Retry

from core.encryption import SecretValue
from core.network import ConnectionRefused, check_destination
from kubeadm import kubeconfig as kubeconfig_files
from kubeadm import netutil, pki
from kubeadm.errors import KubeadmError

CLIENT_GROUP = "kubeadm:cluster-admins"
CLIENT_COMMON_NAME = "kubeboard"
# Short enough that a leaked in-memory certificate is useless soon; long enough for one action.
CLIENT_CERT_TTL = timedelta(minutes=15)
# ECDSA keys take a millisecond to make (RSA-2048: ~50 ms); the API server accepts them under
# any CA algorithm, and the key never outlives the client.
CLIENT_KEY_ALGORITHM = "ECDSA-P256"
MAX_ADMIN_KUBECONFIG_TTL = timedelta(days=1)
DEFAULT_API_PORT = "6443"
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 30.0


class KubeAPIError(Exception):
    """Talking to a cluster's API server failed; ``hint`` says what to do next."""

    retryable = False

    def __init__(self, message: str, *, hint: str = "") -> None:
        self.hint = hint
        super().__init__(f"{message} — {hint}" if hint else message)


class ClusterUnreachable(KubeAPIError):
    """The API server could not be reached or did not answer in time (retrying may help)."""

    retryable = True


class ClusterForbidden(KubeAPIError):
    """The API server refused Kubeboard's credentials or their permissions (401/403)."""


class ClusterNotConnectable(KubeAPIError):
    """Kubeboard holds no credentials for this cluster (no CA key, not adopted)."""


class ClusterAPIError(KubeAPIError):
    """The API server answered with an error other than 401/403 (e.g. 409, 422)."""

    def __init__(self, message: str, *, status: int, reason: str = "", hint: str = "") -> None:
        self.status = status
        self.reason = reason
        super().__init__(message, hint=hint)


@dataclass(frozen=True)
class Credentials:
    """Where and how to reach one API server. repr() never shows key material."""

    server: str
    ca_pem: bytes = field(repr=False)
    client_cert_pem: bytes = field(default=b"", repr=False)
    client_key_pem: bytes = field(default=b"", repr=False)
    token: str = field(default="", repr=False)
    tls_server_name: str = ""

    @property
    def host_port(self) -> tuple[str, int]:
        parts = urlsplit(self.server)
        return parts.hostname or "", parts.port or 443


# --- credentials ------------------------------------------------------------------------------


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


class KubeconfigRejected(ValueError):
    """An uploaded kubeconfig cannot be used; the message says what to change."""


_FLATTEN_HINT = "export one with embedded credentials: kubectl config view --raw --minify --flatten"


def _current_entries(config: dict) -> tuple[dict, dict]:
    """(cluster, user) of the current context; messages never echo credentials."""
    name = config.get("current-context") or ""
    contexts = {c.get("name"): c.get("context") or {} for c in config.get("contexts") or [] if isinstance(c, dict)}
    if not contexts:
        raise KubeconfigRejected("the kubeconfig has no contexts; " + _FLATTEN_HINT)
    if name not in contexts:
        raise KubeconfigRejected(
            f"current-context {name!r} is not one of the contexts {sorted(contexts)}; "
            "set current-context to the admin context"
        )
    context = contexts[name]
    clusters = {c.get("name"): c.get("cluster") or {} for c in config.get("clusters") or [] if isinstance(c, dict)}
    users = {u.get("name"): u.get("user") or {} for u in config.get("users") or [] if isinstance(u, dict)}
    if context.get("cluster") not in clusters:
        raise KubeconfigRejected(f"context {name!r} names cluster {context.get('cluster')!r}, which is not defined")
    if context.get("user") not in users:
        raise KubeconfigRejected(f"context {name!r} names user {context.get('user')!r}, which is not defined")
    return clusters[context["cluster"]], users[context["user"]]


def _b64(value: str, what: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (ValueError, TypeError):
        raise KubeconfigRejected(f"{what} is not valid base64") from None


def credentials_from_kubeconfig(text: str) -> Credentials:
    """Validate an admin kubeconfig and turn it into Credentials (no network)."""
    try:
        config = kubeconfig_files.parse_kubeconfig(text)
    except KubeadmError as exc:
        raise KubeconfigRejected(f"not a kubeconfig: {exc}") from None
    cluster, user = _current_entries(config)
    server = str(cluster.get("server") or "")
    # A server URL may carry user:password@ (some tools write it so): never repeat that part.
    shown = re.sub(r"(//)[^/@]*@", r"\1…@", server)
    shown = shown if len(shown) <= 200 else shown[:200] + "…"
    try:
        parts = urlsplit(server)
        port = parts.port  # a port that is no number from 0 to 65535 raises here, not on first use
    except ValueError as exc:
        raise KubeconfigRejected(f"the cluster's server is not a valid URL ({exc}), found {shown!r}") from None
    if parts.scheme != "https" or not parts.hostname:
        raise KubeconfigRejected(f"the cluster's server must be an https:// URL, found {shown!r}")
    if port == 0:
        raise KubeconfigRejected(f"the cluster's server port must be from 1 to 65535, found {shown!r}")
    if cluster.get("insecure-skip-tls-verify"):
        raise KubeconfigRejected(
            "the kubeconfig skips TLS verification; Kubeboard pins the cluster CA, so it needs "
            "certificate-authority-data and no insecure-skip-tls-verify"
        )
    if cluster.get("certificate-authority") and not cluster.get("certificate-authority-data"):
        raise KubeconfigRejected("the cluster's CA is a file path (certificate-authority); " + _FLATTEN_HINT)
    if not cluster.get("certificate-authority-data"):
        raise KubeconfigRejected(
            "the cluster has no certificate-authority-data; Kubeboard needs the cluster CA "
            "to verify the API server and compute the CA pin"
        )
    ca_pem = _b64(cluster["certificate-authority-data"], "certificate-authority-data")
    try:
        pki.load_certificates(ca_pem, name="certificate-authority-data")
    except (KubeadmError, ValueError) as exc:
        raise KubeconfigRejected(f"certificate-authority-data is not a PEM certificate: {exc}") from None
    for unsupported, what in (
        ("exec", "an exec credential plugin"),
        ("auth-provider", "an auth provider"),
        ("tokenFile", "a token file"),
        ("username", "basic authentication"),
    ):
        if user.get(unsupported):
            raise KubeconfigRejected(
                f"the user authenticates with {what}, which Kubeboard cannot run; use an admin "
                "kubeconfig with an embedded client certificate or token (" + _FLATTEN_HINT + ")"
            )
    if user.get("client-certificate") or user.get("client-key"):
        raise KubeconfigRejected("the user's certificate or key is a file path; " + _FLATTEN_HINT)
    token = str(user.get("token") or "")
    cert = user.get("client-certificate-data")
    key = user.get("client-key-data")
    if bool(cert) != bool(key):
        raise KubeconfigRejected("the user has only one of client-certificate-data and client-key-data")
    if not token and not cert:
        raise KubeconfigRejected("the user has no credentials (client-certificate-data/client-key-data or token)")
    cert_pem = key_pem = b""
    if cert:
        cert_pem = _b64(cert, "client-certificate-data")
        key_pem = _b64(key, "client-key-data")
        try:
            pki.load_key_pair(cert_pem, key_pem, name="kubeconfig client")
        except (KubeadmError, ValueError):
            raise KubeconfigRejected(
                "client-certificate-data and client-key-data are not a matching certificate and private key"
            ) from None
    return Credentials(
        server=server.rstrip("/"),
        ca_pem=ca_pem,
        client_cert_pem=cert_pem,
        client_key_pem=key_pem,
        token=token,
        tls_server_name=str(cluster.get("tls-server-name") or ""),
    )


# --- the HTTP client -----------------------------------------------------------------------------


class _GuardedHTTPSConnectionPool(urllib3.HTTPSConnectionPool):
    """Checks the destination immediately before every new TCP connection; default timeouts."""

    def _new_conn(self):
        check_destination(self.host, self.port or 443)
        return super()._new_conn()

    def _get_timeout(self, timeout):
        # The kubernetes client passes timeout=None when a call gives no _request_timeout,
        # which urllib3 reads as "wait forever".
        if timeout is None:
            timeout = urllib3.Timeout(connect=CONNECT_TIMEOUT, read=READ_TIMEOUT)
        return super()._get_timeout(timeout)


def _ssl_context(creds: Credentials) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the chain and the host name
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_verify_locations(cadata=creds.ca_pem.decode("ascii", errors="replace"))
    if creds.client_cert_pem:
        with tempfile.TemporaryDirectory(prefix="kubeboard-tls-") as directory:  # mode 0700
            path = os.path.join(directory, "client.pem")
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(creds.client_cert_pem + b"\n" + creds.client_key_pem)
            context.load_cert_chain(path)
    return context


def _pool_manager(creds: Credentials) -> urllib3.PoolManager:
    kwargs = {
        "ssl_context": _ssl_context(creds),
        "cert_reqs": ssl.CERT_REQUIRED,
        # One quick reconnect; never a blind re-send of a request that may have reached the server.
        "retries": Retry(total=1, connect=1, read=0, status=0, redirect=0, other=0),
        "maxsize": 4,
    }
    if creds.tls_server_name:
        kwargs["server_hostname"] = creds.tls_server_name
    manager = urllib3.PoolManager(num_pools=2, **kwargs)
    manager.pool_classes_by_scheme = {"https": _GuardedHTTPSConnectionPool}
    return manager


def client_for(creds: Credentials) -> kubernetes.client.ApiClient:
    configuration = kubernetes.client.Configuration()
    configuration.host = creds.server
    configuration.verify_ssl = True
    configuration.proxy = None
    if creds.token:
        configuration.api_key = {"authorization": creds.token}
        configuration.api_key_prefix = {"authorization": "Bearer"}
    client = kubernetes.client.ApiClient(configuration)
    client.rest_client.pool_manager.clear()
    client.rest_client.pool_manager = _pool_manager(creds)
    client.user_agent = "kubeboard"
    return client


def api_client(cluster, *, user=None) -> kubernetes.client.ApiClient:
    """A client for ``cluster``'s API server (use it briefly, as ``with api_client(c) as client``).

    The destination is checked now (a refused one raises ``ClusterUnreachable`` before any
    key material is made) and again before every TCP connection the client opens.
    """
    creds = credentials(cluster, user=user)
    host, port = creds.host_port
    try:
        check_destination(host, port)
    except ConnectionRefused as exc:
        raise ClusterUnreachable(
            f"API server {creds.server} of cluster {cluster.name}: {exc}",
            hint="check the cluster's control-plane endpoint",
        ) from None
    return client_for(creds)


# --- error translation ---------------------------------------------------------------------------


def _api_message(exc: ApiException) -> str:
    import json

    try:
        body = json.loads(exc.body or "{}")
    except (TypeError, ValueError):
        body = {}
    return str(body.get("message") or exc.reason or "").strip()


def translate(exc: BaseException, *, server: str, cluster_name: str, action: str) -> KubeAPIError:
    """The typed error a caller (and its user) can act on, for any failure of an API call."""
    where = f"{action} on cluster {cluster_name} ({server})"
    if isinstance(exc, KubeAPIError):
        return exc
    if isinstance(exc, ConnectionRefused):
        return ClusterUnreachable(f"{where}: {exc}", hint="check the cluster's control-plane endpoint")
    if isinstance(exc, ApiException):
        message = _api_message(exc)
        if exc.status == 401:
            return ClusterForbidden(
                f"{where}: the API server rejected Kubeboard's credentials (401 Unauthorized)",
                hint="the CA Kubeboard holds is not the cluster's, or the adopted kubeconfig's "
                "credentials expired; adopt the cluster again with a current admin "
                "kubeconfig",
            )
        if exc.status == 403:
            return ClusterForbidden(
                f"{where}: forbidden: {message}",
                hint=f"grant the identity rights to do this (Kubeboard's certificates carry group "
                f"{CLIENT_GROUP}, which kubeadm binds to cluster-admin)",
            )
        if exc.status in (429, 500, 502, 503, 504) or exc.status == 0:
            return ClusterUnreachable(
                f"{where}: the API server answered {exc.status} {exc.reason}: {message}",
                hint="the API server is overloaded or starting; retry in a moment",
            )
        return ClusterAPIError(
            f"{where}: {exc.status} {exc.reason}: {message}", status=exc.status, reason=str(exc.reason or "")
        )
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
        exc = exc.reason
    if isinstance(exc, urllib3.exceptions.NewConnectionError):  # a subclass of ConnectTimeoutError
        return ClusterUnreachable(
            f"{where}: cannot connect: {exc}",
            hint="check that the API server is running and reachable; retry in a moment",
        )
    if isinstance(exc, urllib3.exceptions.SSLError | ssl.SSLError):
        return ClusterUnreachable(
            f"{where}: TLS handshake failed: {exc}",
            hint="the server's certificate is not signed by the cluster CA Kubeboard pins, or "
            "the endpoint points at another server",
        )
    if isinstance(exc, urllib3.exceptions.TimeoutError | TimeoutError):
        return ClusterUnreachable(
            f"{where}: no answer within {CONNECT_TIMEOUT:.0f}s/{READ_TIMEOUT:.0f}s",
            hint="the API server may be down or starting; retry in a moment",
        )
    if isinstance(exc, urllib3.exceptions.HTTPError | OSError):
        return ClusterUnreachable(
            f"{where}: cannot connect: {exc}",
            hint="check that the API server is running and reachable; retry in a moment",
        )
    return ClusterUnreachable(f"{where}: {type(exc).__name__}: {exc}", hint="retry in a moment")


@contextmanager
def connect(cluster, action: str, *, user=None) -> Iterator[kubernetes.client.ApiClient]:
    """``with connect(cluster, "create Secret x") as client:`` — errors come out typed."""
    client = api_client(cluster, user=user)
    server = client.configuration.host
    try:
        with client:
            yield client
    except (ApiException, ConnectionRefused, urllib3.exceptions.HTTPError, OSError, ssl.SSLError) as exc:
        raise translate(exc, server=server, cluster_name=cluster.name, action=action) from None


# --- small calls other apps use -------------------------------------------------------------------


def get_raw(client: kubernetes.client.ApiClient, path: str, *, timeout: float | None = None) -> tuple[int, str]:
    """GET a non-resource path (``/readyz``, ``/version``); (status, body text)."""
    method, url, headers, body, post_params = client.param_serialize(
        "GET", path, header_params={"Accept": "text/plain, application/json"}, auth_settings=["BearerToken"]
    )
    response = client.call_api(
        method, url, headers, body, post_params, _request_timeout=timeout or (CONNECT_TIMEOUT, READ_TIMEOUT)
    )
    data = response.read()
    return response.status, data.decode("utf-8", errors="replace")


def readyz(cluster) -> str:
    """The API server's ``/readyz`` answer ("ok"); raises ClusterUnreachable when not ready."""
    with connect(cluster, "GET /readyz") as client:
        status, text = get_raw(client, "/readyz")
    if status != 200:
        raise ClusterUnreachable(
            f"API server of cluster {cluster.name} is not ready ({status}): {text.strip()[:300]}",
            hint="wait for the control plane to start, then retry",
        )
    return text.strip()


def server_version(cluster) -> str:
    """The API server's gitVersion, e.g. "v1.37.2"."""
    with connect(cluster, "GET /version") as client:
        return kubernetes.client.VersionApi(client).get_code().git_version


def self_subject_access(cluster, *, verb: str, resource: str, namespace: str = "", group: str = "") -> tuple[bool, str]:
    """SelfSubjectAccessReview: may Kubeboard's identity do ``verb`` on ``resource``? (allowed, reason)"""
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": {"verb": verb, "resource": resource, "namespace": namespace, "group": group}},
    }
    with connect(cluster, f"SelfSubjectAccessReview {verb} {resource}") as client:
        result = kubernetes.client.AuthorizationV1Api(client).create_self_subject_access_review(review)
    return bool(result.status.allowed), str(result.status.reason or result.status.evaluation_error or "")


def whoami(cluster) -> tuple[str, list[str]]:
    """SelfSubjectReview: the user name and groups the API server sees for Kubeboard's identity."""
    review = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    with connect(cluster, "SelfSubjectReview") as client:
        result = kubernetes.client.AuthenticationV1Api(client).create_self_subject_review(review)
    info = result.status.user_info
    return str(info.username or ""), list(info.groups or [])


def issue_admin_kubeconfig(cluster, *, user, ttl: timedelta) -> str:
    """An admin kubeconfig with its own client certificate (CN ``kubeboard:<username>``, group
    ``kubeadm:cluster-admins``) valid for ``ttl``; audited here as ``cluster.admin_kubeconfig_issued``.

    Only for clusters whose CA Kubeboard holds: an adopted cluster's stored kubeconfig is
    never handed out.
    """
    from audit.services import record

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
