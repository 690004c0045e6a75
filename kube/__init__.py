"""Kubeboard's one way to a cluster's Kubernetes API: no models, and no Django app below it but
``core`` and ``kubeadm``.

Callers ``import kube`` and use what this module re-exports:

* ``kube.client``: credentials, the guarded client (``connect``) and its typed errors;
* ``kube.api``: small calls (readiness, version, reviews, Secrets, ConfigMaps, RBAC);
* ``kube.nodes``: the Ready check, the node list, versions, cordon/drain, Node deletion;
* ``kube.waits``: waits until the API server is ready or a Node is Ready;
* ``kube.phases``: the same inside an operation's phase, and ``phase_errors``, the one place
  where an API error becomes the phase's failure.

Which credentials a cluster gets is the cluster's business (``clusters/apiaccess.py``); kube/
asks its target (``APITarget``) for them on every connection.
"""

from kube.api import (
    SecretMeta,
    cluster_info,
    config_map,
    create_secret,
    delete_secret,
    ensure_role_and_binding,
    list_token_secrets,
    patch_config_map,
    put_secret,
    readyz,
    restart_daemonset,
    secret_exists,
    self_subject_access,
    server_version,
    whoami,
)
from kube.client import (
    CLIENT_GROUP,
    APITarget,
    ClusterAPIError,
    ClusterForbidden,
    ClusterNotConnectable,
    ClusterUnreachable,
    Credentials,
    KubeAPIError,
    KubeconfigRejected,
    api_client,
    client_for,
    connect,
    credentials_from_kubeconfig,
    get_raw,
    translate,
)
from kube.nodes import (
    ClusterState,
    NodeState,
    cluster_state,
    delete_node,
    drain,
    is_ready,
    list_nodes,
    node_ready,
    node_row,
    set_unschedulable,
)
from kube.phases import phase_drain, phase_errors, phase_wait_api_ready, phase_wait_node_ready
from kube.waits import wait_api_ready, wait_node_ready

__all__ = [
    "CLIENT_GROUP",
    "APITarget",
    "ClusterAPIError",
    "ClusterForbidden",
    "ClusterNotConnectable",
    "ClusterState",
    "ClusterUnreachable",
    "Credentials",
    "KubeAPIError",
    "KubeconfigRejected",
    "NodeState",
    "SecretMeta",
    "api_client",
    "client_for",
    "cluster_info",
    "cluster_state",
    "config_map",
    "connect",
    "create_secret",
    "credentials_from_kubeconfig",
    "delete_node",
    "delete_secret",
    "drain",
    "ensure_role_and_binding",
    "get_raw",
    "is_ready",
    "list_nodes",
    "list_token_secrets",
    "node_ready",
    "node_row",
    "patch_config_map",
    "restart_daemonset",
    "phase_drain",
    "phase_errors",
    "phase_wait_api_ready",
    "phase_wait_node_ready",
    "put_secret",
    "readyz",
    "secret_exists",
    "self_subject_access",
    "server_version",
    "set_unschedulable",
    "translate",
    "wait_api_ready",
    "wait_node_ready",
    "whoami",
]
