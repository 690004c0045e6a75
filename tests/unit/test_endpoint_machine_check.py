"""Check machine for a cluster whose control-plane endpoint Kubeboard installs (issue 21): the
interface, the VIP (its subnet, already answering) and haproxy's ports, read from the script's
answers (nodes.checks.analyse, without a machine)."""

from __future__ import annotations

from endpoints import layout
from nodes.checks import _SCRIPT, analyse, script_for
from tests.unit.test_node_checks import script_output

VIP = layout.Spec(mode=layout.VIP, vip="10.213.49.100", interface="eth0", port=8443, router_id=51)
ADDR = [
    "@@endpoint-addr Looking at the interfaces",
    "2: eth0    inet 10.213.49.11/24 brd 10.213.49.255 scope global eth0",
]


def _lines(*extra: str, answers: bool = False) -> list[str]:
    lines = script_output(kubelet="v1.37.2", tcp=[])
    end = lines.index("@@end")
    endpoint = [*ADDR, "@@endpoint-ss", *extra]
    # What ip neigh printed on a test-bed machine after the probe, for a held and a free address.
    held = "10.213.49.100 dev eth0 lladdr 36:82:44:1e:d9:bf REACHABLE"
    endpoint += ["@@endpoint-neigh Asking", held if answers else "10.213.49.100 dev eth0 INCOMPLETE"]
    return lines[:end] + endpoint + lines[end:]


def _report(lines, *, spec=VIP, role="control-plane", joined=False, others=()):
    return analyse(
        lines,
        role=role,
        kubernetes_version="v1.37.2",
        joined=joined,
        endpoint=spec,
        address="10.213.49.11",
        others=others,
    )


def test_a_fit_machine_has_no_endpoint_problem():
    report = _report(_lines())
    assert report["endpoint"]["problems"] == []
    assert report["endpoint"]["interfaces"] == ["eth0"]
    assert not any("endpoint" in p for p in report["problems"])


def test_vip_in_use_missing_interface_and_taken_port_are_problems():
    taken = 'LISTEN 0 511 0.0.0.0:8443 0.0.0.0:* users:(("nginx",pid=9,fd=6))'
    report = _report(_lines(taken, answers=True))
    assert (
        "control-plane endpoint: 10.213.49.100 already answers on the network: another machine or router uses it"
        in report["problems"]
    )
    assert "control-plane endpoint: port 8443 (haproxy) is already in use on the machine by nginx" in report["problems"]
    other = _report(_lines(), spec=layout.Spec(**{**VIP.__dict__, "interface": "ens3"}))
    assert "control-plane endpoint: the machine has no interface ens3 (it has: eth0)" in other["problems"]
    outside = _report(_lines(), spec=layout.Spec(**{**VIP.__dict__, "vip": "192.168.7.7"}))
    assert any("is not in the subnet of eth0 (10.213.49.0/24)" in p for p in outside["problems"])
    own = _report(_lines(), others=("10.213.49.100",))
    assert "control-plane endpoint: the virtual IP 10.213.49.100 is a machine's own address" in own["problems"]


def test_a_joined_machine_is_only_warned_and_an_external_endpoint_adds_nothing():
    taken = 'LISTEN 0 511 0.0.0.0:8443 0.0.0.0:* users:(("nginx",pid=9,fd=6))'
    report = _report(_lines(taken), joined=True)
    assert any(w.startswith("control-plane endpoint: port 8443") for w in report["warnings"])
    assert not any("endpoint" in p for p in report["problems"])
    external = analyse(_lines(), role="control-plane", kubernetes_version="v1.37.2", endpoint=layout.Spec())
    assert "endpoint" not in external


def test_the_script_reads_the_endpoint_only_when_needed_and_probes_only_a_valid_vip():
    assert script_for(None, probe_vip=True) == _SCRIPT
    assert script_for(layout.Spec(), probe_vip=True) == _SCRIPT
    vip = script_for(VIP, probe_vip=True)
    assert "ip -o addr show" in vip and "ss -Htlnp" in vip and "ip neigh show 10.213.49.100" in vip
    assert vip.rstrip().endswith('echo "@@end"')
    assert "neigh" not in script_for(VIP, probe_vip=False)
    hostile = layout.Spec(**{**VIP.__dict__, "vip": "1.2.3.4; rm -rf /"})
    assert "rm -rf" not in script_for(hostile, probe_vip=True)


# --- an external load balancer: does it answer from the machine (real curl, real sockets) ---------


def _probe_output(host: str, port: int) -> list[str]:
    """Run the script's reach probe with the real bash and curl, as a machine would."""
    import subprocess

    from endpoints import status

    line = status.reach_probe(host, port)
    proc = subprocess.run(["bash", "-c", line], capture_output=True, text=True, timeout=30)
    return ["@@endpoint-reach Asking", *(proc.stdout + proc.stderr).splitlines()]


def _external_report(reach_lines: list[str], *, endpoint: str, cluster_runs: bool = False, joined: bool = False):
    from nodes.checks import external_endpoint

    lines = script_output(kubelet="v1.37.2", tcp=[])
    end = lines.index("@@end")
    return analyse(
        lines[:end] + reach_lines + lines[end:],
        role="control-plane",
        kubernetes_version="v1.37.2",
        joined=joined,
        endpoint=layout.Spec(),
        external=external_endpoint(layout.Spec(), endpoint),
        cluster_runs=cluster_runs,
    )


def test_an_external_endpoint_that_refuses_before_init_is_expected_and_after_init_a_warning():
    import socket

    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]  # closed again below: nothing listens there
    reach = _probe_output("127.0.0.1", port)
    report = _external_report(reach, endpoint=f"127.0.0.1:{port}")
    assert report["endpoint"]["reach"] == "refused"
    assert not [m for m in report["problems"] + report["warnings"] if "endpoint" in m]
    assert "expected before init" in report["endpoint"]["note"]
    running = _external_report(reach, endpoint=f"127.0.0.1:{port}", cluster_runs=True, joined=True)
    assert any("no API server answers" in w for w in running["warnings"])


def test_an_external_endpoint_that_accepts_and_hangs_is_a_problem_naming_the_timeout():
    import socket

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel accepts the connection; nothing ever answers the TLS hello
        port = silent.getsockname()[1]
        report = _external_report(_probe_output("127.0.0.1", port), endpoint=f"127.0.0.1:{port}")
    assert report["endpoint"]["reach"] == "timeout"
    assert any(
        p.startswith(f"control-plane endpoint: 127.0.0.1:{port} from this machine: no answer within 5 s")
        for p in report["problems"]
    )


def test_an_external_endpoint_whose_name_does_not_resolve_is_a_problem():
    report = _external_report(_probe_output("lb.kubeboard.invalid", 6443), endpoint="lb.kubeboard.invalid")
    assert report["endpoint"] == {
        "mode": layout.EXTERNAL,
        "address": "lb.kubeboard.invalid:6443",
        "reach": "unresolved",
        "note": "",
    }
    assert any("does not resolve" in p for p in report["problems"])


def test_an_external_endpoint_that_accepts_tcp_without_tls_is_expected_before_init():
    import socket
    import threading

    with socket.socket() as closing:
        closing.bind(("127.0.0.1", 0))
        closing.listen(8)
        port = closing.getsockname()[1]

        def close_each() -> None:  # an L4 load balancer with no backend up: accept, then close
            for _ in range(3):
                try:
                    conn, _ = closing.accept()
                except OSError:
                    return
                conn.close()

        threading.Thread(target=close_each, daemon=True).start()
        report = _external_report(_probe_output("127.0.0.1", port), endpoint=f"127.0.0.1:{port}")
    assert report["endpoint"]["reach"] == "tcp-only"
    assert report["endpoint"]["note"].startswith("nothing answers behind it yet (connection accepted, no TLS)")
    assert not [m for m in report["problems"] + report["warnings"] if "endpoint" in m]


def test_the_script_asks_an_external_endpoint_quoted():
    from nodes.checks import external_endpoint

    assert external_endpoint(VIP, "10.213.49.100:8443") is None
    assert external_endpoint(layout.Spec(), "lb.example.com") == ("lb.example.com", 6443)
    assert external_endpoint(layout.Spec(), "bad host;rm -rf /") is None
    assert external_endpoint(layout.Spec(), "lb.example.com:6443", role="worker") is None
    script = script_for(layout.Spec(), probe_vip=True, external=("lb.example.com", 8443))
    assert " https://lb.example.com:8443/livez " in script and script.rstrip().endswith('echo "@@end"')
