"""Form fields shared by the pages and the admin."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError
from django.db import models

# The range of a 64-bit signed integer column (SQLite's INTEGER, PostgreSQL's bigint).
SMALLEST_KEY, LARGEST_KEY = -(2**63), 2**63 - 1


class BoundedModelMultipleChoiceField(forms.ModelMultipleChoiceField):
    """Several objects chosen by integer key, where a number beyond 64 bits is "not a valid
    choice" like any unknown key. Django's field looks them all up in one ``IN`` query, which
    SQLite refuses with ``OverflowError`` (a server error) for such a number."""

    def _check_values(self, value):
        key = self.to_field_name or "pk"
        field = self.queryset.model._meta.pk if key == "pk" else self.queryset.model._meta.get_field(key)
        if isinstance(field, models.IntegerField | models.AutoField):
            for pk in value:
                try:
                    number = int(str(pk))
                except ValueError:
                    continue  # not a number at all: Django's own check names it
                if not SMALLEST_KEY <= number <= LARGEST_KEY:
                    raise ValidationError(
                        self.error_messages["invalid_pk_value"], code="invalid_pk_value", params={"pk": pk}
                    )
        return super()._check_values(value)
