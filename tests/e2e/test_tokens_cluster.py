"""Bootstrap tokens against a real API server and controller manager from the test bed.

One control plane (kubeadm v1.37.2 phases, Kubeboard's own CA seeded before `kubeadm init
phase certs`, so Kubeboard holds it) serves two Cluster rows: one reached with short-lived
client certificates from that CA ("created"), one adopted through the node's admin.conf.
Node 2 runs the real `kubeadm join phase preflight` with the join command Kubeboard shows;
node 3 joins for real (hollow kubelet) so revoke-after-join sees a Ready node.
"""

from __future__ import annotations

import base64
import json
import time
from datetime import timedelta

import pytest
from django.utils import timezone

import kube
from audit.models import AuditEvent
from clusters.models import Cluster
from kubeadm import certkeys as kubeadm_certkeys
from kubeadm import discovery
from kubeadm import tokens as kubeadm_tokens
from tests.conftest import team_of
from tests.support.kubeclusters import PREFLIGHT_IGNORE, stored_column
from tokens import services, sweeps
from tokens.certkeys import issue_certificate_key
from tokens.models import BootstrapToken, CertificateKey, TokenSync
from tokens.sync import sync_cluster
from workflows.adoption import AdoptionError, adopt_cluster

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def testbed(token_testbeds):
    """The run's shared token test bed (tests/conftest.py): three machines, a real control plane on node1."""
    return token_testbeds.get()


@pytest.fixture
def admin(make_user):
    return make_user("ada", role="admin")


@pytest.fixture
def created(testbed, admin, db):
    return testbed.created_cluster("created", team=team_of(admin))


def bearer_whoami(testbed, token: str) -> dict:
    proc = testbed.cp.whoami_with_token(token)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["status"]["userInfo"]


def wait_for(predicate, *, timeout: float = 60, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def secret_or_none(testbed, name: str) -> dict | None:
    proc = testbed.cp.kubectl("-n", "kube-system", "get", "secret", name, "-o", "json", check=False)
    return json.loads(proc.stdout) if proc.returncode == 0 else None


@pytest.mark.django_db
def test_both_identities_reach_the_real_api_server(testbed, created, admin):
    assert kube.readyz(created) == "ok"
    username, groups = kube.whoami(created)
    assert username == "kubeboard" and "kubeadm:cluster-admins" in groups
    adopted = adopt_cluster(name="adopted", team=team_of(admin), kubeconfig=testbed.admin_conf, user=admin)
    assert adopted.is_adopted and adopted.status == Cluster.Status.READY
    assert adopted.ca_pin_hash == discovery.ca_pin_hash(testbed.authorities["ca"].cert), "pin from the kubeconfig's CA"
    assert adopted.kubernetes_version == "v1.37.2"
    assert kube.whoami(adopted)[0] == "kubernetes-admin"
    assert "client-key-data" not in stored_column(adopted), "stored encrypted"
    event = AuditEvent.objects.get(action="cluster.adopted")
    assert event.actor == admin and event.details["identity"] == "kubernetes-admin"
    # The first sync imported the token `kubeadm init phase bootstrap-token` made.
    init_id = testbed.cp.token.split(".")[0]
    init_token = BootstrapToken.objects.get(cluster=adopted, token_id=init_id)
    assert init_token.origin == BootstrapToken.Origin.EXTERNAL and init_token.state() == "external"
    assert init_token.secret.reveal() == testbed.cp.token.split(".")[1]


@pytest.mark.django_db
def test_adoption_refuses_bad_kubeconfigs_and_stores_nothing(testbed, admin):
    team = team_of(admin)
    with pytest.raises(AdoptionError, match="cannot be used.*no contexts"):
        adopt_cluster(name="bad1", team=team, kubeconfig="apiVersion: v1\nkind: Config\nclusters: []\n", user=admin)
    unreachable = testbed.admin_conf.replace(testbed.endpoint, "10.213.20.99:6443")
    with pytest.raises(AdoptionError, match="cannot be reached.*try again"):
        adopt_cluster(name="bad2", team=team, kubeconfig=unreachable, user=admin)
    # A real identity without rights on Secrets: a client certificate for a user nobody bound.
    nobody = user_kubeconfig(testbed, "nobody", ())
    with pytest.raises(AdoptionError, match="'nobody'.*may not create secrets, delete secrets, list secrets"):
        adopt_cluster(name="bad3", team=team, kubeconfig=nobody, user=admin)
    assert not Cluster.objects.filter(name__startswith="bad").exists()
    # Each failed attempt is recorded once as failed, with its reason and without the kubeconfig.
    failed = list(AuditEvent.objects.filter(action="cluster.adopted").order_by("seq"))
    assert [(event.outcome, event.details["name"]) for event in failed] == [
        ("failure", "bad1"),
        ("failure", "bad2"),
        ("failure", "bad3"),
    ]
    assert "client-key-data" not in str([event.details for event in failed])


def user_kubeconfig(testbed, user: str, groups: tuple[str, ...]) -> str:
    from kubeadm import kubeconfig as kubeconfig_files

    client = kubeconfig_files.issue_client(testbed.authorities["ca"], user, groups, algorithm="ECDSA-P256")
    return kubeconfig_files.render_kubeconfig(
        kubeconfig_files.build_kubeconfig(
            f"https://{testbed.endpoint}", "kubernetes", user, testbed.authorities["ca"].cert, client=client
        )
    )


@pytest.mark.django_db
def test_created_token_is_a_real_bootstrap_token(testbed, created, admin):
    token, full = services.create_token(
        created,
        user=admin,
        ttl=timedelta(hours=1),
        description="e2e join",
        groups=("system:bootstrappers:kubeadm:default-node-token", "system:bootstrappers:e2e"),
    )
    secret = secret_or_none(testbed, f"bootstrap-token-{token.token_id}")
    assert secret is not None and secret["type"] == "bootstrap.kubernetes.io/token"
    expected = kubeadm_tokens.bootstrap_token_secret(
        full,
        description="e2e join",
        expiration=token.expires_at,
        groups=("system:bootstrappers:kubeadm:default-node-token", "system:bootstrappers:e2e"),
    )
    assert secret["data"] == expected["data"], "byte-compatible with what kubeadm writes"
    assert token.secret_uid == secret["metadata"]["uid"]
    user = bearer_whoami(testbed, full)
    assert user["username"] == f"system:bootstrap:{token.token_id}"
    assert "system:bootstrappers:e2e" in user["groups"]
    # The real bootstrap signer signs cluster-info for the new token; Kubeboard verifies the JWS.
    cluster_info = wait_for(
        lambda: (
            (data := testbed.kubectl_json("-n", "kube-public", "get", "configmap", "cluster-info")["data"]).get(
                f"jws-kubeconfig-{token.token_id}"
            )
            and data
        ),
        what="the bootstrap signer's JWS",
    )
    # As `kubeadm join` checks it: the JWS over the exact kubeconfig text, then the CA pin.
    discovery.verify_cluster_info(cluster_info, full, [created.ca_pin_hash])
    report = sync_cluster(created)
    assert report.ok, report.message
    token.refresh_from_db()
    assert token.signature == "valid"
    assert TokenSync.objects.get(cluster=created).cluster_info.startswith("CA matches the pin")
    event = AuditEvent.objects.get(action="token.created", object_id=str(token.pk))
    assert event.actor == admin and event.details["token_id"] == token.token_id
    assert full.split(".")[1] not in json.dumps(event.details)


@pytest.mark.django_db
def test_join_preflight_passes_discovery_with_the_command_kubeboard_shows(testbed, created, admin):
    token, _ = services.create_token(created, user=admin, ttl=timedelta(hours=1), description="preflight")
    command = services.reveal_join_command(token, user=admin)
    assert f"--discovery-token-ca-cert-hash {created.ca_pin_hash}" in command
    wait_for(
        lambda: (
            f"jws-kubeconfig-{token.token_id}"
            in testbed.kubectl_json("-n", "kube-public", "get", "configmap", "cluster-info")["data"]
        ),
        what="JWS",
    )
    args = command.replace("\\\n", " ").split(None, 2)[2]
    node = testbed.sandbox.node(2)
    proc = node.ssh(
        f"{testbed.bins}/kubeadm join phase preflight {args} --node-name {node.name} "
        f"--ignore-preflight-errors={PREFLIGHT_IGNORE} -v=1 2>&1",
        check=False,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout
    assert "Cluster info signature and contents are valid and TLS certificate validates against pinned roots" in (
        proc.stdout
    )
    # And a wrong pin fails discovery: the check above is real.
    wrong = args.replace(created.ca_pin_hash, "sha256:" + "0" * 64)
    bad = node.ssh(
        f"timeout 60 {testbed.bins}/kubeadm join phase preflight {wrong} --node-name {node.name} "
        f"--ignore-preflight-errors={PREFLIGHT_IGNORE} 2>&1",
        check=False,
        timeout=120,
    )
    assert bad.returncode != 0 and "none of the public keys" in bad.stdout


@pytest.mark.django_db
def test_expired_token_is_cleaned_by_the_real_token_cleaner(testbed, created, admin):
    token, _ = services.create_token(created, user=admin, ttl=timedelta(seconds=5), description="short")
    assert secret_or_none(testbed, token.secret_name) is not None
    wait_for(lambda: secret_or_none(testbed, token.secret_name) is None, timeout=90, what="the token cleaner")
    report = sync_cluster(created)
    assert report.ok and token.token_id in report.expired and token.token_id not in report.gone
    token.refresh_from_db()
    assert token.status == BootstrapToken.Status.EXPIRED and token.state() == "expired"


@pytest.mark.django_db
def test_kubeadm_token_create_on_the_node_appears_as_external(testbed, created):
    made = testbed.cp.node.ssh(
        f"{testbed.bins}/kubeadm token create --kubeconfig /etc/kubernetes/admin.conf --ttl 1h "
        "--description 'made on the node'"
    ).stdout.strip()
    report = sync_cluster(created)
    token_id = made.split(".")[0]
    assert token_id in report.imported
    row = BootstrapToken.objects.get(cluster=created, token_id=token_id)
    assert row.origin == BootstrapToken.Origin.EXTERNAL and row.state() == "external"
    assert row.description == "made on the node" and row.secret.reveal() == made.split(".")[1]
    assert AuditEvent.objects.filter(action="token.imported", object_id=str(row.pk)).count() == 1
    # A second sync finds nothing new: drift is reported once per change, not per sync.
    again = sync_cluster(created)
    assert again.ok and not again.imported and not again.drift
    assert AuditEvent.objects.filter(action="token.imported", object_id=str(row.pk)).count() == 1


@pytest.mark.django_db
def test_token_deleted_in_the_cluster_is_marked_gone_once(testbed, created, admin):
    token, _ = services.create_token(created, user=admin, ttl=timedelta(hours=1))
    testbed.cp.kubectl("-n", "kube-system", "delete", "secret", token.secret_name)
    report = sync_cluster(created)
    assert token.token_id in report.gone
    token.refresh_from_db()
    assert token.state() == "gone"
    assert sync_cluster(created).gone == []
    assert AuditEvent.objects.filter(action="token.gone", object_id=str(token.pk)).count() == 1


@pytest.mark.django_db
def test_delete_removes_the_secret_and_leaves_one_audit_record(testbed, created, admin):
    token, _ = services.create_token(created, user=admin, ttl=timedelta(hours=1))
    services.delete_token(token, user=admin, reason="not needed")
    assert secret_or_none(testbed, token.secret_name) is None
    token.refresh_from_db()
    assert token.state() == "revoked" and token.revoked_by == admin
    assert AuditEvent.objects.filter(action="token.revoked", object_id=str(token.pk)).count() == 1
    with pytest.raises(services.TokenStateError, match="is revoked; nothing to revoke"):
        services.delete_token(token, user=admin, reason="twice")


@pytest.mark.django_db
def test_unreachable_api_server_leaves_nothing_behind(testbed, admin):
    # An unused address on the sandbox bridge: the guard allows it, nobody answers.
    cluster = testbed.created_cluster("lost", team=team_of(admin), control_plane_endpoint="10.213.20.99:6443")
    with pytest.raises(kube.ClusterUnreachable) as info:
        services.create_token(cluster, user=admin, ttl=timedelta(hours=1))
    assert info.value.retryable and "retry" in str(info.value)
    assert not BootstrapToken.objects.filter(cluster=cluster).exists()
    assert not AuditEvent.objects.filter(action="token.created").exists()
    report = sync_cluster(cluster)
    assert report.result == "unreachable"
    assert TokenSync.objects.get(cluster=cluster).result == "unreachable"


@pytest.mark.django_db
def test_database_failure_after_the_secret_takes_the_secret_back(testbed, created, admin, monkeypatch):
    # A test double at the database boundary: the audit write (inside the row's transaction) fails.
    def failing_record(*args, **kwargs):
        raise RuntimeError("simulated database failure")

    monkeypatch.setattr(services, "record", failing_record)
    full = str(kubeadm_tokens.generate_token())
    with pytest.raises(RuntimeError, match="simulated"):
        services.create_token(created, user=admin, token=full, ttl=timedelta(hours=1))
    assert secret_or_none(testbed, f"bootstrap-token-{full[:6]}") is None
    assert not BootstrapToken.objects.filter(cluster=created, token_id=full[:6]).exists()


@pytest.mark.django_db
def test_duplicate_token_id_is_refused_without_side_effects(testbed, created, admin):
    init_token = testbed.cp.token
    with pytest.raises(services.DuplicateToken, match="already exists in cluster created"):
        services.create_token(created, user=admin, token=init_token, ttl=timedelta(hours=1))
    assert not BootstrapToken.objects.filter(cluster=created, token_id=init_token[:6]).exists()
    assert secret_or_none(testbed, f"bootstrap-token-{init_token[:6]}") is not None, "the existing one untouched"


@pytest.mark.django_db
def test_certificate_key_writes_kubeadm_certs_that_decrypt_with_it(testbed, created, admin):
    key = issue_certificate_key(created, user=admin)
    secret = secret_or_none(testbed, "kubeadm-certs")
    files = kubeadm_certkeys.decrypt_kubeadm_certs(secret, key.plain_key())
    assert files["ca.crt"] == testbed.authorities["ca"].cert_pem()
    assert files["etcd/ca.key"] == testbed.authorities["etcd/ca"].key_pem()
    owner = secret["metadata"]["ownerReferences"][0]
    assert owner["name"] == f"bootstrap-token-{key.token.token_id}" and owner["uid"] == key.token.secret_uid
    assert key.expires_at - timezone.now() <= timedelta(hours=2)
    owner_secret = secret_or_none(testbed, f"bootstrap-token-{key.token.token_id}")
    assert set(owner_secret["data"]) == {"token-id", "token-secret", "expiration", "description"}, "no usages"
    # A real control-plane join step downloads and decrypts them with the key Kubeboard shows.
    token, full = services.create_token(created, user=admin, ttl=timedelta(hours=1))
    node = testbed.sandbox.node(3)
    config = node.host_path("/etc/kubernetes/kubeboard-join.yaml")
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\n"
        f"discovery:\n  bootstrapToken:\n    apiServerEndpoint: {testbed.endpoint}\n    token: {full}\n"
        f"    caCertHashes:\n    - {created.ca_pin_hash}\n"
        f"nodeRegistration:\n  name: {node.name}\n"
        f"controlPlane:\n  localAPIEndpoint:\n    advertiseAddress: {node.address}\n"
        f"  certificateKey: {key.plain_key()}\n"
    )
    proc = node.ssh(
        f"{testbed.bins}/kubeadm join phase control-plane-prepare download-certs "
        f"--config /etc/kubernetes/kubeboard-join.yaml 2>&1",
        check=False,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout
    assert node.host_path("/etc/kubernetes/pki/ca.key").read_bytes() == testbed.authorities["ca"].key_pem()
    assert AuditEvent.objects.filter(action="certificate_key.issued").count() == 1
    # At its expiry the sweep wipes the key: it is never shown again.
    sweeps.sweep(now=key.expires_at + timedelta(seconds=1))
    key.refresh_from_db()
    assert key.status == CertificateKey.Status.EXPIRED and not key.key


@pytest.mark.django_db
def test_revoke_after_join_deletes_the_secret_once_the_node_is_ready(testbed, created, admin):
    from nodes.models import Node

    node = testbed.sandbox.node(2)
    machine = Node.objects.create(cluster=created, name=node.name, address=node.address)
    token, full = services.create_token(
        created, user=admin, ttl=timedelta(hours=1), node=machine, purpose=BootstrapToken.Purpose.JOIN
    )
    assert token.next_action_at is not None
    # Not joined yet: the sweep asks the API server and keeps the token.
    report = sweeps.sweep(now=token.next_action_at)
    assert report.actions["node-not-ready"] == 1
    assert secret_or_none(testbed, token.secret_name) is not None
    node.start_runner(testbed.bins, kubelet=True)
    from tools.testbed.cluster import kubeadm_join

    kubeadm_join(node, testbed.bins, services.join_command_for(created, full))

    def ready() -> bool:
        # The kubelet registers the Node object a moment after the join returns: not found yet is "not yet".
        proc = testbed.cp.kubectl("get", "node", node.name, "-o", "json", check=False)
        if proc.returncode != 0:
            assert "NotFound" in proc.stderr, proc.stderr
            return False
        conditions = json.loads(proc.stdout)["status"]["conditions"]
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    wait_for(ready, timeout=120, what=f"{node.name} Ready")
    token.refresh_from_db()
    report = sweeps.sweep(now=token.next_action_at)
    assert report.actions["node-check"] == 1, report
    assert secret_or_none(testbed, token.secret_name) is None, "deleted in the real cluster"
    token.refresh_from_db()
    # Shown as the audit trail records it: used by its node, "consumed" (token.consumed), not "revoked".
    assert token.state() == "consumed" and token.node_joined_at is not None
    event = AuditEvent.objects.get(action="token.consumed", object_id=str(token.pk))
    assert node.name in event.details["reason"]


@pytest.mark.django_db
def test_adopt_through_the_form_then_manage_tokens_in_the_ui(testbed, admin, client):
    from django.core.files.uploadedfile import SimpleUploadedFile

    client.force_login(admin)
    team = team_of(admin)
    bad = client.post(
        "/clusters/adopt/",
        {"name": "via-ui", "team": team.pk, "kubeconfig_text": testbed.admin_conf.replace("client-key-data", "x")},
    )
    assert bad.status_code == 400 and b"This kubeconfig cannot be used" in bad.content
    assert not Cluster.objects.filter(name="via-ui").exists()
    upload = SimpleUploadedFile("admin.conf", testbed.admin_conf.encode())
    response = client.post("/clusters/adopt/", {"name": "via-ui", "team": team.pk, "kubeconfig_file": upload})
    assert response.status_code == 302 and response["Location"] == "/clusters/via-ui/tokens/"
    page = client.get("/clusters/via-ui/tokens/").content.decode()
    init_id = testbed.cp.token.split(".")[0]
    assert f'id="token-{init_id}"' in page and 'data-state="external"' in page
    assert testbed.cp.token.split(".")[1] not in page
    created = client.post(
        "/clusters/via-ui/tokens/new/",
        {
            "ttl": "2h",
            "description": "from the UI",
            "usages": ["signing", "authentication"],
            "groups": "system:bootstrappers:kubeadm:default-node-token",
        },
    )
    # Post/Redirect/Get: the create answers with a redirect to the page that shows the token once.
    assert created.status_code == 302 and "no-store" in created["Cache-Control"]
    shown = client.get(created["Location"])
    assert shown.status_code == 200 and "no-store" in shown["Cache-Control"]
    html = shown.content.decode()
    full = html.split('id="new-token-value">')[1].split("<")[0]
    token_id = full.split(".")[0]
    assert created["Location"] == f"/clusters/via-ui/tokens/{token_id}/created/"
    assert secret_or_none(testbed, f"bootstrap-token-{token_id}") is not None, "a Secret the API server accepted"
    assert f"kubeadm join {testbed.endpoint} --token {full}" in html
    assert bearer_whoami(testbed, full)["username"] == f"system:bootstrap:{token_id}"
    tokens_before = BootstrapToken.objects.filter(cluster__name="via-ui").count()
    reloaded = client.get(created["Location"]).content.decode()
    assert full not in reloaded and 'id="already-shown"' in reloaded, "a reload shows the token no more"
    assert BootstrapToken.objects.filter(cluster__name="via-ui").count() == tokens_before, "and creates nothing"


@pytest.mark.django_db
def test_management_commands_mirror_kubeadm_token(testbed, created, admin):
    from io import StringIO

    from django.core.management import call_command
    from django.core.management.base import CommandError

    def run(*args: str) -> str:
        out = StringIO()
        call_command("token", *args, stdout=out)
        return out.getvalue()

    run("sync", "created")
    line = run("create", "created", "--ttl", "1h", "--description", "by command", "--print-join-command").strip("\n")
    ours = line.split("--token ")[1].split(" ")[0]
    real = testbed.cp.node.ssh(
        f"{testbed.bins}/kubeadm token create --kubeconfig /etc/kubernetes/admin.conf --print-join-command 2>/dev/null"
    ).stdout.rstrip("\n")
    theirs = real.split("--token ")[1].split(" ")[0]
    assert line.replace(ours, "TOKEN") == real.replace(theirs, "TOKEN"), "the same line kubeadm prints"
    assert bearer_whoami(testbed, ours)["username"] == f"system:bootstrap:{ours[:6]}"

    run("sync", "created")  # imports the token kubeadm just made
    # The sync someone asked for is one record of its own, with its counts.
    synced = AuditEvent.objects.filter(action="token.synced").order_by("-seq").first()
    assert synced.outcome == "success" and synced.details["imported"] == 1 and synced.details["found"] >= 2
    listed = run("list", "created", "--show-secrets")
    kubeadm_list = testbed.cp.node.ssh(
        f"{testbed.bins}/kubeadm token list --kubeconfig /etc/kubernetes/admin.conf 2>/dev/null"
    ).stdout

    def without_ttl(text: str) -> list[str]:  # the TTL column ("59m") depends on the second it ran
        return [row[:26] + row[38:] for row in text.splitlines()]

    assert without_ttl(listed) == without_ttl(kubeadm_list)
    masked = run("list", "created")
    assert ours not in masked and f"{ours[:6]}.****************" in masked

    assert run("delete", "created", ours) == f'bootstrap token "{ours[:6]}" deleted\n'
    assert secret_or_none(testbed, f"bootstrap-token-{ours[:6]}") is None
    assert len(run("generate").strip()) == 23

    for args, message in [
        (("create", "created", "--ttl", "0"), "a TTL of zero"),
        (("create", "created", "--usages", "signing,bogus"), "found bogus"),
        (("create", "created", "--groups", "system:nodes"), "expected a group matching"),
        (("create", "created", "not-a-token"), "expected a bootstrap token of the form"),
        (("create", "nowhere"), "no cluster named 'nowhere'"),
        (("delete", "created", "zzzzzz"), "is not known in cluster created"),
        (("create", "created", "--as", "ada", "--certificate-key", "00"), "with --print-join-command only"),
    ]:
        with pytest.raises(CommandError, match=message):
            run(*args)


@pytest.mark.django_db
def test_a_token_changed_in_the_cluster_is_reported_once(testbed, created, admin):
    token, _ = services.create_token(created, user=admin, ttl=timedelta(hours=1), description="before")
    edited = base64.b64encode(b"edited by hand").decode()
    testbed.cp.kubectl(
        "-n",
        "kube-system",
        "patch",
        "secret",
        token.secret_name,
        "--type=merge",
        "-p",
        json.dumps({"data": {"description": edited}}),
    )
    report = sync_cluster(created)
    assert report.changed == [token.token_id]
    assert f"token {token.token_id} changed in the cluster: description" in report.drift
    token.refresh_from_db()
    assert token.description == "edited by hand"
    assert TokenSync.objects.get(cluster=created).drift == report.drift, "shown on the page"
    assert sync_cluster(created).changed == []
    assert AuditEvent.objects.filter(action="token.drift", object_id=str(token.pk)).count() == 1


@pytest.mark.django_db(transaction=True)
def test_new_certificate_key_runs_as_an_upload_certs_operation(testbed, make_user, client):
    from operations.models import Event, Operation
    from operations.tasks import run_operation

    operator = make_user("otto", role="operator")
    cluster = testbed.created_cluster("certops", team=team_of(operator))
    client.force_login(operator)
    response = client.post(f"/clusters/{cluster.name}/tokens/certificate-keys/new/")
    operation = Operation.objects.get(cluster=cluster, kind="upload-certs")
    assert response.status_code == 302 and response["Location"] == operation.get_absolute_url()
    run_operation(operation.pk)  # what the django-q2 worker does with the queued task
    operation.refresh_from_db()
    assert operation.status == Operation.Status.SUCCEEDED, operation.error
    key = CertificateKey.objects.get(cluster=cluster)
    assert key.operation_id == operation.pk and key.created_by == operator and key.is_valid()
    messages = " ".join(Event.objects.filter(operation=operation).values_list("message", flat=True))
    assert 'Stored the certificates in Secret "kubeadm-certs"' in messages
    assert key.plain_key() not in messages, "the key is never in the operation's events"
    files = kubeadm_certkeys.decrypt_kubeadm_certs(secret_or_none(testbed, "kubeadm-certs"), key.plain_key())
    assert files["sa.key"] == testbed.authorities["sa"].key_pem()
    page = client.get(f"/clusters/{cluster.name}/tokens/").content.decode()
    assert f'id="certificate-key-{key.pk}"' in page and "data-expires=" in page
    assert key.plain_key() not in page, "operators see the countdown, not the key"
