"""The audit context of each web request (``RequestContextMiddleware``). Here rather than in
``core.middleware`` because it writes audit records, and core sits below audit
(docs/architecture.md, "Layers")."""

from __future__ import annotations

import uuid

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

from audit.context import audit_context
from core.middleware import client_address
from core.requests import handling


class RequestContextMiddleware:
    """Gives each request a correlation id (``request.id``, echoed as ``X-Request-ID``) and opens
    the audit context every record written while handling it shares (after authentication,
    so the record names the logged-in user)."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.id = uuid.uuid4()
        with (
            handling(request),
            audit_context(
                request=request,
                correlation_id=str(request.id),
                source="web",
                source_address=client_address(request),
                user_agent=request.META.get("HTTP_USER_AGENT", "")[:300],
            ),
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
