from __future__ import annotations

from django import forms
from django.contrib.auth import get_user_model

from core.models import TeamRole


class TeamForm(forms.Form):
    name = forms.CharField(max_length=150, help_text="e.g. platform; clusters are given to one team")


class MemberForm(forms.Form):
    username = forms.CharField(max_length=150)
    role = forms.ChoiceField(choices=TeamRole.choices, initial=TeamRole.VIEWER)

    def clean_username(self):
        name = self.cleaned_data["username"].strip()
        user = get_user_model().objects.filter(username=name).first()
        if user is None:
            raise forms.ValidationError(f"there is no user “{name}”; a superuser creates users in the admin")
        return user


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=TeamRole.choices)
