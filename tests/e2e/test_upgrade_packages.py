"""A cluster prepared from package repositories upgrades with no command typed (issue 19 item 2).

Two bare test-bed machines are prepared by Kubeboard's Prepare operation from the package source
at v1.36.3: real apt-get in each node's private root, against a local signed mirror laid out like
pkgs.k8s.io with one repository per minor (``/v1.36/deb/`` and ``/v1.37/deb/``, one key, its
fingerprint pinned in the cluster's preparation settings; tools/testbed/aptrepo.py). Kubeboard
initializes one and joins the other as a worker, then upgrades the cluster to v1.37.2: on each
node the repository file moves to the v1.37 minor (its key downloaded and checked against the pin
again), kubeadm is unheld, installed at 1.37.2-1.1 and held again before ``kubeadm upgrade``, then
the kubelet and kubectl on the drained node, and the kubelet restarted. apt, dpkg and kubeadm are
real; what they install is the test bed's (kubemark's hollow kubelet as the kubelet package).

The package source pulls images from a registry, which the test bed has none of: the control
plane ignores ImagePull (init and upgrade apply); its static Pods run from the release's binaries
(the runner), so no image is needed. The artifact-source upgrade, in Chromium, is
tests/e2e/test_day2_upgrade.py. Every connection passes the test bed's route guard.
"""

from __future__ import annotations

import pytest

import kube
from nodes.services import run_check
from tests.e2e.test_day2_upgrade import older_release
from tests.e2e.test_testbed_bare import configure_site_mirror
from tests.support.day2 import assert_upgraded, messages, run
from tests.support.testbed_cluster import package_source, prepared_cluster
from tools.testbed.binaries import DEFAULT_VERSION, OLDER_VERSION, BinariesMissing
from tools.testbed.preflight import TESTBED_PREPARED_UPGRADE
from tools.testbed.testing import require_binaries, sandbox, unavailable
from workflows import upgrade
from workflows.models import DayTwoSettings, MachinePreparation

pytestmark = [pytest.mark.cluster, pytest.mark.e2e, pytest.mark.django_db(transaction=True), pytest.mark.timeout(1200)]

NAME = "kbtbpu"
SUBNET = "10.213.97.0/24"
# No image is pulled from a registry here (the package source's images come from one).
NO_REGISTRY = ("ImagePull",)


def _deb_version(version: str) -> str:
    return version.lstrip("v") + "-1.1"


def test_a_cluster_prepared_from_packages_upgrades_from_its_repository_with_no_command_typed(operator):
    from tools.testbed.aptrepo import RepoServer, cached_repo

    older_release()
    new = require_binaries(DEFAULT_VERSION)
    try:
        # Both minors' packages from the cached binaries and containerd (built once, one key).
        repo = cached_repo(OLDER_VERSION, DEFAULT_VERSION)
    except BinariesMissing as exc:
        unavailable(str(exc))
    with sandbox(NAME, SUBNET, size=2, bare=True) as sb, RepoServer(repo, sb.gateway) as server:
        for index in (1, 2):
            configure_site_mirror(sb.node(index), repo, server)
        cluster, cp, worker = prepared_cluster(
            "pkgup",
            sb,
            operator,
            version=OLDER_VERSION,
            source=package_source(server, repo),
            control_plane_ignores=list(NO_REGISTRY),
        )
        for index in (1, 2):
            for package in ("kubeadm", "kubelet", "kubectl"):
                shown = sb.node(index).ssh(f"dpkg-query -W -f '${{Version}}' {package}").stdout
                assert shown == _deb_version(OLDER_VERSION), (index, package, shown)
        assert kube.server_version(cluster) == OLDER_VERSION

        DayTwoSettings.objects.update_or_create(
            cluster=cluster,
            defaults={
                # A prepared machine has no etcd client: the pre-upgrade snapshot's tools are the
                # cached release's, as an operator would install etcd's client tools.
                "etcdctl": str(new / "etcdctl"),
                "etcdutl": str(new / "etcdutl"),
                "upgrade_ignore_preflight_errors": [*TESTBED_PREPARED_UPGRADE, *NO_REGISTRY],
            },
        )
        tools = DayTwoSettings.objects.get(cluster=cluster)
        assert tools.kubeadm_package_command == "" and tools.kubelet_package_command == ""
        plan = upgrade.build_plan(cluster, DEFAULT_VERSION)
        assert plan.allowed, plan.refusals
        source = f"from the mirror {server.mirror} v1.37 repository"
        assert plan.package_source.texts == {"kubeadm": source, "kubelet": source}

        operation = run(upgrade.start_upgrade(cluster, DEFAULT_VERSION, user=operator))

        assert_upgraded(cluster, (cp, worker), DEFAULT_VERSION)
        minor = "v1.37"
        for index, node in ((1, cp), (2, worker)):
            machine = sb.node(index)
            # apt installed the target's packages from the v1.37 repository, and holds them again.
            for package in ("kubeadm", "kubelet", "kubectl"):
                shown = machine.ssh(f"dpkg-query -W -f '${{Version}}' {package}").stdout
                assert shown == _deb_version(DEFAULT_VERSION), (node.name, package, shown)
            held = set(machine.ssh("apt-mark showhold").stdout.split())
            assert {"kubeadm", "kubelet", "kubectl"} <= held, held
            sources = machine.ssh("cat /etc/apt/sources.list.d/kubernetes.list").stdout
            assert f"{server.mirror}/{minor}/deb/" in sources and "/v1.36/" not in sources, sources
            out = machine.ssh("kubeadm version -o short && kubelet --version").stdout.split()
            assert out == [DEFAULT_VERSION, "Kubernetes", DEFAULT_VERSION]
            said = "\n".join(messages(operation, "kubeadm-package", node.name))
            assert f"kubeadm {DEFAULT_VERSION} installed {source}, held." in said, said
            said = "\n".join(messages(operation, "kubelet-package", node.name))
            assert f"kubelet, kubectl {DEFAULT_VERSION} installed {source}, held." in said, said
            assert MachinePreparation.objects.get(node=node).kubernetes_version == DEFAULT_VERSION
            assert run_check(node.pk)["binaries"]["kubeadm"]["version"] == DEFAULT_VERSION
        ps = sb.node(1).exec(["ps", "-eo", "args"]).stdout
        for component in ("kube-apiserver", "kube-controller-manager", "kube-scheduler"):
            assert f"{new}/{component} " in ps, f"{component} does not run the new release:\n{ps}"
