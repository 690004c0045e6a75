from django.apps import AppConfig


class NodesConfig(AppConfig):
    name = "nodes"

    def ready(self) -> None:
        from nodes.join import JOIN_CONTROL_PLANE, JOIN_WORKERS
        from operations.registry import register

        register(JOIN_WORKERS)
        register(JOIN_CONTROL_PLANE)
