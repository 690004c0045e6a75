"""The endpoint choice, its port layout and the checks that refuse a layout that cannot work."""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass, field

from kubeadm import components, netutil

EXTERNAL = "external"
VIP = "vip"
LOCAL_PROXY = "local-proxy"
MODES = (EXTERNAL, VIP, LOCAL_PROXY)
MODE_LABELS = {
    EXTERNAL: "External load balancer (or a single address)",
    VIP: "Virtual IP (keepalived + haproxy on the control planes)",
    LOCAL_PROXY: "Local proxy on every node (haproxy on 127.0.0.1)",
}

# Every API server keeps kubeadm's 6443 on its machine's own address; haproxy listens on another
# port, so it can run beside an API server on the same machine. 8443 is what kubeadm's HA guide
# uses for the load balancer.
API_SERVER_PORT = components.API_SERVER_PORT
DEFAULT_PORT = 8443
# haproxy's statistics (CSV), on the loopback only: the cluster page reads each backend's health.
STATS_PORT = 8404
STATS_PATH = "/stats;csv"

# What else listens on a node kubeadm sets up (its preflight checks these ports), and kube-proxy's.
KUBE_PROXY_PORTS = {10249: "kube-proxy metrics", 10256: "kube-proxy health"}
RESERVED_PORTS: dict[int, str] = {
    **components.PREFLIGHT_PORTS_CONTROL_PLANE,
    **KUBE_PROXY_PORTS,
    STATS_PORT: "haproxy statistics (Kubeboard)",
}

# VRRPv3 (RFC 5798) carries the advertisement interval in centiseconds, so a backup takes over
# 3 x 0.5 s + skew (< 0.5 s) after the holder's last advertisement: under 2 s when a machine
# dies outright, at once when keepalived stops or its check fails (it sends priority 0).
# VRRPv2 only counts whole seconds (3.6 s). VRRPv3 has no authentication (keepalived 2.2.7:
# "VRRP version 3 does not support authentication. Ignoring."); VRRPv2's was a clear-text
# password on the wire anyway.
VRRP_VERSION = 3
ADVERT_INT = 0.5
CHECK_INTERVAL = 1  # seconds between two runs of the track script
CHECK_FALL = 2  # failures in a row before the machine gives up the VIP
CHECK_RISE = 2  # successes in a row before it may hold it again
ROUTER_ID_RANGE = (1, 255)
PRIORITY_FIRST = 200  # the first control plane; each later one a step lower
PRIORITY_MIN = 1

KEEPALIVED_CONF = "/etc/keepalived/keepalived.conf"
CHECK_SCRIPT = "/etc/keepalived/kubeboard-check-apiserver.sh"
HAPROXY_CFG = "/etc/haproxy/haproxy.cfg"
KEEPALIVED_SERVICE = "keepalived.service"
HAPROXY_SERVICE = "haproxy.service"
PACKAGES = {VIP: ("keepalived", "haproxy"), LOCAL_PROXY: ("haproxy",), EXTERNAL: ()}

# Linux interface names: at most IFNAMSIZ-1 = 15 bytes, no "/", no white space, not "." or "..";
# a colon marks an alias, which keepalived cannot send VRRP from.
_INTERFACE_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}$")


@dataclass(frozen=True)
class Problem:
    """One reason a layout cannot work: ``field`` is the endpoint setting to fix."""

    field: str
    message: str

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Spec:
    """A cluster's endpoint choice, as stored."""

    mode: str = EXTERNAL
    vip: str = ""
    interface: str = ""
    port: int = DEFAULT_PORT
    router_id: int = 0
    unicast: bool = False

    @property
    def installs_anything(self) -> bool:
        return self.mode in (VIP, LOCAL_PROXY)


@dataclass(frozen=True)
class Backend:
    """One API server behind the proxies: a control plane's name and its own address."""

    name: str
    address: str
    port: int = API_SERVER_PORT


@dataclass
class MachineFacts:
    """What a machine answered about the endpoint (check machine, before init or a join)."""

    interfaces: dict[str, list[str]] = field(default_factory=dict)  # name -> CIDRs ("10.0.0.5/24")
    listening: dict[int, str] = field(default_factory=dict)  # TCP port -> the process listening on it
    vip_answers: bool = False  # the VIP answered a ping from this machine
    vip_held_here: bool = False  # the VIP is one of this machine's own addresses


def default_router_id(cluster_name: str) -> int:
    """A virtual_router_id from the cluster's name (1-255): two clusters on one segment must not
    share one, and a name is unique in a Kubeboard; a clash across Kubeboards is checked by the
    ping before init (another router's VIP answers)."""
    digest = hashlib.sha256(cluster_name.encode()).digest()
    return int.from_bytes(digest[:2], "big") % ROUTER_ID_RANGE[1] + 1


def priority(index: int) -> int:
    """keepalived priority of the ``index``-th control plane (0 = the first)."""
    return max(PRIORITY_MIN, PRIORITY_FIRST - 10 * index)


def control_plane_endpoint(spec: Spec) -> str:
    """kubeadm's controlPlaneEndpoint for a VIP: ``VIP:port``."""
    return netutil.join_host_port(spec.vip, spec.port)


def local_proxy_url(spec: Spec) -> str:
    """Where a node's kubelet and kube-proxy reach the API servers in local-proxy mode."""
    return f"https://{netutil.join_host_port('127.0.0.1', spec.port)}"


def cert_sans(spec: Spec) -> list[str]:
    """Names the API server certificate needs beyond kubeadm's own.

    kubeadm already adds controlPlaneEndpoint's host (the VIP), so the VIP mode needs nothing;
    the local proxy passes TLS through to 127.0.0.1, which kubeadm never puts there."""
    return ["127.0.0.1", "localhost"] if spec.mode == LOCAL_PROXY else []


def vip_prefix(vip: str) -> str:
    """The VIP as keepalived adds it: a host route (/32 or /128), so it adds no second subnet
    route beside the interface's own."""
    address = ipaddress.ip_address(vip)
    return f"{address}/{address.max_prefixlen}"


# --- checks ---------------------------------------------------------------------------------------


def spec_problems(spec: Spec) -> list[Problem]:
    """What is wrong with the choice itself, before any machine is known."""
    if spec.mode not in MODES:
        return [Problem("mode", f"unknown endpoint {spec.mode!r}; choose one of {', '.join(MODES)}")]
    problems: list[Problem] = []
    if spec.mode in (VIP, LOCAL_PROXY):
        problems += port_problems(spec.port)
    if spec.mode != VIP:
        return problems
    problems += vip_problems(spec.vip)
    if not spec.interface:
        problems.append(Problem("interface", "the interface keepalived adds the virtual IP to is required (e.g. eth0)"))
    elif not _INTERFACE_RE.match(spec.interface):
        problems.append(
            Problem(
                "interface",
                f"{spec.interface!r} is not a Linux interface name: 1 to 15 letters, digits, '_', '.' or '-' "
                "(an alias such as eth0:1 cannot send VRRP)",
            )
        )
    low, high = ROUTER_ID_RANGE
    if not low <= spec.router_id <= high:
        problems.append(
            Problem("router_id", f"the VRRP virtual router id must be between {low} and {high}, not {spec.router_id}")
        )
    return problems


def port_problems(port: int) -> list[Problem]:
    if not 1 <= port <= 65535:
        return [Problem("port", f"port {port} must be between 1 and 65535")]
    if port in RESERVED_PORTS:
        return [Problem("port", f"port {port} is taken by {RESERVED_PORTS[port]} on a node; {DEFAULT_PORT} is free")]
    if components.NODEPORT_RANGE[0] <= port <= components.NODEPORT_RANGE[1]:
        low, high = components.NODEPORT_RANGE
        return [Problem("port", f"port {port} is in the NodePort range {low}-{high}, where a Service may take it")]
    return []


def vip_problems(vip: str) -> list[Problem]:
    if not vip:
        return [Problem("vip", "the virtual IP is required (a free address in the control planes' subnet)")]
    address = netutil.parse_ip(vip)
    if address is None:
        return [Problem("vip", f"{vip!r} is not an IP address")]
    if address.is_loopback or address.is_multicast or address.is_unspecified or address.is_link_local:
        return [
            Problem(
                "vip", f"{vip} cannot be a virtual IP: it is a loopback, multicast, link-local or unspecified address"
            )
        ]
    return []


def vip_overlap_problems(vip: str, subnets: dict[str, str]) -> list[Problem]:
    """A VIP inside the pod or service subnet would be routed into the cluster, not to a machine:
    ``subnets`` maps a name ("pod subnet") to its CIDRs (comma-separated, as kubeadm takes them)."""
    address = netutil.parse_ip(vip)
    if address is None:
        return []
    for name, text in subnets.items():
        for network in netutil.parse_cidrs(text) or []:
            if address.version == network.version and address in network:
                return [Problem("vip", f"the virtual IP {vip} is inside the {name} {network}: pick a machine address")]
    return []


def machine_problems(
    spec: Spec, facts: MachineFacts, *, address: str, others: list[str], control_plane: bool
) -> list[Problem]:
    """What a machine's answers say about the layout (check machine, before init or a join).

    ``address`` is the machine's own address, ``others`` the other machines of the cluster."""
    problems: list[Problem] = []
    if not spec.installs_anything:
        return problems
    if spec.mode == VIP and control_plane:
        networks = facts.interfaces.get(spec.interface)
        if networks is None:
            names = ", ".join(sorted(facts.interfaces)) or "none"
            problems.append(Problem("interface", f"the machine has no interface {spec.interface} (it has: {names})"))
        else:
            problems += _subnet_problems(spec, networks)
        if spec.vip == address or spec.vip in others:
            problems.append(Problem("vip", f"the virtual IP {spec.vip} is a machine's own address"))
        elif facts.vip_answers and not facts.vip_held_here:
            problems.append(
                Problem("vip", f"{spec.vip} already answers on the network: another machine or router uses it")
            )
    wanted = {spec.port: "haproxy"} if spec.mode == LOCAL_PROXY or control_plane else {}
    if wanted:
        wanted[STATS_PORT] = "haproxy statistics"
    for port, user in sorted(wanted.items()):
        # haproxy itself (an earlier attempt's, or a control plane's) is no clash.
        if port in facts.listening and facts.listening[port] != "haproxy":
            problems.append(
                Problem(
                    "port",
                    f"port {port} ({user}) is already in use on the machine by {facts.listening[port] or 'a process'}",
                )
            )
    return problems


def _subnet_problems(spec: Spec, networks: list[str]) -> list[Problem]:
    vip = netutil.parse_ip(spec.vip)
    parsed = [ipaddress.ip_interface(n).network for n in networks if _is_interface(n)]
    if vip is None or any(vip in network for network in parsed):
        return []
    shown = ", ".join(str(n) for n in parsed) or "no address"
    return [
        Problem(
            "vip",
            f"the virtual IP {spec.vip} is not in the subnet of {spec.interface} ({shown}): the machines could not "
            "answer ARP for it",
        )
    ]


def _is_interface(text: str) -> bool:
    try:
        ipaddress.ip_interface(text)
    except ValueError:
        return False
    return True
