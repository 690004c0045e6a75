"""The control-plane endpoint's pure knowledge (issue 21): the files Kubeboard writes for
keepalived and haproxy, checked by the real keepalived 2.2.7 and haproxy 2.6 (Debian's packages,
which tools/setup-testbed.sh installs), and the checks that refuse a layout that cannot work."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from endpoints import layout, render, status

VIP_SPEC = layout.Spec(mode=layout.VIP, vip="10.213.49.100", interface="eth0", port=8443, router_id=51)
BACKENDS = [layout.Backend("cp2", "10.213.49.12"), layout.Backend("cp1", "10.213.49.11")]


def _an_interface() -> str:
    """keepalived -t refuses an interface the host does not have: use one it has."""
    names = sorted(os.listdir("/sys/class/net"))
    return next((n for n in names if n != "lo"), "lo")


# --- the choice and its checks ---------------------------------------------------------------------


def test_a_valid_vip_choice_has_no_problem():
    assert layout.spec_problems(VIP_SPEC) == []
    assert layout.control_plane_endpoint(VIP_SPEC) == "10.213.49.100:8443"


def test_external_is_todays_behaviour_and_needs_nothing():
    spec = layout.Spec()
    assert spec.mode == layout.EXTERNAL
    assert layout.spec_problems(spec) == []
    assert not spec.installs_anything
    assert layout.cert_sans(spec) == []


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"vip": ""}, "vip", "required"),
        ({"vip": "10.0.0"}, "vip", "not an IP address"),
        ({"vip": "127.0.0.5"}, "vip", "loopback"),
        ({"vip": "224.0.0.18"}, "vip", "multicast"),
        ({"vip": "169.254.1.1"}, "vip", "link-local"),
        ({"interface": ""}, "interface", "required"),
        ({"interface": "eth0:1"}, "interface", "not a Linux interface name"),
        ({"interface": "a-very-long-interface"}, "interface", "1 to 15"),
        ({"interface": "eth 0"}, "interface", "not a Linux interface name"),
        ({"router_id": 0}, "router_id", "between 1 and 255"),
        ({"router_id": 256}, "router_id", "between 1 and 255"),
        ({"port": 6443}, "port", "kube-apiserver"),
        ({"port": 2379}, "port", "etcd client"),
        ({"port": 10250}, "port", "kubelet"),
        ({"port": 8404}, "port", "haproxy statistics"),
        ({"port": 30080}, "port", "NodePort range"),
        ({"port": 0}, "port", "between 1 and 65535"),
        ({"port": 70000}, "port", "between 1 and 65535"),
    ],
)
def test_each_mistake_is_named_on_its_field(changes, field, words):
    spec = layout.Spec(**{**VIP_SPEC.__dict__, **changes})
    problems = layout.spec_problems(spec)
    assert [p.field for p in problems] == [field]
    assert words in problems[0].message


def test_an_unknown_mode_is_refused():
    assert "unknown endpoint" in str(layout.spec_problems(layout.Spec(mode="dns"))[0])


def test_local_proxy_needs_a_port_only_and_the_loopback_in_the_certificate():
    spec = layout.Spec(mode=layout.LOCAL_PROXY, port=8443)
    assert layout.spec_problems(spec) == []
    assert layout.local_proxy_url(spec) == "https://127.0.0.1:8443"
    assert layout.cert_sans(spec) == ["127.0.0.1", "localhost"]
    assert [p.field for p in layout.spec_problems(layout.Spec(mode=layout.LOCAL_PROXY, port=6443))] == ["port"]


def test_router_id_is_stable_per_cluster_and_in_range():
    ids = {layout.default_router_id(f"cluster-{i}") for i in range(300)}
    assert all(1 <= i <= 255 for i in ids)
    assert len(ids) > 150  # spread, not one value
    assert layout.default_router_id("prod") == layout.default_router_id("prod")


def test_priorities_go_down_and_stay_valid():
    assert layout.priority(0) > layout.priority(1) > layout.priority(2)
    assert layout.priority(100) == layout.PRIORITY_MIN


def _facts(**kwargs) -> layout.MachineFacts:
    base = {"interfaces": {"eth0": ["10.213.49.11/24"], "lo": ["127.0.0.1/8"]}}
    return layout.MachineFacts(**{**base, **kwargs})


def test_a_machine_in_the_vip_subnet_with_free_ports_passes():
    assert layout.machine_problems(VIP_SPEC, _facts(), address="10.213.49.11", others=[], control_plane=True) == []


def test_machine_checks_name_interface_subnet_address_use_and_ports():
    def problems(facts, *, address="10.213.49.11", others=(), spec=VIP_SPEC, control_plane=True):
        return [
            str(p)
            for p in layout.machine_problems(
                spec, facts, address=address, others=list(others), control_plane=control_plane
            )
        ]

    assert problems(_facts(interfaces={"ens3": ["10.213.49.11/24"]})) == [
        "the machine has no interface eth0 (it has: ens3)"
    ]
    [outside] = problems(_facts(interfaces={"eth0": ["192.168.1.5/24"]}))
    assert "not in the subnet of eth0 (192.168.1.0/24)" in outside
    assert problems(_facts(), address="10.213.49.100") == ["the virtual IP 10.213.49.100 is a machine's own address"]
    assert problems(_facts(), others=["10.213.49.100"]) == ["the virtual IP 10.213.49.100 is a machine's own address"]
    [taken] = problems(_facts(vip_answers=True))
    assert "already answers on the network" in taken
    # The VIP answering because this very machine holds it (a retry) is no clash.
    assert problems(_facts(vip_answers=True, vip_held_here=True)) == []
    assert problems(_facts(listening={8443: "nginx"})) == [
        "port 8443 (haproxy) is already in use on the machine by nginx"
    ]
    assert problems(_facts(listening={8443: "haproxy", 8404: "haproxy"})) == []
    # A worker of a VIP cluster runs neither keepalived nor haproxy.
    assert problems(_facts(interfaces={}, listening={8443: "nginx"}), control_plane=False) == []
    local = layout.Spec(mode=layout.LOCAL_PROXY, port=8443)
    assert problems(_facts(listening={8404: "python3"}), spec=local, control_plane=False) == [
        "port 8404 (haproxy statistics) is already in use on the machine by python3"
    ]


# --- the files -------------------------------------------------------------------------------------


def test_keepalived_conf_carries_the_choice():
    text = render.keepalived_conf(
        VIP_SPEC, cluster="prod-1", node="cp1", address="10.213.49.11", priority=200, peers=["10.213.49.12"]
    )
    assert "virtual_router_id 51" in text
    assert "priority 200" in text
    assert "advert_int 0.5" in text and "vrrp_version 3" in text
    assert "10.213.49.100/32 dev eth0" in text
    assert "vrrp_instance kubeboard_prod_1 {" in text
    assert "nopreempt" in text and "state BACKUP" in text
    assert f'script "{layout.CHECK_SCRIPT}"' in text
    assert "unicast_peer" not in text  # multicast unless asked


def test_unicast_lists_the_other_control_planes_only():
    spec = layout.Spec(**{**VIP_SPEC.__dict__, "unicast": True})
    text = render.keepalived_conf(
        spec, cluster="c", node="cp1", address="10.213.49.11", priority=200, peers=["10.213.49.12", "10.213.49.11"]
    )
    assert "unicast_src_ip 10.213.49.11" in text
    peers = text.split("unicast_peer {")[1].split("}")[0].split()
    assert peers == ["10.213.49.12"]


def test_check_script_asks_the_local_api_server_and_the_local_haproxy():
    text = render.check_script(VIP_SPEC, address="10.213.49.11")
    assert text.startswith("#!/bin/sh\n")
    assert "https://10.213.49.11:6443/readyz" in text
    assert "https://127.0.0.1:8443/readyz" in text


def test_haproxy_cfg_has_every_backend_and_binds_as_the_mode_wants():
    vip = render.haproxy_cfg(VIP_SPEC, cluster="c", backends=BACKENDS)
    assert "bind *:8443" in vip
    servers = [line.split()[1:] for line in vip.splitlines() if line.strip().startswith("server ")]
    assert servers == [["cp1", "10.213.49.11:6443"], ["cp2", "10.213.49.12:6443"]]
    assert "bind 127.0.0.1:8404" in vip
    local = render.haproxy_cfg(layout.Spec(mode=layout.LOCAL_PROXY, port=7443), cluster="c", backends=BACKENDS)
    assert "bind 127.0.0.1:7443" in local
    ipv6 = render.haproxy_cfg(VIP_SPEC, cluster="c", backends=[layout.Backend("cp1", "fd00::11")])
    assert "server cp1 [fd00::11]:6443" in ipv6


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not installed (tools/setup-testbed.sh)")
@pytest.mark.parametrize("mode", [layout.VIP, layout.LOCAL_PROXY])
def test_haproxy_accepts_the_file(tmp_path, mode):
    spec = layout.Spec(**{**VIP_SPEC.__dict__, "mode": mode})
    path = tmp_path / "haproxy.cfg"
    path.write_text(render.haproxy_cfg(spec, cluster="prod", backends=BACKENDS))
    result = subprocess.run(["haproxy", "-c", "-f", str(path)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(shutil.which("keepalived") is None, reason="keepalived is not installed (tools/setup-testbed.sh)")
@pytest.mark.parametrize("unicast", [False, True])
def test_keepalived_accepts_the_file(tmp_path, unicast):
    interface = _an_interface()
    spec = layout.Spec(**{**VIP_SPEC.__dict__, "interface": interface, "unicast": unicast})
    # keepalived -t refuses a track script it cannot run safely: put ours in a root-only directory.
    scripts = tmp_path / "scripts"
    scripts.mkdir(mode=0o755)
    tmp_path.chmod(0o755)
    script = scripts / "check.sh"
    script.write_text(render.check_script(spec, address="10.213.49.11"))
    script.chmod(0o755)
    text = render.keepalived_conf(
        spec, cluster="prod", node="cp1", address="10.213.49.11", priority=200, peers=["10.213.49.12"]
    ).replace(layout.CHECK_SCRIPT, str(script))
    path = tmp_path / "keepalived.conf"
    path.write_text(text)
    result = subprocess.run(["keepalived", "-t", "-f", str(path), "-l"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "does not support" not in result.stdout + result.stderr  # no setting silently ignored


def test_kubeconfig_server_is_rewritten_and_nothing_else():
    text = (
        "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: QUJD\n"
        "    server: https://10.213.49.11:6443\n  name: kubernetes\nkind: Config\n"
        "users:\n- name: u\n  user:\n    client-certificate: /var/lib/kubelet/pki/kubelet-client-current.pem\n"
    )
    changed = render.with_server(text, "https://127.0.0.1:8443")
    assert render.servers(changed) == ["https://127.0.0.1:8443"]
    assert changed.replace("https://127.0.0.1:8443", "https://10.213.49.11:6443") == text
    with pytest.raises(ValueError):
        render.with_server("kind: Config\n", "https://127.0.0.1:8443")


# --- what machines answer ------------------------------------------------------------------------------

IP_ADDR = [
    "1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever",
    "2: eth0    inet 10.213.49.11/24 brd 10.213.49.255 scope global eth0\\       valid_lft forever",
    "2: eth0    inet 10.213.49.100/32 scope global eth0\\       valid_lft forever preferred_lft forever",
    "5: veth1@if4    inet 10.9.0.1/30 scope global veth1\\       valid_lft forever",
    "2: eth0    inet6 fe80::1/64 scope link \\       valid_lft forever preferred_lft forever",
]


def test_ip_addr_output_gives_interfaces_and_the_vip_holder():
    found = status.interfaces(IP_ADDR)
    assert found["eth0"] == ["10.213.49.11/24", "10.213.49.100/32", "fe80::1/64"]
    assert found["veth1"] == ["10.9.0.1/30"]
    assert status.holds(IP_ADDR, "10.213.49.100")
    assert not status.holds(IP_ADDR[:2], "10.213.49.100")
    assert not status.holds(IP_ADDR, "not-an-ip")


def test_ss_output_gives_ports_and_processes():
    lines = [
        'LISTEN 0      4096         0.0.0.0:8443      0.0.0.0:*    users:(("haproxy",pid=12,fd=7))',
        "LISTEN 0      128        127.0.0.1:8404      0.0.0.0:*",
        'LISTEN 0      4096               *:6443            *:*    users:(("kube-apiserver",pid=3,fd=3))',
    ]
    assert status.listening(lines) == {8443: "haproxy", 8404: "", 6443: "kube-apiserver"}


def test_haproxy_stats_csv_gives_each_backend_health():
    header = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,"
    width = len(header.split(","))

    def row(px, sv, stat, check="", code=""):
        cells = [""] * width
        cells[0], cells[1], cells[17], cells[36], cells[37] = px, sv, stat, check, code
        return ",".join(cells)

    lines = [
        header,
        row("kube-apiserver", "FRONTEND", "OPEN"),
        row("kube-apiserver", "cp1", "UP", "L7OK", "200"),
        row("kube-apiserver", "cp2", "DOWN", "L4CON"),
        row("kube-apiserver", "BACKEND", "UP"),
        row("kubeboard-stats", "FRONTEND", "OPEN"),
    ]
    health = status.backend_health(lines)
    assert [(h.name, h.status, h.check, h.up) for h in health] == [
        ("cp1", "UP", "L7OK 200", True),
        ("cp2", "DOWN", "L4CON", False),
    ]
    assert status.backend_health([]) == []


def test_the_vip_probe_reads_the_neighbour_table():
    """Lines as ip neigh printed them in two network namespaces after the probe."""
    assert status.neighbour_answers(["10.213.49.100 dev ha9va lladdr 36:82:44:1e:d9:bf REACHABLE "])
    assert status.neighbour_answers(["10.213.49.100 dev ha9va lladdr 36:82:44:1e:d9:bf STALE"])
    assert not status.neighbour_answers(["10.213.49.77 dev ha9va INCOMPLETE "])
    assert not status.neighbour_answers(["10.213.49.77 dev ha9va FAILED"])
    assert not status.neighbour_answers([])
    probe = status.vip_probe("10.213.49.100")
    assert probe.endswith("ip neigh show 10.213.49.100") and "http://10.213.49.100:1/" in probe
    assert "http://[fd00::64]:1/" in status.vip_probe("fd00::64")


def test_a_vip_inside_the_pod_or_service_subnet_is_refused():
    subnets = {"pod subnet": "10.244.0.0/16", "service subnet": "10.96.0.0/12"}
    assert layout.vip_overlap_problems("10.213.49.100", subnets) == []
    [inside] = layout.vip_overlap_problems("10.96.0.50", subnets)
    assert (inside.field, str(inside)) == (
        "vip",
        "the virtual IP 10.96.0.50 is inside the service subnet 10.96.0.0/12: pick a machine address",
    )
    assert layout.vip_overlap_problems("10.244.3.3", {"pod subnet": "10.244.0.0/16,fd00::/108"})
    assert layout.vip_overlap_problems("10.244.3.3", {"pod subnet": ""}) == []
