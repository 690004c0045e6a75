"""kubeadm.prepare and kubeadm.artifacts: what a blank machine needs, as data (no I/O)."""

from __future__ import annotations

import json

import pytest

from kubeadm import artifacts, prepare
from kubeadm.errors import UnsupportedVersionError

DEBIAN_12 = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nID=debian\n'
UBUNTU_2404 = 'NAME="Ubuntu"\nVERSION_ID="24.04"\nID=ubuntu\nID_LIKE=debian\nPRETTY_NAME="Ubuntu 24.04.1 LTS"\n'
ROCKY_9 = 'NAME="Rocky Linux"\nVERSION_ID="9.4"\nID="rocky"\nID_LIKE="rhel centos fedora"\n'


def test_facts_of_supported_machines():
    debian = prepare.facts(DEBIAN_12, "x86_64", "systemd")
    assert (debian.family, debian.architecture, debian.version) == (prepare.DEBIAN, "amd64", "12")
    assert debian.describe() == "Debian GNU/Linux 12 (bookworm) (Debian/Ubuntu), amd64, init system systemd"
    assert prepare.facts(UBUNTU_2404, "aarch64", "systemd").architecture == "arm64"
    assert prepare.facts(ROCKY_9, "x86_64", "systemd").family == prepare.RHEL


@pytest.mark.parametrize(
    ("os_release", "machine", "init", "named"),
    [
        ('ID=alpine\nVERSION_ID=3.20\nPRETTY_NAME="Alpine Linux v3.20"', "x86_64", "systemd", "Alpine Linux v3.20"),
        ('ID=ubuntu\nVERSION_ID="20.04"\nPRETTY_NAME="Ubuntu 20.04"', "x86_64", "systemd", "older than Ubuntu 22.4+"),
        ('ID=debian\nVERSION_ID="11"', "x86_64", "systemd", "older than Debian 12+"),
        (DEBIAN_12, "riscv64", "systemd", "architecture riscv64"),
        (DEBIAN_12, "x86_64", "init", "init system init"),
        ("", "x86_64", "systemd", "ID=none"),
    ],
)
def test_unsupported_machines_are_refused_naming_what_is_supported(os_release, machine, init, named):
    with pytest.raises(prepare.Unsupported) as info:
        prepare.facts(os_release, machine, init)
    message = str(info.value)
    assert named in message
    assert "supported: Debian 12+, Ubuntu 22.4+, Red Hat Enterprise Linux 9+" in message
    assert "architectures amd64, arm64; init system systemd" in message


def test_layout_places_paths_under_a_root():
    assert prepare.Layout().path(prepare.SYSCTL_FILE) == "/etc/sysctl.d/k8s.conf"
    root = prepare.Layout("/tmp/m1")
    assert root.path("/etc/sysctl.d/k8s.conf") == "/tmp/m1/etc/sysctl.d/k8s.conf"
    assert root.path("/proc/sys/net/ipv4/ip_forward") == "/tmp/m1/proc/sys/net/ipv4/ip_forward"
    assert root.search_path.startswith("/tmp/m1/usr/local/sbin:/tmp/m1/usr/local/bin:")
    assert prepare.Layout().search_path == "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    with pytest.raises(ValueError):
        root.path("etc/fstab")


def test_modules_and_sysctls_are_the_ones_kubeadm_checks():
    assert prepare.MODULES == ("overlay", "br_netfilter")
    assert prepare.modules_file().splitlines()[1:] == ["overlay", "br_netfilter"]
    assert prepare.sysctl_file().splitlines()[1:] == [
        "net.ipv4.ip_forward = 1",
        "net.bridge.bridge-nf-call-iptables = 1",
        "net.bridge.bridge-nf-call-ip6tables = 1",
    ]
    assert prepare.sysctl_proc_path("net.bridge.bridge-nf-call-iptables") == (
        "/proc/sys/net/bridge/bridge-nf-call-iptables"
    )


def test_a_module_the_kernel_shows_is_loaded_even_without_its_sys_module_entry():
    # This host's kernel: no loadable modules, overlay built in with a /sys/module entry,
    # br_netfilter built in with none, seen only as /proc/sys/net/bridge.
    assert prepare.module_loaded_paths("overlay") == ("/sys/module/overlay",)
    assert prepare.module_loaded_paths("br_netfilter") == ("/sys/module/br_netfilter", "/proc/sys/net/bridge")
    assert prepare.module_loaded("br_netfilter", {"/proc/sys/net/bridge"})
    assert prepare.module_loaded("br_netfilter", {"/sys/module/br_netfilter"})
    assert prepare.module_loaded("overlay", {"/sys/module/overlay"})
    # Not fooled by another module's sign, nor by nothing at all: then modprobe runs.
    assert not prepare.module_loaded("overlay", {"/proc/sys/net/bridge"})
    assert not prepare.module_loaded("br_netfilter", set())


def test_swap_entries_are_commented_out_once():
    fstab = (
        "UUID=1 / ext4 defaults 0 1\n/swap.img none swap sw 0 0\n# /old none swap sw 0 0\nUUID=2  none  swap  sw  0 0\n"
    )
    text, changed = prepare.comment_out_swap(fstab)
    assert changed == ["/swap.img none swap sw 0 0", "UUID=2  none  swap  sw  0 0"]
    assert text.splitlines()[0] == "UUID=1 / ext4 defaults 0 1"
    assert text.splitlines()[1] == "# /swap.img none swap sw 0 0" + prepare.SWAP_COMMENT
    again, changed_again = prepare.comment_out_swap(text)
    assert (again, changed_again) == (text, [])
    assert prepare.swaps_in_use("Filename Type Size Used Priority\n/swap.img file 1024 0 -2\n") == ["/swap.img"]
    assert prepare.swaps_in_use("Filename Type Size Used Priority\n") == []
    assert prepare.swap_units(["dev-sda2.swap loaded active active /dev/sda2", "swap.target loaded"]) == [
        "dev-sda2.swap"
    ]


def test_kubelet_settings_from_the_clusters_documents():
    assert prepare.kubelet_settings([]) == prepare.KubeletSettings("systemd", False)
    doc = {"kind": "KubeletConfiguration", "cgroupDriver": "cgroupfs", "failSwapOn": False}
    assert prepare.kubelet_settings([doc]) == prepare.KubeletSettings("cgroupfs", True)
    assert not prepare.kubelet_settings([doc]).systemd_cgroup


def test_containerd_config_per_major_version():
    image = prepare.pause_image("v1.37.2")
    assert image == "registry.k8s.io/pause:3.10.2"
    assert prepare.pause_image("1.36.3", "mirror.local/k8s/") == "mirror.local/k8s/pause:3.10.2"
    v3 = prepare.containerd_config(major=2, sandbox_image=image, systemd_cgroup=True)
    assert "version = 3" in v3 and "sandbox = 'registry.k8s.io/pause:3.10.2'" in v3
    assert "[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]\n  SystemdCgroup = true" in v3
    v2 = prepare.containerd_config(major=1, sandbox_image=image, systemd_cgroup=False)
    assert 'sandbox_image = "registry.k8s.io/pause:3.10.2"' in v2 and "SystemdCgroup = false" in v2
    assert 'config_path = "/etc/containerd/certs.d"' in v2
    assert prepare.containerd_major("containerd github.com/containerd/containerd/v2 v2.1.4 75cb2b7") == 2
    assert prepare.containerd_major("containerd containerd.io 1.7.27 05044ec0") == 1
    assert prepare.containerd_major("nothing") is None
    with pytest.raises(UnsupportedVersionError, match="1.35, 1.36, 1.37"):
        prepare.pause_image("v1.30.0")


def test_registry_mirrors():
    mirrors = prepare.parse_mirrors(
        "# site\nregistry.k8s.io=https://mirror.local:5000/\n\nregistry.k8s.io = http://b\n"
    )
    assert mirrors == {"registry.k8s.io": ["https://mirror.local:5000", "http://b"]}
    toml = prepare.hosts_toml("registry.k8s.io", mirrors["registry.k8s.io"])
    assert 'server = "https://registry.k8s.io"' in toml and '[host."https://mirror.local:5000"]' in toml
    for bad in ("registry.k8s.io", "registry.k8s.io=ftp://x", "a b=https://x", "r=https://x/$(id)"):
        with pytest.raises(prepare.MirrorError, match="line 1"):
            prepare.parse_mirrors(bad)


def test_pkgs_k8s_io_layout_and_pinned_key():
    apt = prepare.Repository(prepare.DEBIAN, "1.37")
    assert apt.url == "https://pkgs.k8s.io/core:/stable:/v1.37/deb/"
    assert apt.key_url == "https://pkgs.k8s.io/core:/stable:/v1.37/deb/Release.key"
    assert apt.source().splitlines()[1] == (
        "deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] https://pkgs.k8s.io/core:/stable:/v1.37/deb/ /"
    )
    rpm = prepare.Repository(prepare.RHEL, "1.36", base="https://mirror.local/k8s/")
    assert rpm.key_url == "https://mirror.local/k8s/v1.36/rpm/repodata/repomd.xml.key"
    assert "exclude=kubelet kubeadm kubectl cri-tools kubernetes-cni" in rpm.source()
    assert prepare.PKGS_K8S_IO_FINGERPRINT == "DE15B14486CD377B9E876E1A234654DA9A296436"
    assert prepare.normalize_fingerprint("de15 b144:86cd") == "DE15B14486CD"
    assert prepare.package_specs(prepare.DEBIAN, "v1.37.2") == [
        "kubeadm=1.37.2-*", "kubelet=1.37.2-*", "kubectl=1.37.2-*", "cri-tools=1.37.*"
    ]  # fmt: skip
    assert prepare.package_specs(prepare.RHEL, "v1.37.2")[0] == "kubeadm-1.37.2"
    assert prepare.hold_command(prepare.DEBIAN)[:2] == ["apt-mark", "hold"]
    assert prepare.hold_command(prepare.RHEL)[:3] == ["dnf", "versionlock", "add"]


def test_the_distributions_containerd_is_installed_from_refreshed_package_lists():
    # apt-get install reads only the lists of the last update: on a bare test-bed machine whose
    # distribution mirror was configured after it, install alone said "Unable to locate package
    # containerd" (issue 19, the package source against a real apt).
    assert prepare.runtime_install_commands(prepare.DEBIAN, lock_wait=120) == [
        ["apt-get", "update", "-q", "-oDPkg::Lock::Timeout=120"],
        ["apt-get", "install", "-y", "-q", "-oDPkg::Lock::Timeout=120", "--allow-downgrades",
         "--allow-change-held-packages", "containerd"],
    ]  # fmt: skip
    # dnf refreshes expired metadata itself, and the kubernetes repository is not there yet.
    assert prepare.runtime_install_commands(prepare.RHEL, lock_wait=120) == [
        ["dnf", "install", "-y", "--disableexcludes=kubernetes", "containerd.io"]
    ]


def test_a_containerd_whose_configuration_prepare_wrote_is_its_own():
    written = prepare.containerd_config(major=2, sandbox_image="registry.k8s.io/pause:3.10.2", systemd_cgroup=True)
    assert prepare.configured_by_kubeboard(written)
    assert not prepare.configured_by_kubeboard(None)  # no config.toml: the package's defaults
    assert not prepare.configured_by_kubeboard("")
    assert not prepare.configured_by_kubeboard("version = 3\n")  # someone else's
    assert not prepare.configured_by_kubeboard("# tuned by hand\n" + written)


def test_installed_packages_against_the_clusters_version():
    lines = ["kubeadm 1.37.2-1.1 ii ", "kubelet 1.37.1-1.1 ii ", "kubectl 1.37.2-1.1 rc ", "cri-tools 1.37.0-1.1 ii "]
    installed = prepare.parse_installed(lines)
    assert installed == {"kubeadm": "1.37.2-1.1", "kubelet": "1.37.1-1.1", "cri-tools": "1.37.0-1.1"}
    assert prepare.installed_matches(installed, "v1.37.2") == ["kubelet 1.37.1-1.1", "kubectl not installed"]
    # Held (apt-mark hold, as Prepare leaves them) is still installed: found by the real dpkg on
    # the test bed, where a second Prepare took its own held packages for missing and reinstalled them.
    held = ["kubeadm 1.37.2-1.1 hi ", "kubelet 1.37.2-1.1 hi ", "kubectl 1.37.2-1.1 hi ", "cri-tools 1.37.0-1.1 hi "]
    assert prepare.installed_matches(prepare.parse_installed(held), "v1.37.2") == []
    assert prepare.parse_installed(["kubeadm 1.37.2-1.1 hc ", "kubelet 1.37.2-1.1 iU "]) == {}


def test_a_locked_package_manager_is_recognized():
    apt = "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 4242 (apt-get)"
    assert (
        prepare.package_manager_locked(["Reading...", apt])
        == "process 4242 (apt-get) holds /var/lib/dpkg/lock-frontend"
    )
    assert prepare.package_manager_locked(["E: Could not get lock /var/lib/apt/lists/lock - open"]) == (
        "another process holds /var/lib/apt/lists/lock"
    )
    assert prepare.package_manager_locked(["Waiting for process with pid 77 to finish."]) == (
        "process 77 holds dnf's lock"
    )
    assert prepare.package_manager_locked(["E: Unable to locate package kubeadm"]) is None
    held = prepare.lock_holders(["4242 python3 /var/lib/dpkg/lock-frontend", "1 init /run/x"], list(prepare.APT_LOCKS))
    assert held == ["process 4242 (python3) holds /var/lib/dpkg/lock-frontend"]


# --- artifact sets ---------------------------------------------------------------------------

HEX = "a" * 64


def _sums(*paths: str) -> dict[str, str]:
    return {path: HEX for path in paths}


WHOLE = _sums(*artifacts.REQUIRED, "images/pause.tar")


def test_sha256sums_parsing_is_strict_and_bounded():
    text = artifacts.render_sums(WHOLE)
    assert artifacts.parse_sums(text) == WHOLE
    assert artifacts.parse_sums(f"{HEX} *bin/kubeadm\n") == {"bin/kubeadm": HEX}
    for bad, named in [
        (f"{HEX}  /etc/passwd", "/etc/passwd"),
        (f"{HEX}  ../x", "../x"),
        (f"{HEX}  bin//x", "bin//x"),
        ("nothex  bin/kubeadm", "line 1"),
        (f"{HEX}  bin/a\n{HEX}  bin/a", "twice"),
        (f"{HEX}  SHA256SUMS", "itself"),
    ]:
        with pytest.raises(artifacts.SetError, match=named.replace(".", r"\.").replace("*", r"\*")):
            artifacts.parse_sums(bad)
    with pytest.raises(artifacts.SetError, match="larger than"):
        artifacts.parse_sums("x" * (artifacts.MAX_SUMS_BYTES + 1))


def test_a_set_is_whole_or_refused_naming_the_file():
    present = set(WHOLE) | {"SHA256SUMS", "kubernetes-version", "architecture"}
    artifacts.check_complete(WHOLE, present)
    with pytest.raises(artifacts.SetError, match="images/extra.tar is in the set but not listed"):
        artifacts.check_complete(WHOLE, present | {"images/extra.tar"})
    with pytest.raises(artifacts.SetError, match="lists bin/ctr, which is not in the set"):
        artifacts.check_complete(WHOLE, present - {"bin/ctr"})
    without_runc = {p: d for p, d in WHOLE.items() if p != "bin/runc"}
    with pytest.raises(artifacts.SetError, match="the set has no bin/runc"):
        artifacts.check_complete(without_runc, present - {"bin/runc"})
    no_images = {p: d for p, d in WHOLE.items() if not p.startswith("images/")}
    with pytest.raises(artifacts.SetError, match="no images"):
        artifacts.check_complete(no_images, present - {"images/pause.tar"})
    assert artifacts.check_identity("v1.37.2\n", "amd64\n") == ("v1.37.2", "amd64")
    assert artifacts.check_identity("1.36.3", "arm64") == ("v1.36.3", "arm64")
    with pytest.raises(artifacts.SetError, match="kubernetes-version"):
        artifacts.check_identity("v1.20.0", "amd64")
    with pytest.raises(artifacts.SetError, match="architecture"):
        artifacts.check_identity("v1.37.2", "amd 64")


def test_where_set_files_are_installed():
    assert artifacts.destination("bin/kubeadm") == ("/usr/local/bin/kubeadm", 0o755)
    assert artifacts.destination("bin/runc") == ("/usr/local/sbin/runc", 0o755)
    assert artifacts.destination("systemd/10-kubeadm.conf") == (
        "/etc/systemd/system/kubelet.service.d/10-kubeadm.conf",
        0o644,
    )
    assert artifacts.destination("systemd/containerd.service") == ("/etc/systemd/system/containerd.service", 0o644)
    assert artifacts.destination("images/pause.tar") is None


def test_image_names_from_an_archive():
    index = {
        "manifests": [
            {"annotations": {"io.containerd.image.name": "registry.k8s.io/pause:3.10.2"}},
            {"annotations": {"org.opencontainers.image.ref.name": "3.10"}},
        ]
    }
    assert artifacts.image_names(json.dumps(index).encode()) == ["registry.k8s.io/pause:3.10.2"]
    docker = json.dumps([{"RepoTags": ["registry.k8s.io/etcd:3.6.8-0"]}]).encode()
    assert artifacts.image_names(b"", docker) == ["registry.k8s.io/etcd:3.6.8-0"]
    assert artifacts.image_names(b"not json") == []


def test_units_from_a_set_start_the_binaries_where_the_set_installs_them():
    # kubeadm's documented drop-in (the test bed's copy, kubernetes/release's template) starts
    # /usr/bin/kubelet, where packages put it; a set installs its kubelet in /usr/local/bin.
    from tools.testbed.artifacts import UNITS

    dropin = (UNITS / "10-kubeadm.conf").read_bytes()
    unit = (UNITS / "kubelet.service").read_bytes()
    assert b"ExecStart=/usr/bin/kubelet" in dropin and b"ExecStart=/usr/bin/kubelet" in unit
    for path, data in (("systemd/10-kubeadm.conf", dropin), ("systemd/kubelet.service", unit)):
        installed = artifacts.installed_content(path, data).decode()
        assert "/usr/bin/kubelet" not in installed
        assert "\nExecStart=/usr/local/bin/kubelet" in installed
        # Only the program changes: everything else of the file is kubeadm's.
        assert installed.replace("/usr/local/bin/kubelet", "/usr/bin/kubelet").encode() == data
    assert artifacts.installed_content("systemd/10-kubeadm.conf", dropin).decode().count("ExecStart=") == 2
    # A prefix stays (systemd's "-" ignores a failure); a program the set does not carry, or one
    # already where the set puts it, is left alone; so is anything that is not a unit.
    assert artifacts.installed_content("systemd/x.service", b"ExecStartPre=-/usr/bin/runc x\n") == (
        b"ExecStartPre=-/usr/local/sbin/runc x\n"
    )
    containerd = (UNITS / "containerd.service").read_bytes()
    assert artifacts.installed_content("systemd/containerd.service", containerd) == containerd
    assert artifacts.installed_content("systemd/x.service", b"ExecStart=/usr/bin/kubeletx\n") == (
        b"ExecStart=/usr/bin/kubeletx\n"
    )
    assert artifacts.installed_content("bin/kubelet", b"/usr/bin/kubelet") == b"/usr/bin/kubelet"
