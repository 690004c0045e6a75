"""Teams and roles: admins manage their team's members, superusers create teams and user accounts.

A new account's one-time password is shown once: the create redirects (Post/Redirect/Get) to the
page that reads it, encrypted, from the session and removes it as it is shown (as a new token is,
tokens.views); the page is never stored by a browser (core.no_store)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse, reverse_lazy
from django.views.decorators.http import require_POST

from core import encryption
from core.models import TeamMembership
from core.permissions import ADMIN, VIEW, can_in_team, can_manage_accounts, teams_for
from teams import accounts, services
from teams.forms import MemberForm, OwnPasswordForm, RoleForm, TeamForm, UserForm

# The session key under which a new account's password waits, encrypted, for its one showing.
NEW_ACCOUNT = "teams.new_account"


def _team(user, pk: int) -> Group:
    team = teams_for(user, VIEW).filter(pk=pk).first()
    if team is None:
        raise Http404("No team with this id is visible to you.")
    return team


def _list(request: HttpRequest, *, form=None, user_form=None, status: int = 200) -> HttpResponse:
    manages = can_manage_accounts(request.user)
    context = {
        "teams": teams_for(request.user, VIEW).distinct().order_by("name"),
        "form": (form or TeamForm()) if manages else None,
        "user_form": (user_form or UserForm()) if manages else None,
    }
    return render(request, "teams/team_list.html", context, status=status)


@login_required
def team_list(request: HttpRequest) -> HttpResponse:
    return _list(request)


@login_required
@require_POST
def team_create(request: HttpRequest) -> HttpResponse:
    if not can_manage_accounts(request.user):
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
            messages.success(request, f"Team {team.name} created with you as its admin; add its members below.")
            return redirect("teams:detail", pk=team.pk)
    return _list(request, form=form, status=400)


@login_required
def user_create(request: HttpRequest) -> HttpResponse:
    """A superuser's new account (POST), and the one showing of its password (the GET after it)."""
    if not can_manage_accounts(request.user):
        raise PermissionDenied("only a superuser creates users")
    if request.method != "POST":
        held = request.session.pop(NEW_ACCOUNT, None)
        if not held:
            return redirect("teams:list")
        context = {"username": held["username"], "team": held["team"], "role": held["role"]}
        context["password"] = encryption.decrypt(held["password"])
        return render(request, "teams/user_created.html", context)
    form = UserForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            account, password = services.create_user(
                data["username"], user=request.user, team=data["team"], role=data["role"]
            )
        except services.TeamError as exc:
            form.add_error("username", str(exc))
        else:
            request.session[NEW_ACCOUNT] = {
                "username": account.get_username(),
                "team": data["team"].name if data["team"] else "",
                "role": data["role"] if data["team"] else "",
                "password": encryption.encrypt(password),
            }
            return redirect("teams:user_create")
    return _list(request, user_form=form, status=400)


def _detail(request, team, *, member_form=None, status=200) -> HttpResponse:
    members = TeamMembership.objects.filter(team=team).select_related("user").order_by("user__username")
    can_manage = can_in_team(request.user, ADMIN, team)
    context = {
        "team": team,
        "members": members,
        "can_manage": can_manage,
        "member_form": member_form or MemberForm(),
        "can_create_users": can_manage_accounts(request.user),
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
    form = MemberForm(request.POST, can_create_users=can_manage_accounts(request.user))
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


class PasswordChange(auth_views.PasswordChangeView):
    """A user's own password (Django's form: the old one, the new one twice, the validators).
    Required before anything else after a one-time password (teams.middleware)."""

    form_class = OwnPasswordForm
    template_name = "registration/password_change.html"
    success_url = reverse_lazy("clusters:list")

    def get_context_data(self, **kwargs) -> dict:
        return super().get_context_data(**kwargs) | {"required": bool(self.request.session.get(accounts.MUST_CHANGE))}

    def form_valid(self, form) -> HttpResponse:
        accounts.change_own_password(form)
        # This browser stays logged in; the user's other sessions were ended by the new password.
        update_session_auth_hash(self.request, form.user)
        self.request.session.pop(accounts.MUST_CHANGE, None)
        messages.success(self.request, "Your password was changed.")
        return redirect(self.get_success_url())

    def form_invalid(self, form) -> HttpResponse:
        return self.render_to_response(self.get_context_data(form=form), status=400)
