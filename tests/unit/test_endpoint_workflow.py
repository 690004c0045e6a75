"""The control-plane endpoint in init, join and reset (issue 21): which phases each choice plans
and where, and what one machine is told to do.

``MachineDouble`` is a TEST DOUBLE of one machine's SSH connection (files, installed commands,
service states), so the command sequence can be read here; the real keepalived, haproxy and
systemctl on sandbox machines are the test bed's proof (tests/e2e, bench/bench_failover.py)."""

from __future__ import annotations

import shlex
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from core.phases import OperationCancelled, PhaseError
from endpoints import layout
from nodes.models import Node
from remote import ssh
from tests.factories import make_cluster
from workflows import endpoint, init, join, reset

VIP = {
    "endpoint_mode": layout.VIP,
    "endpoint_vip": "10.213.49.100",
    "endpoint_interface": "eth0",
    "endpoint_port": 8443,
    "endpoint_router_id": 51,
    "control_plane_endpoint": "10.213.49.100:8443",
}
LOCAL = {"endpoint_mode": layout.LOCAL_PROXY, "endpoint_port": 8443}


def _operation(cluster, kind, **params):
    return SimpleNamespace(cluster=cluster, kind=kind, params=params)


def _init_plan(cluster) -> list[str]:
    return [p.name for p in init.plan(_operation(cluster, "init", node_id=1))]


def _join_plan(cluster, *, control_plane: bool) -> list[str]:
    kind = join.CONTROL_PLANE if control_plane else join.WORKERS
    phases = join.CONTROL_PLANE_KUBEADM_PHASES if control_plane else join.WORKER_KUBEADM_PHASES
    planned = join._plan(phases)(_operation(cluster, kind, node_ids=[1], nodes=["n1"], method="pre-seed"))
    return [p.name for p in planned]


def _reset_plan(cluster, *, control_plane: bool) -> list[str]:
    role = Node.Role.CONTROL_PLANE if control_plane else Node.Role.WORKER
    return [p.name for p in reset._plan(_operation(cluster, "reset", node_id=1, node="n1", role=role))]


# --- plans --------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_external_endpoint_plans_no_new_phase():
    cluster = make_cluster("ext")
    assert endpoint.INIT_PHASE not in _init_plan(cluster)
    assert endpoint.INIT_KUBE_PROXY_PHASE not in _init_plan(cluster)
    for control_plane in (True, False):
        assert endpoint.JOIN_PHASE not in _join_plan(cluster, control_plane=control_plane)
        assert endpoint.JOIN_KUBELET_PHASE not in _join_plan(cluster, control_plane=control_plane)
        assert endpoint.RESET_PHASE not in _reset_plan(cluster, control_plane=control_plane)


@pytest.mark.django_db
def test_a_vip_is_installed_before_the_kubelet_starts_and_the_control_plane_wait():
    names = _init_plan(make_cluster("vip", **VIP))
    at = names.index(endpoint.INIT_PHASE)
    assert names[at - 1] == "preflight"
    assert at < names.index("kubeconfig") < names.index("kubelet-start") < names.index("wait-control-plane")
    assert endpoint.INIT_KUBE_PROXY_PHASE not in names


@pytest.mark.django_db
def test_vip_joins_and_resets_touch_control_planes_only():
    cluster = make_cluster("vip", **VIP)
    plane = _join_plan(cluster, control_plane=True)
    assert plane.index("upload-files") < plane.index(endpoint.JOIN_PHASE) < plane.index("preflight")
    assert endpoint.JOIN_PHASE not in _join_plan(cluster, control_plane=False)
    assert endpoint.JOIN_KUBELET_PHASE not in plane
    resetting = _reset_plan(cluster, control_plane=True)
    assert resetting.index("drain") < resetting.index(endpoint.RESET_PHASE) < resetting.index("remove-etcd-member")
    assert endpoint.RESET_PHASE not in _reset_plan(cluster, control_plane=False)


@pytest.mark.django_db
def test_local_proxy_runs_on_every_node_and_repoints_kubelet_and_kube_proxy():
    cluster = make_cluster("lp", **LOCAL)
    names = _init_plan(cluster)
    assert names.index(endpoint.INIT_PHASE) < names.index("kubelet-start")
    assert names.index("addon") < names.index(endpoint.INIT_KUBE_PROXY_PHASE) < names.index("read-back")
    worker = _join_plan(cluster, control_plane=False)
    assert worker.index(endpoint.JOIN_PHASE) < worker.index("preflight") < worker.index("kubelet-start")
    assert worker.index("kubelet-start") < worker.index(endpoint.JOIN_KUBELET_PHASE) < worker.index("verify-node")
    plane = _join_plan(cluster, control_plane=True)
    assert endpoint.JOIN_PHASE in plane and endpoint.JOIN_KUBELET_PHASE not in plane
    assert endpoint.RESET_PHASE in _reset_plan(cluster, control_plane=False)


# --- one machine -------------------------------------------------------------------------------------------


class MachineDouble:
    """TEST DOUBLE of a machine's SSH connection: files, installed commands and services."""

    def __init__(
        self, *, installed=("haproxy", "keepalived", "apt-get"), files=None, active=(), listening=(), vip_answers=False
    ):
        self.files: dict[str, str] = dict(files or {})
        self.listening = list(listening)  # ss -Htlnp lines
        self.vip_answers = vip_answers
        self.installed = set(installed)
        self.active = set(active)
        self.ran: list[str] = []
        self.is_root = True

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return None

    def write_file(self, path: str, data: bytes, *, mode: int = 0o600) -> None:
        self.ran.append(f"write {path} {mode:04o}")
        self.files[path] = data.decode()

    def run(self, command, *, on_line=None, cancel=None, timeout=None, job=None, root=True) -> ssh.CommandResult:
        argv = shlex.split(command)
        status, out = self._answer(argv)
        # Reads and mkdir are left out of the record: what is left is what changes the machine.
        if argv[0] not in ("cat", "mkdir", "ip", "ss") and not (argv[:2] == ["sh", "-c"] or argv[1:2] == ["is-active"]):
            self.ran.append(command)
        for line in out:
            on_line(line)
        return ssh.CommandResult(exit_status=status, signal=None, duration=0.01)

    def _answer(self, argv: list[str]) -> tuple[int, list[str]]:
        if argv[:3] == ["ip", "-o", "addr"]:
            return 0, ["2: eth0    inet 10.213.49.250/24 brd 10.213.49.255 scope global eth0"]
        if argv[0] == "ss":
            return 0, self.listening
        if argv[:2] == ["sh", "-c"] and "ip neigh show" in argv[2]:
            state = "lladdr 36:82:44:1e:d9:bf REACHABLE" if self.vip_answers else "INCOMPLETE"
            return 0, [f"10.213.49.100 dev eth0 {state}"]
        if argv[:2] == ["cat", "--"]:
            text = self.files.get(argv[2])
            return (0, text.rstrip("\n").split("\n")) if text is not None else (1, [])
        if argv[:2] == ["sh", "-c"] and argv[2].startswith("command -v "):
            return (0, []) if argv[2].split()[-1] in self.installed else (1, [])
        if argv[:2] == ["systemctl", "is-active"]:
            return (0, ["active"]) if argv[2] in self.active else (3, ["inactive"])
        if argv[:3] == ["systemctl", "enable", "--now"]:
            self.active.add(argv[3])
        if argv[:3] == ["systemctl", "disable", "--now"]:
            self.active.discard(argv[3])
        if argv[:3] == ["rm", "-f", "--"]:
            self.files.pop(argv[3], None)
        if "apt-get" in argv and "install" in argv:
            self.installed.update(a for a in argv if a in ("haproxy", "keepalived"))
        return 0, []

    def job_pgid(self, job):
        return None

    def job_running(self, job):
        return False


class PhaseDouble:
    def __init__(self, cluster, node) -> None:
        self.cluster, self.node = cluster, node
        self.phase = SimpleNamespace(name="control-plane-endpoint")
        self.operation = SimpleNamespace(pk=1, kind="join-control-plane")
        self.cancel_event = threading.Event()
        self.attempt = 1
        self.exit_status = None
        self.job = "kubeboard-op1-phase1"
        self.logged: list[tuple[str, str]] = []

    def log(self, message: str, level: str = "info", **data) -> None:
        self.logged.append((level, message))

    def output_line(self, line: str) -> None:
        pass

    def check_cancelled(self) -> None:
        if self.cancel_event.is_set():
            raise OperationCancelled("cancelled")


def _planes(cluster, count: int) -> list[Node]:
    return [
        Node.objects.create(
            cluster=cluster,
            name=f"cp{i}",
            address=f"10.213.49.{10 + i}",
            role=Node.Role.CONTROL_PLANE,
            status=Node.Status.JOINED,
        )
        for i in range(1, count + 1)
    ]


@pytest.mark.django_db
def test_first_apply_writes_checks_and_starts_then_a_second_changes_nothing():
    cluster = make_cluster("vip", **VIP)
    [cp1] = _planes(cluster, 1)
    machine, ctx = MachineDouble(), PhaseDouble(cluster, cp1)
    notes = endpoint.apply_to(ctx, machine, cp1, [cp1], own=True)
    assert machine.ran == [
        f"write {layout.HAPROXY_CFG} 0644",
        f"write {layout.CHECK_SCRIPT} 0755",
        f"write {layout.KEEPALIVED_CONF} 0644",
        f"haproxy -c -q -f {layout.HAPROXY_CFG}",
        f"keepalived -t -f {layout.KEEPALIVED_CONF}",
        "systemctl enable --now haproxy.service",
        "systemctl enable --now keepalived.service",
    ]
    assert "server cp1 10.213.49.11:6443" in machine.files[layout.HAPROXY_CFG]
    assert "priority 200" in machine.files[layout.KEEPALIVED_CONF]
    assert notes[-2:] == ["started haproxy.service", "started keepalived.service"]
    machine.ran.clear()
    assert endpoint.apply_to(ctx, machine, cp1, [cp1], own=True) == []
    assert machine.ran == []


@pytest.mark.django_db
def test_a_new_backend_reloads_haproxy_and_leaves_keepalived_alone():
    cluster = make_cluster("vip", **VIP)
    cp1, cp2 = _planes(cluster, 2)
    machine, ctx = MachineDouble(), PhaseDouble(cluster, cp1)
    endpoint.apply_to(ctx, machine, cp1, [cp1], own=True)
    machine.ran.clear()
    notes = endpoint.apply_to(ctx, machine, cp1, [cp1, cp2], own=False)
    assert machine.ran == [
        f"write {layout.HAPROXY_CFG} 0644",
        f"haproxy -c -q -f {layout.HAPROXY_CFG}",
        "systemctl reload haproxy.service",
    ]
    assert notes == [f"wrote {layout.HAPROXY_CFG}", "reloaded haproxy.service"]


@pytest.mark.django_db
def test_missing_packages_are_installed_from_the_distribution():
    cluster = make_cluster("lp", **LOCAL)
    [cp1] = _planes(cluster, 1)
    machine, ctx = MachineDouble(installed=("apt-get",)), PhaseDouble(cluster, cp1)
    endpoint.apply_to(ctx, machine, cp1, [cp1], own=True)
    installs = [c for c in machine.ran if "apt-get" in c]
    assert "update" in installs[0] and "install" in installs[1] and installs[1].endswith(" haproxy")
    assert layout.KEEPALIVED_CONF not in machine.files  # a local proxy runs haproxy only
    assert "bind 127.0.0.1:8443" in machine.files[layout.HAPROXY_CFG]


@pytest.mark.django_db
def test_join_adds_the_new_api_server_everywhere_and_an_unreachable_one_is_a_warning(monkeypatch):
    cluster = make_cluster("vip", **VIP)
    cp1, cp2, cp3 = _planes(cluster, 3)
    Node.objects.filter(pk=cp3.pk).update(status=Node.Status.JOINING)
    cp3.refresh_from_db()
    machines = {cp1.pk: MachineDouble(active=("haproxy.service", "keepalived.service")), cp3.pk: MachineDouble()}

    def connect(node, timeout=None):
        if node.pk not in machines:
            raise ssh.Unreachable(f"{node.name} does not answer")
        return machines[node.pk]

    monkeypatch.setattr(endpoint, "connect", connect)
    monkeypatch.setattr(endpoint, "phase_connection", lambda ctx: machines[ctx.node.pk])
    ctx = PhaseDouble(cluster, cp3)
    endpoint.join_endpoint(ctx)
    for machine in (machines[cp1.pk], machines[cp3.pk]):
        servers = [line.split()[1] for line in machine.files[layout.HAPROXY_CFG].splitlines() if "    server " in line]
        assert servers == ["cp1", "cp2", "cp3"]
    assert "systemctl reload haproxy.service" in machines[cp1.pk].ran
    assert "priority 180" in machines[cp3.pk].files[layout.KEEPALIVED_CONF]
    warnings = [message for level, message in ctx.logged if level == "warning"]
    assert len(warnings) == 1 and warnings[0].startswith("cp2: its proxy could not be updated")


@pytest.mark.django_db
def test_reset_stops_the_machines_services_and_drops_it_from_the_others(monkeypatch):
    cluster = make_cluster("vip", **VIP)
    cp1, cp2 = _planes(cluster, 2)
    ctx1 = PhaseDouble(cluster, cp1)
    machines = {cp1.pk: MachineDouble(), cp2.pk: MachineDouble()}
    for node in (cp1, cp2):
        endpoint.apply_to(PhaseDouble(cluster, node), machines[node.pk], node, [cp1, cp2], own=True)
    monkeypatch.setattr(endpoint, "connect", lambda node, timeout=None: machines[node.pk])
    ctx2 = PhaseDouble(cluster, cp2)
    monkeypatch.setattr(endpoint, "phase_connection", lambda ctx: machines[ctx.node.pk])
    endpoint.reset_endpoint(ctx2)
    gone = machines[cp2.pk]
    assert gone.active == set()
    assert gone.ran.index("systemctl disable --now keepalived.service") < gone.ran.index(
        "systemctl disable --now haproxy.service"
    )
    assert layout.HAPROXY_CFG not in gone.files and layout.KEEPALIVED_CONF not in gone.files
    kept = machines[cp1.pk].files[layout.HAPROXY_CFG]
    assert "server cp1 " in kept and "server cp2 " not in kept
    assert "systemctl reload haproxy.service" in machines[cp1.pk].ran
    assert ctx1.logged == []


@pytest.mark.django_db
def test_a_failing_check_on_the_phases_own_machine_fails_the_phase():
    cluster = make_cluster("vip", **VIP)
    [cp1] = _planes(cluster, 1)

    class Refusing(MachineDouble):
        def _answer(self, argv):
            if argv[:2] == ["haproxy", "-c"]:
                return 1, ["[ALERT] config : parsing [/etc/haproxy/haproxy.cfg:3] : unknown keyword"]
            return super()._answer(argv)

    with pytest.raises(PhaseError) as failed:
        endpoint.apply_to(PhaseDouble(cluster, cp1), Refusing(), cp1, [cp1], own=True)
    assert "haproxy -c failed on cp1" in failed.value.message


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("double", "words"),
    [
        ({"vip_answers": True}, "10.213.49.100 already answers on the network"),
        (
            {"listening": ['LISTEN 0 511 0.0.0.0:8443 0.0.0.0:* users:(("nginx",pid=9,fd=6))']},
            "port 8443 (haproxy) is already in use on the machine by nginx",
        ),
    ],
)
def test_init_refuses_a_vip_in_use_or_a_taken_port_before_installing(double, words):
    cluster = make_cluster("vip", **VIP)
    [cp1] = _planes(cluster, 1)
    machine = MachineDouble(**double)
    with pytest.raises(PhaseError) as refused:
        endpoint.apply_to(PhaseDouble(cluster, cp1), machine, cp1, [cp1], own=True)
    assert words in refused.value.message
    assert machine.ran == [] and machine.files == {}


@pytest.mark.django_db
def test_init_refuses_an_interface_the_machine_lacks():
    cluster = make_cluster("vip", **{**VIP, "endpoint_interface": "ens7"})
    [cp1] = _planes(cluster, 1)
    with pytest.raises(PhaseError) as refused:
        endpoint.apply_to(PhaseDouble(cluster, cp1), MachineDouble(), cp1, [cp1], own=True)
    assert "the machine has no interface ens7 (it has: eth0)" in refused.value.message


@pytest.mark.django_db
@pytest.mark.parametrize(("fields", "planned"), [({}, False), (VIP, False), (LOCAL, True)])
def test_an_upgrade_points_kube_proxy_back_at_the_local_proxy_after_kubeadms_addon(fields, planned):
    """kubeadm upgrade apply's addon phase rewrites kube-proxy's kubeconfig with controlPlaneEndpoint."""
    from workflows import upgrade

    cluster = make_cluster("up", **fields)
    params = {
        "first": "cp1",
        "control_planes": ["cp1", "cp2"],
        "workers": ["w1"],
        "node_ids": {"cp1": 1, "cp2": 2, "w1": 3},
    }
    names = [(p.group, p.name) for p in upgrade.plan(_operation(cluster, "upgrade", **params))]
    kube_proxy = [group for group, name in names if name == endpoint.INIT_KUBE_PROXY_PHASE]
    assert kube_proxy == (["cp1"] if planned else [])
    if planned:
        assert names.index(("cp1", "addon")) < names.index(("cp1", endpoint.INIT_KUBE_PROXY_PHASE))


# --- the cluster page's status --------------------------------------------------------------------------

DATA = Path(__file__).parent / "data" / "endpoint"


class StatusDouble(MachineDouble):
    """TEST DOUBLE of a machine answering the status script with what a real one printed: ip -o addr
    show and haproxy's statistics CSV, captured from keepalived and haproxy in network namespaces
    (tests/integration/test_endpoint_failover.py's layout; one backend DOWN, the other UP)."""

    def __init__(self, *, holds: bool) -> None:
        super().__init__()
        self.holds = holds

    def run(self, command, *, on_line=None, cancel=None, timeout=None, job=None, root=True) -> ssh.CommandResult:
        addr = (DATA / "ip-addr-vip-holder.txt").read_text().splitlines()
        if not self.holds:
            addr = [line for line in addr if "10.213.49.100" not in line]
        for line in [*addr, "@@stats", *(DATA / "haproxy-stats.csv").read_text().splitlines()]:
            on_line(line)
        return ssh.CommandResult(exit_status=0, signal=None, duration=0.01)


@pytest.mark.django_db
def test_the_page_part_names_the_vip_holder_and_each_backends_health(monkeypatch, operator, client):
    from tests.conftest import team_of

    cluster = make_cluster("vip", team=team_of(operator), **VIP)
    cp1, cp2 = _planes(cluster, 2)
    cp3 = Node.objects.create(cluster=cluster, name="cp3", address="10.213.49.13", role=Node.Role.CONTROL_PLANE)
    doubles = {cp1.pk: StatusDouble(holds=False), cp2.pk: StatusDouble(holds=True)}

    def connect(node, timeout=None):
        if node.pk not in doubles:
            raise ssh.Unreachable(f"{node.name} does not answer")
        return doubles[node.pk]

    monkeypatch.setattr(endpoint, "connect", connect)
    status = endpoint.read_status(cluster)
    assert status.holder == "cp2"
    assert [m.name for m in status.machines] == ["cp1", "cp2"]  # cp3 never joined: no proxy there
    assert [(b.name, b.status, b.check) for b in status.machines[1].backends] == [
        ("a", "DOWN", "L4CON"),
        ("b", "UP", "L7OK 200"),
    ]
    Node.objects.filter(pk=cp3.pk).update(status=Node.Status.JOINED)
    client.force_login(operator)
    page = client.get(f"/clusters/{cluster.name}/endpoint/").content.decode()
    assert "held by <strong>cp2</strong>" in page
    assert 'data-backend="a">a DOWN (L4CON)' in page and 'data-backend="b">b UP (L7OK 200)' in page
    assert 'data-machine="cp3"' in page and "cp3 does not answer" in page


@pytest.mark.django_db
def test_init_says_what_it_installed_and_where_the_kubeconfigs_point(monkeypatch):
    cluster = make_cluster("vip", **VIP)
    [cp1] = _planes(cluster, 1)
    machine = MachineDouble()
    monkeypatch.setattr(endpoint, "phase_connection", lambda ctx: machine)
    ctx = PhaseDouble(cluster, cp1)
    endpoint.init_endpoint(ctx)
    said = " ".join(message for _, message in ctx.logged)
    assert "Control-plane endpoint on cp1: virtual IP 10.213.49.100 on eth0 (VRRP router id 51)" in said
    assert "started haproxy.service; started keepalived.service" in said
    assert "admin.conf and super-admin.conf with https://10.213.49.100:8443" in said
    external = make_cluster("ext")
    ctx = PhaseDouble(external, cp1)
    endpoint.init_endpoint(ctx)
    assert ctx.logged == [("info", "External endpoint 10.0.0.10:6443: nothing to install on the machine.")]
