"""Who may do what on every route: the declarative permission matrix (NetBox style).

``tests/unit/test_permission_matrix.py`` walks every URL pattern of ``config.urls`` and every
websocket route of ``operations.routing`` and checks each against the entries below, for six
users: anonymous, a member of another team (with its admin role), and a viewer, an operator
and an admin of the team that owns the objects, and a superuser. A route without an entry
fails the test, and the failure prints the entry to add with the statuses the route returned.

Adding a route? Add one entry here, keyed by its URL name (``namespace:name``; the pattern
string for an unnamed one):

    "tokens:create": Route(
        kwargs=lambda w: {"cluster": w.cluster.name},   # URL arguments, from the World below
        GET=S(LOGIN, 404, 403, 200, 200, 200),            # anonymous, other team, viewer, operator, admin, superuser
        POST=S(LOGIN, 404, 403, 400, 400, 400),           # POST with ``data`` (default: empty form)
        data=lambda w: {},                                # optional POST body
    ),

Statuses: an int, ``LOGIN`` (a redirect to the login page), ``REDIRECT`` (any other redirect), or
``either(a, b)`` when the answer depends on the environment rather than the user.
Objects the routes act on come from ``World`` (``build_world``); add what your route needs there.
A websocket route gets a ``Socket`` entry in ``SOCKETS`` with the close code per user (``OPEN``
when the socket stays open).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.utils import timezone

ROLES = ("anonymous", "other_team", "viewer", "operator", "admin", "superuser")
LOGIN = "login"
REDIRECT = "redirect"
OPEN = "open"


def either(*statuses) -> frozenset:
    """Any of these statuses (a route whose answer depends on the environment, e.g. readiness)."""
    return frozenset(statuses)


def matches(expected, found) -> bool:
    return found in expected if isinstance(expected, frozenset) else found == expected


def S(*statuses) -> tuple:  # noqa: N802 (a short constructor reads best in the table)
    """Expected statuses in the order of ROLES."""
    if len(statuses) != len(ROLES):
        raise ValueError(f"S() takes one status per role: {', '.join(ROLES)}")
    return tuple(statuses)


@dataclass(frozen=True)
class Route:
    kwargs: Callable[[Any], dict] = lambda w: {}
    GET: tuple | None = None
    POST: tuple | None = None
    data: Callable[[Any], dict] = lambda w: {}
    methods: dict[str, tuple] = field(default_factory=dict)  # others: PUT, DELETE, ...

    def expectations(self) -> dict[str, tuple]:
        found = dict(self.methods)
        if self.GET is not None:
            found["GET"] = self.GET
        if self.POST is not None:
            found["POST"] = self.POST
        return found


@dataclass(frozen=True)
class Socket:
    path: Callable[[Any], str]
    codes: tuple  # close code per role, or OPEN


@dataclass
class World:
    users: dict[str, Any]
    team: Any
    cluster: Any
    node: Any
    operation: Any
    membership: Any  # the viewer's membership of ``team``
    token: Any
    certificate_key: Any
    snapshot: Any = None  # an etcd snapshot (workflows), stored and verifiable
    # An artifact set's rows (no files: its directory is absent). Its architecture is one no real
    # set has, so deleting it never touches a set imported into a developer's data directory.
    artifact_set: Any = None


def build_world() -> World:
    from django.contrib.auth.models import Group, User

    from clusters.models import CertificateAuthority, Cluster
    from core.models import TeamMembership
    from kubeadm.versions import DEFAULT_KUBERNETES_VERSION
    from nodes.models import Node
    from operations.models import Operation
    from tokens.models import BootstrapToken, CertificateKey

    team, other = Group.objects.create(name="blue"), Group.objects.create(name="red")
    users: dict[str, Any] = {"anonymous": None}

    def user(name: str, **extra) -> User:
        made = User.objects.create_user(username=name, **extra)
        made.set_unusable_password()
        made.save()
        return made

    users["other_team"] = user("other-admin")
    TeamMembership.objects.create(team=other, user=users["other_team"], role="admin")
    memberships = {}
    for role in ("viewer", "operator", "admin"):
        users[role] = user(f"blue-{role}")
        memberships[role] = TeamMembership.objects.create(team=team, user=users[role], role=role)
    users["superuser"] = user("root", is_superuser=True, is_staff=True)
    cluster = Cluster.objects.create(
        name="c1",
        team=team,
        kubernetes_version=DEFAULT_KUBERNETES_VERSION,
        control_plane_endpoint="10.0.0.10:6443",
        pod_subnet="10.244.0.0/16",
        # Public material the download routes serve (no real CA: nothing here verifies it).
        ca_pin_hash="sha256:" + "0" * 64,
        kubeadm_config="kind: ClusterConfiguration\n",
    )
    CertificateAuthority.objects.create(
        cluster=cluster,
        name="etcd/ca",
        certificate_pem="-----BEGIN CERTIFICATE-----\n",
        public_key_pem="x",
        private_key="k",
    )
    # A control plane: Initialize offers only machines of that role.
    node = Node.objects.create(cluster=cluster, name="n1", address="10.0.0.21", role=Node.Role.CONTROL_PLANE)
    operation = Operation.objects.create(cluster=cluster, kind="prepare-identity", status=Operation.Status.FAILED)
    token = BootstrapToken.objects.create(cluster=cluster, token_id="abcdef", secret="0123456789abcdef")
    certificate_key = CertificateKey.objects.create(
        cluster=cluster, key="00" * 32, expires_at=timezone.now() + timedelta(hours=2)
    )
    from workflows.models import EtcdSnapshot

    snapshot = EtcdSnapshot.objects.create(cluster=cluster, status=EtcdSnapshot.Status.AVAILABLE)
    _store_snapshot(snapshot, b"not really an etcd database")
    from artifacts.models import ArtifactFile, ArtifactSet

    artifact_set = ArtifactSet.objects.create(
        kubernetes_version=DEFAULT_KUBERNETES_VERSION, architecture="matrix", source="directory /nonexistent"
    )
    ArtifactFile.objects.create(artifact_set=artifact_set, path="bin/kubeadm", sha256="0" * 64, size=1)
    return World(
        users,
        team,
        cluster,
        node,
        operation,
        memberships["viewer"],
        token,
        certificate_key,
        snapshot,
        artifact_set=artifact_set,
    )


def _store_snapshot(snapshot, data: bytes) -> None:
    import base64
    import hashlib

    snapshot.chunks.create(index=0, data=base64.b64encode(data).decode())
    type(snapshot).objects.filter(pk=snapshot.pk).update(
        size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest(), chunk_count=1
    )


def _node(w) -> dict:
    return {"cluster": w.cluster.name, "node": w.node.name}


# --- the matrix ---------------------------------------------------------------------------
# Pages of a team's object: anonymous to the login page, another team "not found" (it must not
# learn the object exists), a role below the action "forbidden".

TEAM_PAGE = S(LOGIN, 404, 200, 200, 200, 200)
LOGGED_IN_PAGE = S(LOGIN, 200, 200, 200, 200, 200)

ALL_REDIRECT = S(REDIRECT, REDIRECT, REDIRECT, REDIRECT, REDIRECT, REDIRECT)
# A POST-only action: GET is refused before anything else (405, no object lookup).
POST_ONLY = S(LOGIN, 405, 405, 405, 405, 405)
# An operator's action on a team's object: another team 404, a viewer 403, then it is done.
OPERATE_ACTION = S(LOGIN, 404, 403, REDIRECT, REDIRECT, REDIRECT)
OPERATE_FORM = S(LOGIN, 404, 403, 200, 200, 200)  # the form page (and an empty POST re-shows it)
ADMIN_ACTION = S(LOGIN, 404, 403, 403, REDIRECT, REDIRECT)


def _cluster(w) -> dict:
    return {"name": w.cluster.name}


def _snapshot(w) -> dict:
    return {"name": w.cluster.name, "pk": w.snapshot.pk}


def _token(w) -> dict:
    return {"name": w.cluster.name, "token_id": w.token.token_id}


MATRIX: dict[str, Route] = {
    "": Route(GET=ALL_REDIRECT),
    "login": Route(GET=S(200, 200, 200, 200, 200, 200), POST=S(200, 200, 200, 200, 200, 200)),
    "logout": Route(GET=S(405, 405, 405, 405, 405, 405), POST=S(LOGIN, LOGIN, LOGIN, LOGIN, LOGIN, LOGIN)),
    # One's own password: every signed-in user; an empty form is shown again with its mistakes.
    "password-change": Route(GET=LOGGED_IN_PAGE, POST=S(LOGIN, 400, 400, 400, 400, 400)),
    "healthz": Route(GET=S(200, 200, 200, 200, 200, 200)),
    # Ready or not depends on live workers' heartbeats, not on the user: public either way.
    "readyz": Route(GET=S(*[either(200, 503)] * 6)),
    # clusters
    "clusters:list": Route(GET=LOGGED_IN_PAGE),
    # Adopting stores an admin kubeconfig: an admin role in some team (the other team is one).
    "adopt-cluster": Route(GET=S(LOGIN, 200, 403, 403, 200, 200), POST=S(LOGIN, 200, 403, 403, 200, 200)),
    "clusters:create": Route(GET=S(LOGIN, 200, 403, 200, 200, 200), POST=S(LOGIN, 200, 403, 200, 200, 200)),
    "clusters:detail": Route(kwargs=_cluster, GET=TEAM_PAGE),
    # The cluster page's poll: the same answer as the page (what changed since the versions it sends).
    "clusters:live": Route(kwargs=_cluster, GET=TEAM_PAGE),
    # The cluster page's Add-ons section, asked for after the page is shown: the same answer as the page.
    "clusters:addons": Route(kwargs=_cluster, GET=TEAM_PAGE),
    # The cluster page's control-plane endpoint status (VIP holder, backends), asked for after the page is shown.
    "clusters:endpoint-status": Route(kwargs=_cluster, GET=TEAM_PAGE),
    "clusters:initialize": Route(kwargs=_cluster, GET=POST_ONLY, POST=OPERATE_ACTION),
    "clusters:join": Route(kwargs=_cluster, GET=POST_ONLY, POST=OPERATE_ACTION),
    "clusters:engine-settings": Route(kwargs=_cluster, GET=POST_ONLY, POST=OPERATE_ACTION),
    "clusters:pod-network-settings": Route(kwargs=_cluster, GET=POST_ONLY, POST=OPERATE_ACTION),
    "clusters:pod-network": Route(kwargs=_cluster, GET=POST_ONLY, POST=OPERATE_ACTION),
    "clusters:admin-kubeconfig": Route(kwargs=_cluster, GET=POST_ONLY, POST=ADMIN_ACTION),
    "clusters:read-back": Route(kwargs=_cluster, GET=POST_ONLY, POST=OPERATE_ACTION),
    "clusters:prepare": Route(kwargs=_cluster, GET=POST_ONLY, POST=OPERATE_ACTION),
    "daytwo:prepare-settings": Route(kwargs=_cluster, GET=POST_ONLY, POST=OPERATE_ACTION),
    # Artifact sets belong to no team: anyone signed in sees them, only a superuser imports one.
    "artifacts:list": Route(GET=LOGGED_IN_PAGE),
    "artifacts:upload": Route(GET=POST_ONLY, POST=S(LOGIN, 403, 403, 403, 403, REDIRECT)),
    "artifacts:detail": Route(kwargs=lambda w: {"name": w.artifact_set.name}, GET=LOGGED_IN_PAGE),
    # Deleting one, like importing: a superuser (an empty POST shows the confirmation again).
    "artifacts:delete": Route(
        kwargs=lambda w: {"name": w.artifact_set.name},
        GET=S(LOGIN, 403, 403, 403, 403, 200),
        POST=S(LOGIN, 403, 403, 403, 403, 400),
    ),
    # Deleting a cluster destroys the CA keys Kubeboard holds: superusers only (an empty POST re-shows the form).
    # Public material: anyone who sees the cluster (private keys stay behind the audited reveal).
    "clusters:ca-certificate": Route(kwargs=lambda w: {"name": w.cluster.name, "ca": "etcd-ca"}, GET=TEAM_PAGE),
    "clusters:ca-pin": Route(kwargs=_cluster, GET=TEAM_PAGE),
    "clusters:kubeadm-config": Route(kwargs=_cluster, GET=TEAM_PAGE),
    "clusters:delete": Route(
        kwargs=_cluster, GET=S(LOGIN, 404, 403, 403, 403, 200), POST=S(LOGIN, 404, 403, 403, 403, 400)
    ),
    # machines
    "nodes:add": Route(kwargs=lambda w: {"cluster": w.cluster.name}, GET=OPERATE_FORM, POST=OPERATE_FORM),
    "nodes:cluster-key": Route(kwargs=lambda w: {"cluster": w.cluster.name}, GET=POST_ONLY, POST=OPERATE_ACTION),
    "nodes:detail": Route(kwargs=_node, GET=TEAM_PAGE),
    "nodes:edit": Route(kwargs=_node, GET=OPERATE_FORM, POST=OPERATE_FORM),
    "nodes:delete": Route(kwargs=_node, GET=OPERATE_FORM, POST=OPERATE_ACTION),
    "nodes:check": Route(kwargs=_node, GET=POST_ONLY, POST=OPERATE_ACTION),
    "nodes:check-status": Route(kwargs=_node, GET=TEAM_PAGE),
    "nodes:host-key-accept": Route(kwargs=_node, GET=POST_ONLY, POST=OPERATE_ACTION),
    "nodes:host-key-keep": Route(kwargs=_node, GET=POST_ONLY, POST=OPERATE_ACTION),
    "nodes:bulk-add": Route(kwargs=lambda w: {"cluster": w.cluster.name}, GET=OPERATE_FORM, POST=OPERATE_FORM),
    "nodes:host-keys": Route(kwargs=lambda w: {"cluster": w.cluster.name}, GET=TEAM_PAGE),
    "nodes:bulk-check": Route(kwargs=lambda w: {"cluster": w.cluster.name}, GET=POST_ONLY, POST=OPERATE_ACTION),
    "nodes:bulk-host-key-accept": Route(
        kwargs=lambda w: {"cluster": w.cluster.name}, GET=POST_ONLY, POST=OPERATE_ACTION
    ),
    # tokens
    "tokens:list": Route(kwargs=_cluster, GET=TEAM_PAGE),
    "tokens:create": Route(kwargs=_cluster, GET=OPERATE_FORM, POST=OPERATE_FORM),
    "tokens:sync": Route(kwargs=_cluster, GET=POST_ONLY, POST=OPERATE_ACTION),
    "tokens:policy": Route(
        kwargs=_cluster, GET=S(LOGIN, 404, 403, 403, 200, 200), POST=S(LOGIN, 404, 403, 403, 200, 200)
    ),
    "tokens:certificate_key_create": Route(kwargs=_cluster, GET=POST_ONLY, POST=OPERATE_ACTION),
    "tokens:certificate_key_reveal": Route(
        kwargs=lambda w: {"name": w.cluster.name, "pk": w.certificate_key.pk},
        GET=POST_ONLY,
        POST=S(LOGIN, 404, 403, 403, 200, 200),
    ),
    # Where a create or rotate sends the browser: the new token once (from the session), then a note.
    "tokens:created": Route(kwargs=_token, GET=OPERATE_FORM),
    "tokens:rotate": Route(kwargs=_token, GET=POST_ONLY, POST=OPERATE_ACTION),
    "tokens:delete": Route(kwargs=_token, GET=POST_ONLY, POST=OPERATE_ACTION),
    "tokens:reveal": Route(kwargs=_token, GET=POST_ONLY, POST=S(LOGIN, 404, 403, 403, 200, 200)),
    "tokens:join_command": Route(kwargs=_token, GET=POST_ONLY, POST=S(LOGIN, 404, 403, 403, 400, 400)),
    # day two
    "daytwo:upgrade": Route(kwargs=_cluster, GET=TEAM_PAGE),
    "daytwo:upgrade-start": Route(kwargs=_cluster, GET=POST_ONLY, POST=OPERATE_ACTION),
    "daytwo:settings": Route(kwargs=_cluster, GET=POST_ONLY, POST=ADMIN_ACTION),
    "daytwo:reset": Route(kwargs=_cluster, GET=POST_ONLY, POST=OPERATE_ACTION),
    "daytwo:undo-join": Route(
        kwargs=lambda w: {"name": w.cluster.name, "node": w.node.name}, GET=POST_ONLY, POST=OPERATE_ACTION
    ),
    "daytwo:node-scheduling": Route(
        kwargs=lambda w: {"name": w.cluster.name, "node": w.node.name}, GET=POST_ONLY, POST=OPERATE_ACTION
    ),
    "daytwo:certificates": Route(kwargs=_cluster, GET=TEAM_PAGE),
    "daytwo:certificates-read": Route(kwargs=_cluster, GET=POST_ONLY, POST=OPERATE_ACTION),
    "daytwo:certificates-renew": Route(kwargs=_cluster, GET=POST_ONLY, POST=OPERATE_ACTION),
    "daytwo:renewal-policy": Route(kwargs=_cluster, GET=POST_ONLY, POST=ADMIN_ACTION),
    "daytwo:backups": Route(kwargs=_cluster, GET=TEAM_PAGE),
    "daytwo:snapshot": Route(kwargs=_cluster, GET=POST_ONLY, POST=OPERATE_ACTION),
    "daytwo:backup-schedule": Route(kwargs=_cluster, GET=POST_ONLY, POST=ADMIN_ACTION),
    # The decrypted etcd snapshot holds every Secret of the cluster: admins only (audited).
    "daytwo:snapshot-download": Route(kwargs=_snapshot, GET=POST_ONLY, POST=S(LOGIN, 404, 403, 403, 200, 200)),
    "daytwo:snapshot-delete": Route(kwargs=_snapshot, GET=POST_ONLY, POST=ADMIN_ACTION),
    "daytwo:snapshot-restore": Route(kwargs=_snapshot, GET=POST_ONLY, POST=ADMIN_ACTION),
    "daytwo:configuration": Route(kwargs=_cluster, GET=TEAM_PAGE),
    "daytwo:configuration-export": Route(kwargs=_cluster, GET=TEAM_PAGE),
    # Like clusters:create: an operator of any team (the other team's admin too); an empty POST shows the form again.
    "import-cluster": Route(GET=S(LOGIN, 200, 403, 200, 200, 200), POST=S(LOGIN, 200, 403, 200, 200, 200)),
    # operations
    "operations:detail": Route(kwargs=lambda w: {"pk": w.operation.pk}, GET=TEAM_PAGE),
    "operations:resume": Route(kwargs=lambda w: {"pk": w.operation.pk}, GET=POST_ONLY, POST=OPERATE_ACTION),
    "operations:cancel": Route(kwargs=lambda w: {"pk": w.operation.pk}, GET=POST_ONLY, POST=OPERATE_ACTION),
    "operations:log-text": Route(kwargs=lambda w: {"pk": w.operation.pk}, GET=TEAM_PAGE),
    # audit: every logged-in user has a history (their own records at least); scoping is per row
    "audit:history": Route(GET=LOGGED_IN_PAGE),
    "audit:export": Route(kwargs=lambda w: {"fmt": "csv"}, GET=LOGGED_IN_PAGE),
    "audit:node": Route(kwargs=lambda w: {"node_id": w.node.pk}, GET=TEAM_PAGE),
    # teams
    "teams:list": Route(GET=LOGGED_IN_PAGE),
    "teams:create": Route(GET=POST_ONLY, POST=S(LOGIN, 403, 403, 403, 403, 400)),
    # GET shows a new account's one-time password once; without one waiting, back to Teams.
    "teams:user_create": Route(GET=S(LOGIN, 403, 403, 403, 403, REDIRECT), POST=S(LOGIN, 403, 403, 403, 403, 400)),
    "teams:detail": Route(kwargs=lambda w: {"pk": w.team.pk}, GET=TEAM_PAGE),
    "teams:member_add": Route(
        kwargs=lambda w: {"pk": w.team.pk}, GET=POST_ONLY, POST=S(LOGIN, 404, 403, 403, 400, 400)
    ),
    "teams:member_role": Route(
        kwargs=lambda w: {"pk": w.team.pk, "member": w.membership.pk},
        GET=POST_ONLY,
        POST=ADMIN_ACTION,
        data=lambda w: {"role": "operator"},
    ),
    "teams:member_remove": Route(
        kwargs=lambda w: {"pk": w.team.pk, "member": w.membership.pk}, GET=POST_ONLY, POST=ADMIN_ACTION
    ),
}

# The admin: every admin route is walked for anonymous (sent to the admin login) and for the
# superuser (no server error); its team scoping and read-only rules are tests/unit/test_admin.py.
ADMIN_NAMESPACE = "admin"
ADMIN_PUBLIC = {"admin:login", "admin:logout", "admin:jsi18n"}

# --- every admin URL × the six users ----------------------------------------------------------
# Walked by test_every_admin_url_answers_each_user_as_declared with the team's members and the
# other team's admin made staff: the admin's own gate (is_staff) lets them all in, so only the
# team scoping stands between a staff member and another team's objects. A model's screens
# follow its kind: team-scoped (read-only, each team sees its own rows) or superuser-only
# (everything else); ADMIN_MODEL_RULES overrides a model, ADMIN_PAGES declares the other URLs.
# Object URLs use a row of the team (a team-scoped model) or the first row; a model without a
# row in the world is walked with a missing id (ADMIN_NO_ROW).
ADMIN_LOGIN = "admin-login"
# The admin's "… does not exist. Perhaps it was deleted?" redirect to its index: nothing shown,
# exactly as for an id that does not exist.
ADMIN_INDEX = "admin-index"
ANY_ANSWER = either(200, 403, 404, 405, ADMIN_INDEX, REDIRECT)  # the superuser: no error, no login
NOTHING_SHOWN = either(403, ADMIN_INDEX)

TEAM_ADMIN = {
    "changelist": S(ADMIN_LOGIN, 200, 200, 200, 200, 200),  # rows of the user's own teams only
    "add": S(ADMIN_LOGIN, 403, 403, 403, 403, 403),
    "change": S(ADMIN_LOGIN, ADMIN_INDEX, 200, 200, 200, 200),
    "history": S(ADMIN_LOGIN, ADMIN_INDEX, 200, 200, 200, 200),
    "delete": S(ADMIN_LOGIN, 403, 403, 403, 403, 403),
    "object": S(ADMIN_LOGIN, REDIRECT, REDIRECT, REDIRECT, REDIRECT, REDIRECT),  # …/<id>/ → …/<id>/change/
}
SUPERUSER_ADMIN = {
    "changelist": S(ADMIN_LOGIN, 403, 403, 403, 403, 200),
    "add": S(ADMIN_LOGIN, 403, 403, 403, 403, ANY_ANSWER),
    "change": S(ADMIN_LOGIN, NOTHING_SHOWN, NOTHING_SHOWN, NOTHING_SHOWN, NOTHING_SHOWN, ANY_ANSWER),
    "history": S(ADMIN_LOGIN, NOTHING_SHOWN, NOTHING_SHOWN, NOTHING_SHOWN, NOTHING_SHOWN, ANY_ANSWER),
    "delete": S(ADMIN_LOGIN, NOTHING_SHOWN, NOTHING_SHOWN, NOTHING_SHOWN, NOTHING_SHOWN, ANY_ANSWER),
    "password": S(ADMIN_LOGIN, 403, 403, 403, 403, 200),
    "object": S(ADMIN_LOGIN, REDIRECT, REDIRECT, REDIRECT, REDIRECT, REDIRECT),
}
ADMIN_NO_ROW = S(ADMIN_LOGIN, NOTHING_SHOWN, NOTHING_SHOWN, NOTHING_SHOWN, NOTHING_SHOWN, ANY_ANSWER)
ADMIN_MODEL_RULES: dict[str, dict[str, tuple]] = {
    # Memberships: each team's admins see their team's (read-only); the Teams page changes them.
    "core.teammembership": {
        **TEAM_ADMIN,
        "changelist": S(ADMIN_LOGIN, 200, 403, 403, 200, 200),
        "change": S(ADMIN_LOGIN, ADMIN_INDEX, 403, 403, 200, 200),
        "history": S(ADMIN_LOGIN, ADMIN_INDEX, ADMIN_INDEX, ADMIN_INDEX, 200, 200),
    },
    # The audit trail: every staff member lists the records of their teams (scoped per row).
    "audit.auditevent": {**TEAM_ADMIN},
}

# The row whose screens are walked, where the default (a row of the team, else the first row)
# is not the interesting one.
ADMIN_ROWS: dict[str, Callable[[Any], Any]] = {"core.teammembership": lambda w: w.membership}


@dataclass(frozen=True)
class AdminPage:
    url: Callable[[Any], str]
    GET: tuple


def _content_type(obj) -> int:
    from django.contrib.contenttypes.models import ContentType

    return ContentType.objects.get_for_model(type(obj)).pk


def _view_on_site(obj_of: Callable[[Any], Any]) -> Callable[[Any], str]:
    return lambda w: f"/admin/r/{_content_type(obj_of(w))}/{obj_of(w).pk}/"


# "View on site" (/admin/r/<content type>/<id>/) goes through the pages' gate: another team's
# object is "not found" (its address would tell its name), the team's members go to its page.
VIEW_ON_SITE_TEAM_OBJECT = S(ADMIN_LOGIN, 404, REDIRECT, REDIRECT, REDIRECT, REDIRECT)
ADMIN_PAGES: dict[str, list[AdminPage]] = {
    "admin:index": [AdminPage(lambda w: "/admin/", S(ADMIN_LOGIN, 200, 200, 200, 200, 200))],
    "admin:login": [
        AdminPage(lambda w: "/admin/login/", S(200, ADMIN_INDEX, ADMIN_INDEX, ADMIN_INDEX, ADMIN_INDEX, ADMIN_INDEX))
    ],
    "admin:logout": [AdminPage(lambda w: "/admin/logout/", S(ADMIN_INDEX, 405, 405, 405, 405, 405))],
    "admin:jsi18n": [AdminPage(lambda w: "/admin/jsi18n/", S(ADMIN_LOGIN, 200, 200, 200, 200, 200))],
    "admin:password_change": [AdminPage(lambda w: "/admin/password_change/", S(ADMIN_LOGIN, 200, 200, 200, 200, 200))],
    "admin:password_change_done": [
        AdminPage(lambda w: "/admin/password_change/done/", S(ADMIN_LOGIN, 200, 200, 200, 200, 200))
    ],
    "admin:app_list": [
        AdminPage(lambda w: "/admin/clusters/", S(ADMIN_LOGIN, 200, 200, 200, 200, 200)),
        AdminPage(lambda w: "/admin/auth/", S(ADMIN_LOGIN, 404, 404, 404, 404, 200)),
    ],
    "admin:autocomplete": [AdminPage(lambda w: "/admin/autocomplete/", S(ADMIN_LOGIN, 403, 403, 403, 403, 403))],
    "admin/(?P<url>.*)$": [AdminPage(lambda w: "/admin/nowhere/", S(ADMIN_LOGIN, 404, 404, 404, 404, 404))],
    "admin:view_on_site": [
        AdminPage(_view_on_site(lambda w: w.cluster), VIEW_ON_SITE_TEAM_OBJECT),
        AdminPage(_view_on_site(lambda w: w.node), VIEW_ON_SITE_TEAM_OBJECT),
        AdminPage(_view_on_site(lambda w: w.operation), VIEW_ON_SITE_TEAM_OBJECT),
        # Not a team's object (a group has no page): nobody is sent anywhere.
        AdminPage(_view_on_site(lambda w: w.team), S(ADMIN_LOGIN, 404, 404, 404, 404, 404)),
        AdminPage(lambda w: "/admin/r/999999/1/", S(ADMIN_LOGIN, 404, 404, 404, 404, 404)),
        AdminPage(lambda w: "/admin/r/x/1/", S(ADMIN_LOGIN, 404, 404, 404, 404, 404)),
    ],
}
# Kubeboard's gate in front of Django's own view-on-site (config/urls.py): the same URLs.
ADMIN_PAGES["admin-view-on-site"] = ADMIN_PAGES["admin:view_on_site"]

SOCKETS: dict[str, Socket] = {
    "ws/operations/<int:operation_id>/": Socket(
        path=lambda w: f"/ws/operations/{w.operation.pk}/",
        codes=S(4401, 4403, OPEN, OPEN, OPEN, OPEN),
    ),
    # The catch-all: any other path is closed with 4404 for everyone.
    "": Socket(path=lambda w: "/ws/nowhere/", codes=S(4404, 4404, 4404, 4404, 4404, 4404)),
}
