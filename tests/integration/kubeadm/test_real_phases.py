"""Our phase lists and per-phase commands against the real kubeadm binary's own help, and our
node configs through `kubeadm config validate` (no cluster needed; the test bed runs them for
real in tests/e2e/test_kubeadm_phases.py)."""

import re
import subprocess

import pytest

from kubeadm import config, nodeconfig, workflow
from tests.integration.kubeadm.test_real_kubeadm import _kubeadm
from tools.testbed import preflight

pytestmark = pytest.mark.integration


def _help(*args: str) -> str:
    proc = subprocess.run([_kubeadm(), *args, "--help"], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _listed_phases(text: str) -> list[str]:
    """The 'executes the following phases' block of --help as "parent" / "parent/sub" names."""
    block = text.split("following phases:\n```\n", 1)[1].split("```", 1)[0]
    names, parent = [], ""
    for line in block.splitlines():
        match = re.match(r"^(\s*)(/?)([a-z0-9-]+)\s", line + " ")
        if not match:
            continue
        if match.group(2):
            names.append(f"{parent}/{match.group(3)}")
        else:
            parent = match.group(3)
            names.append(parent)
    return names


@pytest.mark.parametrize(
    ("args", "phases"),
    [
        (("init",), workflow.INIT_PHASES),
        (("join",), workflow.JOIN_CONTROL_PLANE_PHASES),
        (("reset",), workflow.RESET_PHASES),
        (("upgrade", "apply"), workflow.UPGRADE_PHASES),
        (("upgrade", "node"), workflow.UPGRADE_NODE_PHASES),
    ],
)
def test_phase_lists_equal_the_binarys(args, phases):
    assert _listed_phases(_help(*args)) == workflow.phase_names(phases)


def _check_flags(argv: list[str]) -> None:
    """Every --flag of argv is one the (sub)command's --help lists."""
    words = [a for a in argv[1:] if not a.startswith(("-", "/")) and not re.match(r"v\d", a)]
    text = _help(*words)
    for flag in (a.split("=", 1)[0] for a in argv if a.startswith("--")):
        assert re.search(rf"\s{re.escape(flag)}[ =\n]", text), f"{flag} not accepted by kubeadm {' '.join(words)}"


def test_every_init_and_join_phase_command_uses_flags_kubeadm_accepts():
    for name in workflow.phase_names(workflow.INIT_PHASES):
        _check_flags(
            workflow.init_phase_command(
                name, "/x.yaml", upload_certs=True, certificate_key_in_config=True, ignore_preflight_errors=("CRI",)
            )
        )
    for name in workflow.phase_names(workflow.JOIN_CONTROL_PLANE_PHASES):
        _check_flags(workflow.join_phase_command(name, "/x.yaml", ignore_preflight_errors=("CRI",)))
    for name in workflow.phase_names(workflow.RESET_PHASES):
        _check_flags(workflow.reset_phase_command(name, ignore_preflight_errors=("CRI",), cri_socket="unix:///x"))
    for name in ("all", *workflow.CERTS_RENEW_NAMES):
        _check_flags(workflow.certs_renew_command(name))
    for name in workflow.phase_names(workflow.UPGRADE_PHASES):
        _check_flags(workflow.upgrade_apply_phase_command(name, "v1.37.2", ignore_preflight_errors=("CreateJob",)))
    for name in workflow.phase_names(workflow.UPGRADE_NODE_PHASES):
        _check_flags(workflow.upgrade_node_phase_command(name, ignore_preflight_errors=("CRI",)))
    _check_flags(workflow.upgrade_plan_command("v1.37.2", ignore_preflight_errors=("CreateJob",)))


def test_phases_without_config_flag_really_lack_it():
    # Why init_phase_command / join_phase_command run these through the whole workflow.
    for args in (
        ("init", "phase", "wait-control-plane"),
        ("init", "phase", "show-join-command"),
        ("join", "phase", "wait-control-plane"),
    ):
        assert "--config" not in _help(*args)
    for args in (
        ("join", "phase", "etcd-join"),
        ("join", "phase", "kubelet-wait-bootstrap"),
        ("join", "phase", "control-plane-join", "all"),
    ):
        assert "--discovery-token" not in _help(*args)


def test_kubeadm_validates_our_node_configs(tmp_path):
    cluster = config.default_cluster_configuration()
    cluster.control_plane_endpoint = "10.0.0.11:6443"
    files = {
        "init.yaml": nodeconfig.init_config_for_node(
            cluster,
            node_name="cp1",
            advertise_address="10.0.0.11",
            bootstrap_tokens=["k8sbrd.0123456789abcdef"],
            ignore_preflight_errors=preflight.TESTBED_INIT,
            certificate_key="ab" * 32,
        ),
        "worker.yaml": nodeconfig.join_config_for_node(
            api_server_endpoint="10.0.0.11:6443",
            token="k8sbrd.0123456789abcdef",
            ca_cert_hashes=["sha256:" + "a" * 64],
            node_name="w1",
            ignore_preflight_errors=preflight.TESTBED_JOIN_WORKER,
        ),
        "cp.yaml": nodeconfig.join_config_for_node(
            api_server_endpoint="10.0.0.11:6443",
            token="k8sbrd.0123456789abcdef",
            ca_cert_hashes=["sha256:" + "a" * 64],
            node_name="cp2",
            control_plane_address="10.0.0.12",
            certificate_key="ab" * 32,
        ),
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
        proc = subprocess.run(
            [_kubeadm(), "config", "validate", "--config", str(tmp_path / name)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 0, (name, proc.stderr)
