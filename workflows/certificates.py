"""Certificates: inventory, renewal, and an added API server SAN.

Inventory (operation ``certificate-inventory``, read-only): on every control plane one command
prints kubeadm's own ``kubeadm certs check-expiration`` table and every certificate under
/etc/kubernetes/pki plus the client certificate of each kubeconfig (never a key). Each row
keeps expiry, issuer, SANs and serial, how it relates to the CAs Kubeboard holds, and *drift*:
kubeadm's view disagreeing with the file, a certificate Kubeboard's CAs did not sign, an API
server certificate without a SAN the cluster's configuration asks for. Warnings come at 30, 7
and 1 days before expiry.

Renewal (operation ``renew-certificates``, control planes one at a time): ``kubeadm certs renew``
for the chosen certificates (or ``all``), then the static Pods that use them are restarted the
way operators do it — the manifest is moved out of /etc/kubernetes/manifests until the kubelet
has stopped the Pod, then moved back — and Kubeboard checks over TLS that the API server now
serves the new certificate (its serial). Adding a SAN to the API server certificate goes
through the same operation: the SAN joins the cluster's ClusterConfiguration (Kubeboard's copy
and the kubeadm-config ConfigMap), the certificate is issued again by ``kubeadm init phase
certs apiserver`` (``certs renew`` would copy the old SANs), and kube-apiserver restarts.
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
from dataclasses import dataclass

from cryptography import x509
from django.db import transaction
from django.utils import timezone

import kube
from audit.services import refusals_of
from clusters import inventory, preconditions
from core.network import check_destination
from core.waiting import WaitCancelled, WaitTimedOut, wait_until
from kubeadm import certs as kubeadm_certs
from kubeadm import config as kubeadm_config
from kubeadm import netutil, nodeconfig, pki, readback, workflow
from kubeadm.components import (
    API_SERVER_PORT,
    COMPONENT_OF_CERTIFICATE,
    CONTROL_PLANE_COMPONENTS,
    KUBE_APISERVER,
    PORT_OF,
    TMP_DIR,
    manifest_name,
    manifest_path,
)
from kubeadm.config import CLUSTER_CONFIGURATION_KEY, CONFIG_MAP_NAMESPACE, KUBEADM_CONFIG_MAP
from nodes.connect import phase_connection
from nodes.models import Node
from operations.models import Operation
from operations.registry import OperationKind, PhaseSpec, PlannedPhase
from operations.runner import OperationCancelled, PhaseContext, PhaseError
from remote import commands
from workflows import backup
from workflows.models import CertificateReport, RenewalPolicy

INVENTORY_KIND = "certificate-inventory"
RENEW_KIND = "renew-certificates"
WARNING_DAYS = (30, 7, 1)
PKI_DIR = readback.PKI_DIR

RESTART_TIMEOUT = 180


def expected_apiserver_sans(cluster) -> list[str]:
    """SANs the cluster's configuration asks the API server certificate to carry: the
    control-plane endpoint's host and every ``apiServer.certSANs`` entry."""
    from clusters.kubeadm_config import configuration_for

    config = configuration_for(cluster)
    wanted: list[str] = []
    try:
        host, _ = netutil.parse_host_port(cluster.control_plane_endpoint)
        wanted.append(host)
    except ValueError:
        pass
    wanted += list(config.api_server.cert_sans or [])
    return [w for i, w in enumerate(wanted) if w and w not in wanted[:i]]


def _has_san(cert_dns: list[str], cert_ips: list[str], san: str) -> bool:
    try:
        return str(ipaddress.ip_address(san)) in cert_ips
    except ValueError:
        return san.lower() in [d.lower() for d in cert_dns]


def warning_level(days_left: float | None) -> str:
    """ "expired", "1", "7", "30" (days) or "" — the warning a certificate deserves."""
    if days_left is None:
        return ""
    if days_left < 0:
        return "expired"
    for level in sorted(WARNING_DAYS):
        if days_left < level:
            return str(level)
    return ""


def build_rows(lines: list[str], cluster, now) -> tuple[list[dict], str, str]:
    """(rows, kubeadm's check-expiration text, error) from the read command's output."""
    held = inventory.custody_certificates(cluster)
    rows: list[dict] = []
    check_text = ""
    for kind, path, text in readback.parse_sections(lines):
        if kind == "check-expiration":
            check_text = text
        elif kind in ("cert", "kubeconfig") and text.strip():
            rows.append(readback.certificate_row(kind, path, text, held, now))
    error = ""
    kubeadm_view: dict[str, datetime.datetime | None] = {}
    try:
        table, cas = kubeadm_certs.parse_check_expiration(check_text)
        for entry in table + cas:
            kubeadm_view[entry.name] = entry.expires
    except Exception as exc:  # kubeadm missing or its output changed: shown, not fatal
        error = f"kubeadm certs check-expiration could not be read: {exc}"
    wanted = expected_apiserver_sans(cluster)
    for row in rows:
        if "not_after" not in row:
            continue
        row["warning"] = warning_level(row["days_left"]) if row["kind"] != "ca" or row["days_left"] < 30 else ""
        if row["name"] in kubeadm_view:
            expires = kubeadm_view[row["name"]]
            row["kubeadm_expires"] = expires.isoformat() if expires else None
            file_minute = datetime.datetime.fromisoformat(row["not_after"]).replace(second=0, microsecond=0)
            if expires is None:
                row["drift"].append(f"kubeadm reports {row['name']} as missing")
            elif expires != file_minute:
                row["drift"].append(
                    f"kubeadm reports {row['name']} expiring {expires:%Y-%m-%d %H:%M}, the file says "
                    f"{file_minute:%Y-%m-%d %H:%M}"
                )
        if row["name"] == "apiserver":
            missing = [san for san in wanted if not _has_san(row["dns"], row["ips"], san)]
            if missing:
                row["drift"].append(f"the API server certificate lacks SAN(s) {', '.join(missing)}")
    return rows, check_text, error


def read_certificates(ctx: PhaseContext, conn, node: Node) -> CertificateReport:
    command = readback.read_command(check_expiration=True, kubeadm=commands.KUBEADM)
    _, lines = commands.run(ctx, conn, command, label="read the certificates", show=False, check=False)
    now = timezone.now()
    rows, check_text, error = build_rows(lines, ctx.cluster, now)
    report, _ = CertificateReport.objects.update_or_create(
        node=node, defaults={"collected_at": now, "rows": rows, "check_expiration": check_text, "error": error}
    )
    warned = [r for r in rows if r.get("warning")]
    drift = [d for r in rows for d in r["drift"]]
    ctx.log(
        f"{node.name}: {len(rows)} certificates read; {len(warned)} with a warning, {len(drift)} drift finding(s)."
        + (f" {error}" if error else "")
    )
    for row in sorted(warned, key=lambda r: r["days_left"]):
        when = "expired" if row["warning"] == "expired" else f"expires in {row['days_left']:.1f} days"
        ctx.log(f"{row['name']} {when} ({row['not_after'][:16]})", level="warning")
    for finding in drift:
        ctx.log(f"Drift: {finding}", level="warning")
    return report


def _inventory_phase(ctx: PhaseContext) -> None:
    with phase_connection(ctx) as conn:
        read_certificates(ctx, conn, ctx.node)


def _control_plane_plan(phases: list[str]):
    def plan(operation: Operation) -> list[PlannedPhase]:
        planned = []
        if operation.params.get("add_sans") and "update-configuration" not in phases:
            planned.append(PlannedPhase("update-configuration"))
        for node_id, name in zip(operation.params["node_ids"], operation.params["nodes"], strict=True):
            names = list(phases)
            if not operation.params.get("add_sans"):
                names = [p for p in names if p != "apiserver-certificate"]
            planned += [PlannedPhase(p, group=name, node_id=node_id) for p in names]
        return planned

    return plan


def _after_inventory(operation: Operation) -> None:
    """A policy's check: renew when the soonest leaf has fewer days left than the policy says."""
    policy_id = operation.params.get("policy")
    if not policy_id or operation.status != Operation.Status.SUCCEEDED:
        return
    policy = RenewalPolicy.objects.filter(pk=policy_id, enabled=True).select_related("cluster").first()
    if policy is None:
        return
    soonest = soonest_leaf(policy.cluster)
    if soonest is not None and soonest["days_left"] < policy.renew_below_days:
        try:
            start_renewal(
                policy.cluster,
                names=["all"],
                reason=f"policy: {soonest['name']} has {soonest['days_left']:.1f} days left",
            )
        except CertificatesRefused as exc:
            RenewalPolicy.objects.filter(pk=policy.pk).update(last_error=str(exc))


CERTIFICATE_INVENTORY = OperationKind(
    name=INVENTORY_KIND,
    label="Certificate inventory",
    phases=(
        PhaseSpec(
            "read-certificates",
            "kubeadm certs check-expiration and every certificate file, compared with Kubeboard's custody",
            _inventory_phase,
            idempotent=True,
        ),
    ),
    plan=_control_plane_plan(["read-certificates"]),
    max_parallel_groups=4,
    mutating=False,
    on_finished=_after_inventory,
)


def soonest_leaf(cluster) -> dict | None:
    rows = [
        dict(r, node=report.node.name)
        for report in CertificateReport.objects.filter(node__cluster=cluster).select_related("node")
        for r in report.rows
        if r.get("kind") in ("leaf", "kubeconfig")
        and r.get("days_left") is not None
        and not r["path"].endswith("kubelet.conf")  # the kubelet rotates its own client certificate
    ]
    return min(rows, key=lambda r: r["days_left"]) if rows else None


# --- renewal ----------------------------------------------------------------------------------------


class CertificatesRefused(Exception):
    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


def _names(ctx: PhaseContext) -> list[str]:
    return list(ctx.params.get("names") or [])


def _components(names: list[str], add_sans: bool) -> list[str]:
    wanted = set()
    for name in names:
        if name == "all":
            wanted.update(CONTROL_PLANE_COMPONENTS)
        elif COMPONENT_OF_CERTIFICATE.get(name):
            wanted.add(COMPONENT_OF_CERTIFICATE[name])
    if add_sans:
        wanted.add(KUBE_APISERVER)
    return [c for c in CONTROL_PLANE_COMPONENTS if c in wanted]


def _serials(conn) -> dict[str, str]:
    """check-expiration name -> serial of the certificate on the machine now."""
    _, lines = commands.quiet(conn, readback.read_command())
    serials = {}
    for kind, path, text in readback.parse_sections(lines):
        if kind in ("cert", "kubeconfig") and text.strip():
            try:
                serials[readback.check_expiration_name(path)] = format(
                    pki.load_certificate(text.encode()).serial_number, "x"
                )
            except Exception:
                continue
    return serials


def _update_configuration(ctx: PhaseContext) -> None:
    """Add the SANs to Kubeboard's stored ClusterConfiguration and to kubeadm-config."""
    from workflows import config_io

    sans = list(ctx.params.get("add_sans") or [])
    with kube.phase_errors():
        data = kube.config_map(ctx.cluster, CONFIG_MAP_NAMESPACE, KUBEADM_CONFIG_MAP)
    if not data or CLUSTER_CONFIGURATION_KEY not in data:
        raise PhaseError(
            "kube-system/kubeadm-config has no ClusterConfiguration", hint="was the cluster made by kubeadm?"
        )
    live = kubeadm_config.parse_config(data[CLUSTER_CONFIGURATION_KEY]).cluster
    current = list(live.api_server.cert_sans or [])
    added = [san for san in sans if san not in current]
    if added:
        live.api_server.cert_sans = current + added
        text = kubeadm_config.render_cluster_config(live)
        with kube.phase_errors():
            kube.patch_config_map(
                ctx.cluster, CONFIG_MAP_NAMESPACE, KUBEADM_CONFIG_MAP, {CLUSTER_CONFIGURATION_KEY: text}
            )
        ctx.log(f"kube-system/kubeadm-config: apiServer.certSANs is now {', '.join(live.api_server.cert_sans)}.")
    else:
        ctx.log("kube-system/kubeadm-config already lists the SAN(s).")
    config_io.add_cert_sans(ctx.cluster, sans, user=ctx.operation.requested_by)
    ctx.log(f"Kubeboard's configuration of {ctx.cluster.name} lists the SAN(s) too: {', '.join(sans)}.")


def _renew(ctx: PhaseContext) -> None:
    names = _names(ctx)
    if not names:
        ctx.log("No certificate was asked for: nothing to renew here.")
        return
    with phase_connection(ctx) as conn:
        before = _serials(conn)
        for name in names:
            commands.run(ctx, conn, workflow.certs_renew_command(name), label=f"kubeadm certs renew {name}")
        after = _serials(conn)
    renewable = [n for n in kubeadm_certs_names() if n in before]
    asked = renewable if "all" in names else [n for n in names if n in before]
    same = [n for n in asked if before.get(n) == after.get(n)]
    if same:
        raise PhaseError(
            f"kubeadm did not renew {', '.join(same)} on {ctx.node.name} (same serial as before)",
            hint="read kubeadm's output above (an external CA cannot renew), then resume",
        )
    ctx.log(
        f"Renewed on {ctx.node.name}: " + ", ".join(f"{n} (serial {before[n][:8]}… → {after[n][:8]}…)" for n in asked),
        renewed={n: after[n] for n in asked},
    )


def kubeadm_certs_names() -> tuple[str, ...]:
    return workflow.CERTS_RENEW_NAMES


def _apiserver_certificate(ctx: PhaseContext) -> None:
    """Issue the API server certificate again with the SANs of the cluster's configuration."""
    work = f"{TMP_DIR}/kubeboard-certs-op{ctx.operation.pk}"
    config_path = f"{nodeconfig.CONFIG_DIR}/kubeadm-certs.yaml"
    # The cluster as kubeadm-config holds it now (with the new SANs), and this node's address:
    # without one kubeadm would guess it from the default route.
    with kube.phase_errors():
        data = kube.config_map(ctx.cluster, CONFIG_MAP_NAMESPACE, KUBEADM_CONFIG_MAP) or {}
    live = kubeadm_config.parse_config(data.get(CLUSTER_CONFIGURATION_KEY, "")).cluster
    init = kubeadm_config.default_init_configuration(
        advertise_address=ctx.node.address, node_name=ctx.node.name, token=kubeadm_config.PLACEHOLDER_TOKEN
    )
    init.bootstrap_tokens = None
    text = kubeadm_config.render_init_config(init, live)
    with phase_connection(ctx) as conn:
        commands.upload(ctx, conn, [commands.RemoteFile(config_path, text.encode(), 0o600)])
        move = (
            f"mkdir -p {work} && for f in apiserver.crt apiserver.key; do "
            f"[ -e {PKI_DIR}/$f ] && mv {PKI_DIR}/$f {work}/$f; done; ls {work}"
        )
        commands.run(ctx, conn, move, label="move the old API server certificate aside")
        commands.run(
            ctx,
            conn,
            [commands.KUBEADM, "init", "phase", "certs", "apiserver", "--config", config_path],
            label="kubeadm init phase certs apiserver",
        )
        data = conn.read_file(f"{PKI_DIR}/apiserver.crt")
    cert = pki.load_certificate(data)
    dns, ips = pki.alt_names(cert)
    missing = [s for s in ctx.params.get("add_sans") or [] if not _has_san(dns, ips, s)]
    if missing:
        raise PhaseError(f"the new API server certificate lacks {', '.join(missing)}", hint="check the configuration")
    ctx.log(f"New API server certificate (serial {cert.serial_number:x}) with SANs {', '.join(dns + ips)}.")


def served_serial(address: str, port: int = API_SERVER_PORT) -> str:
    """The serial of the certificate a TLS server presents (hex)."""
    host = check_destination(address, port)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # we read the certificate, we do not trust it
    with socket.create_connection((host, port), timeout=5) as sock:
        with context.wrap_socket(sock, server_hostname=address) as tls:
            der = tls.getpeercert(binary_form=True)
    return format(x509.load_der_x509_certificate(der).serial_number, "x")


def restart_static_pod(ctx: PhaseContext, conn, component: str) -> None:
    """Move the manifest out until the kubelet stopped the Pod, then back; wait for its port."""
    port = PORT_OF[component]
    held = f"{TMP_DIR}/kubeboard-restart-op{ctx.operation.pk}"
    manifest, name = manifest_path(component), manifest_name(component)
    script = (
        f"mkdir -p {held} && if [ -e {manifest} ]; then mv {manifest} {held}/; echo moved out; "
        f"elif [ -e {held}/{name} ]; then echo already out; else echo no manifest; exit 3; fi"
    )
    commands.run(ctx, conn, script, label=f"move {name} out")
    backup.wait_ports(ctx, conn, closed={port}, timeout=RESTART_TIMEOUT)
    ctx.log(f"{component} stopped on {ctx.node.name}; putting its manifest back.")
    commands.run(ctx, conn, f"mv {held}/{name} {manifest} && rmdir {held} 2>/dev/null; true", label="mv")
    backup.wait_ports(ctx, conn, opened={port}, timeout=RESTART_TIMEOUT)
    ctx.log(f"{component} listens on port {port} again.")


def _restart_static_pods(ctx: PhaseContext) -> None:
    components = _components(_names(ctx), bool(ctx.params.get("add_sans")))
    if not components:
        ctx.log("No static Pod uses the renewed certificates (admin.conf, super-admin.conf): nothing to restart.")
        return
    with phase_connection(ctx) as conn:
        for component in components:
            ctx.check_cancelled()
            restart_static_pod(ctx, conn, component)
        expected = _serials(conn).get("apiserver")
    if KUBE_APISERVER in components and expected:
        served = ""

        def serves_new() -> str | None:
            nonlocal served
            try:
                served = served_serial(ctx.node.address)
            except OSError as exc:
                served = f"no answer ({exc})"
            return served if served == expected else None

        try:
            wait_until(serves_new, timeout=RESTART_TIMEOUT, cancel=ctx.cancel_event)
        except WaitTimedOut:
            raise PhaseError(
                f"the API server on {ctx.node.name} serves serial {served}, the file has {expected}",
                hint="restart kube-apiserver on the machine, then resume",
            ) from None
        except WaitCancelled:
            raise OperationCancelled("cancelled while waiting for the API server") from None
        ctx.log(f"The API server on {ctx.node.address}:{API_SERVER_PORT} serves the new certificate (serial {served}).")
    backup.wait_api_ready(ctx, timeout=RESTART_TIMEOUT)


def _read_back(ctx: PhaseContext) -> None:
    with phase_connection(ctx) as conn:
        report = read_certificates(ctx, conn, ctx.node)
    disagree = [d for r in report.rows for d in r["drift"] if d.startswith("kubeadm reports")]
    if disagree:
        raise PhaseError("; ".join(disagree), hint="read the certificates again; if it stays, check the files")
    ctx.log(f"kubeadm certs check-expiration on {ctx.node.name} agrees with the files Kubeboard read.")


RENEW_PHASES = (
    PhaseSpec(
        "update-configuration",
        "Add the SANs to the cluster's ClusterConfiguration (kubeadm-config and Kubeboard's copy)",
        _update_configuration,
        idempotent=True,
    ),
    PhaseSpec("renew", "kubeadm certs renew, checking that every serial changed", _renew, idempotent=True),
    PhaseSpec(
        "apiserver-certificate",
        "kubeadm init phase certs apiserver with the new SANs (the old pair moved aside)",
        _apiserver_certificate,
        idempotent=True,
    ),
    PhaseSpec(
        "restart-static-pods",
        "Move each affected manifest out and back so the kubelet restarts the Pod; check the served serial",
        _restart_static_pods,
        idempotent=True,
    ),
    PhaseSpec("read-back", "Read the certificates again; kubeadm's view must agree with the files", _read_back, True),
)

RENEW_CERTIFICATES = OperationKind(
    name=RENEW_KIND,
    label="Renew certificates",
    phases=RENEW_PHASES,
    plan=_control_plane_plan(["renew", "apiserver-certificate", "restart-static-pods", "read-back"]),
    # One control plane at a time: the API server (and etcd) restart on each.
    max_parallel_groups=1,
)


def _control_planes(cluster) -> list[Node]:
    return backup.joined_control_planes(cluster)


@refusals_of("operation.queued", CertificatesRefused, details={"kind": INVENTORY_KIND})
def start_inventory(cluster, *, user=None, policy: RenewalPolicy | None = None) -> Operation:
    from operations.services import start_operation

    ready = preconditions.check(cluster, "read_certificates")
    if not ready:
        raise CertificatesRefused(ready.reason, hint=ready.hint)
    planes = _control_planes(cluster)
    if not planes:
        raise CertificatesRefused(
            f"cluster {cluster.name} has no joined control plane to read", hint="initialize it first"
        )
    params = {"node_ids": [n.pk for n in planes], "nodes": [n.name for n in planes]}
    if policy is not None:
        params["policy"] = policy.pk
    return start_operation(cluster, INVENTORY_KIND, user=user, params=params)


def validate_san(value: str) -> str:
    value = value.strip()
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        pass
    if not (netutil.is_dns1123_subdomain(value) or netutil.is_wildcard_dns1123_subdomain(value)):
        raise CertificatesRefused(
            f"{value!r} is neither an IP address nor a DNS name", hint="e.g. api.example.com or 10.0.0.10"
        )
    return value


@refusals_of("operation.queued", CertificatesRefused, details={"kind": RENEW_KIND})
def start_renewal(cluster, *, names: list[str], add_sans: list[str] = (), user=None, reason: str = "") -> Operation:
    """Refuse a bad request before anything runs, then queue the renewal (control planes one at a time)."""
    from operations.services import start_operation

    ready = preconditions.check(cluster, "renew_certificates")
    if not ready:
        raise CertificatesRefused(ready.reason, hint=ready.hint)
    names = [n.strip() for n in names if n and n.strip()]
    sans = [validate_san(s) for s in add_sans if s and s.strip()]
    if not names and not sans:
        raise CertificatesRefused("choose certificates to renew (or all), or a SAN to add")
    unknown = [n for n in names if n != "all" and n not in workflow.CERTS_RENEW_NAMES]
    if unknown:
        raise CertificatesRefused(
            f"kubeadm cannot renew {', '.join(unknown)}",
            hint="choose all or some of " + ", ".join(workflow.CERTS_RENEW_NAMES),
        )
    if "all" in names:
        names = ["all"]
    if sans and cluster.is_adopted:
        raise CertificatesRefused(
            f"cluster {cluster.name} was adopted: Kubeboard does not keep its configuration",
            hint="add the SAN with kubeadm on the control planes",
        )
    planes = _control_planes(cluster)
    if not planes:
        raise CertificatesRefused(f"cluster {cluster.name} has no joined control plane", hint="initialize it first")
    busy = cluster.operations.filter(status__in=Operation.ACTIVE_STATUSES, mutating=True).first()
    if busy is not None:
        raise CertificatesRefused(f"operation #{busy.pk} ({busy.get_kind_display()}) is running", hint="wait for it")
    params = {"node_ids": [n.pk for n in planes], "nodes": [n.name for n in planes], "names": names, "add_sans": sans}
    if reason:
        params["reason"] = reason
    with transaction.atomic():
        return start_operation(cluster, RENEW_KIND, user=user, params=params)


@dataclass
class TimelineEntry:
    node: str
    name: str
    not_after: str
    days_left: float
    warning: str
    position: float  # 0..100 along the timeline


def timeline(cluster, *, horizon_days: int = 400) -> list[TimelineEntry]:
    """Every certificate of the cluster's control planes by expiry, placed on a scale from now
    to ``horizon_days`` ahead (CAs beyond it sit at the end)."""
    entries = []
    for report in CertificateReport.objects.filter(node__cluster=cluster).select_related("node"):
        for row in report.rows:
            if row.get("days_left") is None:
                continue
            position = max(0.0, min(100.0, row["days_left"] / horizon_days * 100))
            entries.append(
                TimelineEntry(
                    report.node.name, row["name"], row["not_after"], row["days_left"], row.get("warning", ""), position
                )
            )
    return sorted(entries, key=lambda e: e.days_left)


def due_renewal_checks(now=None) -> list[Operation]:
    """Start the inventory of every cluster whose renewal policy is due (it renews if needed)."""
    now = now or timezone.now()
    started = []
    with transaction.atomic():
        due = list(
            RenewalPolicy.objects.select_for_update(skip_locked=True)
            .filter(enabled=True, next_check_at__lte=now)
            .select_related("cluster")
        )
        for policy in due:
            policy.next_check_at = now + datetime.timedelta(hours=12)
            policy.last_checked_at = now
            try:
                started.append(start_inventory(policy.cluster, policy=policy))
                policy.last_error = ""
            except CertificatesRefused as exc:
                policy.last_error = str(exc)
            policy.save(update_fields=["next_check_at", "last_checked_at", "last_error"])
    return started
