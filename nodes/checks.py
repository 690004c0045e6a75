"""Check machine: what a machine offers kubeadm, found with read-only commands.

One SSH connection runs one script that only reads (``/etc/os-release``, ``uname``, the
``--version`` of kubeadm/kubelet/kubectl, a listing of ``/etc/kubernetes``, the kernel's table
of listening TCP sockets). Nothing on the machine is written. The report is plain JSON stored
on the node; ``problems`` are what would make kubeadm init/join fail, ``warnings`` are worth
knowing.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from django.utils import timezone

from endpoints import layout as endpoint_layout
from endpoints import status as endpoint_status
from kubeadm import versions
from kubeadm.components import (
    KUBERNETES_DIR,
    NODEPORT_RANGE,
    PREFLIGHT_PORTS_CONTROL_PLANE,
    PREFLIGHT_PORTS_WORKER,
)
from kubeadm.errors import UnsupportedVersionError
from kubeadm.netutil import parse_host_port
from nodes.connect import connect
from remote import ssh

MAX_LISTED_FILES = 100
SCRIPT_TIMEOUT = 60

BINARIES = ("kubeadm", "kubelet", "kubectl")

# Sections are announced by a marker line, so the progress shown follows the script as it runs.
_SCRIPT = r"""
echo "@@os Reading the operating system"; cat /etc/os-release 2>/dev/null
echo "@@kernel"; uname -r
echo "@@arch"; uname -m
echo "@@path Looking for kubeadm, kubelet and kubectl"; echo "$PATH"
for b in kubeadm kubelet kubectl; do
  echo "@@which $b"; command -v "$b" 2>/dev/null
done
echo "@@version kubeadm"; command -v kubeadm >/dev/null 2>&1 && kubeadm version -o short 2>&1
echo "@@version kubelet"; command -v kubelet >/dev/null 2>&1 && kubelet --version 2>&1
echo "@@version kubectl"; command -v kubectl >/dev/null 2>&1 && kubectl version --client 2>&1
echo "@@etc Listing KUBERNETES_DIR"
if [ -d KUBERNETES_DIR ]; then
  echo "exists"
  find KUBERNETES_DIR -mindepth 1 \( -type f -o -type l \) 2>/dev/null | sort | head -n MAX_FILES
  echo "@@etc-count"; find KUBERNETES_DIR -mindepth 1 \( -type f -o -type l \) 2>/dev/null | wc -l
fi
echo "@@tcp Checking the ports kubeadm needs"; cat /proc/net/tcp /proc/net/tcp6 2>/dev/null
echo "@@end"
""".replace("MAX_FILES", str(MAX_LISTED_FILES)).replace("KUBERNETES_DIR", KUBERNETES_DIR)

# Added for a cluster whose endpoint Kubeboard installs (issue 21): the interfaces, whether the
# VIP already answers (before the cluster runs: then it is someone else's), and who listens where.
_ENDPOINT_SCRIPT = r"""
echo "@@endpoint-addr Looking at the interfaces for the control-plane endpoint"; ip -o addr show 2>/dev/null
echo "@@endpoint-ss"; ss -Htlnp 2>/dev/null
"""
_VIP_PROBE = r"""
echo "@@endpoint-neigh Asking the network whether the virtual IP already answers"; PROBE
"""


_REACH_PROBE = r"""
echo "@@endpoint-reach Asking whether the control-plane endpoint answers from here"; PROBE
"""


def external_endpoint(
    spec: endpoint_layout.Spec | None, control_plane_endpoint: str, *, role: str = "control-plane"
) -> tuple[str, int] | None:
    """(host, port) of an external load balancer to ask, or None (another mode, no valid value, or
    a worker: init needs the endpoint from the control planes before wait-control-plane, and a
    worker's join fails naming it anyway)."""
    if role != "control-plane" or spec is None or spec.mode != endpoint_layout.EXTERNAL:
        return None
    if not control_plane_endpoint:
        return None
    try:
        host, port = parse_host_port(control_plane_endpoint)
    except ValueError:
        return None
    return host, int(port or endpoint_layout.API_SERVER_PORT)


def script_for(spec: endpoint_layout.Spec | None, *, probe_vip: bool, external: tuple[str, int] | None = None) -> str:
    """The read-only script, with the endpoint's reads when the cluster's endpoint needs them."""
    if external is not None:
        probe = _REACH_PROBE.replace("PROBE", endpoint_status.reach_probe(*external))
        return _SCRIPT.replace('echo "@@end"', probe.strip() + '\necho "@@end"')
    if spec is None or not spec.installs_anything:
        return _SCRIPT
    extra = _ENDPOINT_SCRIPT
    if probe_vip and spec.mode == endpoint_layout.VIP and endpoint_layout.vip_problems(spec.vip) == []:
        extra += _VIP_PROBE.replace("PROBE", endpoint_status.vip_probe(spec.vip))
    return _SCRIPT.replace('echo "@@end"', extra.strip() + '\necho "@@end"')


_VERSION = re.compile(r"v?\d+\.\d+\.\d+[0-9A-Za-z.+-]*")


def _sections(lines: list[str]) -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    current = None
    for line in lines:
        if line.startswith("@@"):
            current = line[2:].split(" ", 1)[0] if not line.startswith(("@@which", "@@version")) else line[2:]
            sections[current] = []
        elif current is not None:
            sections[current].append(line)
    return sections


def _os_release(lines: list[str]) -> dict:
    values = {}
    for line in lines:
        key, _, value = line.partition("=")
        if key in {"PRETTY_NAME", "ID", "VERSION_ID", "NAME"}:
            values[key.lower()] = value.strip().strip('"')
    return values


def listening_ports(lines: list[str]) -> set[int]:
    """TCP ports in LISTEN state from /proc/net/tcp and /proc/net/tcp6."""
    ports = set()
    for line in lines:
        fields = line.split()
        if len(fields) < 4 or fields[0] == "sl" or fields[3] != "0A":
            continue
        _, _, port = fields[1].rpartition(":")
        try:
            ports.add(int(port, 16))
        except ValueError:
            continue
    return ports


def _version_in(lines: list[str]) -> str | None:
    for line in lines:
        if line.startswith("Kustomize"):
            continue
        match = _VERSION.search(line)
        if match:
            found = match.group(0)
            return found if found.startswith("v") else "v" + found
    return None


def _skew(rule: Callable[[str, str], str | None], found: str, target: str) -> str | None:
    try:
        return rule(found, target)
    except UnsupportedVersionError as exc:
        return str(exc)


def analyse(
    lines: list[str],
    *,
    role: str,
    kubernetes_version: str,
    joined: bool = False,
    ignored=(),
    endpoint: endpoint_layout.Spec | None = None,
    address: str = "",
    others: tuple[str, ...] = (),
    external: tuple[str, int] | None = None,
    cluster_runs: bool = False,
) -> dict:
    """Turn the script's output into the report (pure: unit-testable without a machine)."""
    sections = _sections(lines)
    ignored = {name.lower() for name in ignored}
    problems: list[str] = []
    warnings: list[str] = []
    report: dict = {
        "os": _os_release(sections.get("os", [])),
        "kernel": (sections.get("kernel") or [""])[0],
        "architecture": (sections.get("arch") or [""])[0],
        "path": (sections.get("path") or [""])[0],
        "kubernetes_version": kubernetes_version,
        "binaries": {},
    }
    for name in BINARIES:
        location = next((line for line in sections.get(f"which {name}", []) if line.strip()), "")
        version = _version_in(sections.get(f"version {name}", [])) if location else None
        report["binaries"][name] = {"path": location, "version": version, "skew": None}
    kubeadm = report["binaries"]["kubeadm"]
    if not kubeadm["path"]:
        problems.append(f"kubeadm not found on the machine (PATH searched: {report['path'] or 'empty'})")
    elif not kubeadm["version"]:
        problems.append(f"{kubeadm['path']} did not report a version (`kubeadm version -o short`)")
    else:
        kubeadm["skew"] = _skew(versions.deployable, kubeadm["version"], kubernetes_version)
        if kubeadm["skew"]:
            problems.append(kubeadm["skew"])
    kubelet = report["binaries"]["kubelet"]
    if not kubelet["path"]:
        message = "kubelet not found on the machine; kubeadm's preflight check KubeletVersion fails without it"
        (warnings if {"kubeletversion", "all"} & ignored else problems).append(message)
    elif kubelet["version"]:
        kubelet["skew"] = _skew(versions.kubelet_skew, kubelet["version"], kubernetes_version)
        if kubelet["skew"]:
            problems.append(kubelet["skew"])
    kubectl = report["binaries"]["kubectl"]
    if kubectl["version"]:
        kubectl["skew"] = _skew(versions.kubectl_skew, kubectl["version"], kubernetes_version)
        if kubectl["skew"]:
            warnings.append(kubectl["skew"])

    etc = sections.get("etc")
    files = [line for line in (etc or [])[1:] if line.startswith("/")]
    count_lines = sections.get("etc-count") or ["0"]
    count = int(count_lines[0]) if count_lines[0].strip().isdigit() else len(files)
    report["etc_kubernetes"] = {"exists": bool(etc), "files": files, "count": count, "populated": count > 0}
    if count and not joined:
        shown = ", ".join(files[:5]) + (f" and {count - 5} more" if count > 5 else "")
        problems.append(
            f"{KUBERNETES_DIR} is not empty ({count} files: {shown}); kubeadm init/join refuses such a machine — "
            "reset it first (kubeadm reset) if it is no longer part of a cluster"
        )

    needed = PREFLIGHT_PORTS_CONTROL_PLANE if role == "control-plane" else PREFLIGHT_PORTS_WORKER
    listening = listening_ports(sections.get("tcp", []))
    in_use = sorted(port for port in needed if port in listening)
    nodeport = sorted(port for port in listening if NODEPORT_RANGE[0] <= port <= NODEPORT_RANGE[1])
    report["ports"] = {"checked": sorted(needed), "in_use": in_use, "nodeport_range_in_use": nodeport}
    for port in in_use:
        message = f"port {port} ({needed[port]}) is already in use on the machine"
        (warnings if joined else problems).append(message)
    if nodeport:
        warnings.append(
            f"ports in the NodePort range {NODEPORT_RANGE[0]}-{NODEPORT_RANGE[1]} are in use: "
            + ", ".join(map(str, nodeport[:10]))
        )
    if endpoint is not None and endpoint.installs_anything:
        found = _endpoint_report(report, sections, endpoint, role=role, address=address, others=others)
        # A machine that runs the cluster already is told, not refused (its own haproxy listens).
        (warnings if joined else problems).extend(f"control-plane endpoint: {message}" for message in found)
    if external is not None:
        found = endpoint_status.reach(sections.get("endpoint-reach", []))
        endpoint_text = f"{external[0]}:{external[1]}"
        problems_found, warnings_found, note = endpoint_status.reach_findings(
            found, endpoint_text, cluster_runs=cluster_runs
        )
        report["endpoint"] = {
            "mode": endpoint_layout.EXTERNAL,
            "address": endpoint_text,
            "reach": found.state,
            "note": note,
        }
        # A machine already in the cluster is told, not refused, as above.
        (warnings if joined else problems).extend(f"control-plane endpoint: {m}" for m in problems_found)
        warnings.extend(f"control-plane endpoint: {m}" for m in warnings_found)
    report["complete"] = "end" in sections
    if not report["complete"]:
        problems.append("the check script stopped early; the report is incomplete")
    report["problems"] = problems
    report["warnings"] = warnings
    return report


def _endpoint_report(report: dict, sections: dict, spec, *, role: str, address: str, others) -> list[str]:
    """The endpoint's part: the interface, the VIP (its subnet, not in use) and haproxy's ports;
    returns what is wrong."""
    addr_lines = sections.get("endpoint-addr", [])
    listening = endpoint_status.listening(sections.get("endpoint-ss", []))
    for port in listening_ports(sections.get("tcp", [])):
        listening.setdefault(port, "")
    facts = endpoint_layout.MachineFacts(
        interfaces=endpoint_status.interfaces(addr_lines),
        listening=listening,
        vip_answers=endpoint_status.neighbour_answers(sections.get("endpoint-neigh", [])),
        vip_held_here=bool(spec.vip) and endpoint_status.holds(addr_lines, spec.vip),
    )
    found = endpoint_layout.machine_problems(
        spec, facts, address=address, others=list(others), control_plane=role == "control-plane"
    )
    report["endpoint"] = {
        "mode": spec.mode,
        "interfaces": sorted(facts.interfaces),
        "vip_answers": facts.vip_answers,
        "vip_held_here": facts.vip_held_here,
        "problems": [problem.message for problem in found],
    }
    return report["endpoint"]["problems"]


def check_machine(node, *, progress: Callable[[str], None] = lambda step: None) -> dict:
    """Connect, run the read-only script, and return the report (never raises for SSH trouble)."""
    started = time.monotonic()
    report: dict = {"reachable": False, "login": False, "problems": [], "warnings": [], "error": "", "hint": ""}
    progress(f"Connecting to {node.destination}")
    lines: list[str] = []
    cluster = node.cluster
    spec = cluster.endpoint_spec
    # Before the cluster runs, a VIP that answers is someone else's; afterwards it is the cluster's own.
    probe_vip = cluster.status not in (cluster.Status.RUNNING, cluster.Status.INITIALIZING, cluster.Status.INIT_STOPPED)
    external = external_endpoint(spec, cluster.control_plane_endpoint, role=node.role)

    def on_line(line: str) -> None:
        lines.append(line)
        if line.startswith("@@") and " " in line and not line.startswith(("@@which", "@@version")):
            progress(line.split(" ", 1)[1])

    try:
        with connect(node) as conn:
            report["reachable"] = report["login"] = True
            result = conn.run(
                script_for(spec, probe_vip=probe_vip, external=external), on_line=on_line, timeout=SCRIPT_TIMEOUT
            )
            report["exit_status"] = result.exit_status
    except (ssh.Unreachable, ssh.GuardRefused) as exc:
        report.update(error=str(exc), hint=exc.hint)
    except (ssh.HostKeyUnknown, ssh.HostKeyChanged, ssh.AuthenticationFailed) as exc:
        report.update(reachable=True, error=str(exc), hint=exc.hint)
        # Stopped before logging in on purpose: the machine answered, a person has to decide.
        if isinstance(exc, ssh.HostKeyUnknown):
            report.update(offered_fingerprint=exc.fingerprint, host_key="offered")
        elif isinstance(exc, ssh.HostKeyChanged):
            report["host_key"] = "changed"
    except ssh.SSHError as exc:
        report.update(error=str(exc), hint=exc.hint)
    if report["login"] and not report["error"]:
        report.update(
            analyse(
                lines,
                role=node.role,
                kubernetes_version=node.cluster.kubernetes_version,
                joined=node.is_joined,
                ignored=node.ignore_preflight_errors or (),
                endpoint=spec,
                address=node.address,
                others=tuple(cluster.nodes.exclude(pk=node.pk).values_list("address", flat=True)),
                external=external,
                cluster_runs=cluster.status == cluster.Status.RUNNING,
            )
        )
    if report["error"]:
        report["problems"] = [report["error"]]
    report["duration"] = round(time.monotonic() - started, 3)
    report["checked_at"] = timezone.now().isoformat(timespec="seconds")
    progress("Done" if not report["error"] else f"Failed: {report['error']}")
    return report
