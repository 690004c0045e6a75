from django.apps import AppConfig


class ClustersConfig(AppConfig):
    name = "clusters"

    def ready(self) -> None:
        from clusters.identity import PREPARE_IDENTITY
        from operations.registry import register

        register(PREPARE_IDENTITY)
