"""Health endpoints for a load balancer, and the checks behind them.

* ``/healthz`` — liveness: the process answers. Touches no database, so a database outage
  does not make every web process look dead and get restarted.
* ``/readyz`` — readiness: the database answers, Redis answers (if configured), and at least
  one background worker wrote a heartbeat recently (otherwise operations would queue forever).
  503 with the failing checks named, 200 otherwise.
"""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from core.models import WorkerHeartbeat
from core.waiting import WaitTimedOut, wait_until


def masked_url(url: str) -> str:
    """``url`` with any password replaced, for messages and logs."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(unparsable URL)"
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def describe(exc: BaseException) -> str:
    """An exception as one short log line: its type and its message with newlines folded."""
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"


def redis_problem(url: str, timeout: float = 2.0) -> str | None:
    """None if Redis at ``url`` answers a PING, else what is wrong (password masked)."""
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    except ValueError as exc:
        return f"REDIS_URL {masked_url(url)} is not a valid Redis URL ({exc})"
    try:
        client.ping()
    except redis.RedisError as exc:
        return f"Redis at {masked_url(url)} does not answer ({describe(exc)})"
    finally:
        client.close()
    return None


def wait_for_redis(url: str, seconds: float) -> str | None:
    """Like ``redis_problem`` but keeps trying for ``seconds`` (Redis may start a moment later)."""
    problem: str | None = None

    def settled() -> bool | None:
        nonlocal problem
        problem = redis_problem(url)
        # A URL that is not valid stays so: no point waiting for it.
        return True if problem is None or "not a valid" in problem else None

    try:
        wait_until(settled, timeout=seconds, interval=0.5)
    except WaitTimedOut:
        pass  # the last problem seen is the answer
    return problem


def database_problem() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:
        connection.close()
        return f"the database does not answer ({describe(exc)})"
    return None


def workers_state() -> tuple[bool, str]:
    """(at least one fresh heartbeat?, a sentence saying how many and how old)."""
    bound = settings.WORKER_HEARTBEAT_STALE_SECONDS
    now = timezone.now()
    fresh = list(
        WorkerHeartbeat.objects.filter(seen_at__gte=now - timedelta(seconds=bound)).values_list("seen_at", flat=True)
    )
    if fresh:
        age = (now - max(fresh)).total_seconds()
        return True, f"{len(fresh)} worker process(es) alive, newest heartbeat {age:.0f}s ago"
    newest = WorkerHeartbeat.objects.order_by("-seen_at").values_list("seen_at", flat=True).first()
    seen = f"last heartbeat {(now - newest).total_seconds():.0f}s ago" if newest else "no worker ever reported"
    return False, f"no worker heartbeat in the last {bound}s ({seen}); start `manage.py qcluster`"


@never_cache
@require_GET
def healthz(request):
    return JsonResponse({"status": "alive"})


@never_cache
@require_GET
def readyz(request):
    checks: dict[str, str] = {}
    ready = True
    problem = database_problem()
    checks["database"] = problem or "ok"
    ready = ready and problem is None
    if settings.REDIS_URL:
        problem = redis_problem(settings.REDIS_URL)
        checks["redis"] = problem or "ok"
        ready = ready and problem is None
    else:
        checks["redis"] = "not configured (embedded mode)"
    if checks["database"] == "ok":
        alive, sentence = workers_state()
        checks["workers"] = sentence
        ready = ready and alive
    else:
        checks["workers"] = "unknown (no database)"
    return JsonResponse({"status": "ready" if ready else "not ready", "checks": checks}, status=200 if ready else 503)
