"""Issue 18: a resumed phase runs with the settings as they are now, each attempt records them and
the operation page shows what changed; the Initialize and Join forms offer the machines of the
right role and kubeadm's own phase names to skip; hints link to the pages they name.

Through Django's test client and the real runner and join kind (the machine address is one the
test suite's connection guard refuses, so check-machine fails at once, with no machine needed).
"""

from __future__ import annotations

import re

import pytest

from clusters.models import Cluster
from kubeadm import workflow
from kubeadm.output import parse_line
from nodes import readiness
from nodes.models import Node
from operations.formatting import settings_changes
from operations.models import Operation, PhaseAttempt
from operations.runner import run_operation
from operations.services import OperationStateError, resume_operation
from tests.conftest import team_of
from tests.support.testbed_cluster import ready_cluster
from tests.unit.test_cluster_actions import FACTS_OK, PINNED
from workflows.join import start_join

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def cluster(operator):
    cluster = ready_cluster("web", "10.0.0.10:6443", team=team_of(operator), user=operator)
    Cluster.objects.filter(pk=cluster.pk).update(ignore_preflight_errors=["CRI"], join_parallelism=4)
    return Cluster.objects.get(pk=cluster.pk)


def machine(cluster, name, address, role=Node.Role.WORKER, **fields) -> Node:
    return Node.objects.create(
        cluster=cluster, name=name, address=address, role=role, facts=FACTS_OK, **PINNED, **fields
    )


def test_settings_changes_say_what_was_added_removed_or_switched():
    assert settings_changes(
        {"ignore-preflight-errors": ["CRI"]}, {"ignore-preflight-errors": ["CRI", "ImagePull"]}
    ) == ["ignore-preflight-errors + ImagePull"]
    assert settings_changes({"ignore-preflight-errors": ["CRI", "Mem"]}, {"ignore-preflight-errors": ["CRI"]}) == [
        "ignore-preflight-errors − Mem"
    ]
    assert settings_changes({"certificate-method": "pre-seed"}, {"certificate-method": "upload-certs"}) == [
        "certificate-method pre-seed → upload-certs"
    ]
    assert settings_changes({"skip-phases": ["a", "b"]}, {"skip-phases": ["b", "a"]}) == []


def test_a_resumed_join_reads_the_ignore_lists_again_and_records_each_attempt(client, cluster, operator):
    Cluster.objects.filter(pk=cluster.pk).update(status=Cluster.Status.RUNNING)
    node = machine(cluster, "cp2", "10.0.0.12", role=Node.Role.CONTROL_PLANE)
    join = start_join(cluster, [node], control_plane=True, user=operator)
    assert run_operation(join.pk) == Operation.Status.FAILED  # the guard refuses the address
    # The person adds a check to the machine's list and another to the cluster's, then resumes.
    Node.objects.filter(pk=node.pk).update(ignore_preflight_errors=["ImagePull"])
    Cluster.objects.filter(pk=cluster.pk).update(
        ignore_preflight_errors=["CRI", "Swap"], control_plane_join_method=Cluster.ControlPlaneJoinMethod.UPLOAD_CERTS
    )
    resume_operation(join, user=operator)
    assert run_operation(join.pk) == Operation.Status.FAILED
    first, second = PhaseAttempt.objects.filter(phase__operation=join, phase__name="check-machine").order_by("number")
    assert first.settings == {
        "ignore-preflight-errors": ["CRI"],
        "certificate-method": "pre-seed",
        "skip-phases": [],
    }
    assert second.settings["ignore-preflight-errors"] == ["CRI", "Swap", "ImagePull"]
    # Once resumed, the cluster's certificate method as it is now.
    assert second.settings["certificate-method"] == "upload-certs"
    assert second.changes == [
        "certificate-method pre-seed → upload-certs",
        "ignore-preflight-errors + Swap, ImagePull",
    ]
    # The page shows it, and so does the attempt's "running" event (the websocket's and the log's).
    client.force_login(operator)
    html = client.get(f"/operations/{join.pk}/").content.decode()
    assert "attempt 2: ignore-preflight-errors + Swap, ImagePull" in html
    event = join.events.filter(kind="phase", data__status="running", data__attempt=2).get()
    assert event.data["changes"] == second.changes and "changed settings" in event.message
    log = b"".join(client.get(f"/operations/{join.pk}/log.txt")).decode()
    assert "changed: certificate-method pre-seed → upload-certs; ignore-preflight-errors + Swap, ImagePull" in log


def test_an_init_attempt_records_the_settings_it_read_when_it_started(client, cluster, operator):
    node = machine(cluster, "cp1", "10.0.0.11", role=Node.Role.CONTROL_PLANE, ignore_preflight_errors=["Mem"])
    client.force_login(operator)
    client.post(f"/clusters/{cluster.name}/initialize/", {"node": node.pk, "skip": ["addon"]})
    init = Operation.objects.get(kind="init")
    Node.objects.filter(pk=node.pk).update(ignore_preflight_errors=["Mem", "ImagePull"])  # changed once queued
    assert run_operation(init.pk) == Operation.Status.FAILED  # the guard refuses the address
    attempt = PhaseAttempt.objects.get(phase__operation=init, phase__name="check-machine")
    assert attempt.settings == {
        "ignore-preflight-errors": ["CRI", "Mem", "ImagePull"],
        "certificate-method": cluster.control_plane_join_method,
        "skip-phases": ["addon"],
    }


def test_the_resume_panel_offers_kubeadm_phases_by_their_names_only(client, cluster, operator):
    Cluster.objects.filter(pk=cluster.pk).update(status=Cluster.Status.RUNNING)
    node = machine(cluster, "node3", "10.0.0.13")
    join = start_join(cluster, [node], user=operator)
    assert run_operation(join.pk) == Operation.Status.FAILED
    client.force_login(operator)
    html = client.get(f"/operations/{join.pk}/").content.decode()
    values = re.findall(r'name="skip" value="([^"]+)"', html)
    assert values == [f"node3:{name}" for name in workflow.skippable_phases("join-worker")]
    assert "preflight on node3" in html and "--skip-phases</code> names;" not in html
    with pytest.raises(OperationStateError, match="cannot skip 'node3:check-machine'"):
        resume_operation(join, user=operator, skip=["node3:check-machine"], skip_reason="x")
    response = client.post(
        f"/operations/{join.pk}/resume/", {"skip": ["node3:verify-node"], "reason": "x"}, follow=True
    )
    assert "node3:verify-node is not one of the available choices" in response.content.decode()
    assert Operation.objects.get(pk=join.pk).status == Operation.Status.FAILED


def test_initialize_offers_control_planes_and_kubeadm_init_phases(client, cluster, operator):
    machine(cluster, "cp1", "10.0.0.11", role=Node.Role.CONTROL_PLANE)
    worker = machine(cluster, "w1", "10.0.0.21")
    client.force_login(operator)
    html = client.get(f"/clusters/{cluster.name}/").content.decode()
    form = html[html.index('id="initialize-form"') : html.index("</form>", html.index('id="initialize-form"'))]
    # The choices themselves: the form's random CSRF token once held "w1".
    assert re.findall(r"<option value=\"\d+\">([^<]*)</option>", form) == ["cp1 (10.0.0.11)"]
    skips = re.findall(r'name="skip" value="([^"]+)"', form)
    assert skips[0] == "preflight" and "addon" in skips
    assert not {"check-machine", "verify-api-server", "read-back", "show-join-command"} & set(skips)
    response = client.post(f"/clusters/{cluster.name}/initialize/", {"node": worker.pk}, follow=True)
    assert "Select a valid choice" in response.content.decode()
    assert not Operation.objects.filter(kind="init").exists()


def test_each_join_form_lists_its_role_and_the_cluster_setting_bounds_workers(client, cluster, operator):
    Cluster.objects.filter(pk=cluster.pk).update(status=Cluster.Status.RUNNING)
    w1 = machine(cluster, "w1", "10.0.0.21")
    machine(cluster, "w2", "10.0.0.22", status=Node.Status.JOINED)
    cp2 = machine(cluster, "cp2", "10.0.0.12", role=Node.Role.CONTROL_PLANE)
    client.force_login(operator)
    html = client.get(f"/clusters/{cluster.name}/").content.decode()

    def form(form_id: str) -> str:
        start = html.index(f'id="{form_id}"')
        return html[start : html.index("</form>", start)]

    workers, control_planes = form("join-workers-form"), form("join-control-plane-form")
    assert re.findall(r'name="nodes" value="(\d+)"', workers) == [str(w1.pk)]  # w2 joined already
    assert re.findall(r'name="nodes" value="(\d+)"', control_planes) == [str(cp2.pk)]
    assert 'name="parallelism"' not in workers and "Workers at once" not in html
    assert "at most 4 at once" in workers
    assert re.findall(r'name="skip" value="([^"]+)"', workers) == list(workflow.skippable_phases("join-worker"))
    assert "control-plane-prepare" in control_planes
    # A worker posted to the control-plane form is not a choice there.
    response = client.post(f"/clusters/{cluster.name}/join/", {"nodes": [w1.pk], "control_plane": "on"}, follow=True)
    assert "Select a valid choice" in response.content.decode()
    # A posted "parallelism" is no longer read: the cluster's setting bounds the join, as it is
    # when the join runs.
    response = client.post(
        f"/clusters/{cluster.name}/join/", {"nodes": [w1.pk], "parallelism": 9, "skip": ["preflight"]}
    )
    join = Operation.objects.get(kind="join-workers")
    assert response.status_code == 302 and "parallelism" not in join.params
    assert join.phases.get(name="preflight").status == "skipped"
    from operations.registry import get_kind

    Cluster.objects.filter(pk=cluster.pk).update(join_parallelism=2)
    assert get_kind("join-workers").parallel_groups(Operation.objects.select_related("cluster").get(pk=join.pk)) == 2


def test_a_populated_machine_hint_links_to_reset_where_it_is(client, cluster, operator):
    node = machine(cluster, "m2", "10.0.0.12")
    facts = dict(FACTS_OK, etc_kubernetes={"populated": True, "count": 1, "files": ["/etc/kubernetes/kubelet.conf"]})
    (refusal,) = readiness.refusals(facts, node=node, kubernetes_version="v1.37.2")
    assert f"/clusters/{cluster.name}/#reset-node" in refusal.hint and "Reset node on its page" not in refusal.hint
    # The place it names exists: the cluster page's Day two panel has "Reset a machine" there
    # for a machine whose join failed.
    Node.objects.filter(pk=node.pk).update(status=Node.Status.FAILED)
    client.force_login(operator)
    html = client.get(f"/clusters/{cluster.name}/").content.decode()
    assert 'id="reset-node"' in html and "Reset a machine" in html


def test_the_hint_on_the_operation_page_is_a_link(client, cluster, operator):
    Cluster.objects.filter(pk=cluster.pk).update(status=Cluster.Status.RUNNING)
    node = machine(cluster, "w1", "10.0.0.21")
    join = start_join(cluster, [node], user=operator)
    run_operation(join.pk)
    hint = "reset it (/clusters/web/#reset-node), then resume"
    join.phases.filter(name="check-machine").update(hint=hint)
    client.force_login(operator)
    html = client.get(f"/operations/{join.pk}/").content.decode()
    assert '(<a href="/clusters/web/#reset-node">/clusters/web/#reset-node</a>)' in html


def test_kubeadms_closing_error_line_restates_and_is_marked_so():
    assert parse_line("\t[ERROR ImagePull]: failed to pull image").summary is False
    closing = parse_line("error: error execution phase preflight: preflight checks failed")
    assert (closing.level, closing.summary) == ("error", True)
