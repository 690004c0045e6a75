"""Team membership is managed on the Teams page (same validation and audit as everywhere) and is
read-only here; users and groups stay in the admin for superusers, audited (teams/admin.py)."""

from django.contrib import admin
from django.contrib.contenttypes.models import ContentType
from django.contrib.contenttypes.views import shortcut
from django.http import Http404, HttpRequest, HttpResponse

from core.admin_mixins import ReadOnlyAdmin
from core.models import TeamMembership, WorkerHeartbeat
from core.permissions import ADMIN, can_see, teams_for


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
