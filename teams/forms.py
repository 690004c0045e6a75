from __future__ import annotations

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import PasswordChangeForm
from django.contrib.auth.models import Group
from django.contrib.auth.validators import UnicodeUsernameValidator

from core.models import TeamRole
from core.secret_forms import SecretFieldsMixin


class TeamForm(forms.Form):
    name = forms.CharField(max_length=150, help_text="e.g. platform; clusters are given to one team")


class MemberForm(forms.Form):
    username = forms.CharField(max_length=150)
    role = forms.ChoiceField(choices=TeamRole.choices, initial=TeamRole.VIEWER)

    def __init__(self, *args, can_create_users: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Who reads the mistake decides what to do about a missing account.
        self.can_create_users = can_create_users

    def clean_username(self):
        name = self.cleaned_data["username"].strip()
        user = get_user_model().objects.filter(username=name).first()
        if user is None:
            if self.can_create_users:
                raise forms.ValidationError(
                    f"there is no user “{name}”; create the account under “New user” on the Teams page first"
                )
            raise forms.ValidationError(f"there is no user “{name}”; ask a superuser to create the account")
        return user


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=TeamRole.choices)


class UserForm(forms.Form):
    """A new account, made by a superuser on the Teams page; its password is made for it."""

    username = forms.CharField(
        max_length=150,
        validators=[UnicodeUsernameValidator()],
        help_text="Letters, digits and @ . + - _ only. A one-time password is made and shown once.",
    )
    team = forms.ModelChoiceField(
        queryset=Group.objects.order_by("name"), required=False, empty_label="no team yet", label="Team"
    )
    role = forms.ChoiceField(choices=TeamRole.choices, initial=TeamRole.VIEWER, label="Role in that team")


class OwnPasswordForm(SecretFieldsMixin, PasswordChangeForm):
    """Django's change of one's own password; after a mistake no password is sent back, and
    each one typed says to type it again."""

    secret_fields = ("old_password", "new_password1", "new_password2")
