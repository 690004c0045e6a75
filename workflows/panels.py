"""The cluster page's day-two panel: versions, the last snapshot, the soonest certificate,
links to the day-two pages and the reset of a machine."""

from __future__ import annotations

from workflows import certificates, upgrade
from workflows.forms import ResetForm
from workflows.models import EtcdSnapshot


def cluster_panel(cluster, user) -> dict:
    return {
        "day2_last_snapshot": EtcdSnapshot.objects.filter(
            cluster=cluster, status=EtcdSnapshot.Status.AVAILABLE
        ).first(),
        "day2_soonest_certificate": certificates.soonest_leaf(cluster),
        "day2_last_upgrade": cluster.operations.filter(kind=upgrade.KIND).order_by("-created_at", "-id").first(),
        "day2_reset_form": ResetForm(cluster=cluster),
    }
