from django.apps import AppConfig


class NodesConfig(AppConfig):
    name = "nodes"

    def ready(self) -> None:
        # A machine's audit history: audit cannot know nodes (it sits below them), so we tell it.
        from audit.queries import register_history
        from nodes.history import NODE_HISTORY

        register_history("node", NODE_HISTORY)
