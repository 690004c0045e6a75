from __future__ import annotations

import copy

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import IntegrityError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from clusters.pages import cluster_for
from core.permissions import OPERATE, VIEW, can, get_object_for
from nodes import kubernetes_status, services
from nodes.forms import BulkCheckForm, BulkHostKeyForm, BulkNodeForm, HostKeyForm, NodeForm
from nodes.models import Node
from nodes.panels import check_outcome, machine_keys


def _node(request: HttpRequest, cluster: str, node: str, action: str) -> Node:
    queryset = Node.objects.select_related("cluster", "cluster__team", "host_key_accepted_by")
    return get_object_for(request.user, action, queryset, cluster__name=cluster, name=node)


def _node_context(request: HttpRequest, node: Node) -> dict:
    # The operations that ran a phase on this machine.
    operations = node.cluster.operations.filter(phases__node=node).distinct().select_related("requested_by")[:20]
    return {
        "node": node,
        "cluster": node.cluster,
        "can_operate": can(request.user, OPERATE, node),
        "cluster_key": services.cluster_public_key(node.cluster),
        "facts": node.facts or {},
        "check_outcome": check_outcome(node.facts or {}),
        "operations": operations,
    }


@login_required
def node_add(request: HttpRequest, cluster: str) -> HttpResponse:
    cluster_obj = cluster_for(request, cluster, OPERATE)
    form = NodeForm(request.POST or None, request.FILES or None, cluster=cluster_obj, user=request.user)
    if request.method == "POST" and form.is_valid():
        try:
            node = services.add_node(form.save(), user=request.user)
        except IntegrityError:
            form.add_error("address", "This machine or node name was registered at the same moment; reload and retry.")
        else:
            messages.success(request, f"Machine {node.name} added. Check it to fetch and accept its host key.")
            return redirect(node)
    context = {"form": form, "cluster": cluster_obj, "cluster_key": services.cluster_public_key(cluster_obj)}
    return render(request, "nodes/node_form.html", context, status=400 if form.errors else 200)


@login_required
def node_edit(request: HttpRequest, cluster: str, node: str) -> HttpResponse:
    node_obj = _node(request, cluster, node, OPERATE)
    # The form writes what was typed onto its instance while validating: give it a copy, so a
    # refused edit's page still names and links the stored machine (a rejected name such as
    # "a/b" has no URL at all).
    form = NodeForm(
        request.POST or None,
        request.FILES or None,
        instance=copy.copy(node_obj),
        cluster=node_obj.cluster,
        user=request.user,
    )
    if request.method == "POST" and form.is_valid():
        try:
            node_obj = services.update_node(form.save(), user=request.user, changed=form.changed_fields)
        except services.NodeStateError as exc:
            form.add_error(None, str(exc))
        except IntegrityError:
            form.add_error("address", "This machine or node name was registered at the same moment; reload and retry.")
        else:
            messages.success(request, f"Machine {node_obj.name} saved.")
            return redirect(node_obj)
    context = {
        "form": form,
        "cluster": node_obj.cluster,
        "node": node_obj,
        "cluster_key": services.cluster_public_key(node_obj.cluster),
    }
    return render(request, "nodes/node_form.html", context, status=400 if form.errors else 200)


@login_required
def node_detail(request: HttpRequest, cluster: str, node: str) -> HttpResponse:
    node_obj = _node(request, cluster, node, VIEW)
    # Only the page itself explains the Node: the check's updates (_check_update.html) do not.
    context = {**_node_context(request, node_obj), "kubernetes": kubernetes_status.node_status(node_obj)}
    return render(request, "nodes/node_detail.html", context)


@login_required
def node_delete(request: HttpRequest, cluster: str, node: str) -> HttpResponse:
    node_obj = _node(request, cluster, node, OPERATE)
    if request.method == "POST":
        try:
            services.delete_node(node_obj, user=request.user)
        except services.NodeStateError as exc:
            messages.error(request, str(exc))
            return redirect(node_obj)
        messages.success(request, f"Machine {node_obj.name} removed from Kubeboard.")
        return redirect(node_obj.cluster.get_absolute_url() + "#nodes")
    return render(request, "nodes/node_confirm_delete.html", {"node": node_obj, "cluster": node_obj.cluster})


@login_required
@require_POST
def host_key_accept(request: HttpRequest, cluster: str, node: str) -> HttpResponse:
    node_obj = _node(request, cluster, node, OPERATE)
    form = HostKeyForm(request.POST)
    if not form.is_valid():
        messages.error(request, "The fingerprint you accepted is missing; reload the page and try again.")
        return redirect(node_obj)
    try:
        services.accept_host_key(node_obj, user=request.user, fingerprint=form.cleaned_data["fingerprint"])
    except services.NodeStateError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(
            request, f"Host key {form.cleaned_data['fingerprint']} accepted and pinned for {node_obj.name}."
        )
    return redirect(node_obj)


@login_required
@require_POST
def host_key_keep(request: HttpRequest, cluster: str, node: str) -> HttpResponse:
    node_obj = _node(request, cluster, node, OPERATE)
    try:
        services.keep_pinned_host_key(node_obj, user=request.user)
    except services.NodeStateError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "The offered key was dismissed; only the pinned key is trusted.")
    return redirect(node_obj)


@login_required
@require_POST
def node_check(request: HttpRequest, cluster: str, node: str) -> HttpResponse:
    node_obj = _node(request, cluster, node, OPERATE)
    try:
        node_obj = services.request_check(node_obj, user=request.user)
    except services.NodeStateError as exc:
        messages.error(request, str(exc))
    if request.htmx:
        return render(request, "nodes/_check_update.html", _node_context(request, node_obj))
    return redirect(node_obj.get_absolute_url() + "#check")


@login_required
def node_check_status(request: HttpRequest, cluster: str, node: str) -> HttpResponse:
    """The check panel, polled by htmx while a check is queued or running, with the parts of the
    page a check changes (host key, the machine's badge), swapped out of band: no reload needed."""
    node_obj = _node(request, cluster, node, VIEW)
    return render(request, "nodes/_check_update.html", _node_context(request, node_obj))


@login_required
@require_POST
def cluster_key_generate(request: HttpRequest, cluster: str) -> HttpResponse:
    cluster_obj = cluster_for(request, cluster, OPERATE)
    pair = services.ensure_cluster_key(cluster_obj, user=request.user)
    messages.success(request, f"The cluster's SSH key ({pair.fingerprint}) is ready to add to your machines.")
    return redirect(cluster_obj.get_absolute_url() + "#nodes")


# --- several machines at once ---------------------------------------------------------------


@login_required
def node_bulk_add(request: HttpRequest, cluster: str) -> HttpResponse:
    cluster_obj = cluster_for(request, cluster, OPERATE)
    form = BulkNodeForm(request.POST or None, request.FILES or None, cluster=cluster_obj, user=request.user)
    if request.method == "POST" and form.is_valid():
        try:
            nodes = services.add_nodes(form.nodes, user=request.user)
        except IntegrityError:
            form.add_error("machines", "A machine or node name was registered at the same moment; nothing was added.")
        else:
            names = ", ".join(node.name for node in nodes)
            messages.success(request, f"Added {names}. Check the machines, then accept their host keys here.")
            return redirect("nodes:host-keys", cluster_obj.name)
    context = {"form": form, "cluster": cluster_obj, "cluster_key": services.cluster_public_key(cluster_obj)}
    return render(request, "nodes/bulk_add.html", context, status=400 if form.errors else 200)


@login_required
def machine_host_keys(request: HttpRequest, cluster: str) -> HttpResponse:
    """The cluster's machines side by side: check them together, then accept the host keys they
    offered, each fingerprint next to its own box."""
    cluster_obj = cluster_for(request, cluster, VIEW)
    context = {"cluster": cluster_obj, "can_operate": can(request.user, OPERATE, cluster_obj)}
    return render(request, "nodes/host_keys.html", context | machine_keys(cluster_obj))


@login_required
@require_POST
def bulk_check(request: HttpRequest, cluster: str) -> HttpResponse:
    cluster_obj = cluster_for(request, cluster, OPERATE)
    form = BulkCheckForm(request.POST, cluster=cluster_obj)
    if not form.is_valid():
        messages.error(request, " ".join(form.errors["nodes"]))
        return redirect("nodes:host-keys", cluster_obj.name)
    queued, refused = services.request_checks(list(form.cleaned_data["nodes"]), user=request.user)
    if queued:
        messages.success(request, f"Checking {', '.join(node.name for node in queued)}.")
    for node, why in refused:
        messages.error(request, f"{node.name}: {why}.")
    return redirect("nodes:host-keys", cluster_obj.name)


@login_required
@require_POST
def bulk_host_key_accept(request: HttpRequest, cluster: str) -> HttpResponse:
    cluster_obj = cluster_for(request, cluster, OPERATE)
    form = BulkHostKeyForm(request.POST, cluster=cluster_obj)
    if not form.is_valid():
        messages.error(request, " ".join(form.errors["accept"]))
        return redirect("nodes:host-keys", cluster_obj.name)
    accepted, refused = services.accept_host_keys(form.cleaned_data["accept"], user=request.user)
    for node in accepted:
        messages.success(request, f"Host key {node.ssh_host_key_fingerprint} accepted and pinned for {node.name}.")
    for node, why in refused:
        messages.error(request, f"{node.name}: {why}.")
    return redirect("nodes:host-keys", cluster_obj.name)
