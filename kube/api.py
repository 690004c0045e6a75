"""Small calls on a cluster's API server: health, version, who Kubeboard is there, what it may do;
the Secrets, ConfigMaps and RBAC objects kubeadm's workflow reads and writes.

Every call opens its own short connection through ``kube.client.connect`` (guard, timeouts,
typed errors). Bodies are the dicts ``kubeadm/`` renders, sent as they are, so the objects are
byte-for-byte what kubeadm writes.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

import kubernetes.client
from kubernetes.client.exceptions import ApiException

from kube.client import APITarget, ClusterAPIError, ClusterUnreachable, connect, get_raw
from kubeadm import tokens as kubeadm_tokens

NAMESPACE = kubeadm_tokens.SECRET_NAMESPACE  # kube-system: bootstrap tokens, kubeadm-certs
TOKEN_SECRET_SELECTOR = f"type={kubeadm_tokens.SECRET_TYPE}"


def readyz(target: APITarget) -> str:
    """The API server's ``/readyz`` answer ("ok"); raises ClusterUnreachable when not ready."""
    with connect(target, "GET /readyz") as client:
        status, text = get_raw(client, "/readyz")
    if status != 200:
        raise ClusterUnreachable(
            f"API server of cluster {target.name} is not ready ({status}): {text.strip()[:300]}",
            hint="wait for the control plane to start, then retry",
        )
    return text.strip()


def server_version(target: APITarget) -> str:
    """The API server's gitVersion, e.g. "v1.37.2"."""
    with connect(target, "GET /version") as client:
        return kubernetes.client.VersionApi(client).get_code().git_version


def self_subject_access(
    target: APITarget, *, verb: str, resource: str, namespace: str = "", group: str = ""
) -> tuple[bool, str]:
    """SelfSubjectAccessReview: may Kubeboard's identity do ``verb`` on ``resource``? (allowed, reason)"""
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": {"verb": verb, "resource": resource, "namespace": namespace, "group": group}},
    }
    with connect(target, f"SelfSubjectAccessReview {verb} {resource}") as client:
        result = kubernetes.client.AuthorizationV1Api(client).create_self_subject_access_review(review)
    return bool(result.status.allowed), str(result.status.reason or result.status.evaluation_error or "")


def whoami(target: APITarget) -> tuple[str, list[str]]:
    """SelfSubjectReview: the user name and groups the API server sees for Kubeboard's identity."""
    review = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    with connect(target, "SelfSubjectReview") as client:
        result = kubernetes.client.AuthenticationV1Api(client).create_self_subject_review(review)
    info = result.status.user_info
    return str(info.username or ""), list(info.groups or [])


# --- Secrets -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SecretMeta:
    name: str
    uid: str
    created: datetime.datetime | None


def _meta(obj) -> SecretMeta:
    meta = obj.metadata
    return SecretMeta(name=meta.name, uid=meta.uid or "", created=meta.creation_timestamp)


def create_secret(target: APITarget, body: dict, *, user: Any = None) -> SecretMeta:
    """Create a Secret in kube-system; a 409 comes out as ``ClusterAPIError`` with status 409."""
    name = body["metadata"]["name"]
    with connect(target, f"create Secret {NAMESPACE}/{name}", user=user) as client:
        created = kubernetes.client.CoreV1Api(client).create_namespaced_secret(NAMESPACE, body)
    return _meta(created)


def delete_secret(target: APITarget, name: str, *, user: Any = None) -> bool:
    """Delete a Secret in kube-system; False when it was already gone (404)."""
    try:
        with connect(target, f"delete Secret {NAMESPACE}/{name}", user=user) as client:
            kubernetes.client.CoreV1Api(client).delete_namespaced_secret(name, NAMESPACE)
    except ClusterAPIError as exc:
        if exc.status == 404:
            return False
        raise
    return True


def secret_exists(target: APITarget, name: str, *, user: Any = None) -> bool:
    try:
        with connect(target, f"get Secret {NAMESPACE}/{name}", user=user) as client:
            kubernetes.client.CoreV1Api(client).read_namespaced_secret(name, NAMESPACE)
    except ClusterAPIError as exc:
        if exc.status == 404:
            return False
        raise
    return True


def list_token_secrets(target: APITarget, *, user: Any = None) -> list[tuple[SecretMeta, dict]]:
    """Every bootstrap-token Secret in kube-system, as (metadata, plain Secret dict)."""
    with connect(target, f"list bootstrap-token Secrets in {NAMESPACE}", user=user) as client:
        found = kubernetes.client.CoreV1Api(client).list_namespaced_secret(
            NAMESPACE, field_selector=TOKEN_SECRET_SELECTOR
        )
        return [(_meta(item), client.sanitize_for_serialization(item)) for item in found.items]


def put_secret(target: APITarget, body: dict, *, user: Any = None) -> SecretMeta:
    """Create the Secret, or replace it when it exists (what kubeadm's CreateOrUpdateSecret does)."""
    name = body["metadata"]["name"]
    namespace = body["metadata"]["namespace"]
    with connect(target, f"create or replace Secret {namespace}/{name}", user=user) as client:
        api = kubernetes.client.CoreV1Api(client)
        try:
            return _meta(api.create_namespaced_secret(namespace, body))
        except ApiException as exc:
            if exc.status != 409:
                raise
        return _meta(api.replace_namespaced_secret(name, namespace, body))


def ensure_role_and_binding(target: APITarget, role: dict, binding: dict, *, user: Any = None) -> None:
    """Create an RBAC Role and RoleBinding unless they exist (kubeadm's CreateOrUpdate*)."""
    namespace = role["metadata"]["namespace"]
    with connect(target, f"create Role/RoleBinding {role['metadata']['name']}", user=user) as client:
        rbac = kubernetes.client.RbacAuthorizationV1Api(client)
        for create, body in ((rbac.create_namespaced_role, role), (rbac.create_namespaced_role_binding, binding)):
            try:
                create(namespace, body)
            except ApiException as exc:
                if exc.status != 409:
                    raise


# --- ConfigMaps ----------------------------------------------------------------------------------


def cluster_info(target: APITarget, *, user: Any = None) -> dict[str, str] | None:
    """``kube-public/cluster-info``'s data (kubeconfig + jws-kubeconfig-<id> keys); None if absent."""
    try:
        with connect(target, "get ConfigMap kube-public/cluster-info", user=user) as client:
            config_map = kubernetes.client.CoreV1Api(client).read_namespaced_config_map("cluster-info", "kube-public")
    except ClusterAPIError as exc:
        if exc.status == 404:
            return None
        raise
    return dict(config_map.data or {})


def config_map(target: APITarget, namespace: str, name: str) -> dict[str, str] | None:
    """A ConfigMap's data (kubeadm-config, kubelet-config); None when there is none."""
    with connect(target, f"read ConfigMap {namespace}/{name}") as client:
        try:
            item = kubernetes.client.CoreV1Api(client).read_namespaced_config_map(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
    return dict(item.data or {})


def patch_config_map(target: APITarget, namespace: str, name: str, data: dict[str, str]) -> None:
    with connect(target, f"update ConfigMap {namespace}/{name}") as client:
        kubernetes.client.CoreV1Api(client).patch_namespaced_config_map(name, namespace, {"data": data})


def restart_daemonset(target: APITarget, namespace: str, name: str) -> bool:
    """What ``kubectl rollout restart`` does: a new restartedAt annotation on the Pod template, so
    each Pod is replaced and reads its ConfigMaps again. False when there is no such DaemonSet."""
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = {"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": now}}}}}
    with connect(target, f"restart DaemonSet {namespace}/{name}") as client:
        try:
            kubernetes.client.AppsV1Api(client).patch_namespaced_daemon_set(name, namespace, body)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
    return True
