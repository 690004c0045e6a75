"""Cluster life-cycle services: each one owns its transaction and its audit record."""

from __future__ import annotations

from django.db import transaction

from audit.services import record
from clusters.identity import PREPARE_IDENTITY
from clusters.kubeadm_config import cluster_values
from clusters.models import Cluster
from operations.models import Operation
from operations.services import start_operation


def create_cluster(cluster: Cluster, *, user) -> Operation:
    """Save a validated cluster and queue the operation that prepares its identity."""
    with transaction.atomic():
        cluster.created_by = user if getattr(user, "pk", None) else None
        cluster.status = Cluster.Status.PREPARING
        cluster.save()
        record(
            "cluster.created",
            actor=user,
            obj=cluster,
            cluster=cluster,
            details=cluster_values(cluster) | {"team": cluster.team.name if cluster.team else None},
        )
        return start_operation(cluster, PREPARE_IDENTITY.name, user=user)


def save_engine_settings(form, *, user) -> Cluster:
    """Save how Kubeboard drives kubeadm on this cluster (a validated EngineSettingsForm)."""
    cluster = form.instance
    before = Cluster.objects.filter(pk=cluster.pk).values(*ENGINE_SETTINGS).first() or {}
    with transaction.atomic():
        cluster = form.save()
        after = {field: getattr(cluster, field) for field in ENGINE_SETTINGS}
        changed = {
            field: {"from": before.get(field), "to": after[field]}
            for field in after
            if before.get(field) != after[field]
        }
        record("cluster.engine_settings_changed", actor=user, obj=cluster, cluster=cluster, details=changed)
    return cluster


ENGINE_SETTINGS = ("ignore_preflight_errors", "join_parallelism", "control_plane_join_method")
