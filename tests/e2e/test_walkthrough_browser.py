"""The README's test-bed walkthrough in Chromium, as a person does it ("Done when" of issues 18 and 19).

From bare machines (``up --bare``: nothing of Kubernetes on them), with the README's own lines for
the shell part run as written through bash (the artifact set written by the test bed, imported with
``manage.py artifacts import``, the cluster's key given to the machines), then only clicks, at
1280x800: log in as the first administrator, Create team, New cluster, Generate the cluster's SSH
key, Add machine three times with roles, Check machine and accept each host key after comparing it
with the README's ssh-keygen line, Check machine again (a bare machine: kubeadm not found), the
next step leading to Prepare machines, the artifact set chosen as the source, Prepare of all three
from the cluster page, the Prepare operation's page leading on to Initialize, the cluster's
preflight ignore list as the README gives it (SystemVerification only: CRI,
ContainerRuntimeVersion, ImagePull and the ip_forward check run and pass on prepared machines),
Initialize node1, Join workers node2, and at 390x844 Join control plane node3; three Ready nodes
in the API server at the end. Then the key pages again at 390x844.

On every page: nothing wider than the viewport at either width, and no console error; after every
form post, reloading the page it led to creates nothing a second time. At each stage the cluster
page offers only what can work then (no token or day two before init, each shown disabled with
its reason; Initialize and each join list only machines of their role).

Written against element ids where the pages have them; the README's own words (labels, the
ignore list, the shell lines) are read from the README, so a change there is walked here.

Run it in its own pytest process: ``pytest -m browser -p no:cacheprovider tests/e2e/test_walkthrough_browser.py``.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.test_browser import browser_page  # noqa: F401 (the Chromium fixture)
from tests.e2e.test_readme_walkthrough import ROOT, section
from tests.e2e.test_testbed_bare import require_runtime_set
from tests.support.testbed_cluster import machine_fingerprint
from tools.testbed.preflight import TESTBED_PREPARED
from tools.testbed.testing import require_binaries, sandbox

pytestmark = [pytest.mark.cluster, pytest.mark.browser, pytest.mark.e2e, pytest.mark.timeout(1200)]

# A sandbox of its own: not kbtb (a person's), not kbtb plus letters (setup-testbed.sh's leftovers),
# not kbwalk (test_readme_walkthrough.py, which may run at the same time in the cluster pass).
NAME, SUBNET = "kbwalkb", "10.213.89.0/24"
CLUSTER = "walk"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
FITS = "document.documentElement.scrollWidth <= window.innerWidth"
# What sticks out, for the message: elements past the viewport's right edge that no scroll box
# (overflow-x other than visible) around them keeps in.
OVERFLOW = """() => [...document.querySelectorAll('body *')].filter(e => {
    if (e.getBoundingClientRect().right <= window.innerWidth + 1) return false;
    for (let a = e.parentElement; a && a !== document.body; a = a.parentElement)
      if (getComputedStyle(a).overflowX !== 'visible') return false;
    return true;
  }).sort((a, b) => b.getBoundingClientRect().right - a.getBoundingClientRect().right)
  .slice(0, 5).map(e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + (e.className ? '.' + e.className : '')
    + ' ' + Math.round(e.getBoundingClientRect().right) + 'px')"""


def readme_ignore_list() -> str:
    found = re.search(r"set the\s+preflight\s+checks to ignore to\s+`([^`]+)`", section())
    assert found, "the README's walkthrough no longer gives the cluster's ignore list"
    return found.group(1)


def readme_line(marker: str) -> str:
    """The README's one shell line containing ``marker``."""
    lines = [line for line in section().splitlines() if marker in line]
    assert len(lines) == 1, lines
    return lines[0]


def shell(line: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """A README line as written, through bash, from the repository root."""
    return subprocess.run(["bash", "-c", line], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


class Walk:
    """The browser tab plus what every step checks: page width, console errors, no double posts."""

    def __init__(self, page, base: str) -> None:
        self.page = page
        self.base = base
        self.errors: list[str] = []
        page.on(
            "console", lambda message: message.type == "error" and self.errors.append(f"{page.url}: {message.text}")
        )
        page.on("pageerror", lambda error: self.errors.append(f"{page.url}: {error}"))

    def too_wide(self) -> str:
        """'' when the page fits its viewport, else what sticks out."""
        if self.page.evaluate(FITS):
            return ""
        widths = self.page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        return f"{self.page.url} is {widths[0]} px wide in {widths[1]}: {self.page.evaluate(OVERFLOW)}"

    def fits(self) -> None:
        """The page as it is now, at both widths: whichever the walk is at, then the other."""
        here = self.page.viewport_size
        wide = [self.too_wide()]
        for size in (PHONE, DESKTOP):
            if size != here:
                self.page.set_viewport_size(size)
                wide.append(self.too_wide())
        self.page.set_viewport_size(here)
        wide = [w for w in wide if w]
        assert not wide, wide

    def goto(self, path: str) -> None:
        self.page.goto(self.base + path)
        self.fits()

    def reload_creates_nothing(self, count) -> None:
        """Reload the page a post led to (POST-redirect-GET): ``count()`` must not change."""
        before = count()
        self.page.reload()
        self.page.wait_for_load_state("load")
        self.fits()
        assert count() == before, f"reloading {self.page.url} created something again: {before} -> {count()}"

    def wait_operation(self, status: str, timeout: int, stack) -> None:
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        from operations.models import Operation

        try:
            self.page.wait_for_selector(f"#operation-status[data-status={status}]", timeout=timeout)
        except PlaywrightTimeout:
            operation = Operation.objects.get(pk=int(self.page.url.rstrip("/").rsplit("/", 1)[1]))
            last = list(operation.events.order_by("-seq").values_list("message", flat=True)[:20])
            raise AssertionError(
                f"expected {status}: {operation} {operation.status}: {operation.error}\n{last}\n{stack.logs()[-3000:]}"
            ) from None
        self.fits()


def offered(walk: Walk) -> dict[str, object]:
    """What the cluster page offers now: the actions shown usable, those shown disabled with a
    reason (data-unavailable), and the machines each of Initialize and the two joins lists."""
    page = walk.page
    walk.goto(f"/clusters/{CLUSTER}/")
    usable = {
        name
        for name, selector in {
            "create_token": "#create-token-link",
            "day_two": "#upgrade-plan-link",
            "initialize": "#initialize",
            "join_workers": "#join-workers",
            "join_control_plane": "#join-control-plane",
        }.items()
        if page.locator(selector).count()
    }
    disabled = set(page.eval_on_selector_all("[data-unavailable]", "els => els.map(e => e.dataset.unavailable)"))
    listed = {
        "initialize": page.eval_on_selector_all(
            "#id_node option", "os => os.filter(o => o.value).map(o => o.text.split(' ')[0])"
        ),
        "join_workers": page.eval_on_selector_all(
            "#join-workers-form label.check:not(.skip-choice)", "ls => ls.map(l => l.innerText.trim().split(' ')[0])"
        ),
        "join_control_plane": page.eval_on_selector_all(
            "#join-control-plane-form label.check:not(.skip-choice)",
            "ls => ls.map(l => l.innerText.trim().split(' ')[0])",
        ),
    }
    return {"usable": usable, "disabled": disabled, "listed": {k: [m for m in v if m] for k, v in listed.items()}}


def operations_count() -> int:
    from operations.models import Operation

    return Operation.objects.count()


def add_machine(walk: Walk, sb, index: int, role: str) -> None:
    from nodes.models import Node

    machine = sb.node(index)
    walk.goto(f"/clusters/{CLUSTER}/")
    walk.page.click("#add-machine")
    walk.fits()
    walk.page.fill("#id_name", machine.name)
    walk.page.fill("#id_address", machine.address)
    assert walk.page.input_value("#id_ssh_user") == "root", "the README says user root (the form's default)"
    walk.page.select_option("#id_role", role)
    walk.page.click("main button[type=submit]")
    walk.page.wait_for_url(f"**/clusters/{CLUSTER}/nodes/{machine.name}/")
    walk.reload_creates_nothing(lambda: Node.objects.filter(cluster__name=CLUSTER).count())

    walk.page.click("#check-machine")
    walk.page.wait_for_selector("#check-status.status-hostkey-offered", timeout=60_000)
    assert "host key not accepted yet" in walk.page.inner_text("main")
    # The README's comparison: ssh-keygen -lf on the machine's own public host key.
    public = Path("/var/lib/kubeboard-testbed") / NAME / machine.name / "ssh_host_ed25519_key.pub"
    printed = subprocess.run(["ssh-keygen", "-lf", str(public)], capture_output=True, text=True, check=True)
    assert walk.page.inner_text("#offered-fingerprint") == printed.stdout.split()[1] == machine_fingerprint(sb, index)
    walk.page.click("#accept-host-key")
    walk.page.wait_for_selector("#host-key-state.status-hostkey-pinned")
    walk.fits()

    # Check machine again: it logs in now and finds the bare machine the README describes.
    walk.page.click("#check-machine")
    walk.page.wait_for_selector("#check-status.status-check-failed", timeout=60_000)
    assert walk.page.inner_text("#binary-kubeadm") == "not found", walk.page.inner_text("#check")
    assert "kubeadm not found" in walk.page.inner_text("#check-problems")
    walk.fits()


def test_the_walkthrough_in_the_browser(stack_factory, make_user, browser_page, tmp_path):  # noqa: F811
    from django.contrib.auth.models import Group

    import kube
    from clusters.models import Cluster
    from nodes.models import ClusterSSHKey, Node
    from operations.models import Event
    from workflows.models import MachinePreparation, PrepareSettings

    require_binaries()
    require_runtime_set()  # what the README's artifacts line copies
    page = browser_page
    page.set_viewport_size(DESKTOP)
    make_user("admin", team=None, superuser=True)  # what bin/run's ensure_admin makes
    timings: dict[str, float] = {}
    with sandbox(NAME, SUBNET, size=3, bare=True) as sb:
        # "A second terminal" reads the same database and artifact store as the web and worker.
        from tests.conftest import test_database_env

        store = tmp_path / "artifacts"
        env = {**os.environ, "KUBEBOARD_TESTBED_NAME": NAME, "KUBEBOARD_ARTIFACTS_DIR": str(store)}
        env["KUBEBOARD_SQLITE_PATH"] = test_database_env()["sqlite_path"]
        stack = stack_factory(KUBEBOARD_ARTIFACTS_DIR=str(store))
        walk = Walk(page, stack.http)
        node1 = sb.node(1).address

        # The README's artifacts line, after `up --bare`: the test bed writes the set.
        written = shell(readme_line("-m tools.testbed artifacts "), env)
        assert written.returncode == 0, written
        assert (Path("/var/lib/kubeboard-testbed") / NAME / "artifact-set" / "SHA256SUMS").is_file()

        # Log in; a fresh install has no team: Create team, which leads to the New cluster form.
        walk.goto("/login/")
        page.fill("#id_username", "admin")
        page.fill("#id_password", "pw-admin")
        page.click("main button[type=submit]")
        page.wait_for_url("**/clusters/")
        walk.fits()
        assert page.locator("#new-cluster").count() == 0
        page.fill("#guide-team-name", "walkers")
        page.click("#create-team")
        page.wait_for_url("**/clusters/new/")
        walk.reload_creates_nothing(Group.objects.count)

        # New cluster: the endpoint on node1, v1.37.2 preselected.
        assert page.input_value("#id_kubernetes_version") == "v1.37.2"
        page.fill("#id_name", CLUSTER)
        page.fill("#id_control_plane_endpoint", f"{node1}:6443")
        page.click("#cluster-form button[type=submit]")
        page.wait_for_url("**/operations/*/")
        walk.wait_operation("succeeded", 120_000, stack)
        walk.reload_creates_nothing(lambda: (Cluster.objects.count(), operations_count()))

        # Generate the cluster's SSH key (the button's text, as the README names it).
        walk.goto(f"/clusters/{CLUSTER}/")
        page.click('button:has-text("Generate the cluster\'s SSH key")')
        page.wait_for_selector("#cluster-public-key")
        walk.reload_creates_nothing(ClusterSSHKey.objects.count)
        public_key = page.inner_text("#cluster-public-key").strip()

        # Nothing offered before it can work: a cluster never initialized offers no token, no day
        # two (each shown disabled with its reason) and no Initialize before a machine is ready.
        stage = offered(walk)
        assert stage["usable"] == set(), stage
        assert {"create_token", "day_two"} <= stage["disabled"], stage

        # The README's second terminal, as written: import the set, give the machines the key.
        imported = shell(readme_line("manage.py artifacts import "), env)
        assert imported.returncode == 0, imported
        assert "Imported v1.37.2-amd64" in imported.stdout, imported.stdout
        authorized = Path("/var/lib/kubeboard-testbed") / NAME / "authorized_keys"
        shown = shell(readme_line("manage.py node show-key CLUSTER").replace("CLUSTER", CLUSTER), env)
        assert shown.returncode == 0, shown
        assert authorized.read_text().splitlines()[-1] == public_key

        # The rest is clicks. Add machine three times: control planes node1 and node3, worker node2,
        # with no ignore list of their own (prepared machines pass ImagePull).
        add_machine(walk, sb, 1, "control-plane")
        add_machine(walk, sb, 2, "worker")
        add_machine(walk, sb, 3, "control-plane")

        # The next step leads to Prepare machines: the artifact set as the source, all three ticked.
        walk.goto(f"/clusters/{CLUSTER}/")
        assert page.inner_text("#next-step-title") == "Prepare 3 machines"
        page.click("#next-step-action")
        page.wait_for_url(f"**/clusters/{CLUSTER}/#prepare")
        page.click("#prepare-settings summary")
        page.check(f"#prepare-settings input[name=source][value={PrepareSettings.Source.ARTIFACTS}]")
        page.click("#prepare-settings button[type=submit]")
        page.wait_for_url(f"**/clusters/{CLUSTER}/#prepare")
        walk.reload_creates_nothing(PrepareSettings.objects.count)
        assert page.inner_text("#prepare-source") == PrepareSettings.Source.ARTIFACTS.label
        assert "v1.37.2-amd64" in page.inner_text("#prepare"), "the part names the imported set"
        ticks = page.locator("#prepare-machines-form input[name=nodes]")
        assert ticks.count() == 3
        for index in range(3):
            ticks.nth(index).check()
        started = time.monotonic()
        page.click("#prepare-machines")
        page.wait_for_url("**/operations/*/")
        walk.wait_operation("succeeded", 600_000, stack)
        timings["prepare x3"] = time.monotonic() - started
        walk.reload_creates_nothing(operations_count)
        prepared = MachinePreparation.objects.filter(node__cluster__name=CLUSTER, prepared_at__isnull=False)
        assert sorted(prepared.values_list("node__name", flat=True)) == ["node1", "node2", "node3"]

        # The Prepare's page leads on to Initialize.
        assert page.inner_text("#next-step-link-action") == "Initialize the control plane"
        page.click("#next-step-link-action")
        page.wait_for_url(f"**/clusters/{CLUSTER}/#cluster-actions")

        # How Kubeboard drives kubeadm here: the cluster's ignore list, copied from the README.
        walk.goto(f"/clusters/{CLUSTER}/")
        assert readme_ignore_list() == ", ".join(TESTBED_PREPARED)
        page.click("#engine-settings summary")
        page.fill("#engine-settings #id_ignore_preflight_errors", readme_ignore_list())
        page.click("#engine-settings button[type=submit]")
        assert "Settings saved" in page.inner_text("main")
        walk.fits()

        # Initialize lists the control planes only; nothing joins, and no token, before init.
        stage = offered(walk)
        assert stage["usable"] == {"initialize"}, stage
        assert stage["listed"]["initialize"] == ["node1", "node3"], stage
        assert {"create_token", "day_two"} <= stage["disabled"], stage
        walk.goto(f"/clusters/{CLUSTER}/")

        # Initialize on node1.
        started = time.monotonic()
        page.select_option("#id_node", label=f"node1 ({node1})")
        page.click("#initialize")
        page.wait_for_url("**/operations/*/")
        walk.wait_operation("succeeded", 300_000, stack)
        walk.reload_creates_nothing(operations_count)

        # Initialized: tokens and day two now usable; each join lists the machines of its role.
        stage = offered(walk)
        assert stage["usable"] == {"create_token", "day_two", "join_workers", "join_control_plane"}, stage
        assert stage["listed"]["join_workers"] == ["node2"], stage
        assert stage["listed"]["join_control_plane"] == ["node3"], stage
        assert not {"create_token", "day_two"} & stage["disabled"], stage

        # Join workers: node2.
        walk.goto(f"/clusters/{CLUSTER}/")
        worker = Node.objects.get(cluster__name=CLUSTER, name="node2")
        page.check(f"#join-workers-form input[name=nodes][value='{worker.pk}']")
        page.click("#join-workers")
        page.wait_for_url("**/operations/*/")
        walk.wait_operation("succeeded", 240_000, stack)
        walk.reload_creates_nothing(operations_count)

        # Join control plane: node3, walked at phone width (every page is also checked at the other).
        page.set_viewport_size(PHONE)
        walk.goto(f"/clusters/{CLUSTER}/")
        third = Node.objects.get(cluster__name=CLUSTER, name="node3")
        page.check(f"#join-control-plane-form input[name=nodes][value='{third.pk}']")
        page.click("#join-control-plane")
        page.wait_for_url("**/operations/*/")
        join_url = page.url
        walk.wait_operation("succeeded", 300_000, stack)
        walk.reload_creates_nothing(operations_count)
        timings["init + joins"] = time.monotonic() - started

        # The short ignore list held: the checks a machine without a runtime fails ran and passed.
        said = "\n".join(
            Event.objects.filter(
                operation__cluster__name=CLUSTER, operation__kind__in=["init", "join-workers", "join-control-plane"]
            ).values_list("message", flat=True)
        )
        for check in ("CRI", "ContainerRuntimeVersion", "ImagePull", "FileContent--proc-sys-net-ipv4-ip_forward"):
            assert f"[WARNING {check}]" not in said and f"[ERROR {check}]" not in said, check
        assert "[WARNING SystemVerification]" in said, "preflight ran, ignoring only SystemVerification"

        # A Ready cluster: three Ready nodes in the API server.
        cluster = Cluster.objects.get(name=CLUSTER)
        assert {row["name"]: row["ready"] for row in kube.list_nodes(cluster)} == {
            "node1": True,
            "node2": True,
            "node3": True,
        }

        # The key pages at phone width.
        page.set_viewport_size(PHONE)
        operation_paths = [join_url.removeprefix(stack.http)]
        too_wide: list[str] = []
        for path in [
            "/clusters/",
            f"/clusters/{CLUSTER}/",
            f"/clusters/{CLUSTER}/nodes/_add/",
            f"/clusters/{CLUSTER}/nodes/node1/",
            f"/clusters/{CLUSTER}/nodes/node3/edit/",
            "/artifacts/",
            *operation_paths,
        ]:
            page.goto(stack.http + path)
            too_wide.append(walk.too_wide())
        assert [wide for wide in too_wide if wide] == [], "pages wider than a phone"
        assert walk.errors == [], "console errors:\n" + "\n".join(walk.errors)
    print("walkthrough in the browser: " + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()))
