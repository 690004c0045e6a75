from django.apps import AppConfig


class TokensConfig(AppConfig):
    name = "tokens"
    verbose_name = "Bootstrap tokens"

    def ready(self) -> None:
        from operations.registry import register
        from tokens.certkeys import UPLOAD_CERTS

        register(UPLOAD_CERTS)
