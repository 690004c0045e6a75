from importlib import import_module

from django.apps import AppConfig
from django.conf import settings


class OperationsConfig(AppConfig):
    name = "operations"

    def ready(self) -> None:
        from operations import signals  # noqa: F401  (connects the worker start-up reaper)

        # Apps register their own kinds from their ready(); these modules add kinds a site
        # (or a test run) brings along, in web and worker processes alike.
        for module in settings.OPERATION_KIND_MODULES:
            import_module(module)
