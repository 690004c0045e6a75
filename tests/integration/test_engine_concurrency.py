"""Two people (or a double click) starting the same init or join at once get one operation,
on SQLite and on PostgreSQL (bin/test runs both). Threads use their own connections, as two web
processes would."""

from __future__ import annotations

import pytest

from clusters.models import Cluster
from nodes.models import Node
from operations.models import Operation
from tests.integration.test_concurrency import in_threads
from tests.support.testbed_cluster import ready_cluster
from workflows.init import InitRefused, start_init
from workflows.join import JoinRefused, start_join

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

PINNED = {"ssh_host_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOr9w8x1xVdS0k4pQm0c6oW6i8vJjIY5nEoQv7sJ8l7Q",
          "ssh_host_key_fingerprint": "SHA256:abc"}  # fmt: skip


def attempt(start, refused):
    def run(index: int):
        try:
            return start(index).pk
        except refused as exc:
            return str(exc)

    return run


def test_concurrent_initialize_starts_one_operation():
    cluster = ready_cluster("race", "10.0.0.10:6443")
    node = Node.objects.create(cluster=cluster, name="m1", address="10.0.0.11", **PINNED)
    results = in_threads(4, attempt(lambda index: start_init(cluster, node), InitRefused))
    started = [r for r in results if isinstance(r, int)]
    assert len(started) == 1, results
    assert all("already initializing" in r for r in results if isinstance(r, str))
    assert Operation.objects.filter(kind="init").count() == 1


def test_concurrent_joins_of_one_machine_start_one_operation():
    cluster = ready_cluster("race", "10.0.0.10:6443")
    Cluster.objects.filter(pk=cluster.pk).update(status=Cluster.Status.RUNNING)
    node = Node.objects.create(cluster=cluster, name="w1", address="10.0.0.12", **PINNED)
    results = in_threads(4, attempt(lambda index: start_join(cluster, [node]), JoinRefused))
    assert len([r for r in results if isinstance(r, int)]) == 1, results
    assert all("is being joined by another operation" in r for r in results if isinstance(r, str))
    assert Operation.objects.filter(kind="join-workers").count() == 1
    assert Node.objects.get(pk=node.pk).status == Node.Status.JOINING
