"""Issue 20: the pinned add-on manifests, their substitutions, custom manifests and pod subnets."""

from __future__ import annotations

import hashlib

import pytest

from addons import catalog, manifests
from kube import apply as kube_apply


@pytest.mark.parametrize("pinned", catalog.PINNED, ids=lambda p: p.label)
def test_every_pinned_manifest_matches_its_checksum_and_ships_its_licence(pinned):
    assert hashlib.sha256(pinned.path.read_bytes()).hexdigest() == pinned.sha256
    assert "Apache License" in (catalog.MANIFEST_DIR / pinned.licence).read_text()
    assert manifests.parse(pinned.text(), source=pinned.file)


def test_an_edited_manifest_is_refused(tmp_path, monkeypatch):
    pinned = catalog.pinned(catalog.FLANNEL)
    copy = tmp_path / pinned.file
    copy.parent.mkdir(parents=True)
    copy.write_bytes(pinned.path.read_bytes() + b"\n# edited\n")
    monkeypatch.setattr(catalog, "MANIFEST_DIR", tmp_path)
    with pytest.raises(catalog.CatalogError, match="was changed"):
        pinned.text()


def test_unknown_versions_name_the_pinned_ones():
    with pytest.raises(catalog.CatalogError, match=r"Flannel v9.9.9 is not pinned \(pinned: v0.28.8, v0.28.9\)"):
        catalog.pinned(catalog.FLANNEL, "v9.9.9")


def _only_difference(name: str, subnet: str, registry: str = ""):
    pinned = catalog.pinned(name)
    upstream = manifests.parse(pinned.text())
    rendered = manifests.render(manifests.Choice(name, image_registry=registry), subnet)
    # Both ways: a field the substitution adds (Calico's env entry) shows only from the rendered side.
    found = {
        (manifests.describe(u), path)
        for u, r in zip(upstream, rendered, strict=True)
        for a, b in ((u, r), (r, u))
        for path, _, _ in kube_apply.differences(a, b)
    }
    return sorted(found)


def test_flannel_substitutes_only_its_network():
    assert _only_difference(catalog.FLANNEL, "10.100.0.0/16,fd00::/56") == [
        ("ConfigMap kube-flannel/kube-flannel-cfg", "data.net-conf.json")
    ]
    rendered = manifests.render(manifests.Choice(catalog.FLANNEL), "10.100.0.0/16")
    config = next(o for o in rendered if o["kind"] == "ConfigMap")
    assert '"Network": "10.100.0.0/16"' in config["data"]["net-conf.json"]


def test_calico_uncomments_its_pool_and_images_follow_a_private_registry():
    found = _only_difference(catalog.CALICO, "10.100.0.0/16", "registry.local:5000")
    # Every container's image moves (a no-op registry would leave only the pool), nothing else.
    assert found == [
        ("DaemonSet kube-system/calico-node", "spec.template.spec.containers[calico-node].env[CALICO_IPV4POOL_CIDR]"),
        ("DaemonSet kube-system/calico-node", "spec.template.spec.containers[calico-node].image"),
        ("DaemonSet kube-system/calico-node", "spec.template.spec.initContainers[ebpf-bootstrap].image"),
        ("DaemonSet kube-system/calico-node", "spec.template.spec.initContainers[install-cni].image"),
        ("DaemonSet kube-system/calico-node", "spec.template.spec.initContainers[upgrade-ipam].image"),
        (
            "Deployment kube-system/calico-kube-controllers",
            "spec.template.spec.containers[calico-kube-controllers].image",
        ),
    ]
    rendered = manifests.render(manifests.Choice(catalog.CALICO, image_registry="registry.local:5000"), "")
    node = next(o for o in rendered if o["kind"] == "DaemonSet")["spec"]["template"]["spec"]["containers"][0]
    assert node["image"] == f"registry.local:5000/calico/node:{catalog.newest(catalog.CALICO).version}"
    assert _only_difference(catalog.CALICO, "") == []  # no pod subnet: Calico's default pool, untouched


@pytest.mark.parametrize(
    ("image", "moved"),
    [
        ("ghcr.io/flannel-io/flannel:v0.28.9", "r.local:5000/flannel-io/flannel:v0.28.9"),
        ("quay.io/calico/node:v3.32.1", "r.local:5000/calico/node:v3.32.1"),
        ("calico/node:v3", "r.local:5000/calico/node:v3"),
        ("localhost/x:1", "r.local:5000/x:1"),
    ],
)
def test_registry_prefix(image, moved):
    assert manifests.with_registry(image, "r.local:5000/") == moved


@pytest.mark.parametrize(
    ("network", "pods", "machines", "problem"),
    [
        ("flannel", "", [], "Flannel needs an IPv4 pod subnet"),
        ("flannel", "10.96.0.0/16", [], "overlaps the service subnet 10.96.0.0/12"),
        ("flannel", "10.213.0.0/16", ["10.213.50.11"], "holds the machine address 10.213.50.11"),
        ("calico", "", ["192.168.1.5"], "Calico's default pool (no pod subnet set) 192.168.0.0/16 holds"),
    ],
)
def test_pod_subnets_that_do_not_fit_are_refused_with_the_reason(network, pods, machines, problem):
    problems = manifests.pod_subnet_problems(network, pods, "10.96.0.0/12", machines)
    assert any(problem in p for p in problems), problems


def test_fitting_pod_subnets_pass():
    assert manifests.pod_subnet_problems("flannel", "10.244.0.0/16", "10.96.0.0/12", ["10.0.0.5", "node1"]) == []
    assert manifests.pod_subnet_problems("none", "", "10.96.0.0/12") == []


def test_invalid_yaml_names_the_document_and_the_line():
    text = "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\napiVersion: v1\nkind: x\n  b: [\n"
    with pytest.raises(manifests.ManifestError, match=r"up.yaml: document 2 \(from line 5\), line 7"):
        manifests.parse(text, source="up.yaml")
    with pytest.raises(
        manifests.ManifestError, match=r"document 2 \(from line 5\), line 5: ConfigMap without metadata.name"
    ):
        manifests.parse("apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\napiVersion: v1\nkind: ConfigMap\n")
    # An empty document between two does not shift the count: documents are counted as written.
    with pytest.raises(manifests.ManifestError, match=r"document 3 \(from line 6\), line 7: no kind"):
        manifests.parse("apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n---\n# note\napiVersion: v1\n")
    # In a List, the item's own line.
    with pytest.raises(manifests.ManifestError, match=r"document 1 \(from line 1\), line 1: ConfigMap without"):
        manifests.parse("apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap}\n")


@pytest.mark.parametrize(
    ("pods", "machines", "problem"),
    [
        ("", [], None),  # a custom manifest needs no pod subnet: nothing is substituted into it
        ("10.96.0.0/16", [], "the pod subnet 10.96.0.0/16 overlaps the service subnet 10.96.0.0/12"),
        ("10.213.0.0/16", ["10.213.50.11"], "the pod subnet 10.213.0.0/16 holds the machine address 10.213.50.11"),
    ],
)
def test_a_custom_manifest_needs_no_pod_subnet_but_one_given_must_fit(pods, machines, problem):
    problems = manifests.pod_subnet_problems(catalog.CUSTOM, pods, "10.96.0.0/12", machines)
    assert problems == ([problem] if problem else [])


def test_a_custom_manifest_gets_only_the_image_registry():
    text = (
        b"apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: d, namespace: n}\nspec:\n  template:\n    spec:\n"
        b"      initContainers: [{name: i, image: busybox}]\n      containers: [{name: c, image: quay.io/me/cni:v1}]\n"
    )
    assert manifests.render_custom(text, "") == manifests.parse(text)
    (moved,) = manifests.render_custom(text, "registry.local:5000")
    assert manifests.images(moved) == ["registry.local:5000/busybox", "registry.local:5000/me/cni:v1"]
    assert kube_apply.differences(moved, manifests.parse(text)[0]) == [
        ("spec.template.spec.initContainers[i].image", "registry.local:5000/busybox", "busybox"),
        ("spec.template.spec.containers[c].image", "registry.local:5000/me/cni:v1", "quay.io/me/cni:v1"),
    ]
    assert manifests.custom_version("AB" * 32) == "sha256:" + "ab" * 8


def test_a_bad_checksum_is_refused_before_parsing():
    data = b"apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n"
    manifests.check_sha256(data, "sha256:" + hashlib.sha256(data).hexdigest().upper(), source="x")
    with pytest.raises(manifests.ManifestError, match="nothing was applied"):
        manifests.check_sha256(data, "0" * 64, source="https://example.test/x.yaml")
    with pytest.raises(manifests.ManifestError, match="64 hexadecimal"):
        manifests.check_sha256(data, "abc", source="x")


def test_oversized_and_unsafe_manifests_are_refused():
    with pytest.raises(manifests.ManifestError, match="at most 4096 KiB"):
        manifests.parse(b"#" * (manifests.MAX_MANIFEST_BYTES + 1))
    with pytest.raises(manifests.ManifestError, match="line 1"):
        manifests.parse("!!python/object/apply:os.system ['true']\n")


def test_drift_names_the_field_and_its_manager():
    wanted = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k.json": "v", "n": "1"}}
    live = {
        "metadata": {
            "name": "c",
            "managedFields": [
                {"manager": "kubeboard", "fieldsV1": {"f:data": {"f:n": {}}}},
                {"manager": "kubectl-edit", "fieldsV1": {"f:data": {"f:k.json": {}}}},
            ],
        },
        "data": {"k.json": "edited", "n": 1},
    }
    assert kube_apply.drift(wanted, live) == [kube_apply.Drift("data.k.json", "v", "edited", ("kubectl-edit",))]
