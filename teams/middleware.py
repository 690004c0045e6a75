"""Until a one-time password is replaced, every page leads to the password change form.

Read from the session only (``teams.accounts.MUST_CHANGE``, set at login), so no page pays a
query for it. Static files never reach here (WhiteNoise answers them first)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect

from teams.accounts import MUST_CHANGE

# What stays reachable meanwhile: the form itself, logging in and out, and the health checks.
EXEMPT = frozenset({"password-change", "login", "logout", "admin:login", "admin:logout", "healthz", "readyz"})


class PasswordChangeRequiredMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view_func, view_args, view_kwargs) -> HttpResponse | None:
        match = getattr(request, "resolver_match", None)
        # The exemption first: the health checks must not load a session.
        if match is None or match.view_name in EXEMPT:
            return None
        if not request.session.get(MUST_CHANGE):
            return None
        return redirect("password-change")
