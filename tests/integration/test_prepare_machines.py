"""Prepare machine over a real OpenSSH sshd: every step against a machine root in a temp directory
(tests/support/prepare_bed.py says what is real and what stands in), and each fault the issue
names: unsupported OS, no passwordless sudo, a full disk (a real 1 MiB tmpfs), a checksum
mismatch (a corrupted stored file), a runtime that does not start, a package manager whose lock a
real process holds. The host's own files and kernel settings are compared before and after."""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest
from django.test import override_settings

from artifacts.services import import_directory
from clusters.models import Cluster
from nodes import services
from nodes.models import Node
from operations.models import Event, Operation
from operations.runner import run_operation
from operations.services import resume_operation
from tests.factories import make_cluster
from tests.integration.test_ssh import make_node, pin, sshd  # noqa: F401 - the real sshd fixture
from tests.support import prepare_bed
from tests.support.services import ServiceUnavailable, local_user
from workflows.join import JoinRefused, start_join
from workflows.models import MachinePreparation, PrepareSettings
from workflows.prepare import start_prepare
from workflows.prepare_steps import prepared_as_worker

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def host():
    before = prepare_bed.host_state()
    yield
    assert prepare_bed.host_state() == before, "a Prepare test changed the host running the tests"


@pytest.fixture
def bed(tmp_path, settings, host):
    settings.ARTIFACTS_DIR = tmp_path / "store"
    root = prepare_bed.machine_root(tmp_path / "m1")
    settings.PREPARE_ROOT = str(root)
    settings.PREPARE_RUNTIME_START_SECONDS = 2
    return root


@pytest.fixture
def the_set(tmp_path):
    return import_directory(prepare_bed.artifact_set(tmp_path / "set"))


def _machine(server, source=PrepareSettings.Source.ARTIFACTS, **fields) -> Node:
    cluster = make_cluster("c1")
    PrepareSettings.objects.create(cluster=cluster, source=source)
    key = services.ensure_cluster_key(cluster)
    server.authorize(key.public_key)
    return pin(make_node(server, cluster, **fields))


def _messages(operation: Operation, phase: str = "") -> list[str]:
    events = Event.objects.filter(operation=operation)
    if phase:
        events = events.filter(phase=phase)
    return list(events.order_by("seq").values_list("message", flat=True))


def _explain(operation: Operation) -> str:
    failed = operation.phases.filter(status="failed").first()
    where = f"{failed.name}: {failed.error} ({failed.hint})" if failed else "no failed phase"
    return where + "\n" + "\n".join(_messages(operation)[-30:])


def _failed(operation: Operation):
    return operation.phases.get(status="failed")


def _tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "calls.log"
    }


def test_prepare_from_the_artifact_set_then_again_changes_nothing(sshd, bed, the_set):  # noqa: F811
    node = _machine(sshd, role=Node.Role.CONTROL_PLANE)  # a control plane: the whole set
    operation = start_prepare(node.cluster, [node])
    assert run_operation(operation.pk) == Operation.Status.SUCCEEDED, _explain(operation)

    assert "/swap.img none swap" in (bed / "etc/fstab").read_text()
    assert (bed / "etc/fstab").read_text().splitlines()[1].startswith("# /swap.img none swap sw 0 0")
    assert (bed / "proc/swaps").read_text().count("\n") == 1
    assert (bed / "state/enabled/swap.img.swap").read_text().strip() == "masked"
    assert (bed / "etc/modules-load.d/k8s.conf").read_text().split()[-2:] == ["overlay", "br_netfilter"]
    assert (bed / "sys/module/br_netfilter").is_dir()
    for key in ("ipv4/ip_forward", "bridge/bridge-nf-call-iptables", "bridge/bridge-nf-call-ip6tables"):
        assert (bed / "proc/sys/net" / key).read_text().strip() == "1", key
    config = (bed / "etc/containerd/config.toml").read_text()
    assert "version = 3" in config and "SystemdCgroup = true" in config
    assert "sandbox = 'registry.k8s.io/pause:3.10.2'" in config
    for name in ("kubeadm", "kubelet", "kubectl", "crictl", "containerd", "ctr"):
        installed = (bed / "usr/local/bin" / name).read_bytes()
        assert installed == (Path(the_set.directory) / "bin" / name).read_bytes(), name
    assert (bed / "usr/local/sbin/runc").exists()
    assert (bed / "etc/systemd/system/kubelet.service.d/10-kubeadm.conf").exists()
    assert (bed / "state/enabled/kubelet").read_text().strip() == "enabled"
    assert set((bed / "run/containerd/containerd.sock.images").read_text().split()) == set(prepare_bed.IMAGES.values())
    preparation = MachinePreparation.objects.get(node=node)
    assert preparation.prepared_at is not None and preparation.kubernetes_version == "v1.37.2"
    assert preparation.bytes_pushed == sum(f.size for f in the_set.files.all())
    files = len(list(the_set.files.all()))
    assert (
        f"SHA-256 checked on m1: the {files} files sent or copied to /var/lib/kubeboard/artifacts/v1.37.2-amd64 match "
        "SHA256SUMS." in _messages(operation, "push")
    )
    assert MachinePreparation.objects.get(node=node).prepared_as == Node.Role.CONTROL_PLANE
    assert any(m.startswith("sysctl: changed: ") for m in _messages(operation, "sysctl"))

    # Again: every step finds its work done, and nothing is pushed (the same SHA-256 is there).
    before = _tree(bed)
    calls_before = len(prepare_bed.calls(bed))
    again = start_prepare(node.cluster, [Node.objects.get(pk=node.pk)])
    assert run_operation(again.pk) == Operation.Status.SUCCEEDED, _explain(again)
    for phase, step in [
        ("swap", "swap"),
        ("kernel-modules", "kernel modules"),
        ("sysctl", "sysctl"),
        ("images", "images"),
    ]:
        assert f"{step}: already done, nothing changed." in _messages(again, phase), phase
    assert "Kubernetes v1.37.2: already done, nothing changed." in _messages(again, "kubernetes")
    assert MachinePreparation.objects.get(node=node).bytes_pushed == 0
    pushed = [m for m in _messages(again, "push") if "not sent again" in m]
    assert pushed and f"{len(list(the_set.files.all()))} already on" in pushed[0]
    # Hashed once on the machine: the files already there are not read again after the push.
    assert (
        "Every file of /var/lib/kubeboard/artifacts/v1.37.2-amd64 already matched SHA256SUMS (hashed on the "
        "machine above)." in _messages(again, "push")
    )
    assert _tree(bed) == before
    # Only reads ran (the runtime is restarted only when something of it changed).
    assert [
        c
        for c in prepare_bed.calls(bed)[calls_before:]
        if not c.startswith(("systemctl is-enabled", "systemctl list-units"))
    ] == []


def test_a_set_pushed_next_to_another_copies_the_files_they_share_instead_of_sending_them(sshd, bed, the_set, tmp_path):  # noqa: F811
    # What an upgrade does: the machine holds the set Prepare pushed (v1.36.3), and the target's
    # set (v1.37.2) goes next to it. Only kubeadm, kubelet and kubectl differ.
    older = import_directory(prepare_bed.artifact_set(tmp_path / "older", version="v1.36.3"))
    node = _machine(sshd, role=Node.Role.CONTROL_PLANE)
    node.cluster.kubernetes_version = "v1.36.3"
    node.cluster.save(update_fields=["kubernetes_version"])
    first = start_prepare(node.cluster, [node])
    assert run_operation(first.pk) == Operation.Status.SUCCEEDED, _explain(first)
    assert MachinePreparation.objects.get(node=node).bytes_pushed == sum(f.size for f in older.files.all())

    node.cluster.kubernetes_version = "v1.37.2"
    node.cluster.save(update_fields=["kubernetes_version"])
    again = start_prepare(node.cluster, [Node.objects.get(pk=node.pk)])
    assert run_operation(again.pk) == Operation.Status.SUCCEEDED, _explain(again)
    differ = {"bin/kubeadm", "bin/kubelet", "bin/kubectl"}
    sent = {f.path: f.size for f in the_set.files.all() if f.path in differ}
    assert set(sent) == differ
    assert MachinePreparation.objects.get(node=node).bytes_pushed == sum(sent.values())
    said = _messages(again, "push")
    shared = len(list(the_set.files.all())) - len(differ)
    assert any(f"{shared} copied from another set already on it, 3 to send" in m for m in said), said
    assert (
        "Copied bin/containerd from /var/lib/kubeboard/artifacts/v1.36.3-amd64/bin/containerd on m1 (same SHA-256, not sent)."
        in said
    )
    assert not any(m.startswith("Sent bin/containerd ") for m in said), said
    # The copies are checked like sent files, and the new set is complete on the machine.
    assert (
        f"SHA-256 checked on m1: the {shared + len(differ)} files sent or copied to /var/lib/kubeboard/artifacts/v1.37.2-amd64 "
        "match SHA256SUMS." in said
    )
    for item in the_set.files.all():
        copy = bed / "var/lib/kubeboard/artifacts/v1.37.2-amd64" / item.path
        assert hashlib.sha256(copy.read_bytes()).hexdigest() == item.sha256, item.path


def test_a_worker_is_sent_no_control_plane_image_and_prepared_again_as_a_control_plane_gets_them(sshd, bed, the_set):  # noqa: F811
    node = _machine(sshd)  # a worker, the role a machine is added with
    assert node.role == Node.Role.WORKER
    operation = start_prepare(node.cluster, [node])
    assert run_operation(operation.pk) == Operation.Status.SUCCEEDED, _explain(operation)
    staging = bed / "var/lib/kubeboard/artifacts/v1.37.2-amd64"
    apiserver = the_set.files.get(path="images/kube-apiserver.tar")
    # Not sent, not listed in the machine's SHA256SUMS, not imported; pause is (every node runs it).
    assert not (staging / "images/kube-apiserver.tar").exists()
    assert (staging / "images/pause.tar").exists()
    assert "images/kube-apiserver.tar" not in (staging / "SHA256SUMS").read_text()
    assert set((bed / "run/containerd/containerd.sock.images").read_text().split()) == {prepare_bed.PAUSE}
    preparation = MachinePreparation.objects.get(node=node)
    assert preparation.bytes_pushed == sum(f.size for f in the_set.files.all()) - apiserver.size
    assert preparation.prepared_as == Node.Role.WORKER
    why = f"1 control-plane image not sent: m1 is a worker (kube-apiserver; {apiserver.size / 2**20:.1f} MiB)."
    assert any(m.startswith(why) for m in _messages(operation, "push")), _messages(operation, "push")
    assert any(
        m.startswith("1 control-plane image not imported: m1 is a worker") for m in _messages(operation, "images")
    )

    # Made a control plane without Prepare again: refused before anything runs, naming the way out
    # (kubeadm's ImagePull preflight would otherwise fail on the machine naming the image).
    Cluster.objects.filter(pk=node.cluster.pk).update(status=Cluster.Status.RUNNING, ca_pin_hash="sha256:" + "0" * 64)
    # The closing machine check looks on this host's PATH, not in the machine's private root: its
    # "kubeadm not found" is this bed's, so it is left out of the refusal looked at here.
    Node.objects.filter(pk=node.pk).update(facts={})
    cluster = Cluster.objects.get(pk=node.cluster.pk)
    with pytest.raises(JoinRefused) as refused:
        start_join(cluster, [Node.objects.get(pk=node.pk)], control_plane=True)
    assert "m1 was prepared as a worker: the control-plane images (kube-apiserver" in str(refused.value)
    assert refused.value.hint.startswith("Prepare m1 again (set its role to Control plane on its page first)")
    assert Operation.objects.filter(cluster=cluster, kind="join-control-plane").count() == 0

    # Its role set to control plane, Prepare again sends only the missing image and imports it.
    Node.objects.filter(pk=node.pk).update(role=Node.Role.CONTROL_PLANE)
    node = Node.objects.get(pk=node.pk)
    with pytest.raises(JoinRefused) as refused:
        start_join(cluster, [node], control_plane=True)
    assert refused.value.hint.startswith("Prepare m1 again: it was prepared as a worker")
    again = start_prepare(cluster, [node])
    assert run_operation(again.pk) == Operation.Status.SUCCEEDED, _explain(again)
    assert MachinePreparation.objects.get(node=node).bytes_pushed == apiserver.size
    assert MachinePreparation.objects.get(node=node).prepared_as == Node.Role.CONTROL_PLANE
    assert (
        "SHA-256 checked on m1: the 1 files sent or copied to /var/lib/kubeboard/artifacts/v1.37.2-amd64 match SHA256SUMS."
        in (_messages(again, "push"))
    )
    assert set((bed / "run/containerd/containerd.sock.images").read_text().split()) == set(prepare_bed.IMAGES.values())
    assert "images/kube-apiserver.tar" in (staging / "SHA256SUMS").read_text()
    assert prepared_as_worker(node) == ""


def test_a_dry_run_lists_what_would_change_and_changes_nothing(sshd, bed, the_set):  # noqa: F811
    node = _machine(sshd)
    before = _tree(bed)
    operation = start_prepare(node.cluster, [node], dry_run=True)
    assert run_operation(operation.pk) == Operation.Status.SUCCEEDED, _explain(operation)
    assert _tree(bed) == before
    assert not (bed / "var/lib/kubeboard").exists()
    assert [
        c for c in prepare_bed.calls(bed) if not c.startswith(("systemctl is-enabled", "systemctl list-units"))
    ] == []
    messages = _messages(operation)
    assert "swap: would change: swapoff -a (in use: /swap.img)" in messages
    assert "kernel modules: would change: modprobe br_netfilter" in messages
    assert any(m.startswith("push: would send bin/kubelet") for m in messages)
    # The worker's dry run lists the same as a run: the control-plane image left out, and why.
    assert any(m.startswith("1 control-plane image not sent: m1 is a worker (kube-apiserver;") for m in messages)
    assert not any(m.startswith("push: would send images/kube-apiserver.tar") for m in messages)
    assert any(m.startswith("push: would send images/pause.tar") for m in messages)
    assert any(m.startswith("Kubernetes v1.37.2: would change: installed /usr/local/bin/kubeadm") for m in messages)
    assert MachinePreparation.objects.get(node=node).prepared_at is None


def test_an_unsupported_system_is_refused_naming_what_is_supported(sshd, tmp_path, settings, host):  # noqa: F811
    root = prepare_bed.machine_root(
        tmp_path / "m1", os_release='ID=alpine\nVERSION_ID=3.20\nPRETTY_NAME="Alpine Linux v3.20"\n'
    )
    settings.PREPARE_ROOT = str(root)
    node = _machine(sshd, source=PrepareSettings.Source.PACKAGES)
    operation = start_prepare(node.cluster, [node])
    assert run_operation(operation.pk) == Operation.Status.FAILED
    failed = _failed(operation)
    assert failed.name == "facts"
    assert "Alpine Linux v3.20 (ID=alpine) is not a supported distribution; supported: Debian 12+" in failed.error
    assert prepare_bed.calls(root) == []


def test_a_user_without_passwordless_sudo_is_told_how_to_allow_it(sshd, bed):  # noqa: F811
    try:
        with local_user("kbnosudo") as (name, _password):
            node = _machine(sshd, source=PrepareSettings.Source.PACKAGES, ssh_user=name)
            cluster = node.cluster
            operation = start_prepare(cluster, [node])
            assert run_operation(operation.pk) == Operation.Status.FAILED
    except ServiceUnavailable as exc:
        pytest.skip(str(exc))
    failed = _failed(operation)
    assert failed.name == "facts"
    assert f"{name} on m1 has no passwordless sudo (sudo -n true failed)" in failed.error
    assert "NOPASSWD" in failed.hint
    assert prepare_bed.calls(bed) == []


def test_a_full_disk_is_found_before_anything_is_sent_and_resume_continues(sshd, bed, the_set):  # noqa: F811
    node = _machine(sshd)
    staging = bed / "var/lib/kubeboard"
    staging.mkdir(parents=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(staging)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        operation = start_prepare(node.cluster, [node])
        assert run_operation(operation.pk) == Operation.Status.FAILED
        failed = _failed(operation)
        assert failed.name == "push"
        assert "not enough free space on m1 for /var/lib/kubeboard/artifacts/v1.37.2-amd64: 1 MiB free" in failed.error
        assert "nothing was sent" in failed.error and "free space" in failed.hint
        assert list(staging.rglob("*")) == []
        assert not (bed / "usr/local/bin/kubeadm").exists()
    finally:
        subprocess.run(["umount", str(staging)], check=True)
    resume_operation(Operation.objects.get(pk=operation.pk), user=None)
    assert run_operation(operation.pk) == Operation.Status.SUCCEEDED, _explain(operation)
    assert operation.phases.get(name="facts").attempts.count() == 1  # resumed from the failed step


def test_a_checksum_mismatch_installs_nothing_and_resume_sends_the_file_again(sshd, bed, the_set, tmp_path):  # noqa: F811
    node = _machine(sshd)
    stored = Path(the_set.directory) / "bin/kubelet"
    stored.write_bytes(stored.read_bytes() + b"# damaged\n")
    operation = start_prepare(node.cluster, [node])
    assert run_operation(operation.pk) == Operation.Status.FAILED
    failed = _failed(operation)
    assert failed.name == "push"
    assert "checksum mismatch on m1: bin/kubelet did not match SHA256SUMS; nothing was installed" in failed.error
    assert not (bed / "usr/local/bin/kubelet").exists()
    assert not (bed / "var/lib/kubeboard/artifacts/v1.37.2-amd64/bin/kubelet").exists()  # deleted: sent again
    import_directory(tmp_path / "set")  # Kubeboard's copy repaired
    resume_operation(Operation.objects.get(pk=operation.pk), user=None)
    assert run_operation(operation.pk) == Operation.Status.SUCCEEDED, _explain(operation)
    assert MachinePreparation.objects.get(node=node).prepared_at is not None


@override_settings(PREPARE_RUNTIME_START_SECONDS=1)
def test_a_runtime_that_does_not_start_fails_and_is_never_reported_ready(sshd, bed, the_set):  # noqa: F811
    node = _machine(sshd)
    (bed / "state/containerd-broken").touch()
    operation = start_prepare(node.cluster, [node])
    assert run_operation(operation.pk) == Operation.Status.FAILED
    failed = _failed(operation)
    assert failed.name == "container-runtime"
    assert "containerd did not start on m1" in failed.error and "the machine is not ready" in failed.error
    assert "journal" in failed.hint
    assert "journal: containerd[42]: failed to load plugin io.containerd.grpc.v1.cri" in _messages(
        operation, "container-runtime"
    )
    assert operation.phases.get(name="verify").status == "pending"
    assert MachinePreparation.objects.get(node=node).prepared_at is None
    (bed / "state/containerd-broken").unlink()
    resume_operation(Operation.objects.get(pk=operation.pk), user=None)
    assert run_operation(operation.pk) == Operation.Status.SUCCEEDED, _explain(operation)


def test_a_package_manager_locked_by_another_process_is_named(sshd, bed):  # noqa: F811
    if shutil.which("lslocks") is None:
        pytest.skip("lslocks (util-linux) is not installed")
    node = _machine(sshd, source=PrepareSettings.Source.PACKAGES)
    lock = bed / "var/lib/dpkg/lock-frontend"
    lock.parent.mkdir(parents=True)
    holder = subprocess.Popen(
        [
            "python3", "-c",
            "import fcntl,sys,time; f=open(sys.argv[1],'w'); fcntl.lockf(f, fcntl.LOCK_EX); print('held', flush=True); "
            "time.sleep(120)",
            str(lock),
        ],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == b"held"
        operation = start_prepare(node.cluster, [node])
        assert run_operation(operation.pk) == Operation.Status.FAILED
    finally:
        holder.kill()
        holder.wait()
    failed = _failed(operation)
    assert failed.name == "container-runtime"
    assert (
        f"the package manager on m1 is busy: process {holder.pid} (python3) holds {lock}; nothing was installed"
        in failed.error
    )
    assert "wait for that process to finish" in failed.hint
    assert not any(c.startswith("apt-get") for c in prepare_bed.calls(bed))
    # The lock is free now: its holder is gone, and a new check finds nobody holding it.
    with open(lock, "w") as handle:
        fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
