"""Reading what machines answer about the endpoint: addresses (``ip -o addr show``), listening
ports (``ss -Htlnp``) and haproxy's statistics CSV."""

from __future__ import annotations

import csv
import ipaddress
import re
import shlex
from dataclasses import dataclass

from kubeadm.components import API_SERVER_PORT

# "2: eth0    inet 10.0.0.5/24 brd 10.0.0.255 scope global eth0\       valid_lft forever ..."
_ADDR_RE = re.compile(r"^\d+:\s+(?P<name>[^\s@]+)(?:@\S+)?\s+inet6?\s+(?P<cidr>\S+)")
# ss -Htlnp: "LISTEN 0 4096 *:8443 *:* users:(("haproxy",pid=12,fd=7))"
_SS_RE = re.compile(r"^\S+\s+\d+\s+\d+\s+(?P<local>\S+)\s+\S+(?:\s+users:\(\(\"(?P<proc>[^\"]+)\")?")


def interfaces(lines: list[str]) -> dict[str, list[str]]:
    """Interface name -> its addresses with prefix, from ``ip -o addr show``."""
    found: dict[str, list[str]] = {}
    for line in lines:
        match = _ADDR_RE.match(line.strip())
        if match:
            found.setdefault(match["name"], []).append(match["cidr"])
    return found


def holds(lines: list[str], vip: str) -> bool:
    """Whether ``ip -o addr show`` lists ``vip`` among the machine's addresses."""
    try:
        wanted = ipaddress.ip_address(vip)
    except ValueError:
        return False
    for cidrs in interfaces(lines).values():
        for cidr in cidrs:
            try:
                if ipaddress.ip_interface(cidr).ip == wanted:
                    return True
            except ValueError:
                continue
    return False


def listening(lines: list[str]) -> dict[int, str]:
    """TCP port -> the process listening on it ("" when ss may not say), from ``ss -Htlnp``."""
    found: dict[int, str] = {}
    for line in lines:
        match = _SS_RE.match(line.strip())
        if not match:
            continue
        port = match["local"].rsplit(":", 1)[-1]
        if port.isdigit():
            found.setdefault(int(port), match["proc"] or "")
    return found


def vip_probe(vip: str) -> str:
    """A shell line that makes the machine ask the segment for ``vip`` (ARP, or neighbour discovery)
    and prints the neighbour entry: an address someone holds gets a link-layer address, one nobody
    holds stays INCOMPLETE/FAILED. Needs only ip and curl (ping is missing on minimal systems, and
    an ICMP filter would hide a holder); ``vip`` must be a checked IP address (it is not quoted)."""
    host = f"[{vip}]" if ":" in vip else vip
    return (
        f"ping -c 1 -W 1 {vip} >/dev/null 2>&1; curl -s --max-time 1 -o /dev/null http://{host}:1/ >/dev/null 2>&1; "
        f"ip neigh show {vip}"
    )


REACH_SECONDS = 5
# curl's exit statuses that say what stands at the other end.
_CURL_UNRESOLVED = 6
_CURL_NO_CONNECTION = 7
_CURL_TIMEOUT = 28
_CURL_TCP_ONLY = (35, 52, 56)  # TLS handshake failed, empty reply, connection reset: TCP was accepted


def reach_probe(host: str, port: int) -> str:
    """A read-only shell line asking from the machine whether an external load balancer at
    ``host:port`` answers: curl to the API server's /livez (TLS unverified: only reachability is
    asked), printing the HTTP status and curl's exit status."""
    bracketed = f"[{host}]" if ":" in host else host
    url = f"https://{bracketed}:{port}/livez"
    return (
        f"curl -sSk --max-time {REACH_SECONDS} -o /dev/null -w 'http=%{{http_code}}\\n' {shlex.quote(url)} 2>&1; "
        'echo "exit=$?"'
    )


@dataclass(frozen=True)
class Reach:
    state: str  # answers, tcp-only, refused, timeout, unresolved, unknown
    detail: str  # curl's own words, when it said any


def reach(lines: list[str]) -> Reach:
    """What ``reach_probe`` found."""
    status: int | None = None
    said = ""
    for line in lines:
        line = line.strip()
        if line.startswith("exit=") and line[5:].isdigit():
            status = int(line[5:])
        elif line.startswith("curl: "):
            said = line[:300]
    if status == 0:
        return Reach("answers", said)
    if status in _CURL_TCP_ONLY:
        return Reach("tcp-only", said)
    if status == _CURL_NO_CONNECTION:
        return Reach("refused", said)
    if status == _CURL_TIMEOUT:
        return Reach("timeout", said)
    if status == _CURL_UNRESOLVED:
        return Reach("unresolved", said)
    return Reach("unknown", said or (f"curl exit status {status}" if status is not None else "no answer"))


def reach_findings(found: Reach, endpoint: str, *, cluster_runs: bool) -> tuple[list[str], list[str], str]:
    """(problems, warnings, note) about an external endpoint as the machine reached it. Before init
    nothing may listen behind it yet: kubeadm's HA guide says a refused connection is expected then,
    and that a timeout means the load balancer cannot reach (or be reached from) the machine."""
    where = f"{endpoint} from this machine"
    detail = f" ({found.detail})" if found.detail else ""
    if found.state == "answers":
        return [], [], "an API server answers through it"
    if found.state == "timeout":
        return (
            [
                f"{where}: no answer within {REACH_SECONDS} s{detail}; a load balancer that drops the packets, a "
                "firewall or a wrong address: kubeadm and the kubelets will not reach the API server through it"
            ],
            [],
            "",
        )
    if found.state == "unresolved":
        return [f"{where}: the name does not resolve on this machine{detail}; fix DNS or /etc/hosts there"], [], ""
    if cluster_runs:
        return [], [f"{where}: no API server answers ({found.state}{detail}) although the cluster runs"], ""
    if found.state in ("refused", "tcp-only"):
        how = "connection accepted, no TLS" if found.state == "tcp-only" else "connection refused"
        return (
            [],
            [],
            f"nothing answers behind it yet ({how}): expected before init, when no API server runs; after init "
            f"the load balancer must forward to port {API_SERVER_PORT} of every control plane",
        )
    return [], [f"{where}: could not tell whether it answers{detail}"], ""


def neighbour_answers(lines: list[str]) -> bool:
    """Whether ``ip neigh show VIP`` (after ``vip_probe``) names a link-layer address that answered."""
    for line in lines:
        words = line.split()
        if "lladdr" in words and not {"FAILED", "INCOMPLETE"} & set(words):
            return True
    return False


@dataclass(frozen=True)
class BackendHealth:
    name: str
    status: str  # haproxy's: UP, DOWN, "UP 1/2", MAINT, no check
    check: str  # the last check's status and its detail, e.g. "L7OK 200"

    @property
    def up(self) -> bool:
        return self.status.startswith("UP")


def backend_health(lines: list[str], backend: str = "kube-apiserver") -> list[BackendHealth]:
    """Each server of ``backend`` from haproxy's statistics CSV (``/stats;csv``)."""
    if not lines:
        return []
    header = lines[0].lstrip("# ").split(",")
    rows = []
    for row in csv.DictReader(lines[1:], fieldnames=header):
        if row.get("pxname") != backend or row.get("svname") in ("FRONTEND", "BACKEND", None):
            continue
        check = " ".join(part for part in (row.get("check_status") or "", row.get("check_code") or "") if part)
        rows.append(BackendHealth(row["svname"], row.get("status") or "", check))
    return rows
