"""Whether an action on a cluster can work now, and if not, why and what to do.

One place for this knowledge, so that a page never offers an action that can only fail (it shows
it disabled with the reason), a direct request is refused with the same words, and a service
refuses before it opens any connection: asking the API server of a cluster that was never
initialized ends in "No route to host", which tells nobody what to do, and retrying cannot help.

The cluster page gets every action's precondition at once (``for_cluster``, as ``preconditions``
in its context); views and services ask for one (``check``). What an action needs beyond the
cluster's state (a machine to reset, a running operation, the version policy) stays with the
service that starts it, which refuses with its own reason.
"""

from __future__ import annotations

from dataclasses import dataclass

from clusters import apiaccess
from clusters.models import Cluster


@dataclass(frozen=True)
class Precondition:
    """Met when ``reason`` is empty; otherwise why the action cannot work and what to do.

    True in a template's ``{% if %}`` when met; printed, it reads "reason — what to do".
    """

    reason: str = ""
    hint: str = ""

    @property
    def met(self) -> bool:
        return not self.reason

    def __bool__(self) -> bool:
        return self.met

    def __str__(self) -> str:
        return f"{self.reason} — {self.hint}" if self.hint else self.reason


MET = Precondition()


def running(cluster: Cluster) -> Precondition:
    """The cluster runs and Kubeboard holds credentials for its API server: what every action
    that talks to the API server, or to the cluster's control planes, needs."""
    if cluster.is_adopted:
        # An adopted cluster was running when it was adopted; its status is Kubeboard's, not kubeadm's.
        if not cluster.admin_kubeconfig:
            return Precondition(
                f"adopted cluster {cluster.name} has no stored kubeconfig", "adopt it again with an admin kubeconfig"
            )
        return MET
    status = Cluster.Status
    if cluster.status == status.INITIALIZING:
        return Precondition(f"cluster {cluster.name} is being initialized", "wait until its initialization ends")
    if cluster.status != status.RUNNING:
        return Precondition(f"cluster {cluster.name} is not initialized", "initialize the cluster first")
    if not apiaccess.holds_ca_key(cluster):
        return Precondition(
            f"Kubeboard holds no CA key for cluster {cluster.name}", "adopt it with an admin kubeconfig"
        )
    return MET


# Each action a page offers that needs more than the database, and what it needs.
ACTIONS = {
    "day_two": running,  # the cluster page's links to the day-two pages
    "create_token": running,
    "sync_tokens": running,  # the Tokens page's Sync, and the scheduled sync (skipped while unmet)
    "rotate_token": running,  # a token row's Rotate
    "revoke_token": running,  # a token row's Revoke
    "upgrade_plan": running,
    "upgrade": running,
    "read_certificates": running,
    "renew_certificates": running,
    "snapshot": running,
    "restore": running,
    "configuration": running,  # the live kubeadm-config and kubelet-config
    "export_kubelet": running,  # the export with the live KubeletConfiguration
}


def check(cluster: Cluster, action: str) -> Precondition:
    """The precondition of ``action`` (a key of ``ACTIONS``) on ``cluster``."""
    return ACTIONS[action](cluster)


def for_cluster(cluster: Cluster) -> dict[str, Precondition]:
    """Every action's precondition, each check run once for the page."""
    results: dict = {}
    for need in ACTIONS.values():
        if need not in results:
            results[need] = need(cluster)
    return {action: results[need] for action, need in ACTIONS.items()}
