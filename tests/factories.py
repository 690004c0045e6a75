"""Small builders for test data (plain functions, no factory library)."""

from __future__ import annotations

from clusters.models import Cluster
from kubeadm.versions import DEFAULT_KUBERNETES_VERSION


def make_cluster(name: str = "c1", *, team=None, **fields) -> Cluster:
    values = {
        "kubernetes_version": DEFAULT_KUBERNETES_VERSION,
        "control_plane_endpoint": "10.0.0.10:6443",
        "pod_subnet": "10.244.0.0/16",
    }
    values.update(fields)
    return Cluster.objects.create(name=name, team=team, **values)
