"""Day two without a test bed: the upgrade policy on a plan, quorum arithmetic, etcd output
parsing, snapshot storage and its checksum, configuration drift and import, schedules and
policies starting operations, and the pages rendering for each role. The test-bed tests in
tests/e2e/test_day2_*.py prove the same code against real kubeadm and etcd."""

from __future__ import annotations

import base64
import hashlib
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from clusters.models import Cluster
from kube import ClusterState, NodeState
from kubeadm import components, pki, readback
from nodes.models import Node
from operations.models import Operation
from tests.conftest import team_of
from tests.factories import make_cluster
from tests.support.kubeclusters import store_authorities
from workflows import backup, certificates, config_io, etcd, reset, upgrade
from workflows.models import BackupSchedule, CertificateReport, EtcdSnapshot, RenewalPolicy, validate_package_command

pytestmark = pytest.mark.django_db


def _state(server: str, kubelets: dict[str, str], *, component_tag: str | None = None) -> ClusterState:
    nodes = {}
    for name, kubelet in kubelets.items():
        plane = name.startswith("cp")
        tag = component_tag or server
        components = (
            {c: f"registry.k8s.io/{c}:{tag}" for c in ("kube-apiserver", "kube-controller-manager", "kube-scheduler")}
            if plane
            else {}
        )
        nodes[name] = NodeState(name, True, plane, kubelet, False, components)
    return ClusterState(server_version=server, nodes=nodes)


def _machine(cluster, name: str, role: str, *, kubeadm: str = "v1.36.3", address: str = "") -> Node:
    return Node.objects.create(
        cluster=cluster,
        name=name,
        address=address or f"10.0.0.{20 + Node.objects.count()}",
        role=role,
        status=Node.Status.JOINED,
        ssh_host_key="ssh-ed25519 AAAA",
        ssh_host_key_fingerprint="SHA256:x",
        facts={"binaries": {"kubeadm": {"path": "/usr/bin/kubeadm", "version": kubeadm}}},
    )


@pytest.fixture(scope="module")
def ca() -> pki.KeyPair:
    return pki.generate_ca("kubernetes", "ECDSA-P256")


@pytest.fixture
def cluster(operator, ca):
    # Initialized (its machines joined) and in Kubeboard's custody, as a cluster with day two has.
    made = make_cluster("c1", team=team_of(operator), kubernetes_version="v1.36.3", status=Cluster.Status.RUNNING)
    store_authorities(made, {"ca": ca})
    _machine(made, "cp1", Node.Role.CONTROL_PLANE)
    _machine(made, "w1", Node.Role.WORKER)
    _machine(made, "w2", Node.Role.WORKER)
    return made


# --- the upgrade plan -------------------------------------------------------------------------------


def test_plan_refuses_a_skipped_minor_with_the_steps_to_take(cluster):
    plan = upgrade.build_plan(
        cluster, "v1.37.2", state=_state("v1.35.4", {"cp1": "v1.35.4", "w1": "v1.35.4", "w2": "v1.35.4"})
    )
    assert not plan.allowed
    (skip,) = [r for r in plan.refusals if "skips a minor" in r.message]
    assert "upgrade to 1.36, then 1.37" in skip.message
    assert "v1.36.3" in plan.suggestions and "v1.37.2" not in plan.suggestions


def test_plan_refuses_a_downgrade_and_a_kubeadm_that_cannot_deploy_the_target(cluster):
    state = _state("v1.36.3", {"cp1": "v1.36.3", "w1": "v1.36.3", "w2": "v1.36.3"})
    down = upgrade.build_plan(cluster, "v1.35.4", state=state)
    assert any("downgrades are not supported" in r.message for r in down.refusals)
    # No package command: the machines' kubeadm v1.36.3 cannot upgrade to v1.37.2.
    up = upgrade.build_plan(cluster, "v1.37.2", state=state)
    messages = [r.message for r in up.refusals]
    assert len(messages) == 3 and all("kubeadm v1.36.3 is older than Kubernetes v1.37.2" in m for m in messages)
    assert "package command" in up.refusals[0].hint


def test_plan_with_package_commands_allows_the_next_minor_in_order(cluster):
    backup.settings_for(cluster).__class__.objects.filter(cluster=cluster).update(
        kubeadm_package_command="install kubeadm {version_number}",
        kubelet_package_command="install kubelet",
        upgrade_batch_size=2,
    )
    plan = upgrade.build_plan(
        cluster, "1.37.2", state=_state("v1.36.3", {"cp1": "v1.36.3", "w1": "v1.36.3", "w2": "v1.36.3"})
    )
    assert plan.allowed, plan.refusals
    assert plan.target == "v1.37.2" and plan.order == [["cp1"], ["w1", "w2"]]
    cp = next(n for n in plan.nodes if n.name == "cp1")
    assert cp.kubelet_after == "v1.37.2" and cp.steps[:2] == ["kubeadm package command", "kubeadm upgrade apply"]
    assert next(c for c in plan.components if c["name"] == "kube-apiserver") == {
        "name": "kube-apiserver", "current": "v1.36.3", "target": "v1.37.2",
    }  # fmt: skip


def test_plan_refuses_kubelets_too_old_for_the_target(cluster):
    plan = upgrade.build_plan(
        cluster, "v1.37.2", state=_state("v1.36.3", {"cp1": "v1.36.3", "w1": "v1.33.0", "w2": "v1.36.3"})
    )
    assert any("w1: kubelet v1.33.0 is more than 3 minor versions older" in r.message for r in plan.refusals)


def test_start_upgrade_records_the_rollout_and_bounds_groups(cluster, operator, monkeypatch):
    backup.settings_for(cluster).__class__.objects.filter(cluster=cluster).update(
        kubeadm_package_command="k {version}", kubelet_package_command="l {minor}", upgrade_batch_size=2
    )
    state = _state("v1.36.3", {"cp1": "v1.36.3", "w1": "v1.36.3", "w2": "v1.36.3"})
    monkeypatch.setattr(upgrade.kube, "cluster_state", lambda c: state)  # a double for the API server
    operation = upgrade.start_upgrade(cluster, "v1.37.2", user=operator)
    groups = {}
    for phase in operation.phases.order_by("order"):
        groups.setdefault(phase.group, []).append(phase.name)
    assert groups[""] == ["check", "etcd-snapshot", "control-plane-upgraded", "done"]
    assert groups["cp1"][:3] == ["kubeadm-package", "kubeadm-version", "preflight"]
    assert "upload-config" in groups["cp1"] and groups["cp1"][-3:] == ["kubelet-package", "verify-node", "uncordon"]
    assert groups["w1"][:4] == ["kubeadm-package", "kubeadm-version", "drain", "preflight"]
    assert "control-plane" not in groups["w1"]
    # Control planes one at a time until they are done, then workers two at a time.
    assert upgrade.parallel_groups(operation) == 1
    operation.phases.filter(group="cp1").update(status="succeeded")
    assert upgrade.parallel_groups(operation) == 2
    assert upgrade._package_values("v1.37.2") == {"version": "v1.37.2", "version_number": "1.37.2", "minor": "1.37"}


def test_package_command_placeholders_are_checked():
    validate_package_command("apt-get install -y kubeadm={version_number}-* && kubeadm version")
    with pytest.raises(ValidationError, match=r"unknown placeholder \{verison\}"):
        validate_package_command("apt-get install kubeadm={verison}")
    with pytest.raises(ValidationError, match="one line"):
        validate_package_command("a\nb")


# --- reset: quorum -----------------------------------------------------------------------------------


def _members(*names: str) -> list[etcd.Member]:
    return [etcd.Member(i, n, (f"https://{n}:2380",), (f"https://{n}:2379",)) for i, n in enumerate(names)]


def test_quorum_arithmetic():
    members = _members("a", "b", "c")
    healthy = {"https://a:2379": True, "https://b:2379": True, "https://c:2379": True}
    assert reset.quorum_problem(members, healthy, "c") is None
    one_down = dict(healthy, **{"https://b:2379": False})
    assert "removing a leaves 2 member(s) of which 1 healthy; etcd needs 2" in reset.quorum_problem(
        members, one_down, "a"
    )
    assert reset.quorum_problem(members, one_down, "b") is None  # removing the broken one keeps 2 of 2
    two = _members("a", "b")
    assert "no quorum now: 1 of 2" in reset.quorum_problem(two, {"https://a:2379": True}, "b")
    assert reset.quorum_problem(two, {"https://a:2379": True, "https://b:2379": True}, "b") is None
    assert reset.quorum_problem(two, {}, "gone") is None


def test_reset_refuses_the_last_control_plane_while_workers_remain(cluster, operator):
    cp = cluster.nodes.get(name="cp1")
    with pytest.raises(reset.ResetRefused, match=r"last control plane while 2 worker\(s\) remain \(w1, w2\)") as info:
        reset.start_reset(cp, user=operator, confirm="cp1")
    assert "reset the workers first" in info.value.hint
    with pytest.raises(reset.ResetRefused, match="type its name"):
        reset.start_reset(cluster.nodes.get(name="w1"), user=operator, confirm="w2")
    assert not cluster.operations.exists()


def _token(cluster, token_id: str, **fields):
    from tokens.models import BootstrapToken

    return BootstrapToken.objects.create(cluster=cluster, token_id=token_id, secret="0123456789abcdef", **fields)


def test_after_the_last_control_plane_is_reset_its_tokens_are_gone(operator):
    from audit.models import AuditEvent
    from tokens.models import BootstrapToken

    solo = make_cluster("solo", team=team_of(operator), status=Cluster.Status.RUNNING)
    cp = _machine(solo, "cp1", Node.Role.CONTROL_PLANE)
    due = timezone.now() + timedelta(hours=1)
    live = _token(solo, "aaaaaa", expires_at=timezone.now() + timedelta(hours=3), next_action_at=due)
    expired = _token(solo, "bbbbbb", status=BootstrapToken.Status.EXPIRED)
    revoked = _token(solo, "cccccc", status=BootstrapToken.Status.REVOKED)
    elsewhere = _token(make_cluster("other", team=team_of(operator)), "dddddd", next_action_at=due)

    gone = reset.mark_blank(cp, last_control_plane=True, user=operator)

    assert [token.token_id for token in gone] == ["aaaaaa"]
    live.refresh_from_db()
    assert live.status == BootstrapToken.Status.GONE and live.gone_at is not None
    assert live.next_action_at is None, "the sweep must not try to rotate a token of a cluster without an API server"
    for token, status in ((expired, "expired"), (revoked, "revoked"), (elsewhere, "active")):
        token.refresh_from_db()
        assert token.status == status
    (record,) = AuditEvent.objects.filter(action="token.gone")
    assert record.details["token_id"] == "aaaaaa" and "last control plane cp1 was reset" in record.details["reason"]
    assert record.actor_id == operator.pk
    cp.refresh_from_db()
    solo.refresh_from_db()
    assert cp.status == Node.Status.NEW and solo.status == Cluster.Status.READY


def test_resetting_one_of_several_control_planes_leaves_the_tokens(cluster, operator):
    from audit.models import AuditEvent

    live = _token(cluster, "aaaaaa")
    assert reset.mark_blank(cluster.nodes.get(name="cp1"), last_control_plane=False, user=operator) == []
    live.refresh_from_db()
    assert live.status == "active" and not AuditEvent.objects.filter(action="token.gone").exists()


# --- etcd output ----------------------------------------------------------------------------------------


def test_etcd_outputs_are_parsed():
    status = etcd.parse_snapshot_status(
        ["noise", '{"hash":108065012,"revision":375,"totalKey":295,"totalSize":684032,"version":"3.6.0"}']
    )
    assert (status.revision, status.total_keys, status.hash) == (375, 295, 108065012)
    members = etcd.parse_member_list(
        [
            '{"header":{},"members":[{"ID":1,"name":"node1","peerURLs":["https://10.0.0.1:2380"],"clientURLs":["https://10.0.0.1:2379"]}]}'
        ]
    )
    assert members[0].name == "node1" and members[0].client_urls == ("https://10.0.0.1:2379",)
    assert etcd.parse_endpoint_health(['[{"endpoint":"https://a:2379","health":true},{"endpoint":"https://b:2379","health":false}]']) == {
        "https://a:2379": True, "https://b:2379": False,
    }  # fmt: skip
    with pytest.raises(ValueError):
        etcd.parse_snapshot_status(["Error: no such file"])
    manifest = (
        "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - name: etcd\n    command:\n    - etcd\n"
        "    - --data-dir=/var/lib/etcd\n    - --initial-advertise-peer-urls=https://10.0.0.1:2380\n    - --name=node1\n"
    )
    member = etcd.local_member(manifest)
    assert member == etcd.LocalMember("node1", "https://10.0.0.1:2380", "/var/lib/etcd")
    argv = etcd.snapshot_restore("etcdutl", "/s.db", member, "/var/lib/etcd/new")
    assert "--initial-cluster=node1=https://10.0.0.1:2380" in argv and "--bump-revision=1000000000" in argv


# --- snapshot storage --------------------------------------------------------------------------------


def _stored(cluster, data: bytes, **fields) -> EtcdSnapshot:
    snapshot = EtcdSnapshot.objects.create(cluster=cluster, status=EtcdSnapshot.Status.AVAILABLE, **fields)
    writer = backup._ChunkWriter(snapshot)
    encoded = base64.b64encode(data).decode()
    for start in range(0, len(encoded), backup.B64_LINE):
        writer.line(encoded[start : start + backup.B64_LINE])
    writer.close()
    EtcdSnapshot.objects.filter(pk=snapshot.pk).update(
        size_bytes=writer.size, sha256=writer.digest.hexdigest(), chunk_count=writer.count
    )
    snapshot.refresh_from_db()
    return snapshot


def test_snapshot_is_stored_encrypted_in_chunks_and_checked(cluster, monkeypatch):
    monkeypatch.setattr(backup, "CHUNK_BYTES", 1000)
    data = bytes(range(256)) * 20  # 5120 bytes: six chunks
    snapshot = _stored(cluster, data)
    assert snapshot.chunk_count == 6 and snapshot.sha256 == hashlib.sha256(data).hexdigest()
    raw = snapshot.chunks.values_list("data", flat=True).first()
    assert base64.b64encode(data[:1000]).decode() not in str(raw.ciphertext)  # encrypted at rest
    assert backup.snapshot_bytes(snapshot) == data
    assert b"".join(backup.verified_stream(snapshot)) == data
    chunk = snapshot.chunks.get(index=3)
    chunk.data = base64.b64encode(b"x" * 1000).decode()
    chunk.save()
    with pytest.raises(backup.SnapshotDamaged, match="fails its checksum"):
        backup.verify(snapshot)
    snapshot.chunks.get(index=5).delete()
    with pytest.raises(backup.SnapshotDamaged, match="has 5 of its 6 pieces"):
        backup.verify(snapshot)


def test_restore_refused_on_several_control_planes_and_without_confirmation(cluster, operator):
    snapshot = _stored(cluster, b"etcd")
    with pytest.raises(backup.BackupRefused, match="type the cluster's name"):
        backup.start_restore(cluster, snapshot, user=operator, confirm="")
    _machine(cluster, "cp2", Node.Role.CONTROL_PLANE)
    with pytest.raises(backup.BackupRefused, match="2 control planes") as info:
        backup.start_restore(cluster, snapshot, user=operator, confirm="c1")
    assert "reset the other control planes first" in info.value.hint
    assert not cluster.operations.exists()


def test_schedule_starts_snapshots_and_retention_keeps_the_newest(cluster):
    schedule = BackupSchedule.objects.create(
        cluster=cluster, enabled=True, interval_hours=6, keep=2, next_run_at=timezone.now() - timedelta(minutes=1)
    )
    (operation,) = backup.due_backups()
    assert operation.kind == backup.SNAPSHOT_KIND and operation.params["reason"] == "scheduled"
    assert operation.params["node"] == "cp1" and operation.mutating is False
    schedule.refresh_from_db()
    assert schedule.next_run_at > timezone.now() + timedelta(hours=5)
    assert backup.due_backups() == []
    made = [_stored(cluster, f"s{i}".encode(), reason=EtcdSnapshot.Reason.SCHEDULED) for i in range(4)]
    manual = _stored(cluster, b"manual")
    removed = backup.apply_retention(cluster)
    assert sorted(removed) == sorted(s.pk for s in made[:2])
    assert set(EtcdSnapshot.objects.values_list("pk", flat=True)) == {made[2].pk, made[3].pk, manual.pk}


# --- certificates --------------------------------------------------------------------------------------


def test_warning_levels_and_names():
    assert [certificates.warning_level(d) for d in (400, 29.9, 6.5, 0.5, -1)] == ["", "30", "7", "1", "expired"]
    assert readback.check_expiration_name("/etc/kubernetes/pki/etcd/server.crt") == "etcd-server"
    assert readback.check_expiration_name("/etc/kubernetes/admin.conf") == "admin.conf"
    assert certificates._components(["apiserver", "scheduler.conf"], False) == ["kube-apiserver", "kube-scheduler"]
    assert certificates._components(["admin.conf"], True) == ["kube-apiserver"]
    assert certificates._components(["all"], False) == list(components.CONTROL_PLANE_COMPONENTS)


def test_policy_renews_when_the_soonest_leaf_is_below_the_limit(cluster):
    cp = cluster.nodes.get(name="cp1")
    CertificateReport.objects.create(
        node=cp,
        rows=[
            {"name": "apiserver", "kind": "leaf", "days_left": 12.0, "path": "/etc/kubernetes/pki/apiserver.crt"},
            {"name": "kubelet.conf", "kind": "kubeconfig", "days_left": 0.2, "path": "/etc/kubernetes/kubelet.conf"},
            {"name": "ca", "kind": "ca", "days_left": 3000.0, "path": "/etc/kubernetes/pki/ca.crt"},
        ],
    )
    assert certificates.soonest_leaf(cluster)["name"] == "apiserver"  # the kubelet rotates its own
    policy = RenewalPolicy.objects.create(
        cluster=cluster, enabled=True, renew_below_days=10, next_check_at=timezone.now()
    )
    (check,) = certificates.due_renewal_checks()
    assert check.kind == certificates.INVENTORY_KIND and check.params["policy"] == policy.pk
    Operation.objects.filter(pk=check.pk).update(status=Operation.Status.SUCCEEDED)
    check.refresh_from_db()
    certificates._after_inventory(check)
    assert not cluster.operations.filter(kind=certificates.RENEW_KIND).exists()  # 12 days > 10
    RenewalPolicy.objects.filter(pk=policy.pk).update(renew_below_days=30)
    certificates._after_inventory(check)
    renewal = cluster.operations.get(kind=certificates.RENEW_KIND)
    assert renewal.params["names"] == ["all"] and "apiserver has 12.0 days left" in renewal.params["reason"]


def test_renewal_refuses_bad_input(cluster, operator):
    with pytest.raises(certificates.CertificatesRefused, match="kubeadm cannot renew ca"):
        certificates.start_renewal(cluster, names=["ca"], user=operator)
    with pytest.raises(certificates.CertificatesRefused, match="neither an IP address nor a DNS name"):
        certificates.start_renewal(cluster, names=[], add_sans=["bad name"], user=operator)
    with pytest.raises(certificates.CertificatesRefused, match="choose certificates"):
        certificates.start_renewal(cluster, names=[], user=operator)
    assert (
        certificates.validate_san(" 10.0.0.1 ") == "10.0.0.1"
        and certificates.validate_san("*.a.example") == "*.a.example"
    )


# --- configuration -------------------------------------------------------------------------------------

V1BETA3 = """\
apiVersion: kubeadm.k8s.io/v1beta3
kind: ClusterConfiguration
kubernetesVersion: v1.36.3
controlPlaneEndpoint: 10.0.0.10:6443
networking:
  podSubnet: 10.244.0.0/16
apiServer:
  timeoutForControlPlane: 4m0s
  extraArgs:
    audit-log-maxage: "5"
"""


def test_import_migrates_v1beta3_and_reports_errors_per_field():
    result = config_io.parse_import(V1BETA3)
    assert result.errors == [] and result.api_version == "kubeadm.k8s.io/v1beta3"
    assert result.values["kubernetes_version"] == "v1.36.3" and result.values["pod_subnet"] == "10.244.0.0/16"
    assert "apiVersion: kubeadm.k8s.io/v1beta4" in result.cluster_text
    assert 'extraArgs:\n  - name: audit-log-maxage\n    value: "5"' in result.cluster_text
    bad = config_io.parse_import(
        V1BETA3.replace("10.244.0.0/16", "10.96.0.0/16").replace(
            "kubernetesVersion: v1.36.3", "kubernetesVersion: v1.99.0"
        )
    )
    assert {"networking.podSubnet", "kubernetesVersion"} <= {e.field for e in bad.errors}
    unknown = config_io.parse_import(V1BETA3 + "bogus: 1\n")
    assert [e.field for e in unknown.errors] == ["bogus"]


def test_drift_is_listed_field_by_field():
    rendered = {"kubernetesVersion": "v1.37.2", "apiServer": {"certSANs": ["a"]}, "networking": {"podSubnet": "x"}}
    live = {
        "kubernetesVersion": "1.37.2",
        "apiServer": {"certSANs": ["a", "b"]},
        "networking": {"podSubnet": "x"},
        "dns": {},
    }
    assert config_io.diff_configurations(rendered, live) == [
        {"path": "apiServer.certSANs", "rendered": ["a"], "live": ["a", "b"]}
    ]


# --- pages ---------------------------------------------------------------------------------------------


def test_pages_render_for_a_viewer_and_show_the_refusal(cluster, make_user):
    viewer = make_user("vic", team="platform")
    client = Client()
    client.force_login(viewer)
    page = client.get(reverse("daytwo:upgrade", args=[cluster.name]) + "?target=v1.38.0")
    assert page.status_code == 200
    body = page.content.decode()
    # The test guard refuses 10.0.0.10: the cluster is unreachable, said once, naming the endpoint.
    assert body.count("is unreachable") == 1 and "10.0.0.10:6443" in body
    assert "start-upgrade" not in body  # a viewer never sees the button, and the plan is refused anyway
    snapshot = _stored(cluster, b"etcd")
    for name in ("daytwo:certificates", "daytwo:backups", "daytwo:configuration"):
        response = client.get(reverse(name, args=[cluster.name]))
        assert response.status_code == 200, name
    lifetimes = client.get(reverse("daytwo:certificates", args=[cluster.name])).content.decode()
    assert "certificates live 365 days unless the configuration says otherwise; CAs 3650 days" in lifetimes
    backups = client.get(reverse("daytwo:backups", args=[cluster.name])).content.decode()
    assert f'id="snapshot-{snapshot.pk}"' in backups and "Download" not in backups  # admins only
    detail = client.get(cluster.get_absolute_url()).content.decode()
    assert 'id="day2"' in detail and "Upgrade plan" in detail


def test_import_page_shows_each_problem(operator):
    client = Client()
    client.force_login(operator)
    response = client.post(
        reverse("import-cluster"),
        {"name": "imported", "team": team_of(operator).pk, "text": V1BETA3.replace("10.244.0.0/16", "10.96.0.0/16")},
    )
    assert response.status_code == 400
    assert "networking.podSubnet" in response.content.decode()
    response = client.post(
        reverse("import-cluster"), {"name": "imported", "team": team_of(operator).pk, "text": V1BETA3}
    )
    assert response.status_code == 302
    from workflows.models import StoredConfiguration

    stored = StoredConfiguration.objects.get(cluster__name="imported")
    assert stored.original_api_version == "kubeadm.k8s.io/v1beta3" and "audit-log-maxage" in stored.text
    from clusters.kubeadm_config import configuration_for

    config = configuration_for(stored.cluster)
    assert config.cluster_name == "imported" and config.api_server.extra_args[0].name == "audit-log-maxage"


def test_an_import_the_cluster_model_refuses_creates_nothing(cluster, operator, tmp_path):
    from django.core.management import call_command

    client = Client()
    client.force_login(operator)
    response = client.post(reverse("import-cluster"), {"name": "c1", "team": team_of(operator).pk, "text": V1BETA3})
    assert response.status_code == 400 and "already exists" in response.content.decode()  # the cluster c1 does
    path = tmp_path / "kubeadm.yaml"
    path.write_text(V1BETA3)
    with pytest.raises(Exception, match="name: .*already exists"):
        call_command("cluster", "config-import", "c1", str(path), "--team", team_of(operator).name)
    assert list(Cluster.objects.values_list("name", flat=True)) == ["c1"]


def test_commands_print_the_plan_import_a_file_and_refuse_bad_input(cluster, operator, tmp_path, capsys):
    from django.core.management import call_command

    from audit.models import AuditEvent

    with pytest.raises(SystemExit) as exited:
        call_command("cluster", "upgrade-plan", cluster.name, "v1.38.0")
    assert exited.value.code == 2  # refused: the API server is unreachable here
    out = capsys.readouterr().out
    assert "NODE" in out and "cp1" in out and "refused: cluster c1 is unreachable" in out
    path = tmp_path / "kubeadm.yaml"
    path.write_text(V1BETA3.replace("10.244.0.0/16", "10.96.0.0/16"))
    with pytest.raises(Exception, match="networking.podSubnet"):
        call_command("cluster", "config-import", "from-file", str(path), "--team", team_of(operator).name)
    path.write_text(V1BETA3)
    call_command("cluster", "config-import", "from-file", str(path), "--team", team_of(operator).name, "--no-wait")
    assert "Migrated from kubeadm.k8s.io/v1beta3" in capsys.readouterr().out
    imported = Cluster.objects.get(name="from-file")
    assert imported.kubernetes_version == "v1.36.3"
    actions = set(AuditEvent.objects.filter(cluster=imported).values_list("action", flat=True))
    assert {"cluster.created", "cluster.configuration_imported", "operation.queued"} <= actions
    with pytest.raises(Exception, match="type its name to confirm"):
        call_command("node", "reset", cluster.name, "w1")


@pytest.mark.django_db(transaction=True)
def test_snapshot_download_is_audited_and_streams_under_asgi(make_user, monkeypatch):
    from asgiref.sync import async_to_sync
    from django.test import AsyncClient

    from audit.models import AuditEvent

    admin = make_user("ada", role="admin")
    cluster = make_cluster("c2", team=team_of(admin))
    monkeypatch.setattr(backup, "CHUNK_BYTES", 1000)
    data = bytes(range(256)) * 12
    snapshot = _stored(cluster, data)
    client = AsyncClient()
    async_to_sync(client.aforce_login)(admin)
    url = reverse("daytwo:snapshot-download", args=[cluster.name, snapshot.pk])

    async def download():
        response = await client.post(url)
        return response, b"".join([piece async for piece in response.streaming_content])

    response, body = async_to_sync(download)()
    assert response.status_code == 200 and body == data
    assert response["X-Snapshot-SHA256"] == hashlib.sha256(data).hexdigest()
    assert AuditEvent.objects.filter(action="etcd_snapshot.downloaded", cluster=cluster).count() == 1
