"""A client for one Kubernetes API server, from credentials; every failure comes out typed.

Every connection passes ``core.network.check_destination`` right before the TCP connect
(inside the connection pool, so a reconnect is checked too); every request has a timeout; no
proxy is ever used (the guard vouches for the direct route only). Failures surface as
``ClusterUnreachable`` (retry once the control plane answers) or ``ClusterForbidden`` (fix the
credentials/RBAC), each with a message naming the endpoint and a hint. Whether a cluster can have
an API server to ask at all (initialized, credentials held) is decided before a client is built,
by ``clusters.preconditions``.

Which credentials a cluster gets is not decided here: a target (``APITarget``, in practice a
``clusters.models.Cluster``) hands them out, built by ``clusters/apiaccess.py`` from the CA
Kubeboard holds or from an adopted cluster's kubeconfig.
"""

from __future__ import annotations

import base64
import json
import os
import re
import ssl
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

import kubernetes.client
import urllib3
from kubernetes.client.exceptions import ApiException
from urllib3.util.retry import Retry

from core.network import ConnectionRefused, check_destination
from kubeadm import kubeconfig as kubeconfig_files
from kubeadm import pki
from kubeadm.errors import KubeadmError

# The group Kubeboard's own client certificates carry. Since v1.29 kubeadm binds it to
# ``cluster-admin`` (ClusterRoleBinding ``kubeadm:cluster-admins``), so the identity is an
# ordinary RBAC subject; named here because a 403's hint names it.
CLIENT_GROUP = "kubeadm:cluster-admins"
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


class APITarget(Protocol):
    """What kube/ needs of a cluster: a name for messages and fresh credentials per connection."""

    name: str

    def api_credentials(self, *, user: Any = None) -> Credentials: ...


# --- an uploaded kubeconfig -------------------------------------------------------------------


class KubeconfigRejected(ValueError):
    """An uploaded kubeconfig cannot be used; the message says what to change."""


_FLATTEN_HINT = "export one with embedded credentials: kubectl config view --raw --minify --flatten"


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
    try:
        cluster, user = kubeconfig_files.current_entries(config, need_user=True)
    except KubeadmError as exc:
        raise KubeconfigRejected(f"{exc}; set current-context to the admin context, or {_FLATTEN_HINT}") from None
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
        # Python's ssl loads a certificate chain only from a file: a 0600 file in a private
        # directory, removed as soon as it is loaded.
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


def api_client(target: APITarget, *, user: Any = None) -> kubernetes.client.ApiClient:
    """A client for ``target``'s API server (use it briefly, as ``with api_client(c) as client``).

    The destination is checked now (a refused one raises ``ClusterUnreachable`` before a
    client is built) and again before every TCP connection the client opens.
    """
    creds = target.api_credentials(user=user)
    host, port = creds.host_port
    try:
        check_destination(host, port)
    except ConnectionRefused as exc:
        raise ClusterUnreachable(
            f"cluster {target.name} is unreachable: {exc}", hint="check the cluster's control-plane endpoint"
        ) from None
    return client_for(creds)


# --- error translation ---------------------------------------------------------------------------


def _api_message(exc: ApiException) -> str:
    try:
        body = json.loads(exc.body or "{}")
    except (TypeError, ValueError):
        body = {}
    return str(body.get("message") or exc.reason or "").strip()


def _endpoint(server: str) -> str:
    """host:port of an API server URL, as a person compares it with the cluster's endpoint."""
    parts = urlsplit(server)
    return f"{parts.hostname}:{parts.port or 443}" if parts.hostname else server


def _why(exc: BaseException) -> str:
    """The operating system's words for a failed connection ("No route to host"), not urllib3's
    wrapper ("<HTTPSConnection object at 0x…>: Failed to establish a new connection: …")."""
    cause: BaseException | None = exc
    for _ in range(8):  # a cause chain is short; never loop on a cycle
        if cause is None:
            break
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror
        cause = cause.__cause__ or cause.__context__
    text = str(exc)
    return text.split(": ", 1)[1] if text.startswith("<") and ": " in text else text


# Said of an initialized cluster whose API server does not answer: waiting helps only once the
# control plane is back, so the hint says what to look at first.
_NO_ANSWER_HINT = "check that its control plane is running and reachable from Kubeboard, then retry"


def translate(exc: BaseException, *, server: str, cluster_name: str, action: str) -> KubeAPIError:
    """The typed error a caller (and its user) can act on, for any failure of an API call.

    A connection that fails reads "cluster NAME is unreachable: the API server at HOST:PORT does
    not answer (ACTION): WHY", naming the endpoint a person can check.
    """
    where = f"{action} on cluster {cluster_name} ({server})"
    endpoint = _endpoint(server)
    unreachable = f"cluster {cluster_name} is unreachable: the API server at {endpoint}"
    if isinstance(exc, KubeAPIError):
        return exc
    if isinstance(exc, ConnectionRefused):
        return ClusterUnreachable(
            f"cluster {cluster_name} is unreachable ({action}): {exc}",
            hint="check the cluster's control-plane endpoint",
        )
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
        return ClusterUnreachable(f"{unreachable} does not answer ({action}): {_why(exc)}", hint=_NO_ANSWER_HINT)
    if isinstance(exc, urllib3.exceptions.SSLError | ssl.SSLError):
        return ClusterUnreachable(
            f"{where}: TLS handshake with {endpoint} failed: {exc}",
            hint="the server's certificate is not signed by the cluster CA Kubeboard pins, or "
            "the endpoint points at another server",
        )
    if isinstance(exc, urllib3.exceptions.TimeoutError | TimeoutError):
        return ClusterUnreachable(
            f"{unreachable} does not answer ({action}): no answer within {CONNECT_TIMEOUT:.0f}s/{READ_TIMEOUT:.0f}s",
            hint=_NO_ANSWER_HINT,
        )
    if isinstance(exc, urllib3.exceptions.HTTPError | OSError):
        return ClusterUnreachable(f"{unreachable} does not answer ({action}): {_why(exc)}", hint=_NO_ANSWER_HINT)
    return ClusterUnreachable(f"{where}: {type(exc).__name__}: {exc}", hint=_NO_ANSWER_HINT)


@contextmanager
def connect(target: APITarget, action: str, *, user: Any = None) -> Iterator[kubernetes.client.ApiClient]:
    """``with connect(cluster, "create Secret x") as client:`` — errors come out typed."""
    client = api_client(target, user=user)
    server = client.configuration.host
    try:
        with client:
            yield client
    except (ApiException, ConnectionRefused, urllib3.exceptions.HTTPError, OSError, ssl.SSLError) as exc:
        raise translate(exc, server=server, cluster_name=target.name, action=action) from None


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
