"""``AuditedAdmin``: whatever the admin can still change (users, groups, login lockouts, django-q2's
screens) writes one audit record per change, with before/after snapshots, besides Django's own
LogEntry. It lives with the audit trail, not in ``core.admin_mixins``, because core sits below
audit and may not write records itself (docs/architecture.md, "Layers")."""

from __future__ import annotations

from django.contrib import admin

from audit.snapshot import snapshot
from core.form_fields import BoundedModelMultipleChoiceField


class AuditedAdmin(admin.ModelAdmin):
    """One audit record per admin change (``admin.<model>.added/changed/deleted``)."""

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        # A group's permissions, a user's groups: a key beyond 64 bits is an invalid choice, not a 500.
        kwargs.setdefault("form_class", BoundedModelMultipleChoiceField)
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change) -> None:
        if change and obj.pk is not None:
            old = type(obj)._default_manager.filter(pk=obj.pk).first()
            request._audit_before = snapshot(old) if old is not None else None
        super().save_model(request, obj, form, change)

    def _record(self, request, obj, verb: str, message, before=None, after=None) -> None:
        from audit.services import record

        details = {"via": "admin"}
        if message:
            details["message"] = message if isinstance(message, str) else str(message)
        record(
            f"admin.{obj._meta.model_name}.{verb}",
            actor=request.user,
            obj=obj,
            details=details,
            before=before,
            after=after,
        )

    def log_addition(self, request, obj, message):
        self._record(request, obj, "added", message, after=snapshot(obj))
        return super().log_addition(request, obj, message)

    def log_change(self, request, obj, message):
        self._record(
            request, obj, "changed", message, before=getattr(request, "_audit_before", None) or {}, after=snapshot(obj)
        )
        return super().log_change(request, obj, message)

    def log_deletions(self, request, queryset):
        for obj in queryset:
            self._record(request, obj, "deleted", "", before=snapshot(obj))
        return super().log_deletions(request, queryset)
