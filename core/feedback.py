"""What a view or a command tells the person after a refusal or a form with mistakes.

One wording everywhere: the reason, then what to do (`` — hint``, from the exception's ``hint``);
a field's mistake prefixed with its label.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest


def refusal_text(exc: Exception) -> str:
    hint = getattr(exc, "hint", "")
    return f"{exc} — {hint}" if hint else str(exc)


def refused(request: HttpRequest, exc: Exception) -> None:
    messages.error(request, refusal_text(exc))


def form_errors(request: HttpRequest, form) -> None:
    for field, errors in form.errors.items():
        label = form.fields[field].label if field in form.fields else ""
        for error in errors:
            messages.error(request, f"{label}: {error}" if label else error)
