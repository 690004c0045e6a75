"""Users and groups (teams) stay in the admin for superusers, audited; team membership is managed
on the Teams page and is read-only in the admin (core/admin.py). Here rather than in core because
an audited screen writes audit records, and core sits below audit (docs/architecture.md, "Layers")."""

from django import forms
from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group, User

from audit.admin_mixins import AuditedAdmin
from teams.names import clash_message, clashing_team

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
