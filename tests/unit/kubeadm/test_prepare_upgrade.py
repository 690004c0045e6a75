"""The upgrade's package command lines (kubeadm/prepare.py's upgrade block): what a prepared
machine runs to move to a target version, for apt and dnf and from an artifact set."""

from __future__ import annotations

from kubeadm import prepare


def test_the_repository_moves_to_the_target_minor_with_the_same_base_and_key():
    before = prepare.Repository(prepare.DEBIAN, "1.37")
    after = prepare.upgrade_repository(prepare.DEBIAN, "v1.38.0")
    assert before.url == "https://pkgs.k8s.io/core:/stable:/v1.37/deb/"
    assert after.url == "https://pkgs.k8s.io/core:/stable:/v1.38/deb/"
    assert after.source() != before.source() and "/v1.38/deb/ /" in after.source()
    assert after.fingerprint == prepare.PKGS_K8S_IO_FINGERPRINT
    rpm = prepare.upgrade_repository(prepare.RHEL, "1.38.1", base="https://mirror.local/k8s/", fingerprint="aa bb:cc")
    assert "baseurl=https://mirror.local/k8s/v1.38/rpm/" in rpm.source()
    assert rpm.fingerprint == "AABBCC"


def test_apt_unholds_installs_the_exact_kubeadm_and_holds_it_again():
    lines = prepare.upgrade_package_commands(prepare.DEBIAN, "v1.38.0", prepare.KUBEADM_PACKAGES, lock_wait=60)
    assert lines == [
        ["apt-get", "update", "-q", "-oDPkg::Lock::Timeout=60"],
        ["apt-mark", "unhold", "kubeadm"],
        [
            "apt-get", "install", "-y", "-q", "-oDPkg::Lock::Timeout=60", "--allow-downgrades",
            "--allow-change-held-packages", "kubeadm=1.38.0-*",
        ],
        ["apt-mark", "hold", "kubeadm"],
    ]  # fmt: skip


def test_dnf_kubelet_step_installs_kubelet_and_kubectl_relocks_and_restarts_the_kubelet():
    lines = prepare.upgrade_package_commands(
        prepare.RHEL, "v1.38.0", prepare.KUBELET_PACKAGES, lock_wait=60, restart_kubelet=True
    )
    assert lines == [
        ["dnf", "makecache", "-y", "--repo", "kubernetes"],
        ["dnf", "versionlock", "delete", "kubelet", "kubectl"],
        ["dnf", "install", "-y", "--disableexcludes=kubernetes", "kubelet-1.38.0", "kubectl-1.38.0"],
        ["dnf", "versionlock", "add", "kubelet", "kubectl"],
        ["systemctl", "daemon-reload"],
        ["systemctl", "restart", "kubelet"],
    ]
    # The unhold comes before the install and the hold after it, whatever the family.
    for family in (prepare.DEBIAN, prepare.RHEL):
        lines = prepare.upgrade_package_commands(family, "v1.38.0", ("kubeadm",), lock_wait=1)

        def at(prefix: list[str], lines=lines) -> int:
            return next(n for n, argv in enumerate(lines) if argv[: len(prefix)] == prefix)

        unhold = at(prepare.unhold_packages(family, ()))
        install = at(prepare.install_command(family, [], lock_wait=1))
        hold = at(prepare.hold_packages(family, ()))
        assert unhold < install < hold


def test_exact_specs_name_the_patch_not_the_minor():
    assert prepare.exact_specs(prepare.DEBIAN, "1.38.0", ("kubelet",)) == ["kubelet=1.38.0-*"]
    assert prepare.exact_specs(prepare.RHEL, "v1.38.0", ("kubelet",)) == ["kubelet-1.38.0"]


def test_artifact_install_lines_and_what_each_step_installs():
    assert prepare.install_set_file_command(
        "/var/lib/kubeboard/artifacts/v1.38.0-amd64/bin/kubeadm", "/usr/local/bin/kubeadm", 0o755
    ) == [
        "install",
        "-D",
        "-m",
        "0755",
        "/var/lib/kubeboard/artifacts/v1.38.0-amd64/bin/kubeadm",
        "/usr/local/bin/kubeadm",
    ]
    assert prepare.KUBEADM_BINARIES == ("bin/kubeadm",)
    assert "bin/kubelet" in prepare.KUBELET_FILES and "bin/kubeadm" not in prepare.KUBELET_FILES
    assert prepare.set_name("1.38.0", "arm64") == "v1.38.0-arm64"
