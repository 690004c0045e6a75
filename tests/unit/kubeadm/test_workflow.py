"""Phase lists and the command that runs each phase, as the real kubeadm v1.37.2 accepts them
(proved on the test bed by tests/e2e/test_kubeadm_phases.py; flags checked against the binary's
--help by tests/integration/kubeadm/test_real_phases.py)."""

import pytest

from kubeadm import workflow
from kubeadm.errors import CertificateKeyError, ConfigError

CFG = "/etc/kubernetes/kubeboard/kubeadm-init.yaml"
JCFG = "/etc/kubernetes/kubeboard/kubeadm-join.yaml"


def test_init_phase_order_matches_kubeadm():
    assert [p.name for p in workflow.INIT_PHASES] == [
        "preflight",
        "certs",
        "kubeconfig",
        "etcd",
        "control-plane",
        "kubelet-start",
        "wait-control-plane",
        "upload-config",
        "upload-certs",
        "mark-control-plane",
        "bootstrap-token",
        "kubelet-finalize",
        "addon",
        "show-join-command",
    ]
    certs = workflow.find_phase(workflow.INIT_PHASES, "certs")
    assert [s.name for s in certs.sub_phases][:3] == ["ca", "apiserver", "apiserver-kubelet-client"]
    assert workflow.find_phase(workflow.INIT_PHASES, "certs/sa").command == ("kubeadm", "init", "phase", "certs", "sa")


def test_every_phase_is_complete_data():
    for phases in workflow.WORKFLOWS.values():
        for phase in phases:
            for p in (phase, *phase.sub_phases):
                assert p.name and p.description.endswith(".") and p.command[0] == "kubeadm"
                assert isinstance(p.needs_api_server, bool)


def test_join_lists_are_v1_37s():
    # v1.37.2: kubelet-wait-bootstrap runs on workers too; no check-etcd phase any more.
    assert [p.name for p in workflow.JOIN_WORKER_PHASES] == ["preflight", "kubelet-start", "kubelet-wait-bootstrap"]
    assert [p.name for p in workflow.JOIN_CONTROL_PLANE_PHASES] == [
        "preflight",
        "control-plane-prepare",
        "kubelet-start",
        "etcd-join",
        "kubelet-wait-bootstrap",
        "control-plane-join",
        "wait-control-plane",
    ]
    assert workflow.phase_names(workflow.JOIN_CONTROL_PLANE_PHASES)[2:6] == [
        "control-plane-prepare/download-certs",
        "control-plane-prepare/certs",
        "control-plane-prepare/kubeconfig",
        "control-plane-prepare/control-plane",
    ]
    assert all(p.needs_api_server for p in workflow.JOIN_CONTROL_PLANE_PHASES)
    assert not any(p.hidden for p in workflow.JOIN_CONTROL_PLANE_PHASES)
    assert [p.name for p in workflow.RESET_PHASES] == ["preflight", "remove-etcd-member", "cleanup-node"]
    assert workflow.phase_names(workflow.UPGRADE_PHASES)[:2] == ["preflight", "control-plane"]
    # A worker skips upgrade node's control-plane and addon (kubeadm only says "Skipping phase").
    assert [p.name for p in workflow.UPGRADE_NODE_WORKER_PHASES] == ["preflight", "kubelet-config", "post-upgrade"]


@pytest.mark.parametrize(
    ("phase", "argv"),
    [
        ("certs", ["init", "phase", "certs", "all", "--config", CFG]),
        ("certs/apiserver", ["init", "phase", "certs", "apiserver", "--config", CFG]),
        ("kubeconfig", ["init", "phase", "kubeconfig", "all", "--config", CFG]),
        ("etcd", ["init", "phase", "etcd", "local", "--config", CFG]),
        ("control-plane", ["init", "phase", "control-plane", "all", "--config", CFG]),
        ("kubelet-start", ["init", "phase", "kubelet-start", "--config", CFG]),
        ("upload-config", ["init", "phase", "upload-config", "all", "--config", CFG]),
        ("mark-control-plane", ["init", "phase", "mark-control-plane", "--config", CFG]),
        ("bootstrap-token", ["init", "phase", "bootstrap-token", "--config", CFG, "--skip-token-print"]),
        ("kubelet-finalize", ["init", "phase", "kubelet-finalize", "all", "--config", CFG]),
        ("addon", ["init", "phase", "addon", "all", "--config", CFG]),
        ("addon/coredns", ["init", "phase", "addon", "coredns", "--config", CFG]),
    ],
)
def test_init_phase_commands(phase, argv):
    assert workflow.init_phase_command(phase, CFG) == ["kubeadm", *argv]


def test_init_phases_without_config_flag_run_as_init_with_the_others_skipped():
    argv = workflow.init_phase_command("wait-control-plane", CFG, kubeadm="/opt/bin/kubeadm")
    assert argv[:4] == ["/opt/bin/kubeadm", "init", "--config", CFG]
    skipped = argv[4].removeprefix("--skip-phases=").split(",")
    assert "wait-control-plane" not in skipped
    assert set(skipped) | {"wait-control-plane"} == {p.name for p in workflow.INIT_PHASES}


def test_preflight_and_upload_certs_flags():
    assert workflow.init_phase_command("preflight", CFG, ignore_preflight_errors=("CRI", "ImagePull"))[-1] == (
        "--ignore-preflight-errors=CRI,ImagePull"
    )
    assert workflow.init_phase_command("preflight", CFG)[-1] == CFG
    assert workflow.init_phase_command("upload-certs", CFG, upload_certs=True)[-1] == "--upload-certs"
    assert workflow.init_phase_command("upload-certs", CFG, upload_certs=True, certificate_key_in_config=True)[-2:] == [
        "--upload-certs",
        "--skip-certificate-key-print",
    ]
    with pytest.raises(ConfigError, match="skips this phase"):
        workflow.init_phase_command("upload-certs", CFG)


def test_unknown_phase_lists_the_known_ones():
    with pytest.raises(ConfigError, match="certs/ca") as err:
        workflow.init_phase_command("certz", CFG)
    assert err.value.field == "phase"
    with pytest.raises(ConfigError, match="etcd-join"):
        workflow.join_phase_command("check-etcd", JCFG)


@pytest.mark.parametrize(
    ("phase", "argv"),
    [
        ("preflight", ["join", "phase", "preflight", "--config", JCFG]),
        ("control-plane-prepare", ["join", "phase", "control-plane-prepare", "all", "--config", JCFG]),
        (
            "control-plane-prepare/download-certs",
            ["join", "phase", "control-plane-prepare", "download-certs", "--config", JCFG],
        ),
        ("kubelet-start", ["join", "phase", "kubelet-start", "--config", JCFG]),
    ],
)
def test_join_phase_commands_with_discovery_flags(phase, argv):
    assert workflow.join_phase_command(phase, JCFG) == ["kubeadm", *argv]


@pytest.mark.parametrize("phase", ["etcd-join", "kubelet-wait-bootstrap", "control-plane-join", "wait-control-plane"])
def test_join_phases_without_discovery_run_as_join_with_the_others_skipped(phase):
    argv = workflow.join_phase_command(phase, JCFG)
    assert argv[:4] == ["kubeadm", "join", "--config", JCFG]
    skipped = set(argv[4].removeprefix("--skip-phases=").split(","))
    assert skipped == {p.name for p in workflow.JOIN_CONTROL_PLANE_PHASES} - {phase}


def test_join_preflight_ignore_flag():
    assert workflow.join_phase_command("preflight", JCFG, ignore_preflight_errors=["all"])[-1] == (
        "--ignore-preflight-errors=all"
    )


def test_reset_commands():
    assert workflow.reset_phase_command("preflight") == ["kubeadm", "reset", "phase", "preflight", "--force"]
    assert workflow.reset_phase_command("remove-etcd-member") == ["kubeadm", "reset", "phase", "remove-etcd-member"]
    assert workflow.reset_phase_command("cleanup-node", cri_socket="unix:///run/crio/crio.sock")[-2:] == [
        "--cri-socket",
        "unix:///run/crio/crio.sock",
    ]


def test_certs_commands():
    assert workflow.certs_renew_command() == ["kubeadm", "certs", "renew", "all"]
    assert workflow.certs_renew_command("apiserver") == ["kubeadm", "certs", "renew", "apiserver"]
    with pytest.raises(ConfigError, match="admin.conf"):
        workflow.certs_renew_command("ca")
    assert workflow.certs_check_expiration_command() == ["kubeadm", "certs", "check-expiration"]


def test_certificate_key_from_real_upload_certs_output():
    from pathlib import Path

    lines = (Path(__file__).parent / "data/real-v1.37.2/outputs/init-upload-certs.txt").read_text().splitlines()
    assert workflow.certificate_key_from_output(lines[:-1]) == lines[-2].strip()
    with pytest.raises(CertificateKeyError, match="skip-certificate-key-print"):
        workflow.certificate_key_from_output(["[upload-certs] Storing the certificates in Secret"])


def test_upgrade_commands():
    assert workflow.upgrade_apply_phase_command("preflight", "1.37.2", ignore_preflight_errors=("CreateJob",)) == [
        "kubeadm",
        "upgrade",
        "apply",
        "phase",
        "preflight",
        "v1.37.2",
        "--yes",
        "--ignore-preflight-errors=CreateJob",
    ]
    assert workflow.upgrade_apply_phase_command("addon", "v1.37.2") == [
        "kubeadm",
        "upgrade",
        "apply",
        "phase",
        "addon",
        "all",
        "v1.37.2",
    ]
    assert workflow.upgrade_apply_phase_command("upload-config/kubelet", "v1.37.2")[-2:] == ["kubelet", "v1.37.2"]
    with pytest.raises(ConfigError, match="target version"):
        workflow.upgrade_apply_phase_command("control-plane", "latest")
    assert workflow.upgrade_node_phase_command("kubelet-config") == [
        "kubeadm",
        "upgrade",
        "node",
        "phase",
        "kubelet-config",
    ]
    assert workflow.upgrade_node_phase_command("preflight", ignore_preflight_errors=("SystemVerification",))[-1] == (
        "--ignore-preflight-errors=SystemVerification"
    )
    assert workflow.upgrade_plan_command() == ["kubeadm", "upgrade", "plan"]
    assert workflow.upgrade_plan_command("1.37.2", ignore_preflight_errors=("CreateJob",)) == [
        "kubeadm",
        "upgrade",
        "plan",
        "v1.37.2",
        "--ignore-preflight-errors=CreateJob",
    ]
