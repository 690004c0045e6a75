from django.apps import AppConfig


class OperationsConfig(AppConfig):
    name = "operations"

    def ready(self) -> None:
        from operations import signals  # noqa: F401  (connects the worker start-up reaper)
