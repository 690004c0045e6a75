"""The login forms (the site's and the admin's), with the user name's length enforced.

Django's ``AuthenticationForm`` sets the user name field's ``max_length`` after the field was
built, so no length validator runs: a 20,000-character name went on to ``authenticate()`` and
django-axes, whose failed-attempt record holds 255 characters, and PostgreSQL refused the insert
(a server error instead of "wrong user name or password")."""

from __future__ import annotations

from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.core.validators import MaxLengthValidator


class BoundedUsernameMixin:
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["username"]
        field.validators.append(MaxLengthValidator(field.max_length))


class LoginForm(BoundedUsernameMixin, AuthenticationForm):
    pass


class AdminLoginForm(BoundedUsernameMixin, AdminAuthenticationForm):
    pass
