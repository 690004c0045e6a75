"""Bare test-bed machines (issue 19): blank, each with a private root, and preparing one never
changes the host the tests run on.

One 2-node bare sandbox (``kbtbb`` on 10.213.40.0/24) serves the module: node1 is prepared
from the air-gapped artifact set (by hand, as the test bed's own check of it), node2 by
Kubeboard's own Prepare machine from the package source, a local signed APT mirror laid out like
pkgs.k8s.io (tools/testbed/aptrepo.py), with real apt-get in the node's private root; then kubeadm
init and a worker join run on them with only ``SystemVerification`` ignored. The host's files,
package database and sysctls are snapshotted before and compared after each test that changes a
node.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tools.testbed.sandbox import BARE_ABSENT, Node, Sandbox
from tools.testbed.testing import require_host, sandbox

if TYPE_CHECKING:
    from tools.testbed.aptrepo import RepoServer

# Every test with the database: pytest-django runs tests that use it before those that do not,
# and this module's tests share one sandbox in file order (the join initializes node1, which the
# artifact-set tests need blank), so they must all be in the same group.
pytestmark = [pytest.mark.cluster, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

NAME = "kbtbb"
SUBNET = "10.213.40.0/24"

# What preparing a machine writes (and what a package manager keeps), as the host has it.
WATCHED_TREES = (
    "/etc/apt",
    "/etc/sysctl.d",
    "/etc/modules-load.d",
    "/etc/systemd/system",
    "/etc/containerd",
    "/etc/default",
    "/usr/local/bin",
    "/usr/local/sbin",
    "/opt",
    "/var/lib/dpkg",
    "/var/lib/containerd",
    "/usr/lib/systemd/system",
)
WATCHED_FILES = ("/etc/fstab", "/etc/hosts", "/etc/hostname", "/usr/bin/systemctl", "/usr/bin/kubectl", "/root/.bashrc")
WATCHED_SYSCTLS = (
    "net/ipv4/ip_forward",
    "net/bridge/bridge-nf-call-iptables",
    "net/bridge/bridge-nf-call-ip6tables",
    "kernel/pid_max",
    "fs/protected_regular",
    "vm/swappiness",
)


def _entry(path: str) -> tuple[object, ...]:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return ("absent",)
    if os.path.islink(path):
        return ("link", os.readlink(path))
    if not os.path.isfile(path):
        return ("dir" if os.path.isdir(path) else "other", st.st_mode)
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest() if st.st_size < 8 << 20 else st.st_mtime_ns
    return ("file", st.st_mode, st.st_size, digest)


def host_snapshot() -> dict[str, object]:
    """The host state a machine's preparation could change, read without changing it."""
    snap: dict[str, object] = {}
    for tree in WATCHED_TREES:
        snap[tree] = _entry(tree)
        for root, dirs, files in os.walk(tree):
            for name in dirs + files:
                path = os.path.join(root, name)
                snap[path] = _entry(path)
    for path in WATCHED_FILES:
        snap[path] = _entry(path)
    for key in WATCHED_SYSCTLS:
        snap[f"sysctl {key}"] = _entry(f"/proc/sys/{key}") and Path(f"/proc/sys/{key}").read_text()
    snap["/proc/swaps"] = Path("/proc/swaps").read_text()
    snap["dpkg -l"] = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Package} ${Version} ${Status}\n"], capture_output=True, text=True, check=True
    ).stdout
    return snap


def assert_host_unchanged(before: dict[str, object]) -> None:
    after = host_snapshot()
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert not changed, "the host changed: " + "; ".join(
        f"{k}: {before.get(k, 'absent')!r} -> {after.get(k, 'absent')!r}"[:300] for k in changed[:20]
    )


@pytest.fixture(scope="module")
def bare() -> Iterator[Sandbox]:
    require_host()
    with sandbox(NAME, SUBNET, size=2, bare=True) as sb:
        yield sb


def make_deb(tmp: Path, name: str, version: str) -> Path:
    """A tiny real Debian package (one file under /usr/share), built with dpkg-deb."""
    root = tmp / f"{name}-root"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        f"Package: {name}\nVersion: {version}\nArchitecture: all\nMaintainer: Kubeboard test bed <none@invalid>\n"
        "Description: probe package of the bare-machine test\n"
    )
    (root / "usr" / "share" / name).mkdir(parents=True)
    (root / "usr" / "share" / name / "README").write_text("installed on a bare test-bed node only\n")
    deb = tmp / f"{name}_{version}_all.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-b", str(root), str(deb)], check=True, capture_output=True)
    return deb


def test_bare_node_is_blank_and_changing_its_root_leaves_the_host_unchanged(bare: Sandbox, tmp_path: Path) -> None:
    node = bare.node(1)
    before = host_snapshot()

    # Blank: none of the binaries on PATH, and the kernel settings a fresh network namespace has.
    found = node.ssh("for b in " + " ".join(BARE_ABSENT) + '; do command -v "$b"; done; true').stdout
    assert found.strip() == "", f"a bare node has these on its PATH: {found}"
    assert node.ssh("cat /proc/sys/net/ipv4/ip_forward").stdout.strip() == "0"
    assert node.ssh("cat /proc/swaps").stdout.strip().splitlines()[1:] == []
    assert node.ssh("dpkg-query -W kubectl kubeadm kubelet", check=False).returncode != 0
    mounts = node.ssh("findmnt -n -o FSTYPE,OPTIONS /").stdout
    assert mounts.startswith("overlay") and f"upperdir={node.rootfs}/upper" in mounts

    # Prepare-like changes inside the node, over SSH as Kubeboard would make them.
    deb = make_deb(tmp_path, "kubeboard-probe", "1.0")
    script = f"""set -e
printf '#!/bin/sh\\necho probe\\n' > /usr/local/bin/kubeboard-probe && chmod 755 /usr/local/bin/kubeboard-probe
mkdir -p /opt/kubeboard-probe && echo x > /opt/kubeboard-probe/file
mkdir -p /etc/modules-load.d && printf 'overlay\\nbr_netfilter\\n' > /etc/modules-load.d/k8s.conf
printf 'net.ipv4.ip_forward = 1\\nnet.bridge.bridge-nf-call-iptables = 1\\nnet.bridge.bridge-nf-call-ip6tables = 1\\n' > /etc/sysctl.d/99-kubernetes.conf
sysctl -p /etc/sysctl.d/99-kubernetes.conf
swapoff -a
sed -i '/ swap / s/^/#/' /etc/fstab
echo '# kubeboard probe' >> /etc/fstab
dpkg -i {deb}
systemctl mask swap.target
echo 'KUBELET_EXTRA_ARGS=' > /etc/default/kubelet
"""
    node.ssh(script)
    # A global (non-network) sysctl is the host kernel's: refused inside the node.
    refused = node.ssh("sysctl -w kernel.pid_max=65536", check=False)
    assert refused.returncode != 0

    # The node sees its changes...
    assert node.ssh("kubeboard-probe").stdout.strip() == "probe"
    assert node.ssh("cat /proc/sys/net/ipv4/ip_forward").stdout.strip() == "1"
    assert node.ssh("dpkg-query -W -f '${Status}' kubeboard-probe").stdout == "install ok installed"
    assert node.ssh("systemctl is-enabled swap.target", check=False).stdout.strip() == "masked"
    assert (node.root / "opt/kubeboard-probe/file").read_text() == "x\n"
    # ...which live in its overlay's upper layer only, and the host is exactly as before.
    assert (node.rootfs / "upper/usr/local/bin/kubeboard-probe").exists()
    assert_host_unchanged(before)
    assert Path("/proc/sys/net/ipv4/ip_forward").read_text().strip() == "0"


def require_runtime_set() -> Path:
    """The cached artifact set (built once from the cached binaries), or skip/fail."""
    from tools.testbed.artifacts import cached_set, find_runtime
    from tools.testbed.binaries import BinariesMissing
    from tools.testbed.testing import require_binaries, unavailable

    require_binaries()
    try:
        find_runtime()
        return cached_set()
    except BinariesMissing as exc:
        unavailable(str(exc))
    raise AssertionError("unreachable")


def test_artifact_set_layout_and_checksums() -> None:
    from tools.testbed.binaries import selected_version

    aset = require_runtime_set()
    assert (aset / "kubernetes-version").read_text() == selected_version() + "\n"
    assert (aset / "architecture").read_text().strip() in ("amd64", "arm64")
    listed = {line.split("  ", 1)[1] for line in (aset / "SHA256SUMS").read_text().splitlines()}
    present = {p.relative_to(aset).as_posix() for p in aset.rglob("*") if p.is_file()} - {"SHA256SUMS"}
    assert listed == present
    for b in ("kubeadm", "kubelet", "kubectl", "crictl", "containerd", "containerd-shim-runc-v2", "ctr", "runc"):
        assert f"bin/{b}" in listed
    subprocess.run(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=aset, check=True)
    # The images are exactly the ones kubeadm of this version asks for.
    wanted = subprocess.run(
        [str(aset / "bin/kubeadm"), "config", "images", "list", "--kubernetes-version", selected_version()],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    names = {ref.rsplit("/", 1)[-1].split(":", 1)[0] + ".tar" for ref in wanted}
    assert {p.name for p in (aset / "images").iterdir()} == names


PREPARE_FROM_SET = """set -e
cd {set}
sha256sum --quiet -c SHA256SUMS
install -m 755 bin/containerd bin/containerd-shim-runc-v2 bin/ctr /usr/local/bin/
install -m 755 bin/runc /usr/local/sbin/
install -m 755 bin/kubeadm bin/kubelet bin/kubectl bin/crictl /usr/bin/
install -D -m 644 systemd/containerd.service /etc/systemd/system/containerd.service
install -D -m 644 systemd/kubelet.service /etc/systemd/system/kubelet.service
install -D -m 644 systemd/10-kubeadm.conf /etc/systemd/system/kubelet.service.d/10-kubeadm.conf
mkdir -p /etc/containerd
containerd config default > /etc/containerd/config.toml
printf 'net.ipv4.ip_forward = 1\\n' > /etc/sysctl.d/99-kubernetes.conf
sysctl -q -p /etc/sysctl.d/99-kubernetes.conf
systemctl daemon-reload
systemctl enable --now containerd
for image in images/*.tar; do ctr -n k8s.io images import --local "$image" >/dev/null; done
systemctl enable kubelet
"""


def prepare_from_set(node: Node) -> None:
    """What Prepare does from the air-gapped source, done once per node of the module."""
    if node.ssh("test -e /root/.prepared-from-set", check=False).returncode != 0:
        node.ssh(PREPARE_FROM_SET.format(set=require_runtime_set()) + "touch /root/.prepared-from-set\n", timeout=300)


def test_containerd_from_the_artifact_set_serves_cri_and_preflight_passes(bare: Sandbox) -> None:
    from tools.testbed.binaries import selected_version
    from tools.testbed.cluster import kubeadm_config, new_bootstrap_token

    node = bare.node(1)
    before = host_snapshot()
    prepare_from_set(node)

    # containerd runs under the node's init, started through the systemctl double...
    assert node.ssh("systemctl is-active containerd").stdout.strip() == "active"
    assert node.ssh("systemctl is-enabled containerd").stdout.strip() == "enabled"
    status = node.ssh("systemctl status containerd").stdout
    assert "Active: active (running)" in status and "Main PID:" in status
    # ...and serves CRI: crictl talks to it, the imported images are there by kubeadm's names.
    endpoint = "--runtime-endpoint unix:///run/containerd/containerd.sock"
    version = node.ssh(f"crictl {endpoint} version").stdout
    assert "RuntimeName:  containerd" in version and "RuntimeVersion:  v2.4.2" in version
    images = node.ssh(f"crictl {endpoint} images -o json").stdout
    listed = node.ssh(f"kubeadm config images list --kubernetes-version {selected_version()}").stdout.split()
    for ref in listed:
        assert f'"{ref}"' in images, f"{ref} not imported: {images[:500]}"

    # kubeadm's preflight on this prepared machine: CRI, ContainerRuntimeVersion, ImagePull and
    # the ip_forward check pass for real; SystemVerification stays (cgroups v1 on this host).
    node.ssh(f"cat > /root/kubeadm.yaml <<'EOF'\n{kubeadm_config(node, selected_version(), new_bootstrap_token())}EOF")
    out = node.ssh(
        "kubeadm init phase preflight --config /root/kubeadm.yaml --ignore-preflight-errors=SystemVerification 2>&1",
        timeout=300,
    ).stdout
    for check in ("CRI", "ContainerRuntimeVersion", "ImagePull", "FileContent--proc-sys-net-ipv4-ip_forward"):
        assert f"[WARNING {check}]" not in out and f"[ERROR {check}]" not in out, out
    assert "[WARNING SystemVerification]" in out, out

    # Stop and start again through the double; the runner stops the process.
    node.ssh("systemctl stop containerd")
    assert node.ssh("systemctl is-active containerd", check=False).stdout.strip() == "inactive"
    assert node.ssh(f"crictl {endpoint} --timeout 2s version", check=False).returncode != 0
    node.ssh("systemctl start containerd")
    assert node.ssh(f"crictl {endpoint} images -q").stdout.strip()  # the content store survived
    assert_host_unchanged(before)


# Prepare's step name in its messages, per phase (workflows.prepare_steps), on the package source
# (no push or images phase: kubeadm pulls the images from a registry, see the join test).
PACKAGE_STEPS = {
    "swap": "swap",
    "kernel-modules": "kernel modules",
    "sysctl": "sysctl",
    "container-runtime": "container runtime",
    "kubernetes": "Kubernetes v1.37.2",
}
SITE_KEYRING = "/etc/apt/keyrings/site-mirror.gpg"
SITE_SOURCE = "/etc/apt/sources.list.d/site-mirror.list"


def configure_site_mirror(node: Node, repo: Path, server: RepoServer) -> None:
    """The machine's own configuration, as an air-gapped site sets its machines up (test setup,
    not Prepare): its distribution's sources point at the site's mirror (here the local
    repository's ``debian/`` stand-in, which carries containerd) and at nothing it cannot reach.
    A bare node otherwise has the host's Debian sources (deb.debian.org), which it has no route
    to: ``apt-get update`` only warns about them (exit 0, after about 8 s of retries) and keeps
    their old lists, from which apt would then try to fetch."""
    from tools.testbed.aptrepo import KEYRING

    node.ssh(
        f"""set -e
rm -f /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources
install -D -m 644 {repo / KEYRING} {SITE_KEYRING}
echo 'deb [signed-by={SITE_KEYRING}] {server.distro_url} /' > {SITE_SOURCE}
"""
    )


def prepare_from_packages(bare: Sandbox, index: int, operator) -> list:
    """Kubeboard's own Prepare machine, from the package source with the cluster's repository
    mirror and pinned key fingerprint pointing at the local repository, run twice on node
    ``index`` (once per module: later calls return [])."""
    from operations.models import Operation
    from operations.runner import run_operation
    from tests.conftest import team_of
    from tests.support.testbed_cluster import add_machine, package_source, ready_cluster
    from tools.testbed.aptrepo import RepoServer, cached_repo
    from tools.testbed.preflight import TESTBED_PREPARED
    from workflows.models import PrepareSettings
    from workflows.prepare import start_prepare

    machine = bare.node(index)
    if machine.ssh("test -e /root/.prepared-from-packages", check=False).returncode == 0:
        return []
    require_runtime_set()
    repo = cached_repo()
    cluster = ready_cluster(
        "pkgs", f"{bare.node(1).address}:6443", team=team_of(operator), ignore_preflight_errors=list(TESTBED_PREPARED)
    )
    operations = []
    with RepoServer(repo, bare.gateway) as server:
        configure_site_mirror(machine, repo, server)
        PrepareSettings.objects.update_or_create(cluster=cluster, defaults=package_source(server, repo))
        node = add_machine(cluster, bare, index)
        for _ in range(2):
            operation = start_prepare(cluster, [node], user=operator)
            status = run_operation(operation.pk)
            operation.refresh_from_db()
            if status != Operation.Status.SUCCEEDED:
                failed = operation.phases.filter(status="failed").first()
                where = f"{failed.name}: {failed.error} ({failed.hint})" if failed else operation.error
                pytest.fail(f"Prepare {status}: {where}\n" + "\n".join(messages(operation)[-40:]))
            operations.append(operation)
            node.refresh_from_db()
    machine.ssh("touch /root/.prepared-from-packages")
    return operations


def messages(operation, phase: str = "") -> list[str]:
    events = operation.events.all()
    if phase:
        events = events.filter(phase=phase)
    return list(events.order_by("seq").values_list("message", flat=True))


def test_prepare_machine_from_the_package_repository_runs_apt_in_the_private_root(bare: Sandbox, operator) -> None:
    """Kubeboard's Prepare machine on node2 from the package source: the runtime step installs
    containerd from the machine's own (distribution) sources, the kubernetes step downloads the
    mirror's Release.key with curl, checks the pinned fingerprint, writes the source and installs
    the exact versions with apt-get, held. Prepared again, every step is already done."""
    from tools.testbed.aptrepo import cached_repo, fingerprint, kubernetes_repository
    from tools.testbed.binaries import selected_version

    node = bare.node(2)
    version = selected_version().lstrip("v") + "-1.1"
    before = host_snapshot()
    first, again = prepare_from_packages(bare, 2, operator)

    key = fingerprint(cached_repo())
    # The package source has no push or images phase: the images come from a registry when
    # kubeadm pulls them (ImagePull, at init; the worker join below does not run it).
    assert list(first.phases.order_by("order").values_list("name", flat=True)) == [
        "facts", "swap", "kernel-modules", "sysctl", "container-runtime", "kubernetes", "verify"
    ]  # fmt: skip
    said = "\n".join(messages(first))
    for phase, step in PACKAGE_STEPS.items():
        if phase == "swap":  # a bare node has no swap at all (the host has none)
            continue
        assert any(m.startswith(f"{step}: changed: ") for m in messages(first, phase)), messages(first, phase)
    runtime = messages(first, "container-runtime")
    assert "container runtime: changed: installed the containerd package" in runtime, runtime
    kubernetes = messages(first, "kubernetes")
    assert any(
        m.startswith("Kubernetes v1.37.2: changed: /etc/apt/keyrings/kubernetes-apt-keyring.gpg: the key from http://")
        and m.endswith(f"/kubernetes/v1.37/deb/Release.key (fingerprint {key})")
        for m in kubernetes
    ), kubernetes
    assert any("/etc/apt/sources.list.d/kubernetes.list: http://" in m for m in kubernetes), kubernetes
    assert any(
        m.startswith(
            "Kubernetes v1.37.2: changed: installed kubeadm=1.37.2-* kubelet=1.37.2-* kubectl=1.37.2-* cri-tools=1.37.*"
        )
        for m in kubernetes
    ), kubernetes
    assert f"{node.name} is ready for kubeadm v1.37.2" in said, said[-3000:]
    # Prepared again: every step reads the machine and finds nothing to do.
    for phase, step in PACKAGE_STEPS.items():
        assert f"{step}: already done, nothing changed." in messages(again, phase), "\n".join(messages(again, phase))
    assert not [m for m in messages(again) if ": changed: " in m or "apt-get" in m], messages(again)

    # What apt put in the node's private root: the exact versions, held, from the mirror's source.
    assert node.ssh("kubeadm version -o short").stdout.strip() == selected_version()
    for package in ("kubeadm", "kubelet", "kubectl"):
        assert node.ssh(f"dpkg-query -W -f '${{Version}}' {package}").stdout == version
    assert set(node.ssh("apt-mark showhold").stdout.split()) == {"kubeadm", "kubelet", "kubectl", "cri-tools"}
    assert node.ssh("crictl --version").stdout.strip() == "crictl version v1.37.0"
    assert node.ssh("dpkg-query -W -f '${Version}' containerd").stdout == "2.4.2-1"
    assert "v2.4.2" in node.ssh("containerd --version").stdout
    source = node.ssh("cat /etc/apt/sources.list.d/kubernetes.list").stdout
    assert "deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] http://" in source
    assert "/kubernetes/v1.37/deb/ /" in source
    # The units came with the packages (kubeadm's drop-in with kubeadm): the double reads them.
    shown = node.ssh("systemctl show -p FragmentPath -p UnitFileState -p ActiveState kubelet containerd").stdout
    # (/lib is /usr/lib on a merged-/usr Debian: the double names the first directory it looked in)
    assert "FragmentPath=/lib/systemd/system/kubelet.service" in shown
    assert "FragmentPath=/lib/systemd/system/containerd.service" in shown
    assert node.ssh("test -f /usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf", check=False).returncode == 0
    # containerd runs with the configuration Prepare wrote (kubeadm's cgroup driver, pause image).
    assert node.ssh("systemctl is-active containerd").stdout.strip() == "active"
    # The kubelet is enabled by Prepare (the test bed's package, like RHEL's, does not enable it).
    assert node.ssh("systemctl is-enabled kubelet").stdout.strip() == "enabled"
    assert any(m.endswith("changed: enabled the kubelet (kubeadm starts it)") for m in kubernetes), kubernetes
    config = node.ssh("cat /etc/containerd/config.toml").stdout
    assert "SystemdCgroup = true" in config and "registry.k8s.io/pause:3.10.2" in config
    # A signature apt did not trust would have failed the update: both repositories are signed.
    for release in (kubernetes_repository(cached_repo()), cached_repo() / "debian"):
        assert (release / "InRelease").read_text().startswith("-----BEGIN PGP SIGNED MESSAGE-----")
    assert_host_unchanged(before)


def test_prepared_machines_init_and_join_with_only_system_verification_ignored(bare: Sandbox, operator) -> None:
    """kubeadm init on the machine prepared from the artifact set and a worker join of the one
    Kubeboard's Prepare made ready from the package source, each ignoring only
    SystemVerification (cgroups v1 here; a join runs no ImagePull, so the package source's images,
    pulled from a registry, are not needed): kubeadm starts the kubelet itself through the
    systemctl double."""
    from tools.testbed.binaries import selected_version
    from tools.testbed.cluster import kubeadm_config, new_bootstrap_token
    from tools.testbed.preflight import TESTBED_PREPARED

    cp, worker = bare.node(1), bare.node(2)
    prepare_from_set(cp)
    prepare_from_packages(bare, 2, operator)
    before = host_snapshot()
    ignore = ",".join(TESTBED_PREPARED)
    cp.ssh(f"cat > /root/kubeadm.yaml <<'EOF'\n{kubeadm_config(cp, selected_version(), new_bootstrap_token())}EOF")
    init = cp.ssh(f"kubeadm init --config /root/kubeadm.yaml --ignore-preflight-errors={ignore} 2>&1", timeout=600)
    assert "Your Kubernetes control-plane has initialized successfully!" in init.stdout
    join = cp.ssh("kubeadm token create --print-join-command").stdout.strip()
    joined = worker.ssh(f"{join} --ignore-preflight-errors={ignore} 2>&1", timeout=600)
    assert "This node has joined the cluster" in joined.stdout, joined.stdout
    for out in (init.stdout, joined.stdout):
        for check in ("CRI", "ContainerRuntimeVersion", "ImagePull", "FileContent--proc-sys-net-ipv4-ip_forward"):
            assert f"[WARNING {check}]" not in out, out
        assert "[WARNING Service-Kubelet]" not in out, out  # enabled by Prepare (and by the set's script)
    assert "[preflight] Pulling images" not in joined.stdout, joined.stdout
    assert worker.ssh("systemctl is-active kubelet").stdout.strip() == "active"
    # The double expanded kubeadm's drop-in and flags file into the unit's real command line.
    started = (cp.dir / "logs" / "runner.log").read_text()
    assert "kubelet.service: unit command /usr/bin/kubelet --bootstrap-kubeconfig=" in started
    assert "--config=/var/lib/kubelet/config.yaml" in started
    kubectl = "kubectl --kubeconfig /etc/kubernetes/admin.conf"
    cp.ssh(f"{kubectl} wait --for=condition=Ready node/node1 node/node2 --timeout=120s", timeout=180)
    assert_host_unchanged(before)


def test_systemctl_double_reads_units_like_systemd(tmp_path: Path) -> None:
    """kubeadm's kubelet unit, its drop-in and a kubeadm-flags.env, expanded as systemd does
    (no sandbox: the double's unit reader alone)."""
    from tools.testbed import systemctl as sd
    from tools.testbed.artifacts import UNITS

    flags = tmp_path / "kubeadm-flags.env"
    flags.write_text(
        'KUBELET_KUBEADM_ARGS="--container-runtime-endpoint=unix:///run/containerd/containerd.sock --node-ip=10.0.0.1"\n'
    )
    dropin = (UNITS / "10-kubeadm.conf").read_text().replace("/var/lib/kubelet/kubeadm-flags.env", str(flags))
    unit = sd.Unit(name="kubelet.service", path=UNITS / "kubelet.service")
    sd._parse((UNITS / "kubelet.service").read_text(), unit.sections)
    sd._parse(dropin, unit.sections)
    # The drop-in's empty ExecStart= reset the unit's; $VAR words split, missing files ignored (-).
    assert unit.command() == [
        [
            "/usr/bin/kubelet",
            "--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf",
            "--kubeconfig=/etc/kubernetes/kubelet.conf",
            "--config=/var/lib/kubelet/config.yaml",
            "--container-runtime-endpoint=unix:///run/containerd/containerd.sock",
            "--node-ip=10.0.0.1",
        ]
    ]
    assert unit.get("Install", "WantedBy") == ["multi-user.target"]
    assert unit.last("Service", "Restart") == "always"
    containerd = sd.Unit(name="containerd.service", path=UNITS / "containerd.service")
    sd._parse((UNITS / "containerd.service").read_text(), containerd.sections)
    assert containerd.command("ExecStartPre") == [["-", "/sbin/modprobe", "overlay"]]
    assert containerd.last("Service", "Type") == "notify"


def test_systemctl_double_try_restart_restarts_only_running_units(tmp_path: Path, monkeypatch) -> None:
    """``try-restart a b`` restarts each unit that runs and leaves a stopped one stopped, whatever
    the order (no sandbox: the double's job requests, against a state dir of its own)."""
    from tools.testbed import systemctl as sd
    from tools.testbed.artifacts import UNITS

    units = tmp_path / "units"
    units.mkdir()
    for unit in ("containerd.service", "kubelet.service"):
        (units / unit).write_text((UNITS / unit).read_text())
    monkeypatch.setattr(sd, "STATE", tmp_path / "state")
    monkeypatch.setattr(sd, "UNIT_DIRS", (tmp_path / "etc", units))
    monkeypatch.setattr(sd, "ETC", tmp_path / "etc")
    sd.write_json(sd.STATE / "containerd.service.status", {"state": "active", "seq": 1})
    requested: list[tuple[str, str]] = []
    monkeypatch.setattr(sd, "_request", lambda name, action, wait=True: requested.append((name, action)) or 0)

    assert sd.main(["try-restart", "containerd", "kubelet"]) == 0
    assert requested == [("containerd.service", "restart")]
