"""Small builders for test data (plain functions, no factory library)."""

from __future__ import annotations

from clusters.models import Cluster
from kubeadm.versions import DEFAULT_KUBERNETES_VERSION

# What a person types into the new-cluster form (all but name and team).
CLUSTER_FORM = {
    "kubernetes_version": DEFAULT_KUBERNETES_VERSION,
    "control_plane_endpoint": "10.0.0.10:6443",
    "pod_subnet": "10.244.0.0/16",
    "service_subnet": "10.96.0.0/12",
    "dns_domain": "cluster.local",
    "image_repository": "registry.k8s.io",
    "encryption_algorithm": "RSA-2048",
}


def make_cluster(name: str = "c1", *, team=None, **fields) -> Cluster:
    values = {
        "kubernetes_version": DEFAULT_KUBERNETES_VERSION,
        "control_plane_endpoint": "10.0.0.10:6443",
        "pod_subnet": "10.244.0.0/16",
    }
    values.update(fields)
    return Cluster.objects.create(name=name, team=team, **values)
