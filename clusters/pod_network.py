"""The pod network choice as the cluster's forms offer it (the add-ons' rules are addons/).

One field for the add-on and its version ("flannel v0.28.9"), so a person picks from what is
pinned in one list; the model keeps the two apart (``pod_network``, ``pod_network_version``).
A custom manifest is a model value but not offered: its upload is not built yet (issue 20).
"""

from __future__ import annotations

import ipaddress

from django import forms

from addons import catalog, manifests
from kubeadm.netutil import parse_host_port

# Offered: every pinned version of the pinned add-ons, newest first, then "none".
OFFERED_NETWORKS = (catalog.FLANNEL, catalog.CALICO)


def choices() -> list[tuple[str, str]]:
    rows = []
    for name in OFFERED_NETWORKS:
        newest = catalog.newest(name)
        for pinned in reversed([p for p in catalog.PINNED if p.name == name]):
            rows.append((f"{name} {pinned.version}", f"{pinned.label} (newest)" if pinned is newest else pinned.label))
    rows.append((catalog.NONE, "None: I install a network add-on myself"))
    return rows


def default_for(pod_subnet: str) -> str:
    """Flannel at its newest pinned version when there is a pod subnet, else none.

    Flannel because it needs nothing but the pod subnet (Calico's default pool 192.168.0.0/16
    often holds the machines' own addresses), and none without a pod subnet because Flannel
    cannot run without one: the default must never be a choice the form then refuses.
    """
    if manifests.pod_subnet_problems(catalog.FLANNEL, pod_subnet or "", ""):
        return catalog.NONE
    return f"{catalog.FLANNEL} {catalog.newest(catalog.FLANNEL).version}"


def split(value: str) -> tuple[str, str]:
    """("flannel", "v0.28.9") from "flannel v0.28.9"; ("none", "") from "none"."""
    network, _, version = value.partition(" ")
    return network, version


def machine_addresses(control_plane_endpoint: str, node_addresses=()) -> list[str]:
    """The addresses a pod subnet must not hold: the machines' and the control-plane endpoint's
    (on a new cluster, before any machine is added, the endpoint is the one address known)."""
    addresses = [a for a in node_addresses if a]
    try:
        host, _ = parse_host_port(control_plane_endpoint or "")
        ipaddress.ip_address(host)
    except ValueError:  # no endpoint yet, or a DNS name: nothing to compare without resolving it
        return addresses
    return [*addresses, host]


class PodNetworkField(forms.ChoiceField):
    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("label", "Pod network")
        kwargs.setdefault(
            "help_text",
            "The network add-on Kubeboard applies after kubeadm's addon phase (and later from the cluster "
            "page): nodes stay NotReady until one runs.",
        )
        super().__init__(choices=choices(), **kwargs)


def problems(value: str, *, pod_subnet: str, service_subnet: str, addresses: list[str]) -> list[str]:
    network, _ = split(value)
    return manifests.pod_subnet_problems(network, pod_subnet or "", service_subnet or "", addresses)
