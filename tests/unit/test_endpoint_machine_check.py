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
