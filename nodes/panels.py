from __future__ import annotations

from core.formatting import relative_text
from nodes.forms import BulkNodeForm
from nodes.models import Node
from nodes.services import cluster_public_key


def cluster_panel(cluster, user) -> dict:
    return {
        "nodes": cluster.nodes.all(),
        "cluster_key": cluster_public_key(cluster),
        "bulk_form": BulkNodeForm(cluster=cluster),
    }


def machine_keys(cluster) -> dict:
    """The rows of the page where machines are checked and their host keys accepted together.

    A machine whose key is not pinned yet is ticked for checking; one that offered a key can be
    ticked for acceptance only once no check is running, because the page reloads its table
    every second while one is (a reload would drop the ticks a person made).
    """
    nodes = list(cluster.nodes.all())
    busy = any(node.check_status in (Node.CheckStatus.QUEUED, Node.CheckStatus.RUNNING) for node in nodes)
    rows = [
        {
            "node": node,
            "check": node.host_key_state != Node.HostKeyState.PINNED and not node.is_joined,
            "busy": node.check_status in (Node.CheckStatus.QUEUED, Node.CheckStatus.RUNNING),
            "acceptable": node.host_key_state == Node.HostKeyState.OFFERED and not busy,
            "outcome": check_outcome(node.facts) if node.checked_at else None,
        }
        for node in nodes
    ]
    return {"rows": rows, "busy": busy, "acceptable": any(row["acceptable"] for row in rows)}


def node_list_version(cluster) -> list:
    """What the node list shows, read in one query (the cluster page polls it)."""
    fields = ("name", "address", "ssh_port", "ssh_user", "credential", "role", "status", "checked_at")
    rows = cluster.nodes.only("cluster", *fields, "ssh_host_key", "offered_host_key")
    return [
        (node.pk, *(getattr(node, field) for field in fields), node.host_key_state, relative_text(node.checked_at))
        for node in rows
    ]


def check_outcome(facts: dict) -> tuple[str, str]:
    """(state, words) of the last machine check's result."""
    if facts.get("login") and not facts.get("problems"):
        return "check-done", "no problems found"
    if facts.get("login"):
        count = len(facts["problems"])
        return "check-failed", f"{count} problem{'s' if count != 1 else ''} found"
    if facts.get("host_key") == "offered":
        return "hostkey-offered", "host key not accepted yet"
    if facts.get("host_key") == "changed":
        return "hostkey-changed", "host key changed"
    if not facts.get("reachable"):
        return "check-failed", "unreachable"
    return "check-failed", "could not log in"
