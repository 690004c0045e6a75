"""HTTP and websockets from one ASGI application (served by daphne)."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from django.conf import settings  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402

django_asgi_app = get_asgi_application()

if settings.REDIS_URL:
    # Refuse to start rather than serve pages whose live streams would never update.
    from core.health import wait_for_redis  # noqa: E402

    _problem = wait_for_redis(settings.REDIS_URL, settings.REDIS_STARTUP_WAIT_SECONDS)
    if _problem:
        raise SystemExit(
            f"Kubeboard web process not started: {_problem}. Live operation streams and the task queue need it: "
            "start Redis, fix REDIS_URL, or unset REDIS_URL for the embedded mode."
        )

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from core.websocket_origin import SameOriginValidator  # noqa: E402
from operations.routing import websocket_urlpatterns  # noqa: E402

# Static files are served by the WhiteNoise middleware (settings.MIDDLEWARE), not a development handler.
http_app = django_asgi_app

application = ProtocolTypeRouter(
    {
        "http": http_app,
        # Only our own pages (same scheme, host and port) may open a stream with the user's cookie.
        "websocket": SameOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
