"""The control-plane endpoint on the machines (issue 21): keepalived and haproxy as system services.

Why system services and not static Pods: they are up before ``kubeadm init`` waits for the
control plane, without the kubelet; kubeadm's preflight sees an empty /etc/kubernetes/manifests;
and keepalived never needs the API server to elect a holder (the failure kube-vip's issues
#684 and #907 describe: a static Pod leader-electing through the VIP it is to provide).

Each function below is a phase (or part of one) of init, join and reset:

* ``init_endpoint`` (init, after kubeadm's preflight, so before kubelet-start and the kubeconfig
  users after wait-control-plane): haproxy (and keepalived for a VIP) on the first control plane;
* ``init_kube_proxy`` (init, after kubeadm's addon, local proxy only): kube-proxy's kubeconfig
  in its ConfigMap points at https://127.0.0.1:port, as every node has its proxy;
* ``join_endpoint`` (join, before kubeadm's preflight): the joining machine gets its services; a
  joining control plane is added to the backends of every other proxy (``systemctl reload``);
* ``join_kubelet`` (worker join, local proxy only, after kubeadm's phases): the kubelet's
  kubeconfig points at the local proxy, and the kubelet restarts;
* ``reset_endpoint`` (reset, right after the drain): the machine's services stop (its keepalived
  gives the VIP away at once) and a control plane leaves every other proxy's backends.

A machine that is not the phase's own and cannot be reached is a warning, not a failure: the
join or reset goes on, and the warning names the machine to fix.
"""

from __future__ import annotations

import shlex
import time
from dataclasses import dataclass

from django.conf import settings

import kube
from clusters.models import Cluster
from endpoints import layout, render
from endpoints import status as endpoint_status
from kubeadm import netutil
from kubeadm import prepare as prepare_knowledge
from nodes.connect import connect, phase_connection
from nodes.models import Node
from operations.runner import PhaseContext, PhaseError
from remote import commands, ssh

INIT_PHASE = "control-plane-endpoint"
INIT_KUBE_PROXY_PHASE = "local-proxy-kube-proxy"
JOIN_PHASE = "control-plane-endpoint"
JOIN_KUBELET_PHASE = "local-proxy-kubelet"
RESET_PHASE = "control-plane-endpoint"
KUBELET_CONF = "/etc/kubernetes/kubelet.conf"
KUBE_PROXY_CONFIG_MAP = ("kube-system", "kube-proxy")
KUBE_PROXY_KUBECONFIG_KEY = "kubeconfig.conf"
# Nodes whose proxies are kept in step: the ones that run (or are being given) the cluster.
LIVE = (Node.Status.JOINED, Node.Status.JOINING)


def needs_phases(cluster: Cluster) -> bool:
    """Whether init, join and reset plan the endpoint phases (an external endpoint needs none)."""
    return cluster.endpoint_spec.installs_anything


def init_phases_unplanned(cluster: Cluster) -> set[str]:
    """Init's endpoint phases a cluster does not need (all of them for an external endpoint)."""
    unplanned = set()
    if not needs_phases(cluster):
        unplanned.add(INIT_PHASE)
    if cluster.endpoint_mode != layout.LOCAL_PROXY:
        unplanned.add(INIT_KUBE_PROXY_PHASE)
    return unplanned


def join_phases_unplanned(cluster: Cluster, *, control_plane: bool) -> set[str]:
    """Join's endpoint phases a machine does not need: a worker of a VIP cluster needs none."""
    unplanned = set()
    if not needs_phases(cluster) or (cluster.endpoint_mode == layout.VIP and not control_plane):
        unplanned.add(JOIN_PHASE)
    if not needs_kubelet_phase(cluster, control_plane=control_plane):
        unplanned.add(JOIN_KUBELET_PHASE)
    return unplanned


def reset_phases_unplanned(cluster: Cluster, *, control_plane: bool) -> set[str]:
    if not needs_phases(cluster) or (cluster.endpoint_mode == layout.VIP and not control_plane):
        return {RESET_PHASE}
    return set()


def needs_kubelet_phase(cluster: Cluster, *, control_plane: bool) -> bool:
    """A worker's kubelet is pointed at its local proxy (a control plane's kubelet already uses its
    own API server: kubeadm's ControlPlaneKubeletLocalMode)."""
    return cluster.endpoint_mode == layout.LOCAL_PROXY and not control_plane


# --- the layout of a cluster ------------------------------------------------------------------------


def control_planes(cluster: Cluster, *, adding: Node | None = None, removing: Node | None = None) -> list[Node]:
    """The control planes whose API servers are backends, oldest first (their keepalived priority)."""
    found = list(cluster.nodes.filter(role=Node.Role.CONTROL_PLANE, status__in=LIVE).exclude(address="").order_by("pk"))
    if adding is not None and all(node.pk != adding.pk for node in found):
        found.append(adding)
    if removing is not None:
        found = [node for node in found if node.pk != removing.pk]
    return found


def backends(nodes: list[Node]) -> list[layout.Backend]:
    return [layout.Backend(node.name, node.address) for node in nodes]


def proxy_nodes(cluster: Cluster, planes: list[Node], *, joining: Node | None = None) -> list[Node]:
    """Every machine that runs haproxy: the control planes (VIP), or every node (local proxy)."""
    if cluster.endpoint_mode == layout.VIP:
        return list(planes)
    found = list(cluster.nodes.filter(status__in=LIVE).exclude(address="").order_by("pk"))
    if joining is not None and all(node.pk != joining.pk for node in found):
        found.append(joining)
    return found


@dataclass(frozen=True)
class MachineFiles:
    """What one machine should have: (path, text, mode) and the services to run."""

    files: tuple[tuple[str, str, int], ...]
    services: tuple[str, ...]


def files_for(cluster: Cluster, node: Node, planes: list[Node]) -> MachineFiles:
    spec = cluster.endpoint_spec
    haproxy = (layout.HAPROXY_CFG, render.haproxy_cfg(spec, cluster=cluster.name, backends=backends(planes)), 0o644)
    is_plane = any(plane.pk == node.pk for plane in planes)
    if spec.mode != layout.VIP or not is_plane:
        return MachineFiles((haproxy,), (layout.HAPROXY_SERVICE,))
    index = next(i for i, plane in enumerate(planes) if plane.pk == node.pk)
    keepalived = render.keepalived_conf(
        spec,
        cluster=cluster.name,
        node=node.name,
        address=node.address,
        priority=layout.priority(index),
        peers=[plane.address for plane in planes],
    )
    check = render.check_script(spec, address=node.address)
    return MachineFiles(
        (haproxy, (layout.CHECK_SCRIPT, check, 0o755), (layout.KEEPALIVED_CONF, keepalived, 0o644)),
        (layout.HAPROXY_SERVICE, layout.KEEPALIVED_SERVICE),
    )


# --- one machine ------------------------------------------------------------------------------------------


class _Machine:
    """Commands on one machine: the phase's own (logged as its output, failures fail the phase)
    or another one (quiet; a failure is a PhaseError that ``_apply_elsewhere`` turns into a warning)."""

    def __init__(self, ctx: PhaseContext, conn: ssh.Connection, node: Node, *, own: bool) -> None:
        self.ctx, self.conn, self.node, self.own = ctx, conn, node, own

    def read(self, argv: list[str]) -> commands.Output:
        try:
            return commands.quiet(self.conn, shlex.join(argv))
        except ssh.SSHError as exc:
            raise commands.phase_error(exc, self.node) from None

    def run(self, argv: list[str], *, label: str) -> None:
        if self.own:
            commands.run(self.ctx, self.conn, argv, label=label)
            return
        status, lines = self.read(argv)
        if status != 0:
            tail = " ".join(line.strip() for line in lines[-3:])[-300:]
            raise PhaseError(f"{label} failed on {self.node.name} (exit status {status}): {tail}")

    def write(self, path: str, text: str, mode: int) -> bool:
        """Write ``path`` unless it holds ``text`` already; True when it changed."""
        status, lines = self.read(["cat", "--", path])
        if status == 0 and "\n".join(lines) == text.rstrip("\n"):
            return False
        self.read(["mkdir", "-p", "-m", "0755", path.rsplit("/", 1)[0]])
        try:
            self.conn.write_file(path, text.encode(), mode=mode)
        except ssh.SSHError as exc:
            raise commands.phase_error(exc, self.node) from None
        return True


def _ensure_packages(machine: _Machine, spec: layout.Spec, services: tuple[str, ...]) -> None:
    """keepalived/haproxy from the distribution's packages, installed only when missing."""
    wanted = [name for name in layout.PACKAGES[spec.mode] if f"{name}.service" in services]
    missing = [name for name in wanted if machine.read(["sh", "-c", f"command -v {name}"]).exit_status != 0]
    if not missing:
        return
    debian = machine.read(["sh", "-c", "command -v apt-get"]).exit_status == 0
    family = prepare_knowledge.DEBIAN if debian else prepare_knowledge.RHEL
    wait = int(settings.PREPARE_LOCK_WAIT_SECONDS)
    machine.ctx.log(f"{machine.node.name}: installing {', '.join(missing)} from the distribution's packages.")
    if debian:
        env = ["env", "DEBIAN_FRONTEND=noninteractive"]
        machine.run([*env, *prepare_knowledge.refresh_command(family, lock_wait=wait)], label="apt-get update")
        machine.run(
            [*env, *prepare_knowledge.install_command(family, missing, lock_wait=wait)], label="apt-get install"
        )
    else:
        machine.run(["dnf", "install", "-y", *missing], label="dnf install")


def refuse_unfit(machine: _Machine, planes: list[Node], *, probe_vip: bool) -> None:
    """Check machine's endpoint checks on the phase's own machine before anything is installed:
    the interface, the VIP's subnet, the VIP not answering yet (init only: after it, it is the
    cluster's own) and haproxy's ports free."""
    cluster, node = machine.ctx.cluster, machine.node
    spec = cluster.endpoint_spec
    addr_lines = machine.read(["ip", "-o", "addr", "show"]).lines
    listening = endpoint_status.listening(machine.read(["ss", "-Htlnp"]).lines)
    answers = False
    if probe_vip and spec.mode == layout.VIP:
        probe = machine.read(["sh", "-c", endpoint_status.vip_probe(spec.vip)])
        answers = endpoint_status.neighbour_answers(probe.lines)
    facts = layout.MachineFacts(
        interfaces=endpoint_status.interfaces(addr_lines),
        listening=listening,
        vip_answers=answers,
        vip_held_here=spec.mode == layout.VIP and endpoint_status.holds(addr_lines, spec.vip),
    )
    others = [n.address for n in cluster.nodes.exclude(pk=node.pk)]
    is_plane = any(plane.pk == node.pk for plane in planes)
    problems = layout.machine_problems(spec, facts, address=node.address, others=others, control_plane=is_plane)
    if problems:
        raise PhaseError(
            f"{node.name}: " + "; ".join(problem.message for problem in problems),
            hint="fix the machine (or the cluster's endpoint settings are wrong for this network: create the "
            "cluster again with the right ones), then resume",
        )


def apply_to(ctx: PhaseContext, conn: ssh.Connection, node: Node, planes: list[Node], *, own: bool) -> list[str]:
    """Bring one machine's endpoint services to what ``planes`` need; returns what changed."""
    cluster = ctx.cluster
    spec = cluster.endpoint_spec
    machine = _Machine(ctx, conn, node, own=own)
    wanted = files_for(cluster, node, planes)
    if own:
        refuse_unfit(machine, planes, probe_vip=len(planes) == 1 and cluster.status != Cluster.Status.RUNNING)
    _ensure_packages(machine, spec, wanted.services)
    changed = [path for path, text, mode in wanted.files if machine.write(path, text, mode)]
    if layout.HAPROXY_CFG in changed:
        machine.run(["haproxy", "-c", "-q", "-f", layout.HAPROXY_CFG], label="haproxy -c")
    if layout.KEEPALIVED_CONF in changed:
        machine.run(["keepalived", "-t", "-f", layout.KEEPALIVED_CONF], label="keepalived -t")
    notes = [f"wrote {path}" for path in changed]
    for service in wanted.services:
        active = machine.read(["systemctl", "is-active", service]).exit_status == 0
        own_files = (
            (layout.HAPROXY_CFG,)
            if service == layout.HAPROXY_SERVICE
            else (layout.KEEPALIVED_CONF, layout.CHECK_SCRIPT)
        )
        touched = any(path in changed for path in own_files)
        if not active:
            machine.run(["systemctl", "enable", "--now", service], label=f"systemctl enable --now {service}")
            notes.append(f"started {service}")
        elif touched:
            # haproxy -Ws: a new worker takes the new backends, the old one finishes live connections.
            machine.run(["systemctl", "reload", service], label=f"systemctl reload {service}")
            notes.append(f"reloaded {service}")
    return notes


def _describe(planes: list[Node]) -> str:
    return ", ".join(f"{plane.name} {plane.address}:{layout.API_SERVER_PORT}" for plane in planes) or "none"


def _apply_elsewhere(ctx: PhaseContext, nodes: list[Node], planes: list[Node], *, why: str) -> None:
    """The other machines' proxies, each on its own connection; one that fails is a warning."""
    for node in nodes:
        if node.pk == ctx.node.pk:
            continue
        ctx.check_cancelled()
        try:
            with connect(node) as conn:
                notes = apply_to(ctx, conn, node, planes, own=False)
        except (ssh.SSHError, PhaseError) as exc:
            message = exc.message if isinstance(exc, PhaseError) else str(exc)
            ctx.log(
                f"{node.name}: its proxy could not be updated ({why}): {message}. Its haproxy keeps the old "
                f"backends until it is: fix the machine, then run this phase again (resume or reset/join).",
                level="warning",
                node=node.name,
            )
            continue
        ctx.log(
            f"{node.name}: {'; '.join(notes) if notes else 'already up to date'} ({why}).",
            node=node.name,
            changes=notes,
        )


def _remove_here(ctx: PhaseContext, conn: ssh.Connection) -> None:
    """Stop and disable this machine's endpoint services (keepalived first: it hands the VIP over
    with priority 0 at once), and remove Kubeboard's files."""
    machine = _Machine(ctx, conn, ctx.node, own=True)
    for service in (layout.KEEPALIVED_SERVICE, layout.HAPROXY_SERVICE):
        if machine.read(["systemctl", "is-active", service]).exit_status == 0:
            machine.run(["systemctl", "disable", "--now", service], label=f"systemctl disable --now {service}")
            ctx.log(f"Stopped {service} on {ctx.node.name}.")
    for path in (layout.KEEPALIVED_CONF, layout.CHECK_SCRIPT, layout.HAPROXY_CFG):
        status, lines = machine.read(["cat", "--", path])
        # Only files Kubeboard wrote (their header says so); someone else's configuration stays.
        if status == 0 and any(line.startswith("# Written by Kubeboard") for line in lines[:2]):
            machine.run(["rm", "-f", "--", path], label="rm")
            ctx.log(f"Removed {path} from {ctx.node.name}.")


# --- the phases ---------------------------------------------------------------------------------------


def init_endpoint(ctx: PhaseContext) -> None:
    cluster = ctx.cluster
    spec = cluster.endpoint_spec
    if not spec.installs_anything:
        ctx.log(f"External endpoint {cluster.control_plane_endpoint}: nothing to install on the machine.")
        return
    planes = [ctx.node]
    with phase_connection(ctx) as conn:
        notes = apply_to(ctx, conn, ctx.node, planes, own=True)
    what = (
        f"virtual IP {spec.vip} on {spec.interface} (VRRP router id {spec.router_id}), haproxy on :{spec.port}"
        if spec.mode == layout.VIP
        else f"haproxy on {layout.local_proxy_url(spec)}"
    )
    ctx.log(
        f"Control-plane endpoint on {ctx.node.name}: {what}; backends: {_describe(planes)}. "
        + ("; ".join(notes) if notes else "Already in place.")
        + (
            " keepalived takes the VIP once this machine's API server answers /readyz (after wait-control-plane)."
            if spec.mode == layout.VIP
            else ""
        ),
        changes=notes,
    )
    # Where kubeadm's kubeconfig phase points each file (kubeadm's GetControlPlaneEndpoint and
    # ControlPlaneKubeletLocalMode): the users of the endpoint come after wait-control-plane.
    host, port = netutil.parse_host_port(cluster.control_plane_endpoint)
    url = f"https://{netutil.join_host_port(host, port or layout.API_SERVER_PORT)}"
    ctx.log(
        f"kubeadm writes admin.conf and super-admin.conf with {url}; kubelet.conf, "
        "controller-manager.conf and scheduler.conf use this machine's own API server, so nothing needs the endpoint "
        "before the control plane runs."
    )


def init_kube_proxy(ctx: PhaseContext) -> None:
    """kube-proxy's kubeconfig (ConfigMap kube-system/kube-proxy, written by kubeadm's addon phase
    with controlPlaneEndpoint) points at the node's own proxy instead."""
    cluster = ctx.cluster
    spec = cluster.endpoint_spec
    if spec.mode != layout.LOCAL_PROXY:
        ctx.log("Not a local-proxy cluster: kube-proxy keeps kubeadm's server.")
        return
    url = layout.local_proxy_url(spec)
    namespace, name = KUBE_PROXY_CONFIG_MAP
    with kube.phase_errors("retry the phase"):
        data = kube.config_map(cluster, namespace, name)
    text = (data or {}).get(KUBE_PROXY_KUBECONFIG_KEY)
    if not text:
        raise PhaseError(
            f"ConfigMap {namespace}/{name} has no {KUBE_PROXY_KUBECONFIG_KEY}",
            hint="kubeadm's addon phase writes it; resume from the addon phase",
        )
    if render.servers(text) == [url]:
        ctx.log(f"kube-proxy already reaches the API servers through {url}.")
        return
    with kube.phase_errors("retry the phase"):
        kube.patch_config_map(cluster, namespace, name, {KUBE_PROXY_KUBECONFIG_KEY: render.with_server(text, url)})
    with kube.phase_errors("retry the phase"):
        restarted = kube.restart_daemonset(cluster, namespace, name)
    ctx.log(
        f"kube-proxy's kubeconfig (ConfigMap {namespace}/{name}) now points at {url}, the proxy every node runs "
        f"(was {', '.join(render.servers(text))})" + ("; its Pods restart to read it." if restarted else "."),
        server=url,
    )


def join_endpoint(ctx: PhaseContext) -> None:
    cluster = ctx.cluster
    spec = cluster.endpoint_spec
    if not spec.installs_anything:
        ctx.log("External endpoint: nothing to install.")
        return
    control_plane = ctx.node.role == Node.Role.CONTROL_PLANE
    planes = control_planes(cluster, adding=ctx.node if control_plane else None)
    if spec.mode == layout.VIP and not control_plane:
        ctx.log(f"A worker of a virtual-IP cluster reaches {layout.control_plane_endpoint(spec)}: nothing to install.")
        return
    with phase_connection(ctx) as conn:
        notes = apply_to(ctx, conn, ctx.node, planes, own=True)
    ctx.log(
        f"{ctx.node.name}: {'; '.join(notes) if notes else 'already in place'}; backends: {_describe(planes)}.",
        changes=notes,
    )
    if control_plane:
        others = proxy_nodes(cluster, planes)
        _apply_elsewhere(ctx, others, planes, why=f"{ctx.node.name}'s API server added to the backends")


def join_kubelet(ctx: PhaseContext) -> None:
    """After kubeadm's join: the kubelet's kubeconfig points at the local proxy; kubelet restarts."""
    spec = ctx.cluster.endpoint_spec
    url = layout.local_proxy_url(spec)
    with phase_connection(ctx) as conn:
        machine = _Machine(ctx, conn, ctx.node, own=True)
        status, lines = machine.read(["cat", "--", KUBELET_CONF])
        if status != 0:
            raise PhaseError(
                f"{ctx.node.name} has no {KUBELET_CONF} yet", hint="resume from kubeadm's kubelet-start phase"
            )
        text = "\n".join(lines) + "\n"
        if render.servers(text) == [url]:
            ctx.log(f"The kubelet already reaches the API servers through {url}.")
            return
        try:
            changed = render.with_server(text, url)
        except ValueError as exc:
            raise PhaseError(f"{KUBELET_CONF} on {ctx.node.name}: {exc}") from None
        machine.write(KUBELET_CONF, changed, 0o600)
        machine.run(["systemctl", "restart", "kubelet"], label="systemctl restart kubelet")
    ctx.log(
        f"The kubelet on {ctx.node.name} now reaches the API servers through its local proxy {url} "
        f"(was {', '.join(render.servers(text))}); kubelet restarted.",
        server=url,
    )


def reset_endpoint(ctx: PhaseContext) -> None:
    cluster = ctx.cluster
    spec = cluster.endpoint_spec
    if not spec.installs_anything:
        ctx.log("External endpoint: nothing to remove.")
        return
    node = ctx.node
    with phase_connection(ctx) as conn:
        _remove_here(ctx, conn)
    if node.role != Node.Role.CONTROL_PLANE:
        return
    planes = control_planes(cluster, removing=node)
    if not planes:
        ctx.log("The last control plane: no other proxy to update.")
        return
    others = [n for n in proxy_nodes(cluster, planes) if n.pk != node.pk]
    ctx.log(f"{node.name}'s API server leaves the backends; they are now: {_describe(planes)}.")
    _apply_elsewhere(ctx, others, planes, why=f"{node.name}'s API server removed from the backends")


# --- what the cluster page shows ------------------------------------------------------------------------

STATUS_TIMEOUT = 3.0  # seconds for one machine's answer
STATUS_BUDGET = 8.0  # seconds for all of them
_STATUS_SCRIPT = (
    'ip -o addr show 2>/dev/null; echo "@@stats"; '
    f"curl --silent --max-time 2 'http://127.0.0.1:{layout.STATS_PORT}{layout.STATS_PATH}' 2>/dev/null; true"
)


@dataclass(frozen=True)
class MachineStatus:
    name: str
    address: str
    holds_vip: bool = False
    backends: tuple[endpoint_status.BackendHealth, ...] = ()
    error: str = ""


@dataclass(frozen=True)
class EndpointStatus:
    mode: str
    holder: str  # the machine that holds the VIP, "" when none answered that it does
    machines: tuple[MachineStatus, ...]


def _machine_status(node: Node, vip: str) -> MachineStatus:
    try:
        with connect(node, timeout=STATUS_TIMEOUT) as conn:
            _, lines = commands.quiet(conn, _STATUS_SCRIPT, timeout=STATUS_TIMEOUT)
    except ssh.SSHError as exc:
        return MachineStatus(node.name, node.address, error=str(exc))
    except Exception as exc:  # the page shows what went wrong with this machine, never a 500
        return MachineStatus(node.name, node.address, error=f"could not be asked: {exc}")
    at = lines.index("@@stats") if "@@stats" in lines else len(lines)
    addresses, stats = lines[:at], lines[at + 1 :]
    backends = tuple(endpoint_status.backend_health(stats))
    error = "" if backends else f"haproxy's statistics on 127.0.0.1:{layout.STATS_PORT} did not answer"
    return MachineStatus(
        node.name,
        node.address,
        holds_vip=bool(vip) and endpoint_status.holds(addresses, vip),
        backends=backends,
        error=error,
    )


def read_status(cluster: Cluster) -> EndpointStatus:
    """Each proxy machine asked, over SSH, for its addresses and haproxy's view of every backend;
    one that does not answer within STATUS_TIMEOUT is shown with its error, and once STATUS_BUDGET
    is spent the rest are shown as not asked (the page never waits longer)."""
    spec = cluster.endpoint_spec
    planes = control_planes(cluster)
    vip = spec.vip if spec.mode == layout.VIP else ""
    started = time.monotonic()
    machines = []
    for node in proxy_nodes(cluster, planes):
        if time.monotonic() - started > STATUS_BUDGET:
            machines.append(MachineStatus(node.name, node.address, error="not asked: the page's time was spent"))
            continue
        machines.append(_machine_status(node, vip))
    holder = next((m.name for m in machines if m.holds_vip), "")
    return EndpointStatus(spec.mode, holder, tuple(machines))
