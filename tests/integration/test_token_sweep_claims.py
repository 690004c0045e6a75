"""Token sweeps in two workers at once: each due token and each keep-valid policy is handled by
exactly one of them (``select_for_update(skip_locked=True)`` in tokens.sweeps on PostgreSQL).

Marked ``postgres`` (bin/test runs it on SQLite and on PostgreSQL) and boots no cluster, so the
PostgreSQL pass stays free of cluster boots: the clusters' API servers are unreachable (a closed
loopback port), and every row a worker handles leaves exactly one error in that worker's report.
A row claimed by both workers would leave two. The same sweeps racing against a real API server
(successors made, Secrets written) run in tests/integration/test_token_policies.py.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.factories import make_cluster
from tests.support.services import free_port
from tests.support.threads import in_threads
from tokens import sweeps
from tokens.models import BootstrapToken, TokenPolicy

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def unreachable_cluster(name: str):
    return make_cluster(name, control_plane_endpoint=f"127.0.0.1:{free_port()}")


def test_two_workers_never_take_the_same_due_token():
    t0 = timezone.now()
    cluster = unreachable_cluster("claims")
    TokenPolicy.objects.create(cluster=cluster, rotate_before=timedelta(hours=1))
    ids = [f"c{index:05d}" for index in range(24)]
    for token_id in ids:
        BootstrapToken.objects.create(
            cluster=cluster,
            token_id=token_id,
            auto_rotate=True,
            expires_at=t0 + timedelta(minutes=30),
            next_action_at=t0,
        )

    # Small batches: the two workers claim again and again while the other holds rows.
    reports = in_threads(2, lambda index: sweeps.sweep(now=t0, batch=3))

    handled = Counter(error.split(" ")[0].split("/")[1] for report in reports for error in report.errors)
    assert handled == Counter(ids), [report.errors for report in reports]
    assert not any(report.actions.get("rotate") for report in reports)
    for token in BootstrapToken.objects.filter(cluster=cluster):
        assert token.successor_id is None and token.last_error, token.token_id
        assert token.lease_until is None and token.next_action_at > t0, "released, with a retry time"
    # Once more at the same time: every row waits for its retry, nothing is taken again.
    assert not sweeps.sweep(now=t0).errors


def test_two_workers_never_check_the_same_keep_valid_policy():
    now = timezone.now()
    names = [f"keeper{index}" for index in range(6)]
    for name in names:
        TokenPolicy.objects.create(cluster=unreachable_cluster(name), keep_valid_token=True, next_check_at=now)

    # One batch of policies per sweep: three each, unless both took the same ones.
    reports = in_threads(2, lambda index: sweeps.sweep(now=now, batch=3))

    checked = Counter(error.split(" ")[0] for report in reports for error in report.errors)
    assert checked == Counter(names), [report.errors for report in reports]
    assert not BootstrapToken.objects.filter(status=BootstrapToken.Status.ACTIVE).exists()
    for policy in TokenPolicy.objects.all():
        assert policy.last_error and policy.lease_until is None and policy.next_check_at > now
