from django.apps import AppConfig


class ClustersConfig(AppConfig):
    name = "clusters"

    def ready(self) -> None:
        from clusters.identity import PREPARE_IDENTITY
        from clusters.inventory import READ_BACK
        from operations.registry import register

        register(PREPARE_IDENTITY)
        register(READ_BACK)
