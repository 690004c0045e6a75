"""Issue 18 item 3 in Chromium: the cluster page leads. Its next step is above the fold on a laptop
(1280x800) and a phone (390x844), a tab opens the collapsed section it names, and an operation's
page hides Pause and Cancel the moment the operation ends and offers the way on, without a reload
(a real daphne and worker; the plain-Python test kinds of tests/support/kinds.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

import tests.support.kinds  # noqa: F401  (registers the test kinds in this process too)
from clusters.models import CertificateAuthority, Cluster, ClusterInventory
from nodes.models import Node
from operations.models import Operation
from operations.services import start_operation
from tests.conftest import session_cookie, team_of
from tests.e2e.test_browser import browser_page  # noqa: F401  (the Chromium fixture)
from tests.e2e.test_operation_page import KINDS, wait_js
from tests.factories import make_cluster
from tokens.models import BootstrapToken

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.timeout(300)]

LAPTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBvYc1kzWnUq2m1cJ6fG2nGqvYfMZ2bM2hJw0cXcCq6Z"
# An element's top edge is inside the window (format with its id).
IN_VIEW = "(r => r.top >= 0 && r.top < window.innerHeight)(document.getElementById('{}').getBoundingClientRect())"
ABOVE_THE_FOLD = """(() => { const r = document.getElementById('next-step-action').getBoundingClientRect();
  return r.top >= 0 && r.bottom <= window.innerHeight && r.left >= 0 && r.right <= window.innerWidth; })()"""


def a_running_cluster(operator) -> Cluster:
    """A cluster as it looks an hour in: initialized on cp1, five workers of which two wait to
    join, a read-back, operations, a token, the identity with its YAML."""
    cluster = make_cluster(
        "leads",
        team=team_of(operator),
        status=Cluster.Status.RUNNING,
        ca_pin_hash="sha256:" + "ab" * 32,
        kubeadm_config="apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n" + "# line\n" * 60,
    )
    Node.objects.create(
        cluster=cluster,
        name="cp1",
        address="10.0.0.11",
        role=Node.Role.CONTROL_PLANE,
        status=Node.Status.JOINED,
        ssh_host_key=HOST_KEY,
    )
    for index in range(2, 7):
        joined = index < 5
        Node.objects.create(
            cluster=cluster,
            name=f"w{index}",
            address=f"10.0.0.{10 + index}",
            status=Node.Status.JOINED if joined else Node.Status.NEW,
            ssh_host_key=HOST_KEY,
        )
    ClusterInventory.objects.create(
        cluster=cluster,
        collected_at=timezone.now(),
        api_nodes=[
            {"name": name, "ready": True, "roles": [], "kubelet_version": "v1.37.2"}
            for name in ("cp1", "w2", "w3", "w4")
        ],
    )
    for name in ("ca", "front-proxy-ca", "etcd/ca"):
        CertificateAuthority.objects.create(cluster=cluster, name=name, not_after=timezone.now() + timedelta(days=3650))
    BootstrapToken.objects.create(
        cluster=cluster, token_id="abcdef", secret="0123456789abcdef", expires_at=timezone.now() + timedelta(hours=20)
    )
    for kind in ("prepare-identity", "init", "join-workers", "read-back"):
        Operation.objects.create(cluster=cluster, kind=kind, requested_by=operator, status=Operation.Status.SUCCEEDED)
    return cluster


def test_the_next_step_is_above_the_fold_and_tabs_open_their_section(stack_factory, operator, browser_page, tmp_path):  # noqa: F811
    stack = stack_factory(workers=0)
    page = browser_page
    page.context.add_cookies([{"name": "sessionid", "value": session_cookie(operator), "url": stack.http}])
    a_running_cluster(operator)
    fresh = make_cluster(
        "fresh", team=team_of(operator), status=Cluster.Status.READY, ca_pin_hash="sha256:" + "cd" * 32
    )

    for size in (LAPTOP, PHONE):
        page.set_viewport_size(size)
        page.goto(f"{stack.http}/clusters/leads/")
        assert page.inner_text("#next-step-title") == "Join workers"
        assert page.evaluate(ABOVE_THE_FOLD), f"the next step is above the fold at {size}"
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), (
            f"no sideways scroll at {size}"
        )
        page.screenshot(path=str(tmp_path / f"leads-{size['width']}.png"))
        # The step's link goes to the Join form, after the control plane's section: the form is on
        # the page (visible) either way, so what the link proves is that it is brought into view.
        assert not page.evaluate(IN_VIEW.format("join-workers-form")), f"the Join form starts out of view at {size}"
        page.click("#next-step-action")
        assert page.url.endswith("#join-actions")
        wait_js(page, IN_VIEW.format("join-workers-form"), timeout=5)

        page.goto(f"{stack.http}/clusters/fresh/")
        assert page.inner_text("#next-step-title") == "Generate the cluster's SSH key"
        assert page.evaluate(ABOVE_THE_FOLD), f"the first step is above the fold at {size}"

    # The identity and its YAML wait collapsed; the tab opens them.
    page.set_viewport_size(LAPTOP)
    page.goto(f"{stack.http}/clusters/leads/")
    assert not page.is_visible("#kubeadm-config") and not page.is_visible("#authorities")
    page.click("#cluster-tabs a[href='#identity']")
    assert page.is_visible("#authorities") and page.is_visible("#kubeadm-config")
    page.click("#cluster-tabs a[href='#cluster-actions']")
    assert page.evaluate("document.getElementById('cluster-actions').getBoundingClientRect().top") < 50
    assert page.inner_text("#cluster-actions h2") == "Control plane"
    # A bookmark to a collapsed section opens it too.
    page.goto(f"{stack.http}/clusters/leads/#after-init")
    assert page.is_visible("#api-nodes")

    # The button is the real action: the cluster gets its key, and the step moves on live.
    page.goto(f"{stack.http}/clusters/fresh/")
    page.click("#next-step-action")
    page.wait_for_url("**/clusters/fresh/**")
    assert page.inner_text("#next-step-title") == "Add a machine"
    assert fresh.ssh_key.public_key in page.inner_text("#cluster-public-key")


def test_pause_and_cancel_go_when_the_operation_ends_and_the_next_step_appears(
    stack_factory,
    operator,
    browser_page,  # noqa: F811
):
    stack = stack_factory(**KINDS)
    page = browser_page
    page.context.add_cookies([{"name": "sessionid", "value": session_cookie(operator), "url": stack.http}])
    cluster = make_cluster(team=team_of(operator), status=Cluster.Status.READY, ca_pin_hash="sha256:" + "ab" * 32)
    operation = start_operation(cluster, "test-steps", user=operator, params={"sleep": 2})

    page.goto(f"{stack.http}/operations/{operation.pk}/")
    page.wait_for_selector("#operation-status[data-status=running]", timeout=60_000)
    page.evaluate("window.notReloaded = true")
    assert page.is_visible("#log-follow") and page.is_visible("#cancel-form")
    assert not page.is_visible("#next-step-link")
    # While it runs, Pause stops following and Follow jumps back to the newest line.
    page.click("#log-follow")
    assert page.inner_text("#log-follow") == "Follow" and page.get_attribute("#log-follow", "aria-pressed") == "false"
    page.evaluate("document.getElementById('log').scrollTop = 0")
    page.click("#log-follow")
    assert page.inner_text("#log-follow") == "Pause"
    assert page.evaluate("(l => l.scrollHeight - l.scrollTop - l.clientHeight < 2)(document.getElementById('log'))")

    page.wait_for_selector("#operation-status[data-status=succeeded]", timeout=60_000)
    wait_js(page, "document.getElementById('log-follow').hidden")
    assert not page.is_visible("#log-follow") and not page.is_visible("#cancel-form")
    assert page.inner_text("#connection-state").startswith("ended: operation succeeded")
    assert page.is_visible("#next-step-link")
    assert page.evaluate("window.notReloaded") is True, "it changed without a reload"
    page.click("#next-step-link-action")
    page.wait_for_url(f"**/clusters/{cluster.name}/#next-step")
    assert page.inner_text("#next-step-title") == "Generate the cluster's SSH key"

    # Reopened after the end: the step itself, named, and no Pause.
    page.goto(f"{stack.http}/operations/{operation.pk}/")
    assert page.inner_text("#next-step-link-action") == "Generate the cluster's SSH key"
    assert not page.is_visible("#log-follow")
