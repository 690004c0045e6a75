"""Where the upgrade's package steps come from (issue 19 item 2): the typed command, the
cluster's package repositories, or its artifact set; the plan's line for each and its refusal."""

from __future__ import annotations

import pytest
from django.utils import timezone

from artifacts.models import ArtifactFile, ArtifactSet
from clusters.models import Cluster
from kube import ClusterState, NodeState
from kubeadm import pki
from nodes.models import Node
from tests.conftest import team_of
from tests.factories import make_cluster
from tests.support.kubeclusters import store_authorities
from workflows import backup, upgrade
from workflows.models import MachinePreparation, PrepareSettings

pytestmark = pytest.mark.django_db
DEBIAN_12 = 'ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n'


def _state() -> ClusterState:
    components = {c: f"registry.k8s.io/{c}:v1.36.3" for c in ("kube-apiserver", "kube-controller-manager")}
    return ClusterState(
        server_version="v1.36.3",
        nodes={
            "cp1": NodeState("cp1", True, True, "v1.36.3", False, components),
            "w1": NodeState("w1", True, False, "v1.36.3", False, {}),
        },
    )


def _machine(cluster, name: str, role: str, *, prepared: bool = True) -> Node:
    node = Node.objects.create(
        cluster=cluster,
        name=name,
        address=f"10.0.0.{20 + Node.objects.count()}",
        role=role,
        status=Node.Status.JOINED,
        ssh_host_key="ssh-ed25519 AAAA",
        ssh_host_key_fingerprint="SHA256:x",
        facts={"binaries": {"kubeadm": {"path": "/usr/bin/kubeadm", "version": "v1.36.3"}}},
    )
    if prepared:
        MachinePreparation.objects.create(
            node=node,
            facts={"os_release": DEBIAN_12, "machine": "x86_64", "init": "systemd", "family": "debian",
                   "architecture": "amd64"},
            prepared_at=timezone.now(),
            source="packages",
            kubernetes_version="v1.36.3",
        )  # fmt: skip
    return node


@pytest.fixture
def cluster(operator):
    made = make_cluster("c1", team=team_of(operator), kubernetes_version="v1.36.3", status=Cluster.Status.RUNNING)
    store_authorities(made, {"ca": pki.generate_ca("kubernetes", "ECDSA-P256")})
    _machine(made, "cp1", Node.Role.CONTROL_PLANE)
    _machine(made, "w1", Node.Role.WORKER)
    return made


def _source(cluster, source: str) -> None:
    PrepareSettings.objects.update_or_create(cluster=cluster, defaults={"source": source})


def _import_set(version: str = "v1.37.2", arch: str = "amd64") -> ArtifactSet:
    held = ArtifactSet.objects.create(kubernetes_version=version, architecture=arch, source="/tmp/set")
    for path in ("bin/kubeadm", "bin/kubelet", "bin/kubectl", "images/kube-apiserver.tar"):
        ArtifactFile.objects.create(artifact_set=held, path=path, sha256="0" * 64, size=1)
    return held


def test_package_repositories_give_both_steps_from_the_target_minor(cluster):
    _source(cluster, PrepareSettings.Source.PACKAGES)
    plan = upgrade.build_plan(cluster, "v1.37.2", state=_state())
    assert plan.allowed, plan.refusals
    assert plan.package_source.texts == {
        "kubeadm": "from pkgs.k8s.io v1.37 repository",
        "kubelet": "from pkgs.k8s.io v1.37 repository",
    }
    cp = next(n for n in plan.nodes if n.name == "cp1")
    assert cp.steps[0] == "kubeadm from pkgs.k8s.io v1.37 repository"
    assert cp.kubelet_after == "v1.37.2"


def test_a_mirror_is_named_and_a_typed_command_still_wins(cluster):
    PrepareSettings.objects.create(cluster=cluster, repository_url="https://mirror.local/k8s")
    backup.settings_for(cluster).__class__.objects.filter(cluster=cluster).update(kubeadm_package_command="k {version}")
    plan = upgrade.build_plan(cluster, "v1.37.2", state=_state())
    assert plan.package_source.kinds == {"kubeadm": "typed", "kubelet": "packages"}
    assert plan.package_source.texts["kubeadm"] == "typed command"
    assert plan.package_source.texts["kubelet"] == "from the mirror https://mirror.local/k8s v1.37 repository"


def test_an_artifact_source_without_the_target_set_is_refused_naming_what_to_import(cluster):
    _source(cluster, PrepareSettings.Source.ARTIFACTS)
    plan = upgrade.build_plan(cluster, "v1.37.2", state=_state())
    assert not plan.allowed
    messages = [r.message for r in plan.refusals]
    assert "Kubeboard holds none for Kubernetes v1.37.2 on amd64 (cp1)" in messages[0], messages
    assert "import artifact set v1.37.2-amd64: manage.py artifacts import DIR" in plan.way_forward[0]
    # Imported: allowed, and the plan says which set.
    _import_set()
    plan = upgrade.build_plan(cluster, "v1.37.2", state=_state())
    assert plan.allowed, plan.refusals
    assert plan.package_source.texts["kubeadm"] == "from artifact set v1.37.2 amd64"


def test_neither_a_source_nor_a_command_refuses_with_both_ways_named(operator):
    bare = make_cluster("c2", team=team_of(operator), kubernetes_version="v1.36.3", status=Cluster.Status.RUNNING)
    _machine(bare, "cp1", Node.Role.CONTROL_PLANE, prepared=False)
    _machine(bare, "w1", Node.Role.WORKER, prepared=False)
    plan = upgrade.build_plan(bare, "v1.37.2", state=_state())
    assert plan.package_source.kinds == {"kubeadm": "", "kubelet": ""}
    assert not plan.allowed
    assert "kubeadm v1.36.3 is older than Kubernetes v1.37.2" in plan.refusals[0].message
    assert "prepare source" in plan.refusals[0].hint and "kubeadm package command" in plan.refusals[0].hint


def test_a_machine_kubeboard_did_not_prepare_is_refused_with_a_source(cluster):
    _source(cluster, PrepareSettings.Source.PACKAGES)
    _machine(cluster, "w2", Node.Role.WORKER, prepared=False)
    state = _state()
    state.nodes["w2"] = NodeState("w2", True, False, "v1.36.3", False, {})
    plan = upgrade.build_plan(cluster, "v1.37.2", state=state)
    assert any(r.message.startswith("w2: Kubeboard does not know its distribution") for r in plan.refusals)


def test_an_artifact_set_upgrade_pushes_checks_and_installs_from_it(cluster, operator, monkeypatch):
    _source(cluster, PrepareSettings.Source.ARTIFACTS)
    _import_set()
    monkeypatch.setattr(upgrade.kube, "cluster_state", lambda c: _state())  # a double for the API server
    operation = upgrade.start_upgrade(cluster, "v1.37.2", user=operator)
    groups: dict[str, list[str]] = {}
    for phase in operation.phases.order_by("order"):
        groups.setdefault(phase.group, []).append(phase.name)
    assert groups["cp1"][:5] == ["push", "kubeadm-package", "images", "kubeadm-version", "preflight"]
    assert groups["cp1"][-4:] == ["drain", "kubelet-package", "verify-node", "uncordon"]
    assert groups["w1"][:5] == ["push", "kubeadm-package", "images", "kubeadm-version", "drain"]
    assert operation.params["package_source"]["sets"] == {"cp1": "v1.37.2-amd64", "w1": "v1.37.2-amd64"}
    assert operation.params["kubeadm_package_command"] == ""
    specs = {spec.name: spec for spec in upgrade.PHASES}
    assert "SHA-256 on the machine" in specs["push"].description


def test_a_machine_upgraded_from_its_prepare_source_is_recorded_as_prepared_for_the_target(cluster):
    # The end of the kubelet package step (tests/e2e/test_day2_upgrade.py runs it on machines);
    # here its record alone, with the phase context's node and log.
    from types import SimpleNamespace

    from workflows import upgrade_packages

    said: list[str] = []
    cp1 = Node.objects.get(name="cp1")
    upgrade_packages._record_prepared_for(SimpleNamespace(node=cp1, log=said.append), "1.37.2")
    assert MachinePreparation.objects.get(node=cp1).kubernetes_version == "v1.37.2"
    assert MachinePreparation.objects.get(node__name="w1").kubernetes_version == "v1.36.3"
    assert said == ["cp1: Kubeboard records it as prepared for Kubernetes v1.37.2."]
