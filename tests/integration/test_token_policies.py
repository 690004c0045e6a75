"""Token policies with a controllable clock, against a real API server from the test bed.

The sweeps get ``now`` injected; the Secrets they make or delete are real (their expirations
lie in real time's future, so the cluster's token cleaner leaves them alone). Concurrency tests
run two sweeps at once in two threads with their own database connections, as two django-q2
workers would. They boot a cluster, so bin/test's PostgreSQL pass leaves them out: the claims
that make them hold on PostgreSQL are proven there by tests/integration/test_token_sweep_claims.py.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from tests.conftest import team_of
from tests.support.threads import in_threads
from tokens import services, sweeps
from tokens.models import BootstrapToken, TokenPolicy
from tokens.policies import policy_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def testbed(token_testbeds):
    """The run's shared token test bed (tests/conftest.py), also used by tests/e2e/test_tokens_cluster.py."""
    return token_testbeds.get()


def subnet_address(testbed, last: int) -> str:
    """An address of the test bed's subnet that no machine has."""
    return testbed.cp.node.address.rsplit(".", 1)[0] + f".{last}"


@pytest.fixture
def cluster(testbed, make_user):
    # Bootstrap tokens other modules left in the shared cluster would be synced and swept here:
    # each test starts with the control plane's own init token only, as on a fresh test bed.
    init_secret = "bootstrap-token-" + testbed.cp.token.split(".")[0]
    leftovers = sorted(secret_names(testbed) - {init_secret})
    if leftovers:
        testbed.cp.kubectl("-n", "kube-system", "delete", "secret", *leftovers)
    owner = make_user("owner", role="admin")
    cluster = testbed.created_cluster("policies", team=team_of(owner))
    TokenPolicy.objects.create(
        cluster=cluster,
        rotate_before=timedelta(hours=1),
        rotation_grace=timedelta(minutes=10),
        default_ttl=timedelta(hours=2),
        max_ttl=timedelta(hours=24),
        max_lifetime=timedelta(days=2),
    )
    return cluster


def secret_names(testbed) -> set[str]:
    items = json.loads(
        testbed.cp.kubectl(
            "-n", "kube-system", "get", "secrets", "--field-selector=type=bootstrap.kubernetes.io/token", "-o", "json"
        ).stdout
    )["items"]
    return {item["metadata"]["name"] for item in items}


@pytest.mark.django_db(transaction=True)
def test_rotation_makes_the_successor_before_expiry_and_retires_the_old_after_the_grace(testbed, cluster):
    t0 = timezone.now()
    old, _ = services.create_token(cluster, ttl=timedelta(hours=2), auto_rotate=True, description="rotating", now=t0)
    assert old.next_action_at == old.expires_at - timedelta(hours=1), "indexed: due when the rotation is"

    report = sweeps.sweep(now=t0 + timedelta(minutes=59))
    assert not report.actions, "nothing is due before rotate-before"

    rotation_time = t0 + timedelta(hours=1, minutes=1)
    report = sweeps.sweep(now=rotation_time)
    assert report.actions["rotate"] == 1 and not report.errors
    old.refresh_from_db()
    successor = old.successor
    assert successor is not None and successor.expires_at > old.expires_at, "successor first"
    assert successor.description == "rotating" and successor.auto_rotate
    assert old.retire_at == rotation_time + timedelta(minutes=10)
    assert {old.secret_name, successor.secret_name} <= secret_names(testbed), "both valid during the grace"

    sweeps.sweep(now=rotation_time + timedelta(minutes=9))
    assert old.secret_name in secret_names(testbed)

    report = sweeps.sweep(now=rotation_time + timedelta(minutes=11))
    assert report.actions["retire"] == 1
    assert old.secret_name not in secret_names(testbed) and successor.secret_name in secret_names(testbed)
    old.refresh_from_db()
    # Shown as what the audit trail says happened to it (token.retired), not as "revoked".
    assert old.state(now=rotation_time + timedelta(minutes=11)) == "retired"
    assert AuditEvent.objects.filter(action="token.rotated").count() == 1
    assert AuditEvent.objects.get(action="token.retired").details["token_id"] == old.token_id


@pytest.mark.django_db(transaction=True)
def test_sweeps_run_twice_or_in_two_workers_at_once_give_the_same_result(testbed, cluster):
    t0 = timezone.now()
    tokens = [services.create_token(cluster, ttl=timedelta(hours=2), auto_rotate=True, now=t0)[0] for _ in range(6)]
    due = t0 + timedelta(hours=1, minutes=5)

    reports = in_threads(2, lambda index: sweeps.sweep(now=due))
    assert sum(r.actions["rotate"] for r in reports) == 6, [str(r) for r in reports]
    assert not any(r.errors for r in reports), [r.errors for r in reports]
    # And once more, sequentially: nothing left to do at that time.
    again = sweeps.sweep(now=due)
    assert not again.actions.get("rotate")

    for token in tokens:
        token.refresh_from_db()
        assert token.successor is not None, f"{token.token_id} left without a successor"
    successors = BootstrapToken.objects.filter(cluster=cluster, predecessor__isnull=False)
    assert successors.count() == 6, "no double rotation"
    assert BootstrapToken.objects.filter(cluster=cluster, status=BootstrapToken.Status.ACTIVE).count() == 12
    assert {t.secret_name for t in BootstrapToken.objects.filter(cluster=cluster)} <= secret_names(testbed)
    assert AuditEvent.objects.filter(action="token.rotated").count() == 6

    retire = due + timedelta(minutes=11)
    in_threads(2, lambda index: sweeps.sweep(now=retire))
    assert BootstrapToken.objects.filter(cluster=cluster, status=BootstrapToken.Status.REVOKED).count() == 6
    assert AuditEvent.objects.filter(action="token.retired").count() == 6
    assert not ({t.secret_name for t in tokens} & secret_names(testbed))


@pytest.mark.django_db(transaction=True)
def test_keep_a_valid_join_token_creates_exactly_one_even_with_two_workers(testbed, cluster):
    now = timezone.now()
    TokenPolicy.objects.filter(cluster=cluster).update(keep_valid_token=True, next_check_at=now)
    reports = in_threads(2, lambda index: sweeps.sweep(now=now))
    keepers = BootstrapToken.objects.filter(cluster=cluster, purpose=BootstrapToken.Purpose.KEEPER)
    assert keepers.count() == 1, [str(r) for r in reports]
    keeper = keepers.get()
    assert keeper.auto_rotate and keeper.can_join and keeper.secret_name in secret_names(testbed)
    # Someone deletes it: the next sweep makes a new one at once (the delete woke the policy).
    services.delete_token(keeper, reason="testing the policy", now=now + timedelta(minutes=1))
    sweeps.sweep(now=now + timedelta(minutes=2))
    live = BootstrapToken.objects.filter(cluster=cluster, purpose=BootstrapToken.Purpose.KEEPER, status="active")
    assert live.count() == 1 and live.get().pk != keeper.pk


@pytest.mark.django_db(transaction=True)
def test_a_node_that_never_joins_cannot_keep_a_token_past_the_hard_lifetime(testbed, cluster):
    from nodes.models import Node

    TokenPolicy.objects.filter(cluster=cluster).update(max_lifetime=timedelta(hours=5))
    machine = Node.objects.create(cluster=cluster, name="never-joins", address=subnet_address(testbed, 200))
    t0 = timezone.now()
    first, _ = services.create_token(
        cluster, ttl=timedelta(hours=2), auto_rotate=True, node=machine, purpose=BootstrapToken.Purpose.JOIN, now=t0
    )
    # Walk the clock forward like the every-minute schedule would, in coarse steps.
    clock = t0
    while clock < t0 + timedelta(hours=7):
        clock += timedelta(minutes=20)
        sweeps.sweep(now=clock)
    chain = list(BootstrapToken.objects.filter(cluster=cluster, node=machine).order_by("created_at"))
    limit = (t0 + timedelta(hours=5)).replace(microsecond=0)
    # Expiries t0+2h, +3h, +4h, then capped at the limit: refreshed while not joined, never beyond.
    assert [token.expires_at - chain[0].created_at.replace(microsecond=0) for token in chain] == [
        timedelta(hours=2),
        timedelta(hours=3),
        timedelta(hours=4),
        timedelta(hours=5),
    ], [str(token.expires_at) for token in chain]
    assert chain[-1].expires_at <= limit and chain[-1].successor is None
    assert all(token.status != BootstrapToken.Status.ACTIVE for token in chain)
    retired = {token.secret_name for token in chain if token.status == BootstrapToken.Status.REVOKED}
    assert len(retired) == 3 and not (retired & secret_names(testbed)), "retired ones deleted in the cluster"
    assert first.pk == chain[0].pk


@pytest.mark.django_db(transaction=True)
def test_unreachable_cluster_during_a_sweep_retries_later_and_keeps_the_token(testbed, cluster):
    t0 = timezone.now()
    token, _ = services.create_token(cluster, ttl=timedelta(hours=2), auto_rotate=True, now=t0)
    type(cluster).objects.filter(pk=cluster.pk).update(control_plane_endpoint=f"{subnet_address(testbed, 99)}:6443")
    due = t0 + timedelta(hours=1, minutes=1)
    report = sweeps.sweep(now=due)
    assert report.errors and "retry" in report.errors[0]
    token.refresh_from_db()
    assert token.successor is None and token.last_error and token.next_action_at == due + timedelta(minutes=1)
    type(cluster).objects.filter(pk=cluster.pk).update(control_plane_endpoint=testbed.endpoint)
    report = sweeps.sweep(now=due + timedelta(minutes=1))
    assert report.actions["rotate"] == 1
    token.refresh_from_db()
    assert token.successor is not None and not token.last_error
    assert policy_for(cluster).rotate_before == timedelta(hours=1)


@pytest.mark.django_db(transaction=True)
def test_a_never_expiring_token_made_on_a_node_is_deleted_at_the_hard_lifetime(testbed, cluster):
    from tokens.sync import sync_cluster

    made = testbed.cp.node.ssh(
        f"{testbed.bins}/kubeadm token create --kubeconfig /etc/kubernetes/admin.conf --ttl 0 "
        "--description 'forever, by hand'"
    ).stdout.strip()
    token_id = made.split(".")[0]
    assert sync_cluster(cluster).ok
    row = BootstrapToken.objects.get(cluster=cluster, token_id=token_id)
    assert row.origin == BootstrapToken.Origin.EXTERNAL and row.expires_at is None
    assert row.next_action_at == row.cluster_created_at + timedelta(days=2), "due at the hard maximum lifetime"
    assert not sweeps.sweep(now=row.next_action_at - timedelta(minutes=1)).actions.get("lifetime")
    report = sweeps.sweep(now=row.next_action_at)
    assert report.actions["lifetime"] == 1
    assert f"bootstrap-token-{token_id}" not in secret_names(testbed)
    row.refresh_from_db()
    assert row.status == BootstrapToken.Status.REVOKED
    assert AuditEvent.objects.get(action="token.lifetime_ended").details["token_id"] == token_id
