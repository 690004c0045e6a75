"""Reading add-on manifests and the documented substitutions made to them.

Only these substitutions are ever made (a test diffs what the API server stores against the
upstream manifest plus exactly these):

* Flannel: ``net-conf.json``'s ``Network`` in ConfigMap kube-flannel/kube-flannel-cfg becomes the
  cluster's IPv4 pod subnet (flannel's docs: "change the Network to your pod CIDR");
* Calico: the commented ``CALICO_IPV4POOL_CIDR`` of calico-node is uncommented with the cluster's
  IPv4 pod subnet (Calico's docs for calico.yaml); without a pod subnet it stays commented and
  Calico uses its default 192.168.0.0/16;
* every choice: the registry of each Pod template's images becomes the private registry given
  (``ghcr.io/flannel-io/flannel:v0.28.9`` -> ``registry.local:5000/flannel-io/flannel:v0.28.9``).

A custom manifest gets that image substitution and nothing else: Kubeboard does not know where
its author put the pod subnet, so it is applied as written.

Both subnet substitutions are made on the text, anchored on the upstream line and required to
match exactly once, so a manifest whose shape changed is refused instead of half-substituted.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass
from typing import Any

import yaml

from addons import catalog
from kubeadm import yamlio
from kubeadm.errors import YAMLFormatError

# A custom manifest: what one upload or URL may bring. Calico's calico.yaml (350 KB, 7,800 lines,
# ~60,000 values) fits several times over.
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
LIMITS = yamlio.YAMLLimits(max_bytes=MAX_MANIFEST_BYTES, max_nodes=400_000, max_aliases=200)
MAX_OBJECTS = 2000
CALICO_DEFAULT_POOL = "192.168.0.0/16"


class ManifestError(ValueError):
    """A manifest cannot be used; the message names the document and line when it can."""


@dataclass(frozen=True)
class Choice:
    """What to apply: a network, its version (pinned ones), and where images come from."""

    network: str
    version: str = ""  # a pinned version; a custom manifest's is custom_version(its SHA-256)
    image_registry: str = ""  # "" = upstream's registries
    sha256: str = ""  # a custom manifest's, in full: what the apply checks the stored text against


# --- reading -------------------------------------------------------------------------------------

_DOC_START = re.compile(r"^---(\s|$)", re.MULTILINE)


def _document_at(text: str, line: int) -> tuple[int, int]:
    """(document number from 1, its first line) of 1-based ``line``, by the ``---`` separators."""
    starts = [1] + [text.count("\n", 0, m.start()) + 2 for m in _DOC_START.finditer(text)]
    starts = sorted({s for s in starts})
    number, first = 1, 1
    for index, start in enumerate(starts, 1):
        if start <= line:
            number, first = index, start
    return number, first


_LINE = re.compile(r"line (\d+)")


def parse(text: str | bytes, *, source: str = "manifest") -> list[dict[str, Any]]:
    """The Kubernetes objects of a multi-document YAML stream (``kind: List`` expanded).

    Bounded (``LIMITS``, ``MAX_OBJECTS``) and safe (no tags that build Python objects). A mistake
    is a ManifestError naming the document and line: "document 3 (from line 41), line 47: …".
    """
    if isinstance(text, bytes):
        if len(text) > MAX_MANIFEST_BYTES:
            raise ManifestError(f"{source} is {len(text)} bytes; at most {MAX_MANIFEST_BYTES // 1024} KiB")
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ManifestError(f"{source} is not UTF-8 text (byte {exc.start})") from None
    try:
        documents = yamlio.load_documents(text, source=source, limits=LIMITS)
    except YAMLFormatError as exc:
        found = _LINE.search(str(exc))
        if found:
            line = int(found.group(1))
            number, first = _document_at(text, line)
            raise ManifestError(f"{source}: document {number} (from line {first}), line {line}: {exc}") from None
        raise ManifestError(str(exc)) from None
    objects: list[dict[str, Any]] = []
    for index, document in enumerate(documents):
        items = document.get("items") if isinstance(document, dict) and document.get("kind") == "List" else [document]
        for item in items or []:
            problem = _object_problem(item)
            if problem:
                raise ManifestError(f"{source}: {_where_document(text, index)}: {problem}")
            objects.append(item)
    if len(objects) > MAX_OBJECTS:
        raise ManifestError(f"{source} has {len(objects)} objects; at most {MAX_OBJECTS}")
    if not objects:
        raise ManifestError(f"{source} holds no Kubernetes object")
    return objects


def _where_document(text: str, index: int) -> str:
    """ "document 2 (from line 5), line 6" for the ``index``-th non-empty document of ``text``
    (an error path only: the text already passed the bounded reading, so composing it again is safe)."""
    nodes = [
        node
        for node in yaml.compose_all(text, Loader=yaml.SafeLoader)
        if node is not None and not (isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null")
    ]
    if index >= len(nodes):
        return f"document {index + 1}"
    line = nodes[index].start_mark.line + 1
    number, first = _document_at(text, line)
    return f"document {number} (from line {first}), line {line}"


def _object_problem(item: Any) -> str:
    if not isinstance(item, dict):
        return "not a Kubernetes object (a mapping with apiVersion, kind and metadata.name)"
    for key in ("apiVersion", "kind"):
        if not isinstance(item.get(key), str) or not item.get(key):
            return f"no {key}"
    metadata = item.get("metadata")
    if not isinstance(metadata, dict) or not isinstance(metadata.get("name"), str) or not metadata["name"]:
        return f"{item['kind']} without metadata.name"
    return ""


def key(obj: dict[str, Any]) -> tuple[str, str, str, str]:
    """(apiVersion, kind, namespace, name): one object's identity in a manifest."""
    metadata = obj.get("metadata") or {}
    return (obj["apiVersion"], obj["kind"], metadata.get("namespace") or "", metadata["name"])


def describe(obj: dict[str, Any]) -> str:
    _, kind, namespace, name = key(obj)
    return f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"


# --- custom manifests ----------------------------------------------------------------------------

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def custom_version(sha256: str) -> str:
    """What a cluster keeps as a custom manifest's version ("sha256:1a2b…", 23 characters): the
    next step compares it with what was rolled out, the page shows it."""
    return "sha256:" + normalise_sha256(sha256)[:16]


def normalise_sha256(value: str) -> str:
    value = value.strip().lower().removeprefix("sha256:")
    if not _SHA256.match(value):
        raise ManifestError("a SHA-256 is 64 hexadecimal characters (as sha256sum prints it)")
    return value


def check_sha256(data: bytes, expected: str, *, source: str) -> None:
    """Refuse ``data`` unless its SHA-256 is ``expected`` (before anything is parsed or applied)."""
    digest = hashlib.sha256(data).hexdigest()
    if digest != normalise_sha256(expected):
        raise ManifestError(
            f"{source} has SHA-256 {digest}, not the {normalise_sha256(expected)} given: nothing was applied"
        )


# --- pinned manifests with their substitutions ---------------------------------------------------


def _ipv4_subnet(pod_subnet: str) -> str:
    for part in (p.strip() for p in pod_subnet.split(",")):
        if not part:
            continue
        try:
            network = ipaddress.ip_network(part, strict=False)
        except ValueError:
            continue
        if network.version == 4:
            return str(network)
    return ""


def _replace_once(text: str, old: str, new: str, what: str) -> str:
    count = text.count(old)
    if count != 1:
        raise ManifestError(f"{what}: expected {old!r} once in the manifest, found it {count} times")
    return text.replace(old, new)


def substituted_text(pinned: catalog.Pinned, pod_subnet: str) -> str:
    """The pinned manifest's text with its documented pod-subnet substitution."""
    text = pinned.text()
    subnet = _ipv4_subnet(pod_subnet)
    if pinned.name == catalog.FLANNEL:
        if not subnet:
            raise ManifestError("Flannel needs an IPv4 pod subnet (net-conf.json's Network)")
        return _replace_once(text, '"Network": "10.244.0.0/16"', f'"Network": "{subnet}"', "Flannel's Network")
    if pinned.name == catalog.CALICO and subnet:
        return _replace_once(
            text,
            f'# - name: CALICO_IPV4POOL_CIDR\n            #   value: "{CALICO_DEFAULT_POOL}"',
            f'- name: CALICO_IPV4POOL_CIDR\n              value: "{subnet}"',
            "Calico's CALICO_IPV4POOL_CIDR",
        )
    return text


_REGISTRY = re.compile(
    r"^(localhost|[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*)(:[0-9]{1,5})?"
    r"(/[a-z0-9]+([._-][a-z0-9]+)*)*$"
)


def registry_problem(registry: str) -> str:
    """Why ``registry`` cannot stand in front of an image path ("" when it can): a host, an
    optional port and optional path, as in ``registry.local:5000/mirror`` (no scheme, no tag)."""
    value = registry.strip().rstrip("/")
    if not value:
        return ""
    if "://" in value:
        return f"{value} has a scheme; write the registry as an image reference starts, e.g. registry.local:5000"
    if len(value) > 255 or not _REGISTRY.match(value):
        return (
            f"{value} is not a registry: a host name in lower case, an optional :port and an optional path, "
            "e.g. registry.local:5000/mirror"
        )
    return ""


def with_registry(image: str, registry: str) -> str:
    """``image`` pulled from ``registry`` instead: its registry host replaced, the path kept.

    Docker Hub short names (``calico/node:v3``, ``nginx``) get the registry in front, as
    ``docker.io/…`` would be written out.
    """
    registry = registry.strip().rstrip("/")
    if not registry:
        return image
    first, sep, rest = image.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return f"{registry}/{rest}"
    return f"{registry}/{image}"


def _pod_spec(obj: dict[str, Any]) -> dict[str, Any] | None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return None
    if obj.get("kind") == "Pod":
        return spec
    if obj.get("kind") == "CronJob":
        spec = ((spec.get("jobTemplate") or {}).get("spec")) or {}
    template = spec.get("template")
    return template.get("spec") if isinstance(template, dict) and isinstance(template.get("spec"), dict) else None


def images(obj: dict[str, Any]) -> list[str]:
    pod = _pod_spec(obj) or {}
    return [
        c["image"]
        for field in ("initContainers", "containers")
        for c in pod.get(field) or []
        if isinstance(c, dict) and isinstance(c.get("image"), str)
    ]


def point_images(objects: list[dict[str, Any]], registry: str) -> None:
    """Every Pod template's images pulled from ``registry`` (in place)."""
    if not registry.strip():
        return
    for obj in objects:
        pod = _pod_spec(obj) or {}
        for field in ("initContainers", "containers"):
            for container in pod.get(field) or []:
                if isinstance(container, dict) and isinstance(container.get("image"), str):
                    container["image"] = with_registry(container["image"], registry)


def render(choice: Choice, pod_subnet: str) -> list[dict[str, Any]]:
    """The objects Kubeboard applies for a pinned ``choice`` on a cluster with ``pod_subnet``."""
    pinned = catalog.pinned(choice.network, choice.version)
    objects = parse(substituted_text(pinned, pod_subnet), source=pinned.file)
    point_images(objects, choice.image_registry)
    return objects


def render_custom(data: bytes, image_registry: str, *, source: str = "custom manifest") -> list[dict[str, Any]]:
    objects = parse(data, source=source)
    point_images(objects, image_registry)
    return objects


# --- does a pod subnet fit? ----------------------------------------------------------------------


def pod_subnet_problems(
    network: str, pod_subnet: str, service_subnet: str, machine_addresses: list[str] = ()
) -> list[str]:
    """Why ``pod_subnet`` cannot carry ``network``'s Pods (empty: it fits).

    Flannel needs one (net-conf.json); Calico without one uses 192.168.0.0/16, checked the same
    way; a custom manifest needs none, but the cluster's, when it has one, is checked the same way
    (kube-controller-manager hands each node a slice of it). The pod range must not overlap the service subnet nor hold a machine's address: routes to
    Pods would then shadow Services or the machines themselves.
    """
    if network in ("", catalog.NONE):
        return []
    subnet = _ipv4_subnet(pod_subnet)
    if network == catalog.CUSTOM and not subnet:
        return []  # what a custom manifest needs is its author's to say; nothing is substituted
    if network == catalog.FLANNEL and not subnet:
        return [
            "Flannel needs an IPv4 pod subnet: it writes it into net-conf.json and kube-controller-manager "
            "hands each node a slice of it (e.g. 10.244.0.0/16)"
        ]
    pods = ipaddress.ip_network(subnet or CALICO_DEFAULT_POOL, strict=False)
    named = "the pod subnet" if subnet else "Calico's default pool (no pod subnet set)"
    problems = []
    for part in (p.strip() for p in service_subnet.split(",")):
        try:
            services = ipaddress.ip_network(part, strict=False)
        except ValueError:
            continue
        if services.version == pods.version and services.overlaps(pods):
            problems.append(f"{named} {pods} overlaps the service subnet {services}")
    for address in machine_addresses:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            continue  # a DNS name: nothing to compare without resolving it
        if ip in pods:
            problems.append(f"{named} {pods} holds the machine address {ip}")
    return problems
