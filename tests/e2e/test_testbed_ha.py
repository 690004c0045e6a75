"""keepalived and haproxy as system services on test-bed machines (issue 21), without the product
and without Kubernetes: the test bed's part of a highly available control-plane endpoint.

One 3-node sandbox (``kbtbha`` on 10.213.44.0/24) of provisioned machines with private roots
(``private_root=True``): the Debian packages ``keepalived`` 2.2.7 and ``haproxy`` 2.6 that
setup-testbed.sh installed on the host (never started there) are in each node's lower layer, the
files Kubeboard renders (``endpoints.render``: VRRPv3, nopreempt, the /readyz track script,
haproxy on 8443 in TCP mode) are written into the node's own /etc, and the daemons run as
services through the systemctl TEST DOUBLE and the node's runner, for real, in the node's network
namespace on the sandbox bridge (one L2 segment: VRRP multicast and gratuitous ARP between nodes
and to the host's bridge address).

Stand-in: each node's "API server" is a tiny HTTPS server on ``<node>:6443`` answering ``/readyz``
and its own name (the real API servers behind the VIP are proven by the product's HA test). What
is proven: one node holds the VIP and the host reaches it only through the bridge; it moves when
the holder's keepalived stops, when its API server stops answering (the track script) and when
its keepalived dies; a machine coming back does not take it back (nopreempt); ``systemctl reload
haproxy`` (ExecReload: check, then USR2 to the master) applies new backends without dropping a
live connection and refuses a broken file; nothing of it reaches the host.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from endpoints import layout, render
from tests.e2e.test_testbed_bare import host_snapshot
from tools.testbed.guard import assert_routed_via_bridge
from tools.testbed.sandbox import Node, Sandbox
from tools.testbed.testing import require_ha_packages, require_host, sandbox

pytestmark = [pytest.mark.cluster, pytest.mark.e2e]

NAME = "kbtbha"
SUBNET = "10.213.44.0/24"
VIP = "10.213.44.100"
SPEC = layout.Spec(mode=layout.VIP, vip=VIP, interface="eth0", port=layout.DEFAULT_PORT, router_id=44)
# A correctness bound, not the speed target (bench/bench_failover.py prints the figures): VRRPv3
# at 0.5 s adverts takes over in < 2 s, the track script needs fall=2 runs a second apart.
FAILOVER_BOUND = 15.0

# The stand-in API server: HTTPS on <address>:6443, /readyz -> "ok", anything else -> the node's
# name, keep-alive (HTTP/1.1) so a connection can outlive a haproxy reload.
FAKE_API_SERVER = r"""
import http.server, ssl, sys
name, address, cert, key = sys.argv[1:5]
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = b"ok" if self.path == "/readyz" else name.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer((address, 6443), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
server.socket = context.wrap_socket(server.socket, server_side=True)
server.serve_forever()
"""

# What the host must never get from these tests, beyond host_snapshot()'s trees.
HOST_EXTRA = ("/etc/keepalived", "/etc/haproxy", "/etc/default/keepalived", "/etc/default/haproxy")
HOST_RUN = ("/run/keepalived.pid", "/run/vrrp.pid", "/run/haproxy.pid", "/run/haproxy-master.sock")


@dataclass
class Ha:
    sb: Sandbox
    cert_dir: Path
    api_servers: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start_api_server(self, node: Node) -> None:
        self.api_servers[node.index] = node.popen(
            [
                sys.executable,
                "-c",
                FAKE_API_SERVER,
                node.name,
                node.address,
                str(self.cert_dir / "cert.pem"),
                str(self.cert_dir / "key.pem"),
            ],
            node.dir / "logs" / "fake-apiserver.log",
        )

    def stop_api_server(self, node: Node) -> None:
        proc = self.api_servers.pop(node.index)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def host_state() -> dict[str, object]:
    """host_snapshot() plus what keepalived and haproxy would change on the host itself."""
    snap = host_snapshot()
    for top in HOST_EXTRA:
        for root, dirs, files in os.walk(top):
            for name in dirs + files:
                path = os.path.join(root, name)
                snap[path] = Path(path).read_bytes() if os.path.isfile(path) else "dir"
        snap[top] = os.path.exists(top)
    for path in HOST_RUN:
        snap[path] = os.path.exists(path)
    snap["sysctl ip_nonlocal_bind"] = Path("/proc/sys/net/ipv4/ip_nonlocal_bind").read_text()
    host_addresses = json.loads(subprocess.run(["ip", "-j", "addr"], capture_output=True, text=True).stdout)
    snap["the VIP on a host interface"] = any(
        a.get("local") == VIP for link in host_addresses for a in link.get("addr_info", [])
    )
    snap["keepalived/haproxy in the host's network namespace"] = daemons_in_host_netns()
    return snap


def daemons_in_host_netns() -> list[str]:
    host_net = os.stat("/proc/self/ns/net").st_ino  # the tests run in the host's
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
            if comm in ("keepalived", "haproxy") and os.stat(f"/proc/{pid}/ns/net").st_ino == host_net:
                found.append(f"{pid} {comm}")
        except OSError:
            continue
    return found


def make_cert(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-days", "1", "-subj", "/CN=kbtbha-fake-apiserver",
            "-keyout", str(directory / "key.pem"), "-out", str(directory / "cert.pem"),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip


def configure(ha: Ha) -> None:
    """What Kubeboard installs on each control plane: keepalived.conf, its check script and
    haproxy.cfg as endpoints.render writes them, then ``systemctl enable --now`` (haproxy first:
    the check script asks it too)."""
    nodes = ha.sb.nodes
    backends = [layout.Backend(n.name, n.address) for n in nodes]
    for i, node in enumerate(nodes):
        ha.start_api_server(node)
        peers = [n.address for n in nodes]
        files = {
            layout.KEEPALIVED_CONF: render.keepalived_conf(
                SPEC, cluster="kbtbha", node=node.name, address=node.address, priority=layout.priority(i), peers=peers
            ),
            layout.CHECK_SCRIPT: render.check_script(SPEC, address=node.address),
            layout.HAPROXY_CFG: render.haproxy_cfg(SPEC, cluster="kbtbha", backends=backends),
        }
        for path, text in files.items():
            mode = "755" if path == layout.CHECK_SCRIPT else "644"
            node.ssh(f"install -D -m {mode} /dev/stdin {path} <<'KUBEBOARD_EOF'\n{text}KUBEBOARD_EOF")
        node.ssh("systemctl enable --now haproxy && systemctl enable --now keepalived")


def holders(sb: Sandbox) -> list[int]:
    """The nodes whose eth0 has the VIP (asked inside each node, no network hop)."""
    found = []
    for node in sb.nodes:
        addrs = json.loads(node.exec(["ip", "-j", "addr", "show", "dev", "eth0"]).stdout)
        if any(a.get("local") == VIP for link in addrs for a in link.get("addr_info", [])):
            found.append(node.index)
    return found


def wait_for(what: str, condition: Callable[[], object], timeout: float) -> tuple[object, float]:
    """(the first truthy answer of ``condition``, seconds it took), polling every 50 ms."""
    started = time.monotonic()
    while True:
        answer = condition()
        if answer:
            return answer, time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what}: not within {timeout:.0f}s")
        time.sleep(0.05)


def one_holder(sb: Sandbox, other_than: int = 0, lost: int = 0) -> Callable[[], int]:
    """The one node holding the VIP, if it is not ``other_than``; a ``lost`` node (off the
    segment, its address left behind by a killed keepalived) is not asked."""

    def check() -> int:
        held = [n for n in holders(sb) if n != lost]
        return held[0] if len(held) == 1 and held[0] != other_than else 0

    return check


TLS = ssl._create_unverified_context()  # the stand-in's certificate is self-signed


def get(sb: Sandbox, address: str, port: int = SPEC.port, timeout: float = 2.0) -> str:
    """GET / through haproxy at ``address`` from the host, after the route guard."""
    assert_routed_via_bridge(address, sb.bridge)
    conn = http.client.HTTPSConnection(address, port, timeout=timeout, context=TLS)
    try:
        conn.request("GET", "/")
        return conn.getresponse().read().decode()
    finally:
        conn.close()


def answers(sb: Sandbox, address: str) -> Callable[[], str]:
    def check() -> str:
        try:
            return get(sb, address, timeout=1.0)
        except OSError:
            return ""

    return check


def host_mac_of(sb: Sandbox, address: str) -> str:
    """The link-layer address the host's neighbour table has for ``address`` on the bridge."""
    out = subprocess.run(
        ["ip", "-j", "neigh", "show", address, "dev", sb.bridge], capture_output=True, text=True, check=True
    ).stdout
    entries = json.loads(out or "[]")
    return entries[0].get("lladdr", "") if entries else ""


def eth0_mac(node: Node) -> str:
    return json.loads(node.exec(["ip", "-j", "link", "show", "dev", "eth0"]).stdout)[0]["address"]


@pytest.fixture(scope="module")
def ha(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ha]:
    require_host()
    require_ha_packages()
    with sandbox(NAME, SUBNET, size=3, private_root=True) as sb:
        cert_dir = tmp_path_factory.mktemp("kbtbha-cert")
        make_cert(cert_dir)
        yield Ha(sb, cert_dir)


def test_the_vip_moves_when_its_holder_stops_keepalived_loses_its_api_server_or_dies(ha: Ha) -> None:
    try:
        vip_moves(ha)
    finally:
        heal(ha)


def heal(ha: Ha) -> None:
    """Restore what a failed failover check may have left broken (a node off the segment, an API
    server or keepalived stopped), so the module's next test does not fail for it: a CI run's
    VIP check timed out under load and the next test could not reach node1 over SSH."""
    for node in ha.sb.nodes:
        node.exec(["ip", "link", "set", "dev", "eth0", "up"], check=False)
        if node.index not in ha.api_servers:
            ha.start_api_server(node)
        node.exec(["systemctl", "start", "keepalived"], check=False)


def vip_moves(ha: Ha) -> None:
    sb = ha.sb
    before = host_state()
    assert ipaddress.ip_address(VIP) in sb.network  # the guard accepts it: routed on the bridge only
    configure(ha)
    for node in sb.nodes:
        assert node.ssh("systemctl is-active haproxy keepalived").stdout.split() == ["active", "active"]
        assert node.ssh("systemctl show -p MainPID --value keepalived").stdout.strip() != "0"

    # One node holds the VIP; the host reaches it over the bridge, through that node's haproxy.
    first, took = wait_for("a VIP holder", one_holder(sb), FAILOVER_BOUND)
    print(f"VIP held by node{first} {took:.1f}s after the last keepalived started")
    assert wait_for("the VIP answering", answers(sb, VIP), FAILOVER_BOUND)[0] in ("node1", "node2", "node3")
    assert host_mac_of(sb, VIP) == eth0_mac(sb.node(first))

    # 1. The holder's keepalived stops (a clean stop sends priority 0: a backup takes over at once).
    sb.node(first).ssh("systemctl stop keepalived")
    second, took = wait_for("a new holder after keepalived stopped", one_holder(sb, other_than=first), FAILOVER_BOUND)
    _, answered = wait_for("the VIP answering again", answers(sb, VIP), FAILOVER_BOUND)
    print(f"keepalived stopped on node{first}: node{second} holds the VIP after {took:.2f}s")
    # The new holder's gratuitous ARP reached the host on the same L2 segment.
    wait_for("the host's ARP entry to move", lambda: host_mac_of(sb, VIP) == eth0_mac(sb.node(second)), 5)

    # The old holder comes back: nopreempt keeps the VIP where it is (no second interruption).
    sb.node(first).ssh("systemctl start keepalived")
    time.sleep(3 * layout.ADVERT_INT + 1.5)
    assert holders(sb) == [second]

    # 2. The holder's API server stops answering: its track script fails (fall 2), it gives up
    # the VIP, and its haproxy marks it down for the others too.
    ha.stop_api_server(sb.node(second))
    third, took = wait_for("a new holder after the API server stopped", one_holder(sb, other_than=second), 30)
    print(f"API server stopped on node{second}: node{third} holds the VIP after {took:.2f}s")
    assert get(sb, VIP) != f"node{second}"

    # 3. The holder is lost: its keepalived dies with its VRRP child (SIGKILL to the unit's process
    # group: no priority-0 goodbye) and the machine drops off the segment (its eth0 down, as a
    # powered-off machine's cable). A backup takes over after the master-down interval.
    node = sb.node(third)
    pid = node.ssh("systemctl show -p MainPID --value keepalived").stdout.strip()
    node.exec(["kill", "-KILL", "--", f"-{pid}"])
    node.exec(["ip", "link", "set", "dev", "eth0", "down"])
    last, took = wait_for("a new holder after the holder was lost", one_holder(sb, lost=third), FAILOVER_BOUND)
    assert last not in (second, third)  # the node without an API server never takes it
    print(f"node{third} lost: node{last} holds the VIP after {took:.2f}s")
    wait_for("the host's ARP entry to move", lambda: host_mac_of(sb, VIP) == eth0_mac(sb.node(last)), 5)
    assert wait_for("the VIP answering", answers(sb, VIP), FAILOVER_BOUND)[0] not in ("", f"node{second}")
    # The machine comes back as after a reboot: no VIP on its eth0; Debian's unit has no Restart=,
    # so keepalived stayed dead until started again.
    killed = node.exec(["systemctl", "is-active", "keepalived"], check=False).stdout.strip()
    assert killed == "failed", killed  # as systemd shows a unit killed by a signal
    node.exec(["sh", "-c", f"ip addr del {VIP}/32 dev eth0; ip link set dev eth0 up"])

    # Back to a healthy cluster for the next test.
    ha.start_api_server(sb.node(second))
    sb.node(third).ssh("systemctl restart keepalived")
    assert_host_unchanged_ha(before)


def test_haproxy_reloads_new_backends_through_the_double_without_dropping_a_live_connection(ha: Ha) -> None:
    sb = ha.sb
    node = sb.node(1)
    if not node.ssh("systemctl is-active haproxy", check=False).stdout.strip() == "active":
        configure(ha)
    before = host_state()
    main_pid = node.ssh("systemctl show -p MainPID --value haproxy").stdout.strip()
    wait_for("node1's haproxy answering", answers(sb, node.address), 10)

    # A live connection through node1's haproxy (keep-alive), then new backends: node3 alone.
    assert_routed_via_bridge(node.address, sb.bridge)
    live = http.client.HTTPSConnection(node.address, SPEC.port, timeout=5, context=TLS)
    live.request("GET", "/")
    served_by = live.getresponse().read().decode()
    only_node3 = render.haproxy_cfg(SPEC, cluster="kbtbha", backends=[layout.Backend("node3", sb.node(3).address)])
    node.ssh(f"cat > {layout.HAPROXY_CFG} <<'KUBEBOARD_EOF'\n{only_node3}KUBEBOARD_EOF")
    node.ssh("systemctl reload haproxy")

    # Same master (a reload, not a restart), still active; new connections go to node3 only...
    assert node.ssh("systemctl show -p MainPID --value haproxy").stdout.strip() == main_pid
    assert node.ssh("systemctl is-active haproxy").stdout.strip() == "active"
    log = (node.dir / "logs" / "runner.log").read_text()
    assert "haproxy.service: reload: /usr/sbin/haproxy -Ws -f /etc/haproxy/haproxy.cfg -c -q" in log
    assert f"haproxy.service: reload: /bin/kill -USR2 {main_pid} exited with 0" in log
    wait_for("the new backends", lambda: [get(sb, node.address) for _ in range(4)] == ["node3"] * 4, 10)
    # ...and the connection opened before the reload is still served (by the old worker).
    live.request("GET", "/")
    assert live.getresponse().read().decode() == served_by
    live.close()

    # A broken file: the reload's check refuses it, haproxy keeps serving the last good one.
    node.ssh(
        f"echo 'backend kube-apiserver' >> {layout.HAPROXY_CFG} && echo '    server x nowhere:' >> {layout.HAPROXY_CFG}"
    )
    refused = node.ssh("systemctl reload haproxy", check=False)
    assert refused.returncode == 1 and "haproxy.service failed" in refused.stderr, refused.stderr
    assert node.ssh("systemctl is-active haproxy").stdout.strip() == "active"
    assert get(sb, node.address) == "node3"

    # reload is for running units only; reload-or-restart starts a stopped one.
    node.ssh("systemctl stop haproxy")
    stopped = node.ssh("systemctl reload haproxy", check=False)
    assert stopped.returncode == 1 and "is not active" in stopped.stderr
    node.ssh(f"cat > {layout.HAPROXY_CFG} <<'KUBEBOARD_EOF'\n{only_node3}KUBEBOARD_EOF")
    node.ssh("systemctl reload-or-restart haproxy")
    assert node.ssh("systemctl is-active haproxy").stdout.strip() == "active"
    assert node.ssh("systemctl show -p MainPID --value haproxy").stdout.strip() != main_pid
    assert_host_unchanged_ha(before)


def assert_host_unchanged_ha(before: dict[str, object]) -> None:
    assert daemons_in_host_netns() == [], "keepalived/haproxy run in the host's network namespace"
    after = host_state()
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert not changed, "the host changed: " + "; ".join(
        f"{k}: {before.get(k, 'absent')!r} -> {after.get(k, 'absent')!r}"[:300] for k in changed[:20]
    )
