"""Admin behaviour shared by Kubeboard's screens.

The admin follows the same rules as the pages (NetBox dropped its admin for this reason):

* ``TeamScopedAdmin``: every list, object page, related lookup and autocomplete goes through
  ``core.permissions.restrict``, so a staff member sees exactly the teams' objects they see in
  the UI; a superuser sees everything. Foreign-key choices are narrowed the same way.
* ``ReadOnlyAdmin``: objects with a lifecycle (clusters, nodes, tokens, CAs, operations, events,
  audit records, team memberships) change only through the UI's forms and services, which
  validate and audit; here they are read-only for everyone. Encrypted fields show a mask.
* ``AuditedAdmin``: whatever the admin can still change (users, groups) writes one audit record
  per change, with before/after snapshots, besides Django's own LogEntry.
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.models import Group

from audit.snapshot import snapshot
from core.encryption import EncryptedTextField
from core.form_fields import BoundedModelMultipleChoiceField
from core.permissions import OPERATE, VIEW, is_team_scoped, restrict, teams_for


class TeamScopedAdmin(admin.ModelAdmin):
    def get_queryset(self, request):
        return restrict(super().get_queryset(request), request.user, VIEW)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        related = db_field.related_model
        if related is Group:
            kwargs["queryset"] = teams_for(request.user, OPERATE)
        elif is_team_scoped(related):
            kwargs["queryset"] = restrict(related._default_manager.all(), request.user, OPERATE)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class ReadOnlyAdmin(TeamScopedAdmin):
    """Viewable (scoped), never added, changed or deleted through the admin."""

    actions = None

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_fields(self, request, obj=None):
        # Encrypted values never reach the page: not even masked ciphertext lengths.
        return [
            field.name
            for field in self.model._meta.concrete_fields
            if not isinstance(field, EncryptedTextField) and not field.primary_key
        ] + [
            f"{field.name}_state" for field in self.model._meta.concrete_fields if isinstance(field, EncryptedTextField)
        ]

    def get_readonly_fields(self, request, obj=None):
        return self.get_fields(request, obj)

    def __getattr__(self, name: str):
        # "<secret field>_state": "set" or "not set", for every encrypted field of the model.
        if name.endswith("_state"):
            field_name = name[: -len("_state")]
            fields = {f.name: f for f in self.model._meta.concrete_fields}
            if isinstance(fields.get(field_name), EncryptedTextField):

                def state(obj, field_name=field_name) -> str:
                    return "set (hidden)" if getattr(obj, field_name) else "not set"

                state.short_description = f"{fields[field_name].verbose_name}"
                return state
        raise AttributeError(name)


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


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
