"""Request-wide middleware: the audit context of each request, and security headers."""

from __future__ import annotations

import ipaddress
import uuid

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

from audit.context import audit_context


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


class RequestContextMiddleware:
    """Gives each request a correlation id (``request.id``, echoed as ``X-Request-ID``) and opens
    the audit context every record written while handling it shares (after authentication,
    so the record names the logged-in user)."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.id = uuid.uuid4()
        with audit_context(
            request=request,
            correlation_id=str(request.id),
            source="web",
            source_address=client_address(request),
            user_agent=request.META.get("HTTP_USER_AGENT", "")[:300],
        ):
            response = self.get_response(request)
        response["X-Request-ID"] = str(request.id)
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> None:
        """A signed-in user's change refused for their role is one ``access.denied`` record (the
        403 page and the log line follow as usual). Reads and anonymous requests write none."""
        if not isinstance(exception, PermissionDenied) or request.method in ("GET", "HEAD", "OPTIONS"):
            return None
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return None
        from audit.models import AuditEvent
        from audit.services import record

        match = request.resolver_match
        record(
            "access.denied",
            outcome=AuditEvent.Outcome.DENIED,
            details={
                "route": (match.view_name if match else "") or request.path[:200],
                "method": request.method,
                "reason": str(exception)[:300],
            },
        )
        return None


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
