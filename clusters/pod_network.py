"""The pod network choice as the cluster's forms offer it (the add-ons' rules are addons/).

One field for the add-on and its version ("flannel v0.28.9"), so a person picks from what is
pinned in one list; the model keeps the two apart (``pod_network``, ``pod_network_version``).

"Custom manifest" comes with a file to upload, or an https URL and its SHA-256. Either is read
and checked when the form is submitted — downloaded then, not by the worker at apply time — so
that a wrong checksum or a YAML mistake is refused on the page, naming the document and line,
before anything is stored or applied; and the bytes checked are the bytes every later apply,
resume or re-apply uses (stored as ``clusters.PodNetworkManifest``), whether or not the URL
still answers or now serves something else.

Whether a pod subnet fits a choice is asked in one place, ``fit_problems`` (a new cluster's
subnets and endpoint) and ``cluster_fit_problems`` (a saved cluster's, with its machines): both
forms and ``workflows.network.start_pod_network`` use them.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass

from django import forms

from addons import catalog, manifests
from core.download import DownloadError, fetch, shown, url_problem
from kubeadm.netutil import parse_host_port

# Offered: every pinned version of the pinned add-ons, newest first, then custom and "none".
OFFERED_NETWORKS = (catalog.FLANNEL, catalog.CALICO)
# A download gets this long in all (connect, redirects, body): the form waits for it.
DOWNLOAD_TIMEOUT = 30.0


def choices() -> list[tuple[str, str]]:
    rows = []
    for name in OFFERED_NETWORKS:
        newest = catalog.newest(name)
        for pinned in reversed([p for p in catalog.PINNED if p.name == name]):
            rows.append((f"{name} {pinned.version}", f"{pinned.label} (newest)" if pinned is newest else pinned.label))
    rows.append((catalog.CUSTOM, "Custom manifest: upload it, or give its https URL and SHA-256"))
    rows.append((catalog.NONE, "None: I install a network add-on myself"))
    return rows


def default_for(pod_subnet: str) -> str:
    """Flannel at its newest pinned version when there is a pod subnet, else none.

    Flannel because it needs nothing but the pod subnet (Calico's default pool 192.168.0.0/16
    often holds the machines' own addresses), and none without a pod subnet because Flannel
    cannot run without one: the default must never be a choice the form then refuses.
    """
    if manifests.pod_subnet_problems(catalog.FLANNEL, pod_subnet or "", ""):
        return catalog.NONE
    return f"{catalog.FLANNEL} {catalog.newest(catalog.FLANNEL).version}"


def split(value: str) -> tuple[str, str]:
    """("flannel", "v0.28.9") from "flannel v0.28.9"; ("none", "") from "none"."""
    network, _, version = value.partition(" ")
    return network, version


def machine_addresses(control_plane_endpoint: str, node_addresses=()) -> list[str]:
    """The addresses a pod subnet must not hold: the machines' and the control-plane endpoint's
    (on a new cluster, before any machine is added, the endpoint is the one address known)."""
    addresses = [a for a in node_addresses if a]
    try:
        host, _ = parse_host_port(control_plane_endpoint or "")
        ipaddress.ip_address(host)
    except ValueError:  # no endpoint yet, or a DNS name: nothing to compare without resolving it
        return addresses
    return [*addresses, host]


def fit_problems(
    network: str, *, pod_subnet: str, service_subnet: str, control_plane_endpoint: str, node_addresses=()
) -> list[str]:
    """Why ``network`` does not fit these subnets, endpoint and machines (empty: it fits)."""
    addresses = machine_addresses(control_plane_endpoint, node_addresses)
    return manifests.pod_subnet_problems(network, pod_subnet or "", service_subnet or "", addresses)


def cluster_fit_problems(cluster, network: str) -> list[str]:
    """``fit_problems`` for a saved cluster: its subnets, its endpoint and every machine's address."""
    return fit_problems(
        network,
        pod_subnet=cluster.pod_subnet,
        service_subnet=cluster.service_subnet,
        control_plane_endpoint=cluster.control_plane_endpoint,
        node_addresses=list(cluster.nodes.values_list("address", flat=True)),
    )


# --- a custom manifest ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckedManifest:
    """A custom manifest that passed every check; what clusters.PodNetworkManifest stores."""

    text: str
    sha256: str
    source: str
    object_count: int

    @property
    def version(self) -> str:
        return manifests.custom_version(self.sha256)


def check_manifest(data: bytes, *, source: str, sha256: str = "") -> CheckedManifest:
    """Refuse ``data`` unless it has ``sha256`` (when given; checked first, before it is read) and
    is bounded, safe YAML of Kubernetes objects. ManifestError names the document and line."""
    if sha256:
        manifests.check_sha256(data, sha256, source=source)
    objects = manifests.parse(data, source=source)
    return CheckedManifest(data.decode("utf-8"), hashlib.sha256(data).hexdigest(), source, len(objects))


def download_manifest(url: str, sha256: str) -> CheckedManifest:
    """The manifest at ``url``, downloaded bounded (``MAX_MANIFEST_BYTES``, ``DOWNLOAD_TIMEOUT``),
    then checked like an upload (its SHA-256 first)."""
    try:
        data = fetch(url, max_bytes=manifests.MAX_MANIFEST_BYTES, timeout=DOWNLOAD_TIMEOUT)
    except DownloadError as exc:
        raise manifests.ManifestError(f"could not download it: {exc}; nothing was applied") from None
    return check_manifest(data, source=shown(url), sha256=sha256)


class PodNetworkField(forms.ChoiceField):
    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("label", "Pod network")
        kwargs.setdefault(
            "help_text",
            "The network add-on Kubeboard applies after kubeadm's addon phase (and later from the cluster "
            "page): nodes stay NotReady until one runs.",
        )
        super().__init__(choices=choices(), **kwargs)


class PodNetworkChoiceForm(forms.Form):
    """The fields and checks both cluster forms share: the choice and, for a custom manifest, its
    file or URL and SHA-256. A subclass says what the choice must fit (``fit``) and which manifest
    is stored already (``stored_manifest``)."""

    pod_network = PodNetworkField()
    manifest_file = forms.FileField(
        label="Custom manifest file",
        required=False,
        help_text=f"With Custom manifest: multi-document YAML of Kubernetes objects, at most "
        f"{manifests.MAX_MANIFEST_BYTES // 1024 // 1024} MiB and {manifests.MAX_OBJECTS:,} objects.",
    )
    manifest_url = forms.CharField(
        label="…or its https URL",
        required=False,
        max_length=2048,
        help_text="With Custom manifest: Kubeboard downloads it now, checks its SHA-256, and keeps it.",
    )
    manifest_sha256 = forms.CharField(
        label="SHA-256 of the manifest",
        required=False,
        max_length=71,
        help_text="As sha256sum prints it; needed with a URL, checked too when given with a file.",
    )

    # What the form checked and the service stores (None: keep what is stored, if anything).
    custom_manifest: CheckedManifest | None = None

    MANIFEST_FIELDS = ("manifest_file", "manifest_url", "manifest_sha256")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # The manifest's fields right after the choice they belong to.
        names = [n for n in self.fields if n not in self.MANIFEST_FIELDS]
        at = names.index("pod_network") + 1
        self.order_fields([*names[:at], *self.MANIFEST_FIELDS, *names[at:]])

    def fit(self, network: str) -> list[str]:
        raise NotImplementedError

    def stored_manifest(self):
        return None

    def clean_pod_network_choice(self, value: str) -> str:
        """The network of ``value``, its version on the instance, each reason it cannot be used
        under its field (a custom manifest is downloaded and checked here)."""
        network, version = split(value)
        # The model keeps the network and its version apart: split before any return, or the
        # model's own check refuses "flannel v0.28.9" as a second, confusing mistake.
        self.instance.pod_network_version = version
        for problem in self.fit(network):
            self.add_error("pod_network", problem)
        self._clean_custom(network)
        return network

    def _clean_custom(self, network: str) -> None:
        upload = self.cleaned_data.get("manifest_file")
        url = (self.cleaned_data.get("manifest_url") or "").strip()
        sha256 = (self.cleaned_data.get("manifest_sha256") or "").strip()
        if network != catalog.CUSTOM:
            if upload or url:
                self.add_error("pod_network", "choose Custom manifest to apply the file or URL given")
            return
        if upload and url:
            self.add_error("manifest_url", "upload a file or give a URL, not both")
            return
        try:
            if sha256:
                sha256 = manifests.normalise_sha256(sha256)
        except manifests.ManifestError as exc:
            self.add_error("manifest_sha256", str(exc))
            return
        if url:
            problem = url_problem(url)
            if problem:
                self.add_error("manifest_url", problem)
                return
            if not sha256:
                self.add_error("manifest_sha256", "give the manifest's SHA-256 with its URL (sha256sum prints it)")
                return
            self._checked("manifest_url", lambda: download_manifest(url, sha256))
        elif upload:
            if upload.size > manifests.MAX_MANIFEST_BYTES:
                self.add_error(
                    "manifest_file",
                    f"{upload.name} is {upload.size} bytes; at most {manifests.MAX_MANIFEST_BYTES // 1024} KiB",
                )
                return
            self._checked("manifest_file", lambda: check_manifest(upload.read(), source=upload.name, sha256=sha256))
        else:
            stored = self.stored_manifest()
            if stored is None:
                self.add_error("manifest_file", "upload the manifest, or give its https URL and SHA-256")
            else:
                self.instance.pod_network_version = manifests.custom_version(stored.sha256)

    def _checked(self, field: str, read) -> None:
        try:
            self.custom_manifest = read()
        except manifests.ManifestError as exc:
            self.add_error(field, str(exc))
            return
        self.instance.pod_network_version = self.custom_manifest.version
