"""Where in Kubeboard a person does what a hint asks, as text with the page's address.

Hints come from places that know no pages (kubeadm's diagnosis, the SSH transport); they name the
place in words ("the ignore-preflight-errors list of the cluster or the machine", "the node page").
``linked_hint`` adds the address of that place for this machine's cluster, and the operation page
turns an address in parentheses into a link, so every hint names a page that exists.
"""

from __future__ import annotations

from django.urls import reverse

from kubeadm import diagnose
from nodes.models import Node


def cluster_settings(node: Node) -> str:
    return reverse("clusters:detail", args=[node.cluster.name]) + "#engine-settings"


def machine_edit(node: Node) -> str:
    return reverse("nodes:edit", args=[node.cluster.name, node.name])


def machine_page(node: Node) -> str:
    return reverse("nodes:detail", args=[node.cluster.name, node.name])


def reset_machine(node: Node) -> str:
    """Reset lives on the cluster page (Day two, "Reset a machine"), for joined or failed machines."""
    return reverse("clusters:detail", args=[node.cluster.name]) + "#reset-node"


def prepare_machine(node: Node) -> str:
    """The machine's page, whose Prepare installs containerd and kubeadm (workflows.prepare)."""
    return machine_page(node) + "#prepare"


def prepare_text(node: Node) -> str:
    return f'"Prepare {node.name}" on its page ({prepare_machine(node)})'


def undo_join(node: Node) -> str:
    """The machine's page, where a failed join of it is undone in one click (workflows.undo_join)."""
    return machine_page(node) + "#undo-join"


def undo_join_text(node: Node) -> str:
    return f'"Undo this join attempt on {node.name}" on its page ({undo_join(node)})'


def ignore_lists_text(node: Node) -> str:
    return (
        f"the ignore-preflight-errors list of the cluster (How Kubeboard drives kubeadm here, "
        f"({cluster_settings(node)})) or of {node.name} (Edit machine, ({machine_edit(node)}))"
    )


def reset_text(node: Node) -> str:
    return f'"Reset a machine" under Day two on the cluster page ({reset_machine(node)})'


def linked_hint(hint: str, node: Node | None) -> str:
    """``hint`` with each place it names given its address for ``node``'s cluster."""
    if not hint or node is None or "(/" in hint:
        return hint
    hint = hint.replace(diagnose.IGNORE_LISTS, ignore_lists_text(node))
    hint = hint.replace(diagnose.RESET, reset_text(node))
    hint = hint.replace("the ignore list", f"the ignore list ({machine_edit(node)})")
    return hint.replace("the node page", f"{node.name}'s page ({machine_page(node)})")
