"""Issue 10, item 3, over the whole admin: no screen lets anyone save an object with a lifecycle,
and every screen that can still change something writes one audit record per change."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone

from audit.admin_mixins import AuditedAdmin
from audit.models import AuditEvent

pytestmark = pytest.mark.django_db

# Apps whose models have a lifecycle in Kubeboard: their screens must be read-only.
LIFECYCLE_APPS = {"clusters", "nodes", "tokens", "operations", "audit", "core", "daytwo"}


def _can_change(model_admin, request) -> bool:
    return any(
        (
            model_admin.has_add_permission(request),
            model_admin.has_change_permission(request),
            model_admin.has_delete_permission(request),
        )
    )


def test_no_admin_screen_changes_anything_silently(make_user):
    root = make_user("root", team=None, superuser=True)
    request = RequestFactory().get("/admin/")
    request.user = root
    silent, writable_lifecycle = [], []
    for model, model_admin in admin.site._registry.items():
        if not _can_change(model_admin, request):
            continue
        if not isinstance(model_admin, AuditedAdmin):
            silent.append(model._meta.label)
        if model._meta.app_label in LIFECYCLE_APPS:
            writable_lifecycle.append(model._meta.label)
    assert silent == [], "these admin screens can change data without an audit record"
    assert writable_lifecycle == [], "objects with a lifecycle change only through the UI's forms and services"


def test_every_admin_page_answers_the_superuser(client, make_user):
    client.force_login(make_user("root", team=None, superuser=True))
    for model in admin.site._registry:
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        assert client.get(url).status_code == 200, url


def test_a_schedule_changed_in_the_admin_is_audited_once(client, make_user):
    from django_q.models import Schedule

    schedule = Schedule.objects.create(
        name="probe", func="tokens.tasks.sweep", schedule_type=Schedule.MINUTES, minutes=1
    )
    client.force_login(make_user("root", team=None, superuser=True))
    url = reverse("admin:django_q_schedule_change", args=[schedule.pk])
    form = client.get(url).context["adminform"].form
    data = {name: value for name, value in form.initial.items() if value is not None}
    data.update({"minutes": 5, "next_run_0": timezone.now().date().isoformat(), "next_run_1": "00:00:00"})
    before = AuditEvent.objects.count()
    response = client.post(url, data)
    assert response.status_code == 302, response.content.decode()[:3000]
    [event] = AuditEvent.objects.filter(seq__gt=before)
    assert event.action == "admin.schedule.changed"
    assert event.changes["before"]["minutes"] == 1 and event.changes["after"]["minutes"] == 5
    client.post(reverse("admin:django_q_schedule_delete", args=[schedule.pk]), {"post": "yes"})
    assert AuditEvent.objects.filter(action="admin.schedule.deleted").count() == 1
