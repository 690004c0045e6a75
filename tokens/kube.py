"""The Kubernetes objects behind tokens: bootstrap-token Secrets, Nodes, kubeadm-certs.

Every call goes through ``clusters.kubeapi.connect`` (guard, timeouts, typed errors). Bodies
are the dicts ``kubeadm/`` renders, sent as they are, so the Secrets are byte-for-byte what
kubeadm writes.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

import kubernetes.client

from clusters import kubeapi
from kubeadm import tokens as kubeadm_tokens

NAMESPACE = kubeadm_tokens.SECRET_NAMESPACE
TOKEN_SECRET_SELECTOR = f"type={kubeadm_tokens.SECRET_TYPE}"


@dataclass(frozen=True)
class SecretMeta:
    name: str
    uid: str
    created: datetime.datetime | None


def _meta(obj) -> SecretMeta:
    meta = obj.metadata
    return SecretMeta(name=meta.name, uid=meta.uid or "", created=meta.creation_timestamp)


def create_secret(cluster, body: dict, *, user=None) -> SecretMeta:
    """Create a Secret; a 409 comes out as ``kubeapi.ClusterAPIError`` with status 409."""
    name = body["metadata"]["name"]
    with kubeapi.connect(cluster, f"create Secret {NAMESPACE}/{name}", user=user) as client:
        created = kubernetes.client.CoreV1Api(client).create_namespaced_secret(NAMESPACE, body)
    return _meta(created)


def delete_secret(cluster, name: str, *, user=None) -> bool:
    """Delete a Secret; False when it was already gone (404)."""
    try:
        with kubeapi.connect(cluster, f"delete Secret {NAMESPACE}/{name}", user=user) as client:
            kubernetes.client.CoreV1Api(client).delete_namespaced_secret(name, NAMESPACE)
    except kubeapi.ClusterAPIError as exc:
        if exc.status == 404:
            return False
        raise
    return True


def secret_exists(cluster, name: str, *, user=None) -> bool:
    try:
        with kubeapi.connect(cluster, f"get Secret {NAMESPACE}/{name}", user=user) as client:
            kubernetes.client.CoreV1Api(client).read_namespaced_secret(name, NAMESPACE)
    except kubeapi.ClusterAPIError as exc:
        if exc.status == 404:
            return False
        raise
    return True


def list_token_secrets(cluster, *, user=None) -> list[tuple[SecretMeta, dict]]:
    """Every bootstrap-token Secret in kube-system, as (metadata, plain Secret dict)."""
    with kubeapi.connect(cluster, f"list bootstrap-token Secrets in {NAMESPACE}", user=user) as client:
        found = kubernetes.client.CoreV1Api(client).list_namespaced_secret(
            NAMESPACE, field_selector=TOKEN_SECRET_SELECTOR
        )
        return [(_meta(item), client.sanitize_for_serialization(item)) for item in found.items]


def node_ready(cluster, node_name: str, *, user=None) -> bool | None:
    """Whether the API server reports the Node Ready; None when no such Node is registered."""
    try:
        with kubeapi.connect(cluster, f"get Node {node_name}", user=user) as client:
            node = kubernetes.client.CoreV1Api(client).read_node(node_name)
    except kubeapi.ClusterAPIError as exc:
        if exc.status == 404:
            return None
        raise
    for condition in (node.status.conditions or []) if node.status else []:
        if condition.type == "Ready":
            return condition.status == "True"
    return False


def put_secret(cluster, body: dict, *, user=None) -> SecretMeta:
    """Create the Secret, or replace it when it exists (what kubeadm's CreateOrUpdateSecret does)."""
    name = body["metadata"]["name"]
    namespace = body["metadata"]["namespace"]
    with kubeapi.connect(cluster, f"create or replace Secret {namespace}/{name}", user=user) as client:
        api = kubernetes.client.CoreV1Api(client)
        try:
            return _meta(api.create_namespaced_secret(namespace, body))
        except kubernetes.client.exceptions.ApiException as exc:
            if exc.status != 409:
                raise
        return _meta(api.replace_namespaced_secret(name, namespace, body))


def ensure_role_and_binding(cluster, role: dict, binding: dict, *, user=None) -> None:
    """Create an RBAC Role and RoleBinding unless they exist (kubeadm's CreateOrUpdate*)."""
    namespace = role["metadata"]["namespace"]
    with kubeapi.connect(cluster, f"create Role/RoleBinding {role['metadata']['name']}", user=user) as client:
        rbac = kubernetes.client.RbacAuthorizationV1Api(client)
        for create, body in ((rbac.create_namespaced_role, role), (rbac.create_namespaced_role_binding, binding)):
            try:
                create(namespace, body)
            except kubernetes.client.exceptions.ApiException as exc:
                if exc.status != 409:
                    raise


def cluster_info(cluster, *, user=None) -> dict[str, str] | None:
    """``kube-public/cluster-info``'s data (kubeconfig + jws-kubeconfig-<id> keys); None if absent."""
    try:
        with kubeapi.connect(cluster, "get ConfigMap kube-public/cluster-info", user=user) as client:
            config_map = kubernetes.client.CoreV1Api(client).read_namespaced_config_map("cluster-info", "kube-public")
    except kubeapi.ClusterAPIError as exc:
        if exc.status == 404:
            return None
        raise
    return dict(config_map.data or {})
