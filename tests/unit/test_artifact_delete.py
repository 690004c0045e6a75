"""Deleting an artifact set (artifacts.services.delete_set, its page, manage.py artifacts delete):
refused while a cluster or an operation still needs it, naming them and what to do; otherwise the
rows go, then the files, with one audit record saying who deleted which set and what was freed."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.utils import timezone

from artifacts import services
from artifacts.models import ArtifactFile, ArtifactSet
from artifacts.services import DeleteRefused, delete_set, import_directory, leftover_directories, uses_of
from audit.models import AuditEvent
from nodes.models import Node
from operations.models import Operation, PhaseRun
from operations.services import start_operation
from tests.factories import make_cluster
from tests.support import prepare_bed
from workflows.models import MachinePreparation, PrepareSettings
from workflows.prepare import start_prepare

pytestmark = pytest.mark.django_db

NAME = "v1.37.2-amd64"


@pytest.fixture(autouse=True)
def store(tmp_path, settings) -> Path:
    settings.ARTIFACTS_DIR = tmp_path / "store"
    return settings.ARTIFACTS_DIR


@pytest.fixture
def held(tmp_path) -> ArtifactSet:
    """The v1.37.2 amd64 set imported: its rows, and its files under ARTIFACTS_DIR."""
    return import_directory(prepare_bed.artifact_set(tmp_path / "set"))


@pytest.fixture
def root(make_user):
    return make_user("root", team=None, superuser=True)


def _records(outcome: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action="artifacts.deleted", outcome=outcome))


def _artifacts_cluster(name: str = "air", version: str = "v1.37.2"):
    cluster = make_cluster(name, kubernetes_version=version)
    PrepareSettings.objects.create(cluster=cluster, source=PrepareSettings.Source.ARTIFACTS)
    return cluster


def _machine(cluster, name: str, *, architecture: str = "", prepared_for: str = "", **fields) -> Node:
    node = Node.objects.create(
        cluster=cluster,
        name=name,
        address=f"10.0.0.{Node.objects.count() + 50}",
        ssh_host_key="ssh-ed25519 AAAA",
        ssh_host_key_fingerprint="SHA256:x",
        **fields,
    )
    if architecture or prepared_for:
        MachinePreparation.objects.create(
            node=node,
            facts={"architecture": architecture} if architecture else {},
            source=PrepareSettings.Source.ARTIFACTS,
            kubernetes_version=prepared_for,
            prepared_at=timezone.now() if prepared_for else None,
        )
    return node


def _upgrade(cluster, node: Node, set_name: str) -> Operation:
    """An upgrade run that installs from ``set_name`` on ``node`` (params as start_upgrade records them)."""
    return start_operation(
        cluster,
        "upgrade",
        params={
            "from": cluster.kubernetes_version,
            "target": set_name.rpartition("-")[0],
            "first": node.name,
            "control_planes": [node.name],
            "workers": [],
            "node_ids": {node.name: node.pk},
            "batch_size": 1,
            "package_source": {
                "kinds": {"kubeadm": "artifacts", "kubelet": "artifacts"},
                "repository": "",
                "key": "",
                "sets": {node.name: set_name},
            },
        },
    )


# --- the service --------------------------------------------------------------------------------


def test_a_set_nothing_uses_is_deleted_rows_then_files_with_one_record(held, store, root):
    directory = store / NAME
    files, size = held.files.count(), held.total_bytes
    assert directory.is_dir() and files > 10

    deleted = delete_set(held, user=root)

    assert (deleted.name, deleted.files, deleted.bytes, deleted.left) == (NAME, files, size, "")
    assert not ArtifactSet.objects.exists() and not ArtifactFile.objects.exists()
    assert not directory.exists()
    assert list(store.iterdir()) == [], "nothing left under ARTIFACTS_DIR, not even the set moved aside"
    [record] = _records("success")
    assert record.actor_name == "root"
    assert record.details == {
        "set": NAME,
        "version": "v1.37.2",
        "architecture": "amd64",
        "files": files,
        "bytes": size,
    }
    # The same set can be imported again at once.
    assert import_directory(Path(held.source.removeprefix("directory "))).name == NAME


def test_a_failed_transaction_keeps_rows_and_files_together(held, store, monkeypatch):
    """The rows go first: if their transaction does not commit (here it fails right after the
    rows were deleted), the set is whole again, every file still matching its row."""
    delete_rows = ArtifactSet.delete

    def delete_then_fail(self, *args, **kwargs):
        delete_rows(self, *args, **kwargs)
        raise RuntimeError("the database went away")

    monkeypatch.setattr(ArtifactSet, "delete", delete_then_fail)
    with pytest.raises(RuntimeError):
        delete_set(held)
    kept = ArtifactSet.objects.get(pk=held.pk)
    assert kept.files.count() == held.files.count() and services.verify_stored(kept) == []
    assert not AuditEvent.objects.filter(action="artifacts.deleted").exists()


def test_a_set_whose_directory_is_gone_is_still_deleted(held, store):
    import shutil

    shutil.rmtree(store / NAME)
    deleted = delete_set(held)
    assert deleted.left == "its directory was already gone"
    assert not ArtifactSet.objects.exists()


def test_a_deletion_stopped_half_way_is_swept_and_a_stray_directory_reported(held, store, tmp_path):
    """What a crash leaves: a set moved aside but not removed yet is removed by the next import or
    delete; a set's directory without rows (a crash right after the commit) is reported."""
    (store / ".deleted-v1.36.3-amd64-0123abcd/bin").mkdir(parents=True)
    (store / "v1.36.3-arm64/bin").mkdir(parents=True)
    assert leftover_directories() == [".deleted-v1.36.3-amd64-0123abcd", "v1.36.3-arm64"]
    import_directory(prepare_bed.artifact_set(tmp_path / "other", version="v1.36.3"))
    assert leftover_directories() == ["v1.36.3-arm64"]
    call_command("artifacts", "list")  # says so on stderr (checked in the command's test)


def test_a_cluster_with_machines_to_prepare_from_it_keeps_it(held, store):
    cluster = _artifacts_cluster()
    _machine(cluster, "m1")
    _machine(cluster, "m2", architecture="amd64")
    _machine(cluster, "m3", architecture="arm64")  # needs the arm64 set, not this one
    _machine(cluster, "m4", architecture="amd64", prepared_for="v1.37.2")  # done
    _machine(cluster, "m5", status=Node.Status.JOINED)  # Prepare no longer runs on it

    with pytest.raises(DeleteRefused) as info:
        delete_set(held)

    message = str(info.value)
    assert message == (
        f"artifact set {NAME} is in use: cluster air prepares its machines from artifact sets of v1.37.2, and "
        "m1 (architecture not known yet), m2 are not prepared yet"
    )
    assert info.value.hint == (
        "prepare m1, m2 first, remove them from air, or choose package repositories as air's source "
        "(Prepare machines → Source and containerd settings)"
    )
    assert ArtifactSet.objects.filter(pk=held.pk).exists() and (store / NAME / "bin/kubeadm").is_file()
    [record] = _records("denied")
    assert record.details["set"] == NAME and "m1 (architecture not known yet)" in record.details["error"]
    assert not _records("success")

    # The cluster moves to package repositories: nothing needs the set any more.
    PrepareSettings.objects.filter(cluster=cluster).update(source=PrepareSettings.Source.PACKAGES)
    delete_set(held)
    assert not (store / NAME).exists()


def test_a_worker_made_a_control_plane_still_needs_it_for_its_images(held):
    cluster = _artifacts_cluster()
    node = _machine(cluster, "m1", architecture="amd64", prepared_for="v1.37.2", role=Node.Role.CONTROL_PLANE)
    assert [use for use in uses_of(held) if use.blocking] == []
    MachinePreparation.objects.filter(node=node).update(prepared_as=Node.Role.WORKER)
    with pytest.raises(DeleteRefused, match=r"m1 \(prepared as a worker, now a control plane\) is not prepared yet"):
        delete_set(held)


def test_another_version_or_architecture_does_not_keep_it(held):
    _machine(_artifacts_cluster("older", version="v1.36.3"), "m1")
    _machine(_artifacts_cluster("arm"), "m2", architecture="arm64")
    assert [use for use in uses_of(held) if use.blocking] == []
    delete_set(held)


def test_a_prepare_queued_or_stopped_keeps_it_until_the_source_changes(held):
    cluster = _artifacts_cluster()
    node = _machine(cluster, "m1", architecture="amd64", prepared_for="v1.37.2", status=Node.Status.REACHABLE)
    assert [use.what for use in uses_of(held)] == [
        f"m1 (air) keep their copy in /var/lib/kubeboard/artifacts/{NAME}",
        "air prepares machines from artifact sets of v1.37.2: a machine added later needs this set imported again",
    ], "a prepared machine and its cluster are notes, not refusals"

    operation = start_prepare(cluster, [node])
    with pytest.raises(DeleteRefused) as info:
        delete_set(held)
    assert f"Prepare #{operation.pk} on cluster air is queued and installs from this set on m1" in str(info.value)
    assert f"let Prepare #{operation.pk} finish, or cancel it and choose package repositories" in info.value.hint

    Operation.objects.filter(pk=operation.pk).update(status=Operation.Status.CANCELLED)
    with pytest.raises(DeleteRefused) as info:
        delete_set(held)
    assert f"Prepare #{operation.pk} on cluster air is cancelled" in str(info.value)
    assert f"resume Prepare #{operation.pk} to the end, or choose package repositories" in info.value.hint

    # Each phase reads the source when it starts: resumed now, it would install from packages.
    PrepareSettings.objects.filter(cluster=cluster).update(source=PrepareSettings.Source.PACKAGES)
    delete_set(held)
    assert not ArtifactSet.objects.exists()


def test_a_stopped_dry_run_or_a_finished_prepare_does_not_keep_it(held):
    cluster = _artifacts_cluster()
    node = _machine(cluster, "m1", architecture="amd64", prepared_for="v1.37.2", status=Node.Status.REACHABLE)
    dry = start_prepare(cluster, [node], dry_run=True)
    Operation.objects.filter(pk=dry.pk).update(status=Operation.Status.FAILED)
    assert [use for use in uses_of(held) if use.blocking] == []
    done = start_prepare(cluster, [node])
    done.phases.update(status=PhaseRun.Status.SUCCEEDED)
    Operation.objects.filter(pk=done.pk).update(status=Operation.Status.SUCCEEDED)
    assert [use for use in uses_of(held) if use.blocking] == []


def test_an_upgrade_to_its_version_keeps_it_until_it_has_installed_everywhere(held, store):
    cluster = make_cluster("prod", kubernetes_version="v1.36.3")
    node = _machine(cluster, "cp1", architecture="amd64", prepared_for="v1.36.3", status=Node.Status.JOINED)
    operation = _upgrade(cluster, node, NAME)

    with pytest.raises(DeleteRefused) as info:
        delete_set(held)
    assert str(info.value) == (
        f"artifact set {NAME} is in use: upgrade #{operation.pk} of cluster prod to v1.37.2 is queued and installs "
        "from this set on cp1"
    )
    assert "a cancelled upgrade can still be resumed, so it keeps the set" in info.value.hint

    Operation.objects.filter(pk=operation.pk).update(status=Operation.Status.FAILED)
    with pytest.raises(DeleteRefused, match=f"upgrade #{operation.pk} of cluster prod to v1.37.2 is failed"):
        delete_set(held)

    # cp1's steps all finished (the rest of the run does not install anything): no longer needed.
    operation.phases.filter(group="cp1").update(status=PhaseRun.Status.SUCCEEDED)
    assert [use for use in uses_of(held) if use.blocking] == []
    delete_set(held)


def test_a_stopped_upgrade_another_one_replaced_does_not_keep_it(held):
    cluster = make_cluster("prod", kubernetes_version="v1.36.3")
    node = _machine(cluster, "cp1", architecture="amd64", status=Node.Status.JOINED)
    old = _upgrade(cluster, node, NAME)
    Operation.objects.filter(pk=old.pk).update(status=Operation.Status.FAILED)
    newer = _upgrade(cluster, node, "v1.37.3-amd64")  # another set
    Operation.objects.filter(pk=newer.pk).update(status=Operation.Status.FAILED)
    assert [use for use in uses_of(held) if use.blocking] == []


def test_every_reason_is_named_once_with_what_to_do(held):
    cluster = _artifacts_cluster()
    node = _machine(cluster, "m1", status=Node.Status.REACHABLE)
    _machine(cluster, "m2")
    operation = start_prepare(cluster, [node])
    with pytest.raises(DeleteRefused) as info:
        delete_set(held)
    # m1 is named by its Prepare; m2 by the cluster.
    assert str(info.value) == (
        f"artifact set {NAME} is in use: Prepare #{operation.pk} on cluster air is queued and installs from this "
        "set on m1; cluster air prepares its machines from artifact sets of v1.37.2, and m2 (architecture not "
        "known yet) is not prepared yet"
    )


# --- the pages -----------------------------------------------------------------------------------


def test_the_set_page_lists_its_files_and_offers_deletion_to_superusers_only(client, held, root, make_user):
    client.force_login(make_user("vera", role="viewer"))
    page = client.get(f"/artifacts/{NAME}/").content.decode()
    assert "bin/kubeadm" in page and held.files.get(path="bin/kubeadm").sha256 in page
    assert "delete-set-link" not in page
    assert f'href="/artifacts/{NAME}/"' in client.get("/artifacts/").content.decode()
    client.force_login(root)
    page = client.get(f"/artifacts/{NAME}/").content.decode()
    assert f'href="/artifacts/{NAME}/delete/"' in page and 'id="set-in-use"' not in page


def test_the_confirmation_page_says_what_goes_and_that_machines_keep_their_copies(client, held, root, store):
    client.force_login(root)
    response = client.get(f"/artifacts/{NAME}/delete/")
    page = response.content.decode()
    assert response.status_code == 200
    assert f"{held.files.count()} files" in page and str(store / NAME) in page
    assert "Machines keep their pushed copies" in page and f"/var/lib/kubeboard/artifacts/{NAME}" in page
    assert 'id="delete-refused"' not in page


def test_deleting_from_the_page_needs_the_typed_name(client, held, root, store):
    files = held.files.count()
    client.force_login(root)
    response = client.post(f"/artifacts/{NAME}/delete/", {"confirm": "v1.37.2"})
    assert response.status_code == 400
    assert f"type {NAME} exactly to delete this set" in response.content.decode()
    assert ArtifactSet.objects.exists() and not AuditEvent.objects.filter(action="artifacts.deleted").exists()

    response = client.post(f"/artifacts/{NAME}/delete/", {"confirm": NAME}, follow=True)
    assert response.redirect_chain == [("/artifacts/", 302)]
    page = response.content.decode()
    assert f"Deleted artifact set {NAME}: {files} files, " in page
    assert f"Machines keep the copies Prepare pushed to /var/lib/kubeboard/artifacts/{NAME}" in page
    assert not ArtifactSet.objects.exists() and not (store / NAME).exists()
    assert _records("success")[0].actor_name == "root"


def test_a_set_in_use_is_refused_on_the_page_before_and_after_the_post(client, held, root, store):
    _machine(_artifacts_cluster(), "m1")
    client.force_login(root)
    page = client.get(f"/artifacts/{NAME}/").content.decode()
    assert 'id="set-in-use"' in page and "m1 (architecture not known yet)" in page
    page = client.get(f"/artifacts/{NAME}/delete/").content.decode()
    assert 'id="delete-refused"' in page and "or choose package repositories as air&#x27;s source" in page
    response = client.post(f"/artifacts/{NAME}/delete/", {"confirm": NAME})
    assert response.status_code == 400
    assert "Deleting it is refused:</strong> artifact set v1.37.2-amd64 is in use: cluster air" in (
        response.content.decode()
    )
    assert (store / NAME / "bin/kubeadm").is_file() and ArtifactSet.objects.exists()
    assert len(_records("denied")) == 1


def test_only_a_superuser_deletes_and_the_post_needs_its_csrf_token(held, root, make_user, store):
    for role in ("operator", "admin"):
        client = Client()
        client.force_login(make_user(f"u-{role}", role=role))
        assert client.get(f"/artifacts/{NAME}/delete/").status_code == 403
        assert client.post(f"/artifacts/{NAME}/delete/", {"confirm": NAME}).status_code == 403
    assert Client().post(f"/artifacts/{NAME}/delete/", {"confirm": NAME}).status_code == 302  # to the login page
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(root)
    assert strict.post(f"/artifacts/{NAME}/delete/", {"confirm": NAME}).status_code == 403
    assert ArtifactSet.objects.exists() and (store / NAME).is_dir()


@pytest.mark.parametrize("name", ["v1.99.0-amd64", "999999", "nonsense", "-", "v1.37.2-"])
def test_a_set_that_is_not_held_is_404_not_500(client, root, name):
    client.force_login(root)
    assert client.get(f"/artifacts/{name}/").status_code == 404
    assert client.get(f"/artifacts/{name}/delete/").status_code == 404
    assert client.post(f"/artifacts/{name}/delete/", {"confirm": name}).status_code == 404


# --- the command ---------------------------------------------------------------------------------


def test_the_command_deletes_by_name_or_id(held, tmp_path, capsys, store):
    files = held.files.count()
    call_command("artifacts", "delete", NAME)
    out = capsys.readouterr().out
    assert out.startswith(f"Deleted {NAME}: {files} files,")
    assert f"Machines keep the copies Prepare pushed to /var/lib/kubeboard/artifacts/{NAME}" in out
    assert not (store / NAME).exists()
    again = import_directory(Path(held.source.removeprefix("directory ")))
    call_command("artifacts", "delete", str(again.pk))
    assert not ArtifactSet.objects.exists()
    assert [r.source for r in _records("success")] == ["command:artifacts", "command:artifacts"]


def test_the_command_refuses_naming_what_uses_the_set_and_what_is_held(held, capsys):
    _machine(_artifacts_cluster(), "m1")
    with pytest.raises(CommandError) as info:
        call_command("artifacts", "delete", "1.37.2-amd64")  # the v is optional
    assert info.value.returncode == 2
    assert str(info.value).startswith(f"artifact set {NAME} is in use: cluster air prepares")
    assert " — prepare m1 first, remove it from air, or choose package repositories" in str(info.value)
    with pytest.raises(CommandError) as info:
        call_command("artifacts", "delete", "v1.38.0-amd64")
    assert (
        info.value.returncode == 1
        and str(info.value) == f"Kubeboard holds no artifact set v1.38.0-amd64 (held: {NAME})"
    )


def test_the_list_command_reports_a_stray_directory(held, store, capsys):
    (store / "v1.36.3-arm64").mkdir()
    call_command("artifacts", "list")
    captured = capsys.readouterr()
    assert captured.out.startswith(f"{NAME}\t")
    assert captured.err.strip() == "leftover (no set, Kubeboard does not use it): v1.36.3-arm64"
