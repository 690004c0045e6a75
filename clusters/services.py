"""Cluster life-cycle services: each one owns its transaction and its audit record."""

from __future__ import annotations

from django.db import router, transaction
from django.db.models.deletion import Collector

from audit.services import record, refusals
from clusters.identity import PREPARE_IDENTITY
from clusters.kubeadm_config import cluster_values
from clusters.models import Cluster, PodNetworkManifest
from operations.models import Operation
from operations.services import start_operation


def create_cluster(cluster: Cluster, *, user, pod_network_manifest=None) -> Operation:
    """Save a validated cluster (and its checked custom pod network manifest, if one was given:
    a ``clusters.pod_network.CheckedManifest``) and queue the operation that prepares its identity."""
    with transaction.atomic():
        cluster.created_by = user if getattr(user, "pk", None) else None
        cluster.status = Cluster.Status.PREPARING
        cluster.save()
        details = cluster_values(cluster) | {
            "team": cluster.team.name if cluster.team else None,
            # The control-plane endpoint choice (issue 21): what Kubeboard will install, in words.
            "endpoint": cluster.endpoint_label,
        }
        record(
            "cluster.created",
            actor=user,
            obj=cluster,
            cluster=cluster,
            details=details | _store_manifest(cluster, pod_network_manifest, user=user),
        )
        return start_operation(cluster, PREPARE_IDENTITY.name, user=user)


ENGINE_SETTINGS = ("ignore_preflight_errors", "join_parallelism", "control_plane_join_method")
POD_NETWORK_SETTINGS = ("pod_network", "pod_network_version", "pod_network_registry")


def _save_settings(form, fields: tuple[str, ...], action: str, *, user, also=None) -> Cluster:
    """Save a validated form of the cluster's settings and record ``action`` with each of
    ``fields`` that changed, from what the database held to what was saved (and what ``also``,
    run in the same transaction, returns to record)."""
    cluster = form.instance
    before = Cluster.objects.filter(pk=cluster.pk).values(*fields).first() or {}
    with transaction.atomic():
        # Only the form's fields: what the worker wrote meanwhile on the same row (what was rolled
        # out, the pod network's inventory, the status) is not overwritten with what was read before.
        cluster = form.save(commit=False)
        cluster.save(update_fields=[*fields, "updated_at"])
        changed = {
            field: {"from": before.get(field), "to": getattr(cluster, field)}
            for field in fields
            if before.get(field) != getattr(cluster, field)
        }
        if also is not None:
            changed |= also(cluster)
        record(action, actor=user, obj=cluster, cluster=cluster, details=changed)
    return cluster


def _store_manifest(cluster: Cluster, checked, *, user) -> dict:
    """Keep a checked custom manifest as the cluster's (replacing the one before); what the
    audit record says of it (never its text)."""
    if checked is None:
        return {}
    PodNetworkManifest.objects.update_or_create(
        cluster=cluster,
        defaults={
            "text": checked.text,
            "sha256": checked.sha256,
            "source": checked.source,
            "object_count": checked.object_count,
            "saved_by": user if getattr(user, "pk", None) else None,
        },
    )
    return {
        "pod_network_manifest": {"source": checked.source, "sha256": checked.sha256, "objects": checked.object_count}
    }


def save_engine_settings(form, *, user) -> Cluster:
    """Save how Kubeboard drives kubeadm on this cluster (a validated EngineSettingsForm)."""
    return _save_settings(form, ENGINE_SETTINGS, "cluster.engine_settings_changed", user=user)


def save_pod_network(form, *, user) -> Cluster:
    """Save the cluster's pod network choice (a validated PodNetworkForm); applying it is the
    pod-network operation's, which the next step offers. A custom manifest the form checked is
    kept with it, in the same transaction."""
    manifest = getattr(form, "custom_manifest", None)
    return _save_settings(
        form,
        POD_NETWORK_SETTINGS,
        "cluster.pod_network_changed",
        user=user,
        also=lambda cluster: _store_manifest(cluster, manifest, user=user),
    )


class ClusterDeleteRefused(Exception):
    """The cluster cannot be deleted now; the message says why and what to do."""


def deletion_summary(cluster: Cluster) -> list[tuple[str, int]]:
    """What deleting ``cluster`` removes from Kubeboard's database: (what, how many), largest first.
    Asked of Django's own deletion collector, so a model another app adds later is counted too."""
    collector = Collector(using=router.db_for_write(Cluster))
    collector.collect([cluster])
    counts: dict[str, int] = {}
    for model, objects in collector.data.items():
        if model is not Cluster:
            name = str(model._meta.verbose_name_plural)
            counts[name] = counts.get(name, 0) + len(objects)
    for queryset in collector.fast_deletes:
        name = str(queryset.model._meta.verbose_name_plural)
        counts[name] = counts.get(name, 0) + queryset.count()
    return sorted(((name, count) for name, count in counts.items() if count), key=lambda item: (-item[1], item[0]))


def delete_cluster(cluster: Cluster, *, user) -> dict[str, int]:
    """Remove a cluster and everything Kubeboard holds for it (CAs and keys, machines' records,
    tokens' records, operations and their logs). Nothing is sent to any machine or API server.
    The audit trail stays: records keep the cluster's name, and one more says who deleted it
    (or that the deletion was refused, and why)."""
    with refusals("cluster.deleted", ClusterDeleteRefused, actor=user, obj=cluster):
        return _delete(cluster, user=user)


def _delete(cluster: Cluster, *, user) -> dict[str, int]:
    with transaction.atomic():
        locked = Cluster.objects.select_for_update().get(pk=cluster.pk)
        active = locked.operations.filter(status__in=Operation.ACTIVE_STATUSES).order_by("pk").first()
        if active is not None:
            raise ClusterDeleteRefused(
                f"operation #{active.pk} ({active.get_kind_display()}) is {active.get_status_display().lower()}; "
                "cancel it or let it finish, then delete the cluster"
            )
        removed = dict(deletion_summary(locked))
        record(
            "cluster.deleted",
            actor=user,
            obj=locked,
            cluster=locked,
            details={
                "team": locked.team.name if locked.team else None,
                "origin": locked.origin,
                "status": locked.status,
                "removed": removed,
                "machines_touched": False,
            },
        )
        locked.delete()
    return removed
