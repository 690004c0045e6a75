"""Request-wide middleware: the client's address, security headers, NUL characters refused. The
audit context of each request is opened by ``audit.middleware.RequestContextMiddleware``."""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest, HttpResponse


def client_address(request: HttpRequest) -> str:
    """The client's IP address; X-Forwarded-For counts only from a configured trusted proxy."""
    remote = request.META.get("REMOTE_ADDR", "")
    if remote in settings.TRUSTED_PROXIES:
        forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
        # The right-most address a trusted proxy did not add is the client.
        for candidate in reversed(forwarded):
            if candidate not in settings.TRUSTED_PROXIES:
                remote = candidate
                break
    try:
        return ipaddress.ip_address(remote).compressed
    except ValueError:
        return ""


class SecurityHeadersMiddleware:
    """Content-Security-Policy and friends. Pages load scripts and styles from our static files
    only (no inline script or style), so the policy can forbid everything else."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.setdefault("Content-Security-Policy", settings.CONTENT_SECURITY_POLICY)
        response.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
        return response


class RefuseNulCharactersMiddleware:
    """A NUL character (\\0) in the address, the query or a form field is refused with a 400 that
    says so, before any view runs. No Kubeboard name, id or field accepts one, and PostgreSQL
    refuses it in every text value: a cluster name from the path with one made the lookup fail
    with a server error. Uploaded files are not inspected (a file may hold any byte)."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        where = self.nul_in(request)
        if where:
            return HttpResponse(
                f"Refused: {where} contains a NUL character (\\0), which no Kubeboard page accepts.\n",
                status=400,
                content_type="text/plain; charset=utf-8",
            )
        return self.get_response(request)

    @staticmethod
    def nul_in(request: HttpRequest) -> str:
        if "\0" in request.path:
            return "the address"
        if any("\0" in text for key, values in request.GET.lists() for text in [key, *values]):
            return "the query string"
        if request.method == "POST":
            # Parsing the body here raises what the CSRF check would raise next (too many fields,
            # too large, a broken multipart body), answered the same way.
            for key, values in request.POST.lists():
                if any("\0" in text for text in [key, *values]):
                    return f"the form field {key.replace(chr(0), '')!r}"
        return ""
