"""diagnose() on the real failures kubeadm v1.37.2 printed on the test bed (outputs/fail-*.txt:
the command's output, then "EXIT <status>" as recorded)."""

from pathlib import Path

import pytest

from kubeadm.diagnose import diagnose

OUT = Path(__file__).parent / "data" / "real-v1.37.2" / "outputs"
REAL_PIN = "sha256:07d4a051d405378a59494bd5a4fe7fffb0ace444a3afef7aec805d3366984f14"


def real(name: str) -> tuple[list[str], int]:
    lines = (OUT / name).read_text().splitlines()
    assert lines[-1].startswith("EXIT ")
    return lines[:-1], int(lines[-1].split()[1])


def test_port_taken_on_a_blank_machine_names_the_port():
    lines, status = real("fail-init-port-6443.txt")
    found = diagnose(lines, status, phase="preflight")
    assert found.code == "port-in-use" and found.details["ports"] == ["6443"]
    assert "port 6443 already in use" in found.summary
    assert "ss -ltnp 'sport = :6443'" in found.hint and "resume the operation from preflight" in found.hint
    lines, status = real("fail-join-port-10250.txt")
    assert diagnose(lines, status, phase="preflight").details["ports"] == ["10250"]


def test_bind_error_from_a_component_log_names_the_port():
    lines = (OUT / "apiserver-bind.log").read_text().splitlines()
    found = diagnose(lines, 1, phase="wait-control-plane")
    assert found.code == "port-in-use" and found.details["ports"] == ["6443"]


def test_api_server_never_healthy_says_which_logs_to_read():
    lines, status = real("fail-init-wait-control-plane-apiserver.txt")
    found = diagnose(lines, status, phase="wait-control-plane")
    assert found.code == "control-plane-unhealthy"
    assert found.details["components"] == ["kube-apiserver"]
    assert "https://10.213.31.11:6443" in found.summary
    assert "crictl logs" in found.hint and "kube-apiserver" in found.hint


def test_populated_machine_offers_reset_and_lists_files_and_ports():
    lines, status = real("fail-init-not-empty.txt")
    found = diagnose(lines, status, phase="preflight")
    assert found.code == "machine-not-blank"
    assert "/etc/kubernetes/manifests/kube-apiserver.yaml" in found.details["paths"]
    assert "/var/lib/etcd" in found.details["paths"]
    assert found.details["ports"] == ["6443", "10259", "10257", "10250", "2379", "2380"]
    assert "reset" in found.hint.lower()
    lines, status = real("fail-join-not-empty.txt")
    found = diagnose(lines, status, phase="preflight")
    assert found.code == "machine-not-blank" and found.details["paths"] == ["/etc/kubernetes/kubelet.conf"]


def test_wrong_pin_shows_expected_and_actual():
    lines, status = real("fail-join-bad-pin.txt")
    expected = "sha256:" + "0" * 64
    found = diagnose(lines, status, phase="preflight", pins=[expected])
    assert found.code == "ca-pin-mismatch"
    assert found.details == {"actual": [REAL_PIN], "expected": [expected]}
    assert REAL_PIN in found.summary and expected in found.summary


@pytest.mark.parametrize("name", ["fail-join-bad-token.txt", "fail-join-expired-token.txt"])
def test_unknown_or_expired_token_says_rotate(name):
    lines, status = real(name)
    found = diagnose(lines, status, phase="preflight")
    assert found.code == "token-unknown" and "rotate the join token" in found.hint
    assert found.details["token_id"] in found.summary


def test_wrong_token_secret_says_rotate():
    lines, status = real("fail-join-bad-secret.txt")
    found = diagnose(lines, status, phase="preflight")
    assert found.code == "token-mismatch" and "rotate" in found.hint


def test_kubeadm_missing_names_the_path_tried():
    lines, status = real("fail-kubeadm-missing.txt")
    found = diagnose(lines, status, phase="preflight")
    assert status == 127 and found.code == "kubeadm-missing"
    assert found.details["path"] == "kubeadm" and "PATH" in found.hint
    lines, status = real("fail-kubeadm-missing-abs.txt")
    found = diagnose(lines, status, phase="certs")
    assert found.details["path"] == "/usr/local/bin/kubeadm" and "/usr/local/bin/kubeadm" in found.summary
    # sudo (SSH user not root) exits 1 with its own wording
    found = diagnose(["sudo: kubeadm: command not found"], 1, phase="preflight")
    assert found.code == "kubeadm-missing"
    # exit 127 without output still says what was tried
    assert diagnose([], 127, phase="certs", kubeadm="/opt/k8s/kubeadm").details["path"] == "/opt/k8s/kubeadm"


def test_version_kubeadm_cannot_deploy():
    lines, status = real("fail-version-v1.35.0.txt")
    found = diagnose(lines, status, phase="certs")
    assert found.code == "version-not-deployable"
    assert found.details == {"version": "v1.35.0", "minimum": "1.36.0"}


def test_certificate_key_expired_or_wrong_says_reupload():
    lines, status = real("fail-download-certs-missing.txt")
    found = diagnose(lines, status, phase="control-plane-prepare")
    assert found.code == "kubeadm-certs-missing" and "two hours" in found.summary
    assert "upload the certificates again" in found.hint
    lines, status = real("fail-download-certs-wrong-key.txt")
    assert diagnose(lines, status, phase="control-plane-prepare").code == "certificate-key-wrong"


def test_pre_seeded_certificates_missing():
    lines, status = real("join-seed-preflight-nocerts.txt")
    found = diagnose(lines, status, phase="preflight")
    assert found.code == "shared-certificates-missing"
    assert "/etc/kubernetes/pki/ca.crt" in found.details["files"] and "pre-seed" in found.hint


def test_discovery_endpoint_unreachable():
    lines, status = real("fail-join-unreachable.txt")
    found = diagnose(lines, status, phase="preflight")
    assert found.code == "endpoint-unreachable"
    assert found.details == {
        "endpoint": "10.213.30.99:6443",
        "cause": "dial tcp 10.213.30.99:6443: connect: no route to host",
    }


def test_other_preflight_errors_are_listed_with_the_ignore_option():
    lines = [
        "[preflight] Some fatal errors occurred:",
        "\t[ERROR Swap]: swap is supported for cgroup v2 only",
        "error: error execution phase preflight: preflight checks failed",
    ]
    found = diagnose(lines, 1, phase="preflight")
    assert found.code == "preflight-failed" and found.details["checks"] == ["Swap"]
    assert "ignore-preflight-errors" in found.hint


def test_success_and_unknown_output_give_none():
    lines, _ = real("init-certs.txt")
    assert diagnose(lines, 0, phase="certs") is None
    assert diagnose(["something odd happened"], 1, phase="certs") is None


def test_every_captured_failure_is_recognised():
    for path in sorted(OUT.glob("fail-*.txt")):
        lines, status = real(path.name)
        if status == 0:
            continue  # a warning-only capture (v1.38.0 with kubeadm 1.37: kubeadm only warns)
        assert diagnose(lines, status, phase="preflight") is not None, path.name


def test_component_that_never_becomes_healthy_is_named():
    lines, status = real("fail-init-wait-control-plane-scheduler.txt")
    found = diagnose(lines, status, phase="wait-control-plane")
    assert found.code == "control-plane-unhealthy" and found.details["components"] == ["kube-scheduler"]
    assert found.details["urls"] == ["https://127.0.0.1:10259/livez"]
    assert "crictl ps -a --name kube-scheduler" in found.hint


def test_kubelet_that_never_becomes_healthy():
    lines, status = real("fail-init-wait-control-plane-kubelet.txt")
    found = diagnose(lines, status, phase="wait-control-plane")
    assert found.code == "kubelet-unhealthy" and "journalctl -xeu kubelet" in found.hint
