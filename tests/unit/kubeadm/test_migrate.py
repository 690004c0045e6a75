"""v1beta3 -> v1beta4 as `kubeadm config migrate` (real v1.36.3) does it, byte for byte."""

import re
from pathlib import Path

import pytest

from kubeadm import config, migrate
from kubeadm.errors import ConfigError, YAMLFormatError

REAL = Path(__file__).parent / "data" / "real-v1.36.3" / "migrate"


@pytest.mark.parametrize("name", ["init", "join"])
def test_full_files_migrate_exactly_like_kubeadm(name):
    parsed = migrate.migrate_config((REAL / f"old-{name}.yaml").read_text())
    assert not parsed.unknown_fields
    assert migrate.render_migrated(parsed) == (REAL / f"new-{name}.yaml").read_text()


def test_moved_fields_and_argument_lists():
    parsed = migrate.migrate_config((REAL / "old-init.yaml").read_text())
    assert str(parsed.init.timeouts.control_plane_component_health_check) == "0:06:00"
    assert [(a.name, a.value) for a in parsed.cluster.etcd.local.extra_args] == [
        ("election-timeout", "5000"),
        ("listen-metrics-urls", "http://127.0.0.1:2381"),
    ]
    join = migrate.migrate_config((REAL / "old-join.yaml").read_text()).join
    assert str(join.timeouts.discovery) == "0:03:00"
    assert join.node_registration.taints[0].key == "node-role.kubernetes.io/control-plane"


def _without_machine_values(text: str) -> str:
    """kubeadm's output minus what it took from the machine it ran on (host name "vm", its
    address, a random token): Kubeboard leaves those for the node."""
    text = re.sub(r"bootstrapTokens:\n(?:[- ] .*\n)+", "", text)
    text = re.sub(r"  advertiseAddress: .*\n", "", text)
    return re.sub(r"  name: vm\n", "", text)


@pytest.mark.parametrize("name", ["min-cluster", "min-join"])
def test_minimal_files_get_kubeadms_defaults_but_no_machine_values(name):
    ours = migrate.render_migrated(migrate.migrate_config((REAL / f"old-{name}.yaml").read_text()))
    assert ours == _without_machine_values((REAL / f"new-{name}.yaml").read_text())


def test_v1beta4_input_passes_through_and_other_kinds_are_kept():
    init = config.default_init_configuration()
    init.node_registration.taints = []  # unset taints on a control plane would get kubeadm's default
    text = config.render_init_config(init, config.default_cluster_configuration())
    parsed = migrate.migrate_config(
        text + "---\napiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"
    )
    assert migrate.render_migrated(parsed) == text
    assert parsed.other_documents[0]["kind"] == "KubeletConfiguration"


def test_bad_input_names_the_field():
    with pytest.raises(YAMLFormatError, match="apiVersion"):
        migrate.migrate_config("apiVersion: kubeadm.k8s.io/v1beta2\nkind: ClusterConfiguration\n")
    with pytest.raises(ConfigError, match="apiServer.extraArgs"):
        migrate.migrate_config(
            "apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\napiServer:\n  extraArgs: [a, b]\n"
        )
    parsed = migrate.migrate_config(
        "apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\nkubernetesVersion: v1.36.3\nbogus: 1\n"
    )
    assert parsed.unknown_fields == ["bogus"]
