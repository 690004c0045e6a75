"""The files Kubeboard writes on a machine for the endpoint: keepalived.conf, its check script and
haproxy.cfg (keepalived 2.2.7 and haproxy 2.6, Debian 12's packages; both accept these files with
``keepalived -t -f`` and ``haproxy -c -f``, checked in tests/unit/test_endpoints.py)."""

from __future__ import annotations

import re
import shlex

from endpoints import layout
from kubeadm import netutil

HEADER = "# Written by Kubeboard for cluster {cluster} (control-plane endpoint: {mode}); changes are overwritten.\n"


def _instance_name(cluster: str) -> str:
    return "kubeboard_" + re.sub(r"[^A-Za-z0-9_]", "_", cluster)


def keepalived_conf(
    spec: layout.Spec,
    *,
    cluster: str,
    node: str,
    address: str,
    priority: int,
    peers: list[str],
) -> str:
    """keepalived.conf for one control plane.

    Every control plane starts as BACKUP with ``nopreempt``: the first to pass its check takes
    the VIP and keeps it until it fails, so a machine that comes back does not take the address
    away again (one interruption per failure, not two). The track script makes a machine whose
    API server or haproxy no longer answers give up the VIP (priority 0 at once, no 1.5 s wait).
    ``peers`` (the other control planes' addresses) are used with ``spec.unicast`` only."""
    lines = [
        HEADER.format(cluster=cluster, mode=spec.mode).rstrip("\n"),
        "global_defs {",
        f"    router_id {node}",
        "    script_user root",
        "    enable_script_security",
        f"    vrrp_version {layout.VRRP_VERSION}",
        "}",
        "",
        "vrrp_script kubeboard_apiserver {",
        f'    script "{layout.CHECK_SCRIPT}"',
        f"    interval {layout.CHECK_INTERVAL}",
        f"    timeout {layout.CHECK_INTERVAL * 2}",
        f"    fall {layout.CHECK_FALL}",
        f"    rise {layout.CHECK_RISE}",
        "}",
        "",
        f"vrrp_instance {_instance_name(cluster)} {{",
        "    state BACKUP",
        "    nopreempt",
        f"    interface {spec.interface}",
        f"    virtual_router_id {spec.router_id}",
        f"    priority {priority}",
        f"    advert_int {layout.ADVERT_INT}",
    ]
    if spec.unicast:
        lines.append(f"    unicast_src_ip {address}")
        lines.append("    unicast_peer {")
        lines += [f"        {peer}" for peer in sorted(peers) if peer != address]
        lines.append("    }")
    lines += [
        "    virtual_ipaddress {",
        f"        {layout.vip_prefix(spec.vip)} dev {spec.interface}",
        "    }",
        "    track_script {",
        "        kubeboard_apiserver",
        "    }",
        "}",
        "",
    ]
    return "\n".join(lines)


def check_script(spec: layout.Spec, *, address: str) -> str:
    """The track script: this machine's API server and this machine's haproxy both answer
    /readyz (anonymous, as kubeadm's RBAC allows). curl is what kubeadm's HA guide uses."""
    api = f"https://{netutil.join_host_port(address, layout.API_SERVER_PORT)}/readyz"
    proxy = f"https://{netutil.join_host_port('127.0.0.1', spec.port)}/readyz"
    return (
        "#!/bin/sh\n"
        "# Written by Kubeboard: keepalived runs this every second; a failure gives up the virtual IP.\n"
        f"curl --silent --fail --insecure --max-time 1 --output /dev/null {shlex.quote(api)} || exit 1\n"
        f"curl --silent --fail --insecure --max-time 1 --output /dev/null {shlex.quote(proxy)} || exit 1\n"
    )


def haproxy_cfg(spec: layout.Spec, *, cluster: str, backends: list[layout.Backend]) -> str:
    """haproxy.cfg: TCP passthrough to every API server (TLS ends at the API server, so client
    certificates keep working), health-checked on /readyz every second.

    VIP mode binds every address (``*:port``): a backup control plane has no VIP to bind yet and
    needs no ``net.ipv4.ip_nonlocal_bind``. Local-proxy mode binds the loopback only.
    ``on-marked-down shutdown-sessions`` closes the connections of an API server marked down, so
    watches reconnect to a live one at once; a change of backends is a ``systemctl reload``
    (Debian's unit runs haproxy -Ws: a new worker takes new connections, the old one keeps the
    live ones until they end)."""
    bind = "127.0.0.1" if spec.mode == layout.LOCAL_PROXY else "*"
    lines = [
        HEADER.format(cluster=cluster, mode=spec.mode).rstrip("\n"),
        "global",
        "    maxconn 4000",
        "",
        "defaults",
        "    mode tcp",
        # The API servers share the proxy's segment: a connect slower than 1 s is a machine gone,
        # and the retry goes to another server at once (redispatch 1: on every retry, not only
        # the last). With 2 s and the default last-retry redispatch, a connection that picked a
        # lost control plane waited up to 4 s before reaching a live one (bench_failover --kill:
        # median 3.68 s).
        "    timeout connect 1s",
        # Watches stay open for minutes; the API server ends them itself (--min-request-timeout).
        "    timeout client 15m",
        "    timeout server 15m",
        "    timeout check 1s",
        "    retries 2",
        "    option redispatch 1",
        "",
        "frontend kube-apiserver",
        f"    bind {bind}:{spec.port}",
        "    default_backend kube-apiserver",
        "",
        "backend kube-apiserver",
        "    balance roundrobin",
        "    option httpchk GET /readyz",
        "    http-check expect status 200",
        "    default-server inter 1s fastinter 500ms fall 2 rise 2 on-marked-down shutdown-sessions check check-ssl verify none",
    ]
    for backend in sorted(backends, key=lambda b: b.name):
        lines.append(f"    server {backend.name} {netutil.join_host_port(backend.address, backend.port)}")
    lines += [
        "",
        "frontend kubeboard-stats",
        "    mode http",
        f"    bind 127.0.0.1:{layout.STATS_PORT}",
        "    stats enable",
        "    stats uri /stats",
        "",
    ]
    return "\n".join(lines)


_SERVER_RE = re.compile(r"^(\s*server:\s*)(\S+)(\s*)$", re.MULTILINE)


def with_server(kubeconfig: str, url: str) -> str:
    """A kubeconfig's text with every ``server:`` pointing at ``url``, nothing else changed (its
    embedded credentials are kept byte for byte). Raises ValueError when it has no server."""
    changed, count = _SERVER_RE.subn(lambda m: f"{m.group(1)}{url}{m.group(3)}", kubeconfig)
    if count == 0:
        raise ValueError("the kubeconfig has no server: line")
    return changed


def servers(kubeconfig: str) -> list[str]:
    return [m.group(2) for m in _SERVER_RE.finditer(kubeconfig)]
