"""SQL queries per minute for one open cluster page.

The page stays live by polling. Before, it polled every 2 s and each poll re-read the whole page
(all six panels, every query of a page load) to swap five parts of it. Now it polls every second
(``clusters.live.POLL_SECONDS``, so that a change shows within 2 s with room to spare on a busy machine) and each poll asks
``clusters:live`` with the version of each live part; the server answers 204 when no version
changed, and renders only the parts that did.

Builds one cluster as an operator sees it after init (3 machines, 12 operations, 4 bootstrap
tokens, a certificate key, the read-back inventory, 20 audit records), logs in through the
Django test client (every middleware runs: session, user, audit context) and counts every SQL
statement with ``CaptureQueriesContext``, for one simulated minute of polling:

* before: the full page 30 times — what the old poller requested every 2 s (the page now also
  computes the live versions once; those queries are counted apart and left out);
* after, idle: 40 polls of ``clusters:live`` while nothing changes;
* after, busy: 40 polls while a node joins, an operation finishes and a token is revoked
  (three changes in the minute, each written through the ORM between two polls).

The CPU time of this process (the web server's work: middleware, queries, rendering) is printed
as well.

    python bench/bench_cluster_page.py

Uses a fresh SQLite database in a temporary directory. Prints figures; asserts nothing.
"""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

OLD_POLLS_PER_MINUTE = 30  # every 2 s


def build_world():
    from django.contrib.auth.models import Group, User
    from django.utils import timezone

    from audit.services import record
    from clusters.models import CertificateAuthority, Cluster, ClusterInventory, MachineInventory
    from core.models import TeamMembership
    from nodes.models import Node
    from operations.models import Operation
    from tokens.models import BootstrapToken, CertificateKey, TokenPolicy, TokenSync

    now = timezone.now()
    team = Group.objects.create(name="platform")
    user = User.objects.create_user(username="olivia", password="pw")
    TeamMembership.objects.create(team=team, user=user, role="operator")
    cluster = Cluster.objects.create(
        name="bench",
        team=team,
        kubernetes_version="v1.37.2",
        control_plane_endpoint="10.0.0.10:6443",
        pod_subnet="10.244.0.0/16",
        ca_pin_hash="sha256:" + "0" * 64,
        kubeadm_config="kind: ClusterConfiguration\n",
        status=Cluster.Status.RUNNING,
    )
    for name in ("ca", "front-proxy-ca", "etcd/ca", "sa"):
        CertificateAuthority.objects.create(
            cluster=cluster, name=name, certificate_pem="-----BEGIN CERTIFICATE-----\n", public_key_pem="x"
        )
    nodes = [
        Node.objects.create(
            cluster=cluster,
            name=f"node{i}",
            address=f"10.0.0.{10 + i}",
            role=Node.Role.CONTROL_PLANE if i == 1 else Node.Role.WORKER,
            status=Node.Status.JOINED if i < 3 else Node.Status.NEW,
            checked_at=now - timedelta(minutes=10),
        )
        for i in (1, 2, 3)
    ]
    for i in range(12):
        Operation.objects.create(
            cluster=cluster,
            kind="init" if i == 1 else "join",
            requested_by=user,
            params={"node": "node1"},
            status=Operation.Status.SUCCEEDED,
            started_at=now - timedelta(hours=12 - i),
            finished_at=now - timedelta(hours=12 - i) + timedelta(seconds=40),
        )
    running = Operation.objects.create(
        cluster=cluster, kind="join", requested_by=user, status=Operation.Status.RUNNING, started_at=now
    )
    # Queued an hour ago: times shown as "45 s ago" change every second, and are re-rendered as they do.
    Operation.objects.filter(cluster=cluster).update(created_at=now - timedelta(hours=1))
    TokenPolicy.objects.create(cluster=cluster)
    TokenSync.objects.create(cluster=cluster, result=TokenSync.Result.OK, last_success_at=now)
    tokens = [
        BootstrapToken.objects.create(
            cluster=cluster,
            token_id=f"tok{i:03d}",
            secret="0123456789abcdef",
            expires_at=now + timedelta(hours=6 * (i + 1)),
            created_by=user,
            node=nodes[i % 3],
        )
        for i in range(4)
    ]
    CertificateKey.objects.create(cluster=cluster, key="00" * 32, expires_at=now + timedelta(hours=2))
    ClusterInventory.objects.create(
        cluster=cluster,
        collected_at=now - timedelta(hours=1),
        api_nodes=[{"name": n.name, "ready": True, "roles": [], "kubelet_version": "v1.37.2"} for n in nodes],
    )
    MachineInventory.objects.create(
        node=nodes[0],
        collected_at=now - timedelta(hours=1),
        certificates=[{"name": "apiserver", "kind": "leaf", "not_after": "2027-12-06", "custody": "signed"}],
        manifests=[{"path": "/etc/kubernetes/manifests/etcd.yaml", "images": ["etcd"], "text": "kind: Pod"}],
    )
    for i in range(20):
        record("node.checked", actor=user, obj=nodes[i % 3], cluster=cluster)
    return user, cluster, nodes, running, tokens


def count(call) -> tuple[int, float, object]:
    """(SQL statements, CPU seconds of this process, result) of ``call``."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        cpu = time.process_time()
        result = call()
        cpu = time.process_time() - cpu
    return len(queries), cpu, result


def before(client, cluster) -> tuple[int, float]:
    """The old poll: the whole page, every 2 s (queries, CPU seconds) for a minute."""
    from clusters import live

    total, cpu = 0, 0.0
    for _ in range(OLD_POLLS_PER_MINUTE):
        page, page_cpu, response = count(lambda: client.get(f"/clusters/{cluster.name}/", HTTP_HX_REQUEST="true"))
        assert response.status_code == 200, response.status_code
        # The page reads its cluster row once, as before (now with the live parts' values).
        row = live.clusters().get(pk=cluster.pk)
        versions, versions_cpu, _ = count(lambda row=row: live.versions(row))
        total, cpu = total + page - versions, cpu + page_cpu - versions_cpu
    return total, cpu


def after(client, cluster, changes: dict) -> tuple[int, float, int]:
    """Polls of the live endpoint for a minute: (queries, CPU seconds, polls answered with parts)."""
    from clusters.live import POLL_SECONDS
    from tests.support.live import page_versions

    known = page_versions(client.get(f"/clusters/{cluster.name}/").content.decode())
    total, cpu, answered = 0, 0.0, 0
    for poll in range(round(60 / POLL_SECONDS)):
        if poll in changes:
            changes[poll]()
        queries, poll_cpu, response = count(lambda known=known: client.get(f"/clusters/{cluster.name}/live/", known))
        total, cpu = total + queries, cpu + poll_cpu
        if response.status_code == 200:
            answered += 1
            known = page_versions(response.content.decode())
        else:
            assert response.status_code == 204, response.status_code
    return total, cpu, answered


def main() -> None:
    from bench._support import setup_django

    with tempfile.TemporaryDirectory(prefix="bench-cluster-page-") as data_dir:
        setup_django(Path(data_dir))
        from django.test import Client
        from django.utils import timezone

        from clusters.live import POLL_SECONDS
        from nodes.models import Node
        from operations.models import Operation
        from tokens.models import BootstrapToken

        user, cluster, nodes, running, tokens = build_world()
        client = Client(HTTP_HOST="127.0.0.1")
        client.force_login(user)
        page_queries, _, _ = count(lambda: client.get(f"/clusters/{cluster.name}/"))
        old, old_cpu = before(client, cluster)
        idle, idle_cpu, idle_answered = after(client, cluster, {})
        changes = {
            5: lambda: Node.objects.filter(pk=nodes[2].pk).update(status=Node.Status.JOINING),
            15: lambda: Operation.objects.filter(pk=running.pk).update(
                status=Operation.Status.SUCCEEDED, finished_at=timezone.now()
            ),
            25: lambda: BootstrapToken.objects.filter(pk=tokens[0].pk).update(status=BootstrapToken.Status.REVOKED),
        }
        busy, busy_cpu, busy_answered = after(client, cluster, changes)
    print(f"one page load: {page_queries} queries (once, when the page opens)")
    print(f"queries per minute for one open cluster page: before {old}, after {idle} ({old / idle:.1f}x fewer)")
    print(
        f"  with a node, an operation and a token changing in that minute: after {busy} ({old / busy:.1f}x fewer); "
        f"{busy_answered} of {round(60 / POLL_SECONDS)} polls answered with parts ({idle_answered} when idle)"
    )
    print(
        f"web process CPU per minute for one open page: before {old_cpu * 1000:.0f} ms, "
        f"after {idle_cpu * 1000:.0f} ms idle, {busy_cpu * 1000:.0f} ms with the three changes"
    )


if __name__ == "__main__":
    main()
