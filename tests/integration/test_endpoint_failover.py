"""The files Kubeboard renders for a virtual IP (issue 21), run by the real keepalived 2.2.7 and
haproxy 2.6 (Debian's packages) in two network namespaces joined by a veth pair: one VIP holder,
haproxy answering through the VIP, the VIP moving when the holder's API server dies or its
keepalived is killed, and a reload that changes the backends while serving.

The API servers are a TEST DOUBLE: a small HTTPS server answering /readyz on each machine's own
address:6443 (what keepalived's check and haproxy's health check ask); the real kube-apiserver
behind a VIP is the test bed's proof (tests/e2e, bench/bench_failover.py). No packet leaves the
two namespaces: the veth pair is their only link and neither has a route elsewhere."""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from endpoints import layout, render, status

pytestmark = [pytest.mark.integration, pytest.mark.services]

NAME = "kbtbha9"  # this test's namespaces: kbtbha9-a, kbtbha9-b (10.213.49.0/24)
VIP = "10.213.49.100"
MACHINES = {"a": "10.213.49.11", "b": "10.213.49.12"}

API_DOUBLE = textwrap.dedent(
    """
    import http.server, ssl, sys
    class Ready(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
        def log_message(self, *args):
            pass
    server = http.server.ThreadingHTTPServer((sys.argv[1], 6443), Ready)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(sys.argv[2], sys.argv[3])
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.serve_forever()
    """
)


def _missing() -> str:
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("keepalived", "haproxy", "ip", "curl"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (tools/setup-testbed.sh installs keepalived and haproxy)"
    return ""


def _ns(machine: str) -> str:
    return f"{NAME}-{machine}"


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=check)


def _in(machine: str, *argv: str, check: bool = False) -> subprocess.CompletedProcess:
    return _run("ip", "netns", "exec", _ns(machine), *argv, check=check)


def _certificate(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "api-double")])
    now = datetime.datetime.now(datetime.UTC)
    sans = [x509.IPAddress(ipaddress.ip_address(a)) for a in (*MACHINES.values(), VIP, "127.0.0.1")]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


class Pair:
    """Two machines' namespaces, their API server doubles, haproxy and keepalived."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.processes: dict[tuple[str, str], subprocess.Popen] = {}
        self.spec = layout.Spec(mode=layout.VIP, vip=VIP, interface="", port=8443, router_id=49)
        self.backends = [layout.Backend(m, a) for m, a in MACHINES.items()]

    def interface(self, machine: str) -> str:
        return f"ha9v{machine}"

    def up(self) -> None:
        self.down_namespaces()
        for machine in MACHINES:
            _run("ip", "netns", "add", _ns(machine))
        _run(
            "ip", "link", "add", "ha9va", "netns", _ns("a"), "type", "veth", "peer", "name", "ha9vb", "netns", _ns("b")
        )  # fmt: skip
        for machine, address in MACHINES.items():
            _run("ip", "-n", _ns(machine), "addr", "add", f"{address}/24", "dev", self.interface(machine))
            _run("ip", "-n", _ns(machine), "link", "set", self.interface(machine), "up")
            _run("ip", "-n", _ns(machine), "link", "set", "lo", "up")
        cert, key = _certificate(self.root)
        for priority, (machine, address) in enumerate(MACHINES.items()):
            directory = self.root / machine
            directory.mkdir(mode=0o755)
            spec = layout.Spec(**{**self.spec.__dict__, "interface": self.interface(machine)})
            check = directory / "check.sh"
            check.write_text(render.check_script(spec, address=address))
            check.chmod(0o755)
            conf = render.keepalived_conf(
                spec,
                cluster="ha9",
                node=machine,
                address=address,
                priority=layout.priority(priority),
                peers=list(MACHINES.values()),
            )
            (directory / "keepalived.conf").write_text(conf.replace(layout.CHECK_SCRIPT, str(check)))
            (directory / "haproxy.cfg").write_text(render.haproxy_cfg(spec, cluster="ha9", backends=self.backends))
            self.start(machine, "api", sys.executable, "-c", API_DOUBLE, address, str(cert), str(key))
            self.start(machine, "haproxy", "haproxy", "-Ws", "-f", str(directory / "haproxy.cfg"))
            self.start_keepalived(machine)

    def start(self, machine: str, what: str, *argv: str) -> None:
        log = open(self.root / f"{machine}-{what}.log", "a")  # noqa: SIM115 - closed with the process
        self.processes[(machine, what)] = subprocess.Popen(
            ["ip", "netns", "exec", _ns(machine), *argv], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def start_keepalived(self, machine: str) -> None:
        d = self.root / machine
        self.start(
            machine, "keepalived", "keepalived", "--dont-fork", "--log-console", "--log-detail",
            "-f", str(d / "keepalived.conf"), "-p", str(d / "k.pid"), "-r", str(d / "kv.pid"), "-c", str(d / "kc.pid"),
        )  # fmt: skip

    def kill(self, machine: str, what: str) -> None:
        process = self.processes.pop((machine, what))
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    def holder(self) -> str:
        for machine in MACHINES:
            if status.holds(_in(machine, "ip", "-o", "addr", "show").stdout.splitlines(), VIP):
                return machine
        return ""

    def wait(self, predicate, timeout: float) -> float:
        started = time.monotonic()
        while not predicate():
            if time.monotonic() - started > timeout:
                logs = {p.name: p.read_text()[-1500:] for p in self.root.glob("*.log")}
                raise AssertionError(f"not within {timeout}s; logs: {logs}")
            time.sleep(0.05)
        return time.monotonic() - started

    def answers_through_vip(self, machine: str) -> bool:
        url = f"https://{VIP}:{self.spec.port}/readyz"
        return _in(machine, "curl", "-sfk", "--max-time", "1", url).returncode == 0

    def down_namespaces(self) -> None:
        for machine in MACHINES:
            _run("ip", "netns", "delete", _ns(machine), check=False)

    def down(self) -> None:
        for process in self.processes.values():
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait(timeout=10)
        self.processes.clear()
        self.down_namespaces()


@pytest.fixture
def pair(tmp_path):
    reason = _missing()
    if reason:
        pytest.skip(reason)
    tmp_path.chmod(0o755)  # keepalived runs a track script only from a directory others cannot write
    machines = Pair(tmp_path)
    try:
        machines.up()
        machines.wait(lambda: machines.holder() != "", timeout=15)
        yield machines
    finally:
        machines.down()


def test_one_machine_holds_the_vip_and_haproxy_answers_through_it(pair):
    assert pair.holder() in MACHINES
    assert pair.wait(lambda: pair.answers_through_vip("a") and pair.answers_through_vip("b"), timeout=5) < 5
    stats = _in(pair.holder(), "curl", "-s", f"http://127.0.0.1:{layout.STATS_PORT}{layout.STATS_PATH}").stdout
    health = pair.wait(lambda: all(b.up for b in status.backend_health(stats.splitlines())), timeout=1)
    assert health < 1
    assert [b.name for b in status.backend_health(stats.splitlines())] == ["a", "b"]
    # A machine of the segment sees the holder's link-layer address for the VIP (Check machine's probe).
    other = "b" if pair.holder() == "a" else "a"
    probe = _in(other, "sh", "-c", status.vip_probe(VIP)).stdout.splitlines()
    assert status.neighbour_answers(probe)
    assert not status.neighbour_answers(_in(other, "sh", "-c", status.vip_probe("10.213.49.77")).stdout.splitlines())


def test_the_vip_moves_when_the_holders_api_server_dies(pair):
    holder = pair.holder()
    other = "b" if holder == "a" else "a"
    pair.kill(holder, "api")
    moved = pair.wait(lambda: pair.holder() == other, timeout=5)
    answered = pair.wait(lambda: pair.answers_through_vip(other), timeout=5)
    # 2 failed checks a second apart, then priority 0: the backup takes over at once.
    assert moved < 3.5, moved
    assert answered < 1.0, answered


def test_the_vip_moves_when_the_holders_keepalived_is_killed(pair):
    holder = pair.holder()
    other = "b" if holder == "a" else "a"
    pair.kill(holder, "keepalived")
    # A killed keepalived leaves its address behind, as a machine that lost power loses it.
    _run("ip", "-n", _ns(holder), "addr", "del", f"{VIP}/32", "dev", pair.interface(holder), check=False)
    moved = pair.wait(lambda: pair.holder() == other, timeout=5)
    assert moved < 2.5, moved  # 3 x 0.5 s advertisements missed, plus the skew
    assert pair.wait(lambda: pair.answers_through_vip(other), timeout=5) < 1.0


def test_a_reload_changes_the_backends_while_haproxy_serves(pair):
    holder = pair.holder()
    config = pair.root / holder / "haproxy.cfg"
    spec = layout.Spec(**{**pair.spec.__dict__, "interface": pair.interface(holder)})
    fewer = [b for b in pair.backends if b.name == holder]
    config.write_text(render.haproxy_cfg(spec, cluster="ha9", backends=fewer))
    _in(holder, "haproxy", "-c", "-q", "-f", str(config), check=True)
    # What Debian's unit's ExecReload does: USR2 to the master (haproxy -Ws).
    os.kill(pair.processes[(holder, "haproxy")].pid, signal.SIGUSR2)

    def only_own() -> bool:
        stats = _in(holder, "curl", "-s", f"http://127.0.0.1:{layout.STATS_PORT}{layout.STATS_PATH}").stdout
        return [b.name for b in status.backend_health(stats.splitlines())] == [holder]

    pair.wait(only_own, timeout=5)
    assert pair.answers_through_vip(holder)
