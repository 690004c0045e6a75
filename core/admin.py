"""Users and groups stay in the admin for superusers, audited; team membership is managed on
the Teams page (same validation and audit as everywhere) and is read-only here."""

from django import forms
from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group, User
from django.contrib.contenttypes.models import ContentType
from django.contrib.contenttypes.views import shortcut
from django.http import Http404, HttpRequest, HttpResponse

from core.admin_mixins import AuditedAdmin, ReadOnlyAdmin
from core.models import TeamMembership, WorkerHeartbeat
from core.permissions import ADMIN, can_see, teams_for
from teams.names import clash_message, clashing_team


def view_on_site(request: HttpRequest, content_type_id: str, object_id: str) -> HttpResponse:
    """The admin's "view on site" redirect (/admin/r/<content type>/<id>/), behind the same gate
    as the pages: Django's own sends any staff member to any object's page, so its address
    told another team's names. An object the user may not see is "not found", like a page."""
    try:
        model = ContentType.objects.get_for_id(int(content_type_id)).model_class()
    except (ValueError, OverflowError, ContentType.DoesNotExist):
        model = None
    if model is None or not can_see(request.user, model, object_id):
        raise Http404("no such object")
    return shortcut(request, content_type_id, object_id)


admin.site.unregister(User)
admin.site.unregister(Group)

# django-axes: deleting an access attempt lifts a login lockout, so it is audited too
# (django-q2's screens are wrapped the same way in operations/admin.py).
for _model, _model_admin in list(admin.site._registry.items()):
    if _model._meta.app_label == "axes" and not isinstance(_model_admin, AuditedAdmin):
        _base = type(_model_admin)
        admin.site.unregister(_model)
        admin.site.register(_model, type(f"Audited{_base.__name__}", (AuditedAdmin, _base), {}))


@admin.register(User)
class AuditedUserAdmin(AuditedAdmin, UserAdmin):
    pass


class TeamGroupForm(forms.ModelForm):
    """A group is a team: its name may not repeat another's in other letter case (as on the
    Teams page; the database refuses it too)."""

    class Meta:
        model = Group
        fields = "__all__"

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        existing = clashing_team(name, exclude_pk=self.instance.pk)
        if existing is not None:
            raise forms.ValidationError(clash_message(name, existing))
        return name


@admin.register(Group)
class AuditedGroupAdmin(AuditedAdmin, GroupAdmin):
    form = TeamGroupForm


@admin.register(TeamMembership)
class TeamMembershipAdmin(ReadOnlyAdmin):
    list_display = ("team", "user", "role")
    list_filter = ("role",)

    def get_queryset(self, request):
        qs = TeamMembership.objects.select_related("team", "user")
        return qs.filter(team__in=teams_for(request.user, ADMIN)) if not request.user.is_superuser else qs

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.is_active and (request.user.is_superuser or teams_for(request.user, ADMIN).exists())

    def has_module_permission(self, request) -> bool:
        return self.has_view_permission(request)


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(ReadOnlyAdmin):
    """Which workers are alive (what /readyz reads): superusers only, read-only."""

    list_display = ("worker", "host", "pid", "started_at", "seen_at")

    def get_queryset(self, request):
        qs = WorkerHeartbeat.objects.all()
        return qs if request.user.is_superuser else qs.none()

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_module_permission(self, request) -> bool:
        return self.has_view_permission(request)
