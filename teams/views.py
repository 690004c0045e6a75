"""Teams and roles: admins manage their team's members, superusers create teams."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from core.models import TeamMembership
from core.permissions import ADMIN, VIEW, can_in_team, teams_for
from teams import services
from teams.forms import MemberForm, RoleForm, TeamForm


def _team(user, pk: int) -> Group:
    team = teams_for(user, VIEW).filter(pk=pk).first()
    if team is None:
        raise Http404("No team with this id is visible to you.")
    return team


@login_required
def team_list(request: HttpRequest) -> HttpResponse:
    teams = teams_for(request.user, VIEW).distinct().order_by("name")
    context = {"teams": teams, "form": TeamForm() if request.user.is_superuser else None}
    return render(request, "teams/team_list.html", context)


@login_required
@require_POST
def team_create(request: HttpRequest) -> HttpResponse:
    if not request.user.is_superuser:
        raise PermissionDenied("only a superuser creates teams")
    form = TeamForm(request.POST)
    if form.is_valid():
        try:
            team = services.create_team(form.cleaned_data["name"], user=request.user)
        except services.TeamError as exc:
            form.add_error("name", str(exc))
        else:
            # The first-hour guide on the cluster pages sends the admin straight back to the cluster form.
            if request.POST.get("next") == reverse("clusters:create"):
                messages.success(request, f"Team {team.name} created; its members are managed on Teams.")
                return redirect("clusters:create")
            messages.success(request, f"Team {team.name} created; add its members below.")
            return redirect("teams:detail", pk=team.pk)
    teams = teams_for(request.user, VIEW).distinct().order_by("name")
    return render(request, "teams/team_list.html", {"teams": teams, "form": form}, status=400)


def _detail(request, team, *, member_form=None, status=200) -> HttpResponse:
    members = TeamMembership.objects.filter(team=team).select_related("user").order_by("user__username")
    can_manage = can_in_team(request.user, ADMIN, team)
    context = {
        "team": team,
        "members": members,
        "can_manage": can_manage,
        "member_form": member_form or MemberForm(),
        "role_form": RoleForm,
    }
    return render(request, "teams/team_detail.html", context, status=status)


@login_required
def team_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _detail(request, _team(request.user, pk))


@login_required
@require_POST
def member_add(request: HttpRequest, pk: int) -> HttpResponse:
    team = _team(request.user, pk)
    if not can_in_team(request.user, ADMIN, team):
        raise PermissionDenied(f"managing team {team.name} needs its admin role")
    form = MemberForm(request.POST)
    if form.is_valid():
        try:
            services.add_member(team, form.cleaned_data["username"], form.cleaned_data["role"], user=request.user)
        except services.TeamError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"{form.cleaned_data['username']} added as {form.cleaned_data['role']}.")
            return redirect("teams:detail", pk=team.pk)
    return _detail(request, team, member_form=form, status=400)


@login_required
@require_POST
def member_role(request: HttpRequest, pk: int, member: int) -> HttpResponse:
    team = _team(request.user, pk)
    membership = get_object_or_404(TeamMembership, pk=member, team=team)
    form = RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Unknown role: " + "; ".join(form.errors.get("role", [])))
        return redirect("teams:detail", pk=team.pk)
    try:
        services.change_role(membership, form.cleaned_data["role"], user=request.user)
    except services.TeamError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"{membership.user.username} is now {form.cleaned_data['role']}.")
    return redirect("teams:detail", pk=team.pk)


@login_required
@require_POST
def member_remove(request: HttpRequest, pk: int, member: int) -> HttpResponse:
    team = _team(request.user, pk)
    membership = get_object_or_404(TeamMembership, pk=member, team=team)
    try:
        services.remove_member(membership, user=request.user)
    except services.TeamError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"{membership.user.username} removed from {team.name}; their access ended now.")
    if not teams_for(request.user, VIEW).filter(pk=team.pk).exists():
        return redirect("teams:list")
    return redirect("teams:detail", pk=team.pk)
