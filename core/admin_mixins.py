"""Admin behaviour shared by Kubeboard's screens.

The admin follows the same rules as the pages (NetBox dropped its admin for this reason):

* ``TeamScopedAdmin``: every list, object page, related lookup and autocomplete goes through
  ``core.permissions.restrict``, so a staff member sees exactly the teams' objects they see in
  the UI; a superuser sees everything. Foreign-key choices are narrowed the same way.
* ``ReadOnlyAdmin``: objects with a lifecycle (clusters, nodes, tokens, CAs, operations, events,
  audit records, team memberships) change only through the UI's forms and services, which
  validate and audit; here they are read-only for everyone. Encrypted fields show a mask.
* ``audit.admin_mixins.AuditedAdmin`` (with the trail, above core): whatever the admin can still
  change (users, groups) writes one audit record per change.
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.models import Group

from core.encryption import EncryptedTextField
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
