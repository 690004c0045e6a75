"""Nothing offered before it can work (issue 18 items 2 and 7).

On a cluster that was never initialized every action that needs its API server or its control
planes is shown disabled with the reason, and a direct request is refused with the same words
before any connection: the outgoing-connection gate (``core.network.check_destination``, which
every SSH and API connection passes) is pointed at a recorder here, and nothing may reach it.
An initialized cluster whose API server does not answer is reported unreachable, naming the
endpoint. The upgrade plan's policy, choice of targets and refusals agree with one another.
"""

from __future__ import annotations

import html
import socket

import pytest
from django.template.loader import render_to_string
from django.test import Client, override_settings
from django.urls import reverse

from clusters.models import Cluster
from kube import ClusterState, NodeState
from kubeadm import pki
from nodes.models import Node
from operations.models import Operation
from tests.conftest import team_of
from tests.factories import make_cluster
from tests.support.kubeclusters import store_authorities
from workflows import backup, upgrade
from workflows.models import EtcdSnapshot

pytestmark = pytest.mark.django_db

# Every destination a connection was about to be opened to (SSH or API), while a test runs.
DESTINATIONS: list[str] = []


def record_destination(address: str) -> None:
    """The connection guard of these tests: notes the address and refuses it."""
    DESTINATIONS.append(address)
    raise RuntimeError(f"a test of preconditions connected to {address}")


@pytest.fixture
def no_connections():
    DESTINATIONS.clear()
    with override_settings(CONNECTION_GUARD="tests.unit.test_action_preconditions.record_destination"):
        yield DESTINATIONS


@pytest.fixture(scope="module")
def ca() -> pki.KeyPair:
    return pki.generate_ca("kubernetes", "ECDSA-P256")


def _machine(cluster, name: str, role: str, *, kubeadm: str, status: str = Node.Status.JOINED) -> Node:
    return Node.objects.create(
        cluster=cluster,
        name=name,
        address=f"10.213.0.{11 + Node.objects.count()}",
        role=role,
        status=status,
        ssh_host_key="ssh-ed25519 AAAA",
        ssh_host_key_fingerprint="SHA256:x",
        facts={"binaries": {"kubeadm": {"path": "/usr/bin/kubeadm", "version": kubeadm}}},
    )


@pytest.fixture
def fresh(operator, ca):
    """Identity prepared, a machine checked, never initialized: what the user of issue 18 had."""
    cluster = make_cluster(
        "fresh", team=team_of(operator), control_plane_endpoint="10.213.0.11:6443", status=Cluster.Status.READY
    )
    store_authorities(cluster, {"ca": ca})
    _machine(cluster, "node1", Node.Role.CONTROL_PLANE, kubeadm="v1.37.2", status=Node.Status.REACHABLE)
    return cluster


@pytest.fixture
def client(operator) -> Client:
    made = Client()
    made.force_login(operator)
    return made


def _text(page) -> str:
    """A page as a person reads it (entities decoded)."""
    return html.unescape(page if isinstance(page, str) else page.content.decode())


def _said(response) -> list[str]:
    """The messages the page a redirect led to showed (each shown once, then gone)."""
    assert response.redirect_chain, "refused with a redirect back"
    return [str(m) for m in response.context["messages"]]


REFUSAL = "cluster fresh is not initialized — initialize the cluster first"
SHOWN = "Cluster fresh is not initialized: initialize the cluster first."


def test_every_action_on_an_uninitialized_cluster_is_shown_disabled_with_the_reason(fresh, client, no_connections):
    page = _text(client.get(fresh.get_absolute_url()))
    assert 'data-unavailable="day_two"' in page and SHOWN in page
    assert 'id="upgrade-plan-link"' not in page and reverse("daytwo:upgrade", args=[fresh.name]) not in page
    assert 'data-unavailable="create_token"' in page and 'id="create-token-link"' not in page
    # The reset needs no API server (a machine whose init failed is reset to start again), only
    # a machine holding something of the cluster: node1 was only checked.
    assert 'data-unavailable="reset"' in page and 'id="reset-form"' not in page

    tokens = _text(client.get(reverse("tokens:list", args=[fresh.name])))
    assert 'data-unavailable="create_token"' in tokens and 'id="create-token"' not in tokens
    assert SHOWN in tokens

    plan = _text(client.get(reverse("daytwo:upgrade", args=[fresh.name]) + "?target=v1.38.0"))
    assert "Cluster fresh is not initialized." in plan and "Initialize the cluster first." in plan
    for part in ("What will change", 'id="plan-order"', 'id="plan-nodes"', 'id="plan-target"', "start-upgrade"):
        assert part not in plan, part

    certificates = _text(client.get(reverse("daytwo:certificates", args=[fresh.name])))
    assert 'data-unavailable="read_certificates"' in certificates and 'id="read-certificates"' not in certificates
    assert 'data-unavailable="renew_certificates"' in certificates and 'id="renew-form"' not in certificates

    EtcdSnapshot.objects.create(cluster=fresh, status=EtcdSnapshot.Status.AVAILABLE)  # from before a reset
    backups = _text(client.get(reverse("daytwo:backups", args=[fresh.name])))
    assert 'data-unavailable="snapshot"' in backups and 'id="take-snapshot"' not in backups

    configuration = _text(client.get(reverse("daytwo:configuration", args=[fresh.name])))
    assert REFUSAL in configuration and 'id="rendered"' in configuration  # what Kubeboard renders, still
    assert 'data-unavailable="export_kubelet"' in configuration and 'id="export-kubelet"' not in configuration
    assert no_connections == []


def test_direct_requests_are_refused_with_the_reason_and_no_connection(fresh, client, no_connections):
    from django.contrib.auth.models import User

    snapshot = EtcdSnapshot.objects.create(cluster=fresh, status=EtcdSnapshot.Status.AVAILABLE)
    posts = {
        "daytwo:upgrade-start": {"target": "v1.37.2", "batch_size": "1"},
        "daytwo:certificates-read": {},
        "daytwo:certificates-renew": {"names": ["all"]},
        "daytwo:snapshot": {},
    }
    for route, data in posts.items():
        response = client.post(reverse(route, args=[fresh.name]), data, follow=True)
        assert _said(response) == [REFUSAL], route
    superuser = Client()
    superuser.force_login(User.objects.create_superuser("root"))
    restore = superuser.post(
        reverse("daytwo:snapshot-restore", args=[fresh.name, snapshot.pk]), {"confirm": fresh.name}, follow=True
    )
    assert _said(restore) == [REFUSAL]
    export = client.get(reverse("daytwo:configuration-export", args=[fresh.name]) + "?kubelet=1", follow=True)
    assert _said(export) == [REFUSAL]
    plain = client.get(reverse("daytwo:configuration-export", args=[fresh.name]))
    assert plain.status_code == 200 and b"kind: ClusterConfiguration" in plain.content  # needs no cluster

    token = client.post(
        reverse("tokens:create", args=[fresh.name]),
        {"ttl": "1h", "usages": ["signing", "authentication"], "groups": ""},
    )
    assert token.status_code == 400 and f"Nothing was created: {REFUSAL}" in _text(token)
    assert not Operation.objects.filter(cluster=fresh).exists()
    assert no_connections == []


def test_an_initialized_cluster_whose_api_server_does_not_answer_is_named_unreachable(operator, ca, client):
    with socket.socket() as probe:  # a port nobody listens on (loopback: the test guard allows it)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cluster = make_cluster(
        "quiet", team=team_of(operator), control_plane_endpoint=f"127.0.0.1:{port}", status=Cluster.Status.RUNNING
    )
    store_authorities(cluster, {"ca": ca})
    _machine(cluster, "cp1", Node.Role.CONTROL_PLANE, kubeadm="v1.37.2")
    page = _text(client.get(reverse("daytwo:upgrade", args=[cluster.name]) + "?target=v1.37"))
    said = f"cluster quiet is unreachable: the API server at 127.0.0.1:{port} does not answer"
    assert page.count(said) == 1, "said once"
    assert "Connection refused" in page and "not initialized" not in page
    assert "What will change" not in page and 'id="plan-order"' not in page
    configuration = _text(client.get(reverse("daytwo:configuration", args=[cluster.name])))
    assert said in configuration


# --- the upgrade plan, rendered -----------------------------------------------------------------------


def _state(server: str, names: list[str]) -> ClusterState:
    nodes = {}
    for name in names:
        plane = name.startswith("cp")
        images = {c: f"registry.k8s.io/{c}:{server}" for c in ("kube-apiserver", "kube-controller-manager")}
        nodes[name] = NodeState(name, True, plane, server, False, images if plane else {})
    return ClusterState(server_version=server, nodes=nodes)


@pytest.fixture
def running(operator, ca):
    cluster = make_cluster("up", team=team_of(operator), kubernetes_version="v1.36.3", status=Cluster.Status.RUNNING)
    store_authorities(cluster, {"ca": ca})
    _machine(cluster, "cp1", Node.Role.CONTROL_PLANE, kubeadm="v1.36.3")
    _machine(cluster, "w1", Node.Role.WORKER, kubeadm="v1.36.3")
    return cluster


def _page(cluster, plan) -> str:
    return _text(
        render_to_string(
            "daytwo/upgrade_plan.html",
            {"cluster": cluster, "plan": plan, "tools": backup.settings_for(cluster), "can_operate": True},
        )
    )


def test_the_plan_offers_the_allowed_targets_as_a_choice_named_by_the_policy(running):
    plan = upgrade.build_plan(running, state=_state("v1.36.3", ["cp1", "w1"]))
    assert plan.suggestions == ["v1.37.2"]
    assert "may go to v1.37.2 (" in plan.policy and "1.38" not in plan.policy
    page = _page(running, plan)
    assert '<select id="plan-target" name="target"><option value="v1.37.2">v1.37.2</option></select>' in page
    assert "What will change" not in page and "refusals" not in page  # no target chosen yet
    # No package command: the line says what each machine's kubeadm means, as the machines have it.
    assert "none: each machine's own kubeadm is used (cp1 v1.36.3, w1 v1.36.3)" in page


def test_a_refused_plan_shows_only_its_reason_and_the_way_forward(running):
    newest = upgrade.build_plan(running, "v1.38.0", state=_state("v1.37.2", ["cp1", "w1"]))
    assert newest.suggestions == [] and "No version this Kubeboard deploys" in newest.policy
    assert [r.message for r in newest.refusals] == [
        "Kubernetes v1.38.0 is outside the versions this Kubeboard drives (1.35, 1.36, 1.37)"
    ]
    page = _page(running, newest)
    assert "nothing to upgrade to: v1.37.2 is as new as this Kubeboard deploys" in page
    assert "allowed targets: none" not in page and 'id="no-targets"' in page
    for part in ("What will change", 'id="plan-order"', 'id="plan-steps"', "start-upgrade", "kubeadm v1.36.3 is older"):
        assert part not in page, part

    # The machines' kubeadm cannot reach the target: one instruction, and the kubeadm line agrees.
    older = upgrade.build_plan(running, "1.37", state=_state("v1.36.3", ["cp1", "w1"]))
    assert older.target == "v1.37.2", "1.37 is the newest patch of 1.37, as in every form"
    page = _page(running, older)
    assert page.count("kubeadm v1.36.3 is older than Kubernetes v1.37.2") == 2  # cp1 and w1
    assert page.count("install kubeadm v1.37.2 on the machines") == 1
    assert "not every machine can upgrade to v1.37.2 with its own kubeadm: cp1 has v1.36.3, w1 has v1.36.3" in page
    assert "already have the target kubeadm" not in page and "What will change" not in page


def test_a_target_that_is_no_version_is_one_error_shown_once(running):
    plan = upgrade.build_plan(running, "1.3x", state=_state("v1.36.3", ["cp1", "w1"]))
    assert len(plan.refusals) == 1 and "target version" in plan.refusals[0].message
    page = _page(running, plan)
    assert page.count(plan.refusals[0].message) == 1
    assert "choose one of the allowed targets: v1.37.2" in page


def test_an_allowed_plan_says_every_machine_can_and_shows_what_changes(running):
    Node.objects.filter(cluster=running).update(
        facts={"binaries": {"kubeadm": {"path": "/usr/bin/kubeadm", "version": "v1.37.2"}}}
    )
    plan = upgrade.build_plan(running, "v1.37.2", state=_state("v1.36.3", ["cp1", "w1"]))
    assert plan.allowed, plan.refusals
    page = _page(running, plan)
    assert "none: every machine's kubeadm can upgrade to v1.37.2" in page
    assert 'id="plan-allowed"' in page and "What will change" in page and 'id="start-upgrade"' in page


# --- the precondition itself, each way it is unmet --------------------------------------------------


def test_running_is_met_only_for_a_running_cluster_whose_api_server_kubeboard_can_reach(operator, ca):
    from clusters import preconditions

    def said(cluster) -> str:
        return str(preconditions.running(cluster))

    held = make_cluster("held", team=team_of(operator), status=Cluster.Status.RUNNING)
    store_authorities(held, {"ca": ca})
    assert preconditions.running(held).met and preconditions.for_cluster(held)["create_token"].met

    starting = make_cluster("starting", team=team_of(operator), status=Cluster.Status.INITIALIZING)
    store_authorities(starting, {"ca": ca})
    assert said(starting) == "cluster starting is being initialized — wait until its initialization ends"

    keyless = make_cluster("keyless", team=team_of(operator), status=Cluster.Status.RUNNING)
    assert said(keyless) == "Kubeboard holds no CA key for cluster keyless — adopt it with an admin kubeconfig"

    adopted = make_cluster("adopted", team=team_of(operator), origin=Cluster.Origin.ADOPTED)
    assert said(adopted) == "adopted cluster adopted has no stored kubeconfig — adopt it again with an admin kubeconfig"
    adopted.admin_kubeconfig = "apiVersion: v1\nkind: Config\n"
    assert preconditions.running(adopted).met, "an adopted cluster's status is Kubeboard's, not kubeadm's"
    assert not preconditions.for_cluster(keyless)["upgrade"] and preconditions.for_cluster(adopted)["upgrade"]


def test_the_cluster_page_checks_the_preconditions_once_for_all_its_parts(operator, ca):
    """The tokens and day-two parts each ask ``{% preconditions_of %}``; the checks (a CA-key
    query, the reset query) run once per page, not once per part."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from workflows.templatetags.preconditions import preconditions_of

    cluster = make_cluster("once", team=team_of(operator), status=Cluster.Status.RUNNING)
    store_authorities(cluster, {"ca": ca})
    with CaptureQueriesContext(connection) as first:
        answers = preconditions_of(cluster)
    with CaptureQueriesContext(connection) as again:
        assert preconditions_of(cluster) is answers
    assert len(first) > 0 and len(again) == 0
    assert answers["create_token"] and answers["day_two"]
