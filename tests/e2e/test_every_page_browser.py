"""Every page of Kubeboard in Chromium, at phone width (390x844) and on a laptop (1280x800), with a
populated database (issue 18): no page is wider than the window, and none logs a console error,
a script error or a Content-Security-Policy violation (an inline style attribute is one).

A failure names the page, the viewport and the widest element that sticks out (a CSS path), or
the violation with the element and directive. ``test_every_url_pattern_is_crawled`` keeps the
list whole: a new URL pattern must be added to PAGES, or to NOT_PAGES with the reason it is not
an HTML page (downloads, JSON, fragments); POST-only actions are read from the permission matrix.
Of Django's admin (its own URL patterns), the index and each registered model's list are crawled.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from tests import permission_matrix as pm
from tests.e2e.test_browser import browser_page  # noqa: F401 (fixture)
from tests.support.web import log_in
from tests.unit.test_permission_matrix import SITE_ROUTES

VIEWPORTS = {"phone": {"width": 390, "height": 844}, "laptop": {"width": 1280, "height": 800}}

# Each page's URL arguments, from the crawl's data (Data below). Every HTML page is here.
PAGES = {
    "": lambda d: {},
    "login": lambda d: {},
    "password-change": lambda d: {},
    "adopt-cluster": lambda d: {},
    "import-cluster": lambda d: {},
    "clusters:list": lambda d: {},
    "clusters:create": lambda d: {},
    "clusters:detail": lambda d: {"name": d.cluster.name},
    "clusters:delete": lambda d: {"name": d.cluster.name},
    "nodes:add": lambda d: {"cluster": d.cluster.name},
    "nodes:bulk-add": lambda d: {"cluster": d.cluster.name},
    "nodes:host-keys": lambda d: {"cluster": d.cluster.name},
    "nodes:detail": lambda d: {"cluster": d.cluster.name, "node": d.offered.name},
    "nodes:edit": lambda d: {"cluster": d.cluster.name, "node": d.offered.name},
    "nodes:delete": lambda d: {"cluster": d.cluster.name, "node": d.offered.name},
    "tokens:list": lambda d: {"name": d.cluster.name},
    "tokens:create": lambda d: {"name": d.cluster.name},
    "tokens:created": lambda d: {"name": d.cluster.name, "token_id": d.token.token_id},
    "tokens:policy": lambda d: {"name": d.cluster.name},
    "daytwo:upgrade": lambda d: {"name": d.cluster.name},
    "daytwo:certificates": lambda d: {"name": d.cluster.name},
    "daytwo:backups": lambda d: {"name": d.cluster.name},
    "daytwo:configuration": lambda d: {"name": d.cluster.name},
    "operations:detail": lambda d: {"pk": d.operation.pk},
    "audit:history": lambda d: {},
    "audit:node": lambda d: {"node_id": d.checked.pk},
    "teams:list": lambda d: {},
    "teams:detail": lambda d: {"pk": d.team.pk},
    "teams:user_create": lambda d: {},
    "artifacts:list": lambda d: {},
    "artifacts:detail": lambda d: {"name": d.artifact_set.name},
    "artifacts:delete": lambda d: {"name": d.artifact_set.name},
    "admin:index": lambda d: {},
}
# More states of a page than its bare URL shows: (label, route, URL arguments).
VARIANTS = [
    (
        "machine whose check found problems",
        "nodes:detail",
        lambda d: {"cluster": d.cluster.name, "node": d.checked.name},
    ),
    ("joined machine", "nodes:detail", lambda d: {"cluster": d.cluster.name, "node": d.joined.name}),
]
# What answers a GET with something other than an HTML page; nothing else may be left out.
NOT_PAGES = {
    "logout": "POST only (GET answers 405)",
    "healthz": "health probe (JSON)",
    "readyz": "readiness probe (JSON)",
    "clusters:live": "htmx fragment the cluster page polls (crawled as part of that page)",
    "nodes:check-status": "htmx fragment the machine page polls (crawled as part of that page)",
    "clusters:addons": "fragment the cluster page asks for once shown (crawled as part of that page)",
    "clusters:endpoint-status": "fragment the cluster page asks for once shown (crawled as part of that page)",
    "clusters:ca-certificate": "download (PEM)",
    "clusters:ca-pin": "download (text)",
    "clusters:kubeadm-config": "download (YAML)",
    "daytwo:configuration-export": "download (YAML)",
    "operations:log-text": "download (text)",
    "audit:export": "download (CSV or JSON lines)",
}


def admin_pages() -> list[tuple[str, str]]:
    """The admin's list of each registered model: Django's own screens, with Kubeboard's audited
    mixin and the CSP; the index is in PAGES."""
    from django.contrib import admin
    from django.urls import reverse

    names = sorted(
        f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist" for model in admin.site._registry
    )
    return [(name, reverse(name)) for name in names]


def post_only_actions() -> set[str]:
    """Routes the permission matrix declares as POST-only actions (they answer 405 to a GET)."""
    return {key for key, route in pm.MATRIX.items() if route.GET == pm.POST_ONLY}


def test_every_url_pattern_is_crawled():
    routes = set(SITE_ROUTES)
    covered = set(PAGES) - {"admin:index"}
    left = sorted(routes - covered - set(NOT_PAGES) - post_only_actions())
    assert not left, (
        f"URL patterns the page crawl does not visit: {left}. Add each to PAGES in {__name__} "
        "(with its URL arguments), or, if it does not answer a GET with an HTML page, to NOT_PAGES with why."
    )
    stale = sorted((set(PAGES) | set(NOT_PAGES)) - routes - {"admin:index"})
    assert not stale, f"PAGES/NOT_PAGES name routes that no longer exist: {stale}"
    both = sorted(set(PAGES) & (set(NOT_PAGES) | post_only_actions()))
    assert not both, f"listed both as a page and as not a page: {both}"


class Data:
    """A cluster with an identity, machines in each host-key state, tokens and a certificate key,
    an operation with its log, an etcd snapshot, a team, and a page and more of audit records."""

    def __init__(self, user, cluster, operation) -> None:
        from django.contrib.auth.models import Group

        from audit.services import record
        from nodes.models import Node
        from tokens.models import BootstrapToken, CertificateKey, TokenSync
        from workflows.models import CertificateReport, EtcdSnapshot

        self.cluster, self.operation = cluster, operation
        self.team = Group.objects.get(name="platform")
        long_host = "worker-with-a-rather-long-name-0001.rack-17.datacenter-west.example.internal"
        self.offered = Node.objects.create(
            cluster=cluster,
            name="m1",
            address="10.0.0.11",
            offered_host_key="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ0sNEWpZf1gL2Xh1R5Cw8Y8KxFQ0Vq3l9Xq2b5Q8f0a",
            offered_host_key_fingerprint="SHA256:" + "x" * 43,
            facts={"reachable": True, "login": False, "host_key": "offered", "error": "host key not accepted yet"},
        )
        self.checked = Node.objects.create(
            cluster=cluster,
            name=long_host[:63].rstrip("-."),
            address=long_host,
            role=Node.Role.CONTROL_PLANE,
            ssh_host_key="ssh-ed25519 AAAApinned",
            ssh_host_key_fingerprint="SHA256:" + "p" * 43,
            checked_at=cluster.created_at,
            facts={
                "reachable": True,
                "login": True,
                "duration": 1.2,
                "problems": ["`kubelet` v1.20.0 is more than three minors older than Kubernetes " + "x" * 80],
                "hint": "install the kubelet that fits: `apt-get install -y kubelet=" + "1" * 60 + "`",
                "warnings": ["swap is on: " + "/dev/mapper/" + "s" * 90],
                "os": {"pretty_name": "Debian GNU/Linux 12 (bookworm)"},
                "kernel": "6.1.0-" + "9" * 70,
                "architecture": "amd64",
                "binaries": {"kubeadm": {"path": "/usr/bin/kubeadm", "version": "v1.37.2"}},
                "etc_kubernetes": {
                    "exists": True,
                    "populated": True,
                    "count": 1,
                    "files": ["/etc/kubernetes/" + "a" * 90],
                },
                "ports": {"checked": [6443, 2379, 2380, 10250, 10257, 10259], "in_use": []},
            },
        )
        self.joined = Node.objects.create(
            cluster=cluster,
            name="m3",
            address="10.0.0.13",
            status=Node.Status.JOINED,
            ssh_host_key_fingerprint="SHA256:j",
        )
        now = cluster.created_at
        self.token = BootstrapToken.objects.create(
            cluster=cluster, token_id="abcdef", secret="0123456789abcdef", expires_at=now + timedelta(hours=20)
        )
        BootstrapToken.objects.create(
            cluster=cluster, token_id="zyxwvu", secret="0123456789abcdef", expires_at=now + timedelta(hours=2)
        )
        CertificateKey.objects.create(cluster=cluster, key="00" * 32, expires_at=now + timedelta(hours=2))
        # What a sync writes: the pin it verified (a 71-character word) and drift lines.
        TokenSync.objects.update_or_create(
            cluster=cluster,
            defaults={
                "result": TokenSync.Result.OK,
                "last_success_at": now,
                "cluster_info": f"CA matches the pin {cluster.ca_pin_hash}",
                "last_drift_at": now,
                "drift": [f"bootstrap-token-{'q' * 6} in the cluster, unknown to Kubeboard: {cluster.ca_pin_hash}"],
            },
        )
        # A control plane's certificates as read back: the certificates page's timeline and table.
        CertificateReport.objects.create(
            node=self.checked,
            collected_at=now,
            rows=[
                {
                    "name": name,
                    "path": f"/etc/kubernetes/pki/{name}.crt",
                    "source": "cert",
                    "kind": "leaf",
                    "subject": name,
                    "issuer": "CN=kubernetes",
                    "not_before": now.isoformat(),
                    "fingerprint": "ab" * 32,
                    "ca": "ca",
                    "not_after": (now + timedelta(days=days)).isoformat(),
                    "days_left": days,
                    "warning": warning,
                    "kubeadm_expires": (now + timedelta(days=days)).isoformat(),
                    "custody": "issued by the cluster CA Kubeboard holds",
                    "dns": [long_host, "kubernetes.default.svc.cluster.local"],
                    "ips": ["10.96.0.1", "fd00:0000:0000:0000:0000:0000:0000:0001"],
                    "serial": "7f" * 16,
                    "drift": [f"the SANs differ from the configuration: {long_host}"] if warning else [],
                }
                for name, days, warning in (("apiserver", 364.9, ""), ("apiserver-kubelet-client", 6.5, "7"))
            ],
        )
        snapshot = EtcdSnapshot.objects.create(cluster=cluster, status=EtcdSnapshot.Status.AVAILABLE)
        pm._store_snapshot(snapshot, b"not really an etcd database")
        # An artifact set (rows only) with long values: its page's file table and its delete page.
        from artifacts.models import ArtifactFile, ArtifactSet

        self.artifact_set = ArtifactSet.objects.create(
            kubernetes_version="v1.37.2",
            architecture="crawl",
            source="directory /srv/" + "s" * 120,
            total_bytes=5 << 20,
        )
        ArtifactFile.objects.create(
            artifact_set=self.artifact_set,
            path="images/" + "k" * 60 + ".tar",
            sha256="ab" * 32,
            size=5 << 20,
            images=["registry.k8s.io/" + "kube-apiserver" * 4 + ":v1.37.2"],
        )
        # More than a page of history, with long details (as a checked machine's records have).
        for index in range(55):
            record(
                "node.checked",
                actor=user,
                obj=self.checked,
                details={"error": f"check {index}: " + "connection refused by " + long_host, "problems": index},
            )


def _populate(superuser):
    from clusters.models import Cluster
    from clusters.services import create_cluster
    from operations.models import Operation
    from tests.factories import CLUSTER_FORM

    cluster = Cluster(name="prod-eu", team=superuser.team_memberships.first().team, **CLUSTER_FORM)
    operation = create_cluster(cluster, user=superuser)
    deadline = time.monotonic() + 120
    while Operation.objects.get(pk=operation.pk).status not in ("succeeded", "failed"):
        assert time.monotonic() < deadline, "the identity operation did not finish in 120 s"
        time.sleep(0.5)
    operation.refresh_from_db()
    assert operation.status == "succeeded", "the crawl needs a cluster with its identity (CA pin, kubeadm config)"
    cluster.refresh_from_db()
    return Data(superuser, cluster, operation)


# Elements that stick out of the window, outside any box that scrolls or clips them; the
# deepest first (the one to fix), with a CSS path to find it.
WIDEST_ELEMENT = """() => {
  const limit = window.innerWidth;
  const path = el => { const parts = [];
    for (let e = el; e && e.nodeType === 1 && parts.length < 6; e = e.parentElement) {
      let part = e.tagName.toLowerCase();
      if (e.id) { parts.unshift(part + '#' + e.id); break; }
      if (e.classList.length) part += '.' + [...e.classList].join('.');
      parts.unshift(part); }
    return parts.join(' > '); };
  const clipped = el => { for (let e = el.parentElement; e && e !== document.body; e = e.parentElement) {
      const o = getComputedStyle(e).overflowX; if (o !== 'visible') return true; } return false; };
  // An element's own box, or its content where that spills out of the box (a long word in a div).
  const right = el => { const r = el.getBoundingClientRect();
    return Math.max(r.right, getComputedStyle(el).overflowX === 'visible' ? r.left + el.scrollWidth : 0); };
  const out = [...document.body.querySelectorAll('*')].filter(el =>
      el.getBoundingClientRect().width && right(el) > limit + 0.5 && !clipped(el));
  const deepest = out.filter(el => !out.some(o => o !== el && el.contains(o)));
  return deepest.sort((a, b) => right(b) - right(a)).slice(0, 3)
    .map(el => `${path(el)} (right edge ${Math.round(right(el))} px: "${(el.textContent || '').trim().slice(0, 60)}")`);
}"""
# At phone width a timeline keeps a readable scale (scrolling in its own box) and History shows
# cards, not a wrapped eight-column table (about 340 px a row): (what, script returning a problem or
# ""), for the pages that have them. The crawl's records have long details (a 79-character host
# name twice): about 210 px a card.
READABLE = [
    (
        "timeline",
        """() => { const svg = document.querySelector('#token-timeline svg'); if (!svg) return '';
          const w = svg.getBoundingClientRect().width;
          return w < 900 ? `#token-timeline svg is drawn ${Math.round(w)} px wide: its 11 px labels shrink to `
            + `${(11 * w / svg.viewBox.baseVal.width).toFixed(1)} px` : ''; }""",
    ),
    (
        "history cards",
        """() => { const rows = [...document.querySelectorAll('#history #audit-table tbody tr[data-seq]')];
          if (!rows.length) return '';
          const tall = rows.reduce((sum, r) => sum + r.getBoundingClientRect().height, 0) / rows.length;
          const shape = getComputedStyle(rows[0]).display;
          return shape !== 'grid' || tall > 240 ? `history rows are ${shape}, ${Math.round(tall)} px tall on average `
            + `(${rows.length} rows, page ${document.documentElement.scrollHeight} px)` : ''; }""",
    ),
]
# Installed before any page script: what the browser refused under the page's CSP, with where.
CSP_LISTENER = """document.addEventListener('securitypolicyviolation', e => {
  const t = e.target && e.target.nodeType === 1 ? e.target : null;
  const where = t ? t.tagName.toLowerCase() + (t.id ? '#' + t.id : '') + (t.className && t.className.baseVal === undefined
    ? '.' + String(t.className).trim().split(/\\s+/).join('.') : '') : '';
  (window.__csp = window.__csp || []).push(`${e.violatedDirective} refused ${e.blockedURI || 'inline'}`
    + (where ? ` on <${where}>` : '') + (e.sample ? ` sample "${e.sample}"` : '')
    + (e.sourceFile ? ` at ${e.sourceFile}:${e.lineNumber}` : ''));
}, true);"""


@pytest.mark.browser
@pytest.mark.e2e
@pytest.mark.timeout(600)
def test_every_page_fits_the_window_without_console_errors(stack_factory, make_user, browser_page, tmp_path):  # noqa: F811
    from django.urls import reverse

    superuser = make_user("root", superuser=True)
    stack = stack_factory()
    data = _populate(superuser)
    page = browser_page
    console: list[str] = []
    page.on(
        "console",
        lambda message: console.append(f"console {message.type}: {message.text}") if message.type == "error" else None,
    )
    page.on("pageerror", lambda error: console.append(f"script error: {error}"))
    # The console says only "Failed to load resource: 404": name the resource (the page's own status is checked below).
    page.on(
        "response",
        lambda r: (
            console.append(f"HTTP {r.status} for {r.url}")
            if r.status >= 400 and r.request.resource_type != "document"
            else None
        ),
    )
    page.add_init_script(CSP_LISTENER)
    problems: list[str] = []

    def look(key: str, path: str, viewport: str) -> list[str]:
        found: list[str] = []
        console.clear()
        response = page.goto(f"{stack.http}{path}")
        page.wait_for_load_state("load")
        page.wait_for_timeout(300)  # htmx and the page scripts start after load
        where = f"{key} {path} at {viewport} {VIEWPORTS[viewport]['width']}px"
        if response is None or response.status >= 400:
            found.append(f"{where}: HTTP {response.status if response else 'no response'}")
        widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        if widths[0] > widths[1]:
            widest = page.evaluate(WIDEST_ELEMENT)
            found.append(f"{where}: {widths[0]} px wide in a {widths[1]} px window; sticking out: {widest}")
            page.screenshot(path=str(tmp_path / f"{viewport}-{key.replace(':', '-') or 'root'}.png"), full_page=True)
        if viewport == "phone":
            found.extend(f"{where}: {said}" for _, script in READABLE if (said := page.evaluate(script)))
        violations = page.evaluate("window.__csp || []")
        found.extend(f"{where}: CSP violation: {v}" for v in violations)
        # A violation is also logged to the console; the listener's line says more (element, sample).
        found.extend(f"{where}: {line}" for line in console if not (violations and "Content Security" in line))
        return found

    def check(key: str, path: str, viewport: str) -> None:
        found = look(key, path, viewport)
        # Chromium aborts loads with ERR_NETWORK_CHANGED when the host's interfaces change, as the
        # test-bed pass running beside this one creates and removes sandbox bridges: that says
        # nothing about the page, so the page is looked at once more, in full.
        if any("net::ERR_NETWORK_CHANGED" in line for line in found):
            found = look(key, path, viewport)
        problems.extend(found)

    for viewport, size in VIEWPORTS.items():  # the login page as a visitor sees it, before logging in
        page.set_viewport_size(size)
        check("login (logged out)", reverse("login"), viewport)
    log_in(page, stack.http, "root", "pw-root")
    page.wait_for_url("**/clusters/")

    def url(key: str, kwargs: dict) -> str:
        return "/" + key if SITE_ROUTES.get(key) == key else reverse(key, kwargs=kwargs)  # unnamed: its pattern

    visits = [(key or "/", url(key, kwargs(data))) for key, kwargs in PAGES.items()]
    visits += [(f"{key} ({label})", url(key, kwargs(data))) for label, key, kwargs in VARIANTS]
    visits += admin_pages()
    for viewport, size in VIEWPORTS.items():
        page.set_viewport_size(size)
        for key, path in visits:
            check(key, path, viewport)
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems)
