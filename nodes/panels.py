from __future__ import annotations

from core.formatting import relative_text
from nodes.services import cluster_public_key


def cluster_panel(cluster, user) -> dict:
    return {"nodes": cluster.nodes.all(), "cluster_key": cluster_public_key(cluster)}


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
