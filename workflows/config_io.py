"""kubeadm configuration in and out.

* **Live next to rendered**: the cluster's ``kube-system/kubeadm-config`` (ClusterConfiguration)
  and ``kube-system/kubelet-config`` (KubeletConfiguration) as the API server holds them, beside
  the ClusterConfiguration Kubeboard renders; every field that differs is listed as drift, and
  the kubelet's cluster DNS address and domain are checked against the cluster's networking.
* **Import**: a kubeadm file (v1beta3 or v1beta4, Init/Cluster documents) becomes a new cluster:
  migrated to v1beta4 as ``kubeadm config migrate`` does (``kubeadm.config.migrate_config``),
  validated as kubeadm validates it, errors per field; the cluster form's fields come from it
  and everything else (extra args, certSANs, validity periods, ...) is kept as the cluster's
  stored ClusterConfiguration, which Kubeboard renders under the form's fields from then on.
* **Export**: Kubeboard's InitConfiguration and ClusterConfiguration in ``kubeadm config print``
  form (node-level fields left for each machine), with the live KubeletConfiguration appended
  when asked (like ``--component-configs KubeletConfiguration``).
"""

from __future__ import annotations

import copy
import ipaddress
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction

import kube
from audit.services import record
from clusters import preconditions
from kubeadm import config as kubeadm_config
from kubeadm import netutil, yamlio
from kubeadm.errors import ConfigError, KubeadmError
from kubeadm.validation import validate_cluster_configuration, validate_init_configuration
from workflows.models import StoredConfiguration

MAX_IMPORT_BYTES = 256 * 1024
# Fields that describe the kubeadm-config object rather than the cluster (kubeadm fills them).
_IGNORED_PATHS = {"apiVersion", "kind"}


def rendered_cluster_configuration(cluster) -> kubeadm_config.ClusterConfiguration:
    """The ClusterConfiguration Kubeboard gives kubeadm for ``cluster`` (stored base + form fields)."""
    from clusters.kubeadm_config import configuration_for

    return configuration_for(cluster)


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        if not value and prefix:
            out[prefix] = {}
        return out
    return {prefix: value}


def _normalize_version(value: Any) -> Any:
    return value.lstrip("v") if isinstance(value, str) else value


def diff_configurations(rendered: dict, live: dict) -> list[dict]:
    """Field-by-field differences ({"path", "rendered", "live"}), dotted paths, sorted."""
    flat_rendered, flat_live = _flatten(rendered), _flatten(live)
    drift = []
    for path in sorted(set(flat_rendered) | set(flat_live)):
        if path in _IGNORED_PATHS:
            continue
        a, b = flat_rendered.get(path), flat_live.get(path)
        if path == "kubernetesVersion":
            a, b = _normalize_version(a), _normalize_version(b)
        if a in ({}, [], "", None) and b in ({}, [], "", None):
            continue
        if a != b:
            drift.append({"path": path, "rendered": flat_rendered.get(path), "live": flat_live.get(path)})
    return drift


@dataclass
class ConfigView:
    rendered_text: str
    live_cluster_text: str = ""
    live_kubelet_text: str = ""
    drift: list[dict] = field(default_factory=list)
    kubelet_findings: list[str] = field(default_factory=list)
    error: str = ""


class ExportRefused(Exception):
    """The export asked for what the cluster cannot give now (the live KubeletConfiguration of a
    cluster that is not initialized); ``hint`` says what to do."""

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


def live_view(cluster) -> ConfigView:
    """What Kubeboard renders next to what the cluster holds; a cluster that cannot hold anything
    yet (not initialized) is not asked, and ``error`` says why."""
    rendered = rendered_cluster_configuration(cluster)
    view = ConfigView(rendered_text=kubeadm_config.render_cluster_config(rendered))
    ready = preconditions.check(cluster, "configuration")
    if not ready:
        view.error = str(ready)
        return view
    try:
        kubeadm_data = kube.config_map(cluster, kubeadm_config.CONFIG_MAP_NAMESPACE, kubeadm_config.KUBEADM_CONFIG_MAP)
        kubelet_data = kube.config_map(cluster, kubeadm_config.CONFIG_MAP_NAMESPACE, kubeadm_config.KUBELET_CONFIG_MAP)
    except kube.KubeAPIError as exc:
        view.error = str(exc)
        return view
    if not kubeadm_data or kubeadm_config.CLUSTER_CONFIGURATION_KEY not in kubeadm_data:
        view.error = "kube-system/kubeadm-config has no ClusterConfiguration (was the cluster made by kubeadm?)"
        return view
    view.live_cluster_text = kubeadm_data[kubeadm_config.CLUSTER_CONFIGURATION_KEY]
    try:
        live = kubeadm_config.parse_config(view.live_cluster_text).cluster
        view.drift = diff_configurations(kubeadm_config.to_dict(rendered), kubeadm_config.to_dict(live))
    except KubeadmError as exc:
        view.error = f"the live ClusterConfiguration could not be read: {exc}"
    view.live_kubelet_text = (kubelet_data or {}).get(kubeadm_config.KUBELET_CONFIGURATION_KEY, "")
    view.kubelet_findings = kubelet_findings(view.live_kubelet_text, rendered)
    return view


def kubelet_findings(text: str, cluster_config: kubeadm_config.ClusterConfiguration) -> list[str]:
    """What in the live KubeletConfiguration disagrees with the cluster's networking."""
    if not text:
        return ["kube-system/kubelet-config has no KubeletConfiguration"]
    try:
        docs = yamlio.load_documents(text)
        kubelet = docs[0] if docs and isinstance(docs[0], dict) else {}
    except KubeadmError as exc:
        return [f"the live KubeletConfiguration is not YAML: {exc}"]
    findings = []
    domain = cluster_config.networking.dns_domain or kubeadm_config.DEFAULT_DNS_DOMAIN
    if kubelet.get("clusterDomain") != domain:
        findings.append(f"clusterDomain is {kubelet.get('clusterDomain')!r}, the cluster's dnsDomain is {domain!r}")
    subnet = (cluster_config.networking.service_subnet or kubeadm_config.DEFAULT_SERVICE_SUBNET).split(",")[0]
    try:
        wanted = str(netutil.dns_ip(subnet))
        if wanted not in [str(ip) for ip in kubelet.get("clusterDNS") or []]:
            findings.append(
                f"clusterDNS is {kubelet.get('clusterDNS')!r}, the service subnet's DNS address is {wanted}"
            )
    except (ValueError, ipaddress.AddressValueError):
        pass
    return findings


# --- export -------------------------------------------------------------------------------------------


def export_text(cluster, *, kubelet: bool = False) -> str:
    """Kubeboard's configuration of ``cluster`` as ``kubeadm config print init-defaults`` prints
    one (InitConfiguration, then ClusterConfiguration); node-level fields (name, address, tokens)
    are left for each machine. ``kubelet``: the live KubeletConfiguration appended."""
    from clusters import kubeadm_config as cluster_config

    text = kubeadm_config.render_init_config(
        cluster_config.init_configuration(), rendered_cluster_configuration(cluster)
    )
    if kubelet:
        ready = preconditions.check(cluster, "export_kubelet")
        if not ready:
            raise ExportRefused(ready.reason, hint=ready.hint)
        data = kube.config_map(cluster, kubeadm_config.CONFIG_MAP_NAMESPACE, kubeadm_config.KUBELET_CONFIG_MAP) or {}
        kubelet_text = data.get(kubeadm_config.KUBELET_CONFIGURATION_KEY)
        if kubelet_text:
            text = text.rstrip("\n") + "\n---\n" + kubelet_text.strip("\n") + "\n"
    return text


# --- import -------------------------------------------------------------------------------------------


@dataclass
class ImportResult:
    values: dict[str, str]  # the cluster form's fields from the file
    cluster_text: str  # the migrated ClusterConfiguration (v1beta4)
    api_version: str
    errors: list[ConfigError]
    notes: list[str]


# Cluster form field -> how to read it off a ClusterConfiguration.
_FORM_FIELDS = {
    "kubernetes_version": lambda c: c.kubernetes_version,
    "control_plane_endpoint": lambda c: c.control_plane_endpoint,
    "pod_subnet": lambda c: c.networking.pod_subnet,
    "service_subnet": lambda c: c.networking.service_subnet,
    "dns_domain": lambda c: c.networking.dns_domain,
    "image_repository": lambda c: c.image_repository,
    "encryption_algorithm": lambda c: c.encryption_algorithm,
}


def parse_import(text: str) -> ImportResult:
    """Migrate and validate a kubeadm file; every problem is a ConfigError naming its field."""
    errors: list[ConfigError] = []
    notes: list[str] = []
    if len(text.encode()) > MAX_IMPORT_BYTES:
        raise ConfigError(
            "file", f"at most {MAX_IMPORT_BYTES // 1024} KiB of kubeadm YAML", f"{len(text.encode())} bytes"
        )
    docs = yamlio.load_documents(text, source="the file")
    versions = sorted({str(d.get("apiVersion")) for d in docs if isinstance(d, dict) and d.get("kind")})
    parsed = kubeadm_config.migrate_config(text)
    if parsed.cluster is None:
        raise ConfigError(
            "ClusterConfiguration", "a ClusterConfiguration document (kind: ClusterConfiguration)", "none in the file"
        )
    cluster = parsed.cluster
    for path in parsed.unknown_fields:
        errors.append(ConfigError(path, "a field kubeadm knows", "an unknown field", hint="remove it or fix its name"))
    errors += validate_cluster_configuration(cluster)
    if parsed.init is not None:
        # Node-level values are filled per machine later; validate the rest as kubeadm would.
        init = copy.deepcopy(parsed.init)
        init.node_registration.name = init.node_registration.name or "node"
        init.local_api_endpoint.advertise_address = init.local_api_endpoint.advertise_address or "192.0.2.1"
        errors += validate_init_configuration(init, cluster)
        notes.append(
            "InitConfiguration: node-level fields (nodeRegistration, localAPIEndpoint, bootstrapTokens) are not "
            "imported; Kubeboard fills them for each machine when it initializes or joins it."
        )
    if parsed.join is not None:
        notes.append("JoinConfiguration: not imported; Kubeboard writes one per joining machine.")
    for doc in parsed.other_documents:
        notes.append(f"{doc.get('kind', 'a document')} ({doc.get('apiVersion', '?')}): not imported.")
    if "kubeadm.k8s.io/v1beta3" in versions:
        notes.append("Migrated from kubeadm.k8s.io/v1beta3 to v1beta4 as `kubeadm config migrate` does.")
    values = {name: (read(cluster) or "") for name, read in _FORM_FIELDS.items()}
    if values["kubernetes_version"] and not values["kubernetes_version"].startswith("v"):
        values["kubernetes_version"] = "v" + values["kubernetes_version"]
    return ImportResult(
        values=values,
        cluster_text=kubeadm_config.render_cluster_config(cluster),
        api_version=", ".join(versions),
        errors=errors,
        notes=notes,
    )


def imported_cluster(result: ImportResult, *, name: str, team) -> tuple[Any, dict[str, list[str]]]:
    """The cluster the file describes, with the name and team the person chose (not saved), and
    what the model refuses in it (field -> messages), so nothing is created before both are clean."""
    from django.core.exceptions import ValidationError

    from clusters.models import Cluster

    cluster = Cluster(name=name, team=team)
    for field_name, value in result.values.items():
        if value:
            setattr(cluster, field_name, value)
    try:
        # Filled later by the creation and the identity operation, never by the file.
        cluster.full_clean(exclude=["created_by", "kubeadm_config", "admin_kubeconfig", "ca_pin_hash"])
    except ValidationError as exc:
        return cluster, exc.message_dict
    return cluster, {}


def store_imported(cluster, result: ImportResult, original: str, *, user) -> StoredConfiguration:
    """Keep the migrated configuration as the cluster's base (in the caller's transaction)."""
    stored = StoredConfiguration.objects.create(
        cluster=cluster,
        text=result.cluster_text,
        original_text=original,
        original_api_version=result.api_version,
        imported_by=user if getattr(user, "pk", None) else None,
    )
    record(
        "cluster.configuration_imported",
        actor=user,
        obj=cluster,
        cluster=cluster,
        details={"api_version": result.api_version, "fields": sorted(result.values)},
    )
    return stored


def import_cluster(form_cluster, result: ImportResult, original: str, *, user):
    """Create the cluster the file describes (with the name and team the user chose) and queue
    the preparation of its identity; the stored configuration exists before that runs."""
    from clusters.services import create_cluster

    for name, value in result.values.items():
        if value:
            setattr(form_cluster, name, value)
    with transaction.atomic():
        operation = create_cluster(form_cluster, user=user)
        store_imported(operation.cluster, result, original, user=user)
    return operation


def add_cert_sans(cluster, sans: list[str], *, user) -> StoredConfiguration:
    """Add SANs to the cluster's stored ClusterConfiguration (created from the rendered one first)."""
    with transaction.atomic():
        stored = StoredConfiguration.objects.select_for_update().filter(cluster=cluster).first()
        base = (
            kubeadm_config.parse_config(stored.text).cluster
            if stored is not None
            else rendered_cluster_configuration(cluster)
        )
        current = list(base.api_server.cert_sans or [])
        added = [san for san in sans if san not in current]
        base.api_server.cert_sans = current + added
        text = kubeadm_config.render_cluster_config(base)
        if stored is None:
            stored = StoredConfiguration.objects.create(cluster=cluster, text=text)
        else:
            StoredConfiguration.objects.filter(pk=stored.pk).update(text=text)
            stored.text = text
        record(
            "cluster.configuration_changed",
            actor=user,
            obj=cluster,
            cluster=cluster,
            details={"apiServer.certSANs": {"added": added, "now": base.api_server.cert_sans}},
        )
    return stored
