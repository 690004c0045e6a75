"""Who may do what, decided in one place.

A cluster belongs to a team (a Django ``Group``); a user's ``TeamMembership`` gives them a
role in that team. Every view, form, admin screen, export, websocket and management command
that acts for a user narrows its queryset with ``restrict`` and checks single objects with
``can``/``get_object_for``; nothing checks roles by hand. The superuser bypass lives only here.

Actions:
* ``view``    — read pages, watch operation streams, read the audit trail (viewer and up)
* ``operate`` — run operations, create/rotate/revoke tokens, manage machines (operator and up)
* ``admin``   — reveal secrets, download admin kubeconfigs and CA material, manage members (admin)
"""

from __future__ import annotations

import functools

from django.apps import apps
from django.contrib.auth.backends import BaseBackend
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models
from django.http import Http404

from core.models import TeamRole

VIEW = "view"
OPERATE = "operate"
ADMIN = "admin"
ACTIONS = (VIEW, OPERATE, ADMIN)

ROLE_ACTIONS: dict[str, frozenset[str]] = {
    TeamRole.VIEWER: frozenset({VIEW}),
    TeamRole.OPERATOR: frozenset({VIEW, OPERATE}),
    TeamRole.ADMIN: frozenset({VIEW, OPERATE, ADMIN}),
}


def roles_allowing(action: str) -> list[str]:
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}; expected one of {', '.join(ACTIONS)}")
    return [role for role, actions in ROLE_ACTIONS.items() if action in actions]


def _derive_team_path(model: type[models.Model], depth: int = 2) -> str | None:
    """``TEAM_PATH`` if declared; else through a ``cluster`` foreign key; else through another
    required foreign key to a model that has one (a phase run: ``operation__cluster__team``)."""
    if hasattr(model, "TEAM_PATH"):
        return model.TEAM_PATH
    relations = [
        f for f in model._meta.concrete_fields if (f.many_to_one or f.one_to_one) and f.related_model is not model
    ]
    for field in relations:
        if field.related_model._meta.label == "clusters.Cluster":
            return f"{field.name}__team"
    if depth > 1:
        for field in sorted(relations, key=lambda f: f.null):
            below = _derive_team_path(field.related_model, depth - 1)
            if below is not None:
                return f"{field.name}__{below}"
    return None


@functools.cache
def _team_path_of(model: type[models.Model]) -> str | None:
    return _derive_team_path(model)


def team_path(model: type[models.Model]) -> str:
    """The ORM path from a model to its cluster's team (models may declare ``TEAM_PATH``)."""
    return _team_path_of(model) or "cluster__team"


def is_team_scoped(model: type[models.Model]) -> bool:
    """Whether rows of ``model`` belong to a team (directly, or through their cluster)."""
    return _team_path_of(model) is not None


def _is_superuser(user) -> bool:
    return bool(getattr(user, "is_authenticated", False) and getattr(user, "is_active", False) and user.is_superuser)


def restrict(queryset: models.QuerySet, user, action: str = VIEW) -> models.QuerySet:
    """Narrow ``queryset`` to the rows whose team grants ``user`` the ``action``."""
    roles = roles_allowing(action)
    if not getattr(user, "is_authenticated", False) or not getattr(user, "is_active", False):
        return queryset.none()
    if user.is_superuser:
        return queryset
    path = team_path(queryset.model)
    return queryset.filter(**{f"{path}__memberships__user": user, f"{path}__memberships__role__in": roles})


def teams_for(user, action: str = VIEW) -> models.QuerySet:
    """Teams in which ``user`` may do ``action`` (every team for a superuser)."""
    roles = roles_allowing(action)
    if _is_superuser(user):
        return Group.objects.all()
    if not getattr(user, "is_authenticated", False) or not getattr(user, "is_active", False):
        return Group.objects.none()
    return Group.objects.filter(memberships__user=user, memberships__role__in=roles)


def can(user, action: str, obj: models.Model) -> bool:
    """Checked against the database row, never the in-memory object (as NetBox does)."""
    return restrict(type(obj)._default_manager.filter(pk=obj.pk), user, action).exists()


def can_see(user, model: type[models.Model], pk) -> bool:
    """Whether ``user`` may see the row ``pk`` of ``model``: through its team for team-scoped
    models, superusers only for the rest (users, groups, the task queue)."""
    if is_team_scoped(model):
        try:
            return restrict(model._default_manager.filter(pk=pk), user, VIEW).exists()
        except (ValueError, TypeError, ValidationError):  # not a key of this model
            return False
    return _is_superuser(user)


def can_manage_accounts(user) -> bool:
    """Creating teams and user accounts is a superuser's (accounts exist before any team has them,
    so no team role can grant it)."""
    return _is_superuser(user)


def can_manage_artifacts(user) -> bool:
    """Importing or deleting an air-gapped artifact set is a superuser's: a set belongs to no team
    (every cluster of its version uses it) and its binaries run as root on the machines."""
    return _is_superuser(user)


def can_see_artifacts(user) -> bool:
    """Which sets exist (names, sizes, checksums) is no secret: anyone signed in."""
    return bool(getattr(user, "is_authenticated", False) and getattr(user, "is_active", False))


def can_in_team(user, action: str, team: Group | None) -> bool:
    """For objects that do not exist yet (a new cluster in ``team``)."""
    return team is not None and teams_for(user, action).filter(pk=team.pk).exists()


def get_object_for(user, action: str, queryset: models.QuerySet, **lookup) -> models.Model:
    """The object for a view: 404 when the user cannot even see it, 403 when they may see
    it but not do ``action`` (so a viewer learns why a button does nothing for them)."""
    obj = restrict(queryset, user, VIEW).filter(**lookup).first()
    if obj is None:
        raise Http404(f"No {queryset.model._meta.verbose_name} matches the given query.")
    if action != VIEW and not can(user, action, obj):
        raise PermissionDenied(f"your role in team {_team_name(obj)} does not allow '{action}'")
    return obj


def require(user, action: str, obj: models.Model) -> None:
    if not can(user, action, obj):
        raise PermissionDenied(f"your role in team {_team_name(obj)} does not allow '{action}'")


def _team_name(obj: models.Model) -> str:
    team = obj
    for part in team_path(type(obj)).split("__"):
        team = getattr(team, part, None)
        if team is None:
            return "(none)"
    return str(team)


# Django permission verbs that team roles grant on team-scoped models. add/change/delete are
# never granted by a role: objects with a lifecycle change through services, not generic edits.
PERMISSION_ACTIONS = {"view": VIEW, "operate": OPERATE, "reveal": ADMIN}


class TeamRoleBackend(BaseBackend):
    """Django's permission API answered from team roles, so ``user.has_perm("clusters.view_cluster",
    cluster)`` and the admin's permission checks agree with ``can``/``restrict``.

    Without an object the answer is "in some team"; with one it is ``can(user, action, obj)``.
    """

    def _action_and_model(self, perm: str):
        app_label, _, codename = perm.partition(".")
        verb, _, model_name = codename.partition("_")
        action = PERMISSION_ACTIONS.get(verb)
        if action is None:
            return None, None
        try:
            model = apps.get_model(app_label, model_name)
        except LookupError:
            return None, None
        return (action, model) if is_team_scoped(model) else (None, None)

    def has_perm(self, user_obj, perm: str, obj=None) -> bool:
        if not getattr(user_obj, "is_active", False):
            return False
        action, model = self._action_and_model(perm)
        if action is None:
            return False
        if obj is None:
            return teams_for(user_obj, action).exists()
        return isinstance(obj, model) and can(user_obj, action, obj)

    def has_module_perms(self, user_obj, app_label: str) -> bool:
        if not getattr(user_obj, "is_active", False):
            return False
        try:
            models_of_app = apps.get_app_config(app_label).get_models()
        except LookupError:
            return False
        return any(is_team_scoped(model) for model in models_of_app) and teams_for(user_obj, VIEW).exists()
