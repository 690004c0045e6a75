from django.http import HttpRequest

from audit.verification import alarm


def audit_alarm(request: HttpRequest) -> dict:
    """``audit_alarm``: a failed verification of the audit trail, for superusers and team admins."""
    user = getattr(request, "user", None)
    failed = alarm(user) if user is not None else None
    return {"audit_alarm": failed} if failed is not None else {}
