"""Races on machines that must resolve the same way on SQLite and PostgreSQL (bin/test runs both)."""

from __future__ import annotations

import pytest
from django.db import IntegrityError

from audit.models import AuditEvent
from nodes import services
from nodes.models import ClusterSSHKey, Node
from tests.factories import make_cluster
from tests.integration.test_concurrency import in_threads

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_the_cluster_key_is_generated_once_when_requested_together():
    cluster = make_cluster("c1")

    def generate(index: int) -> str:
        return services.ensure_cluster_key(cluster).fingerprint

    fingerprints = in_threads(4, generate)
    assert len(set(fingerprints)) == 1
    assert ClusterSSHKey.objects.count() == 1
    assert AuditEvent.objects.filter(action="cluster.ssh_key_generated").count() == 1


def test_one_machine_cannot_be_registered_in_two_clusters_at_once():
    clusters = [make_cluster(f"c{i}") for i in range(4)]

    def add(index: int) -> str:
        node = Node(cluster=clusters[index], name="m1", address="10.0.0.11", ssh_port=22, credential="password")
        node.ssh_password = "pw"
        try:
            services.add_node(node, user=None)
        except IntegrityError:
            return "refused"
        return "added"

    outcomes = in_threads(4, add)
    assert sorted(outcomes) == ["added", "refused", "refused", "refused"]
    assert Node.objects.count() == 1
    assert AuditEvent.objects.filter(action="node.added").count() == 1
