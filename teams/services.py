"""Team and role changes: each checks who may make it, keeps the team manageable, and writes
one audit record. A team is a Django ``Group``; a member's role is a ``core.models.TeamMembership``
row, read by ``core.permissions`` on every request, so a change applies at once everywhere."""

from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction

from audit.services import record, refusals
from audit.snapshot import snapshot
from core.models import TeamMembership, TeamRole
from core.permissions import ADMIN, can_in_team, can_manage_accounts
from teams.accounts import require_password_change
from teams.names import clash_message, clashing_team


class TeamError(ValueError):
    """A team change that cannot be made (message says why)."""


def _require_admin(user, team: Group) -> None:
    if not can_in_team(user, ADMIN, team):
        raise PermissionDenied(f"managing team {team.name} needs its admin role")


def _check_role(role: str) -> str:
    if role not in TeamRole.values:
        raise TeamError(f"unknown role “{role}”; a role is one of {', '.join(TeamRole.values)}")
    return role


def create_team(name: str, *, user) -> Group:
    with refusals("team.created", TeamError, actor=user, details={"team": name.strip()[:150]}):
        return _create_team(name, user=user)


def _create_team(name: str, *, user) -> Group:
    if not can_manage_accounts(user):
        raise PermissionDenied("only a superuser creates teams")
    name = name.strip()
    if not name:
        raise TeamError("a team needs a name")
    existing = clashing_team(name)
    if existing is not None:
        raise TeamError(clash_message(name, existing))
    try:
        with transaction.atomic():
            team = Group.objects.create(name=name)
            record("team.created", actor=user, obj=team, details={"team": team.name}, after=snapshot(team))
            # Its creator is its first admin, recorded like every other membership change, so the
            # team has someone to manage it and shows up among the creator's own teams.
            _add_member(team, user, TeamRole.ADMIN, user=user)
    except IntegrityError:
        # Created meanwhile by someone else: the database's case-insensitive index refused it.
        existing = clashing_team(name)
        raise TeamError(
            clash_message(name, existing) if existing else f"a team named “{name}” already exists"
        ) from None
    return team


def _admins_left(team: Group, without: TeamMembership) -> int:
    return TeamMembership.objects.filter(team=team, role=TeamRole.ADMIN).exclude(pk=without.pk).count()


def add_member(team: Group, member, role: str, *, user) -> TeamMembership:
    _require_admin(user, team)
    details = {"team": team.name, "user": member.get_username(), "role": role}
    with refusals("team.member_added", TeamError, actor=user, obj=team, details=details):
        return _add_member(team, member, role, user=user)


def _add_member(team: Group, member, role: str, *, user) -> TeamMembership:
    _check_role(role)
    if not member.is_active:
        raise TeamError(f"user {member.get_username()} is deactivated")
    try:
        with transaction.atomic():
            membership = TeamMembership.objects.create(team=team, user=member, role=role)
            record(
                "team.member_added",
                actor=user,
                obj=team,
                details={"team": team.name, "user": member.get_username(), "role": role},
            )
    except IntegrityError:
        raise TeamError(f"{member.get_username()} is already in team {team.name}; change their role instead") from None
    return membership


def change_role(membership: TeamMembership, role: str, *, user) -> TeamMembership:
    team = membership.team
    _require_admin(user, team)
    details = {"team": team.name, "user": membership.user.get_username(), "role": role}
    with refusals("team.role_changed", TeamError, actor=user, obj=team, details=details):
        return _change_role(membership, role, user=user)


def _change_role(membership: TeamMembership, role: str, *, user) -> TeamMembership:
    team = membership.team
    _check_role(role)
    with transaction.atomic():
        locked = TeamMembership.objects.select_for_update().get(pk=membership.pk)
        if locked.role == role:
            return locked
        if locked.role == TeamRole.ADMIN and not _admins_left(team, locked):
            raise TeamError(
                f"{locked.user.get_username()} is the last admin of {team.name}; make someone else admin first"
            )
        before = locked.role
        locked.role = role
        locked.save(update_fields=["role"])
        record(
            "team.role_changed",
            actor=user,
            obj=team,
            details={"team": team.name, "user": locked.user.get_username(), "role": role},
            before={"role": before},
            after={"role": role},
        )
    return locked


def remove_member(membership: TeamMembership, *, user) -> None:
    team = membership.team
    _require_admin(user, team)
    details = {"team": team.name, "user": membership.user.get_username(), "role": membership.role}
    with refusals("team.member_removed", TeamError, actor=user, obj=team, details=details):
        _remove_member(membership, user=user)


def _remove_member(membership: TeamMembership, *, user) -> None:
    team = membership.team
    with transaction.atomic():
        locked = TeamMembership.objects.select_for_update().select_related("user").get(pk=membership.pk)
        if locked.role == TeamRole.ADMIN and not _admins_left(team, locked):
            raise TeamError(
                f"{locked.user.get_username()} is the last admin of {team.name}; make someone else admin first"
            )
        locked.delete()
        record(
            "team.member_removed",
            actor=user,
            obj=team,
            details={"team": team.name, "user": locked.user.get_username(), "role": locked.role},
        )


# --- user accounts ------------------------------------------------------------------------------------

# A one-time password: long enough to resist guessing until its owner replaces it.
ONE_TIME_PASSWORD_BYTES = 12


def create_user(username: str, *, user, team: Group | None = None, role: str = TeamRole.VIEWER) -> tuple:
    """A new account with a one-time password, returned once to show to the superuser who made it
    (never stored in clear, never in the audit record); optionally a member of ``team`` at once.
    Returns (account, password)."""
    details = {"username": username.strip()[:150], "team": team.name if team else None}
    with refusals("user.created", TeamError, actor=user, details=details):
        return _create_user(username, user=user, team=team, role=role)


def _create_user(username: str, *, user, team: Group | None, role: str) -> tuple:
    if not can_manage_accounts(user):
        raise PermissionDenied("only a superuser creates users")
    username = username.strip()
    if not username:
        raise TeamError("a user needs a username")
    accounts = get_user_model()
    if accounts.objects.filter(username__iexact=username).exists():
        raise TeamError(f"a user named “{username}” already exists; add them to a team instead")
    if team is not None:
        _check_role(role)
    password = secrets.token_urlsafe(ONE_TIME_PASSWORD_BYTES)
    try:
        with transaction.atomic():
            account = accounts.objects.create_user(username=username, password=password)
            # The superuser saw this password: its owner replaces it at first login.
            require_password_change(account)
            record(
                "user.created",
                actor=user,
                obj=account,
                details={"username": username, "superuser": False, "via": "teams page"},
            )
            if team is not None:
                _add_member(team, account, role, user=user)
    except IntegrityError:
        raise TeamError(f"a user named “{username}” already exists; add them to a team instead") from None
    return account, password
